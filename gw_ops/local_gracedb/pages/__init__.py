"""Web pages of the local GraceDB for people (server-rendered with Jinja2).

* :mod:`~gw_ops.local_gracedb.pages.views`: home, superevent and event pages, login,
  the advocate's signoff form;
* :mod:`~gw_ops.local_gracedb.pages.docs`: ``/api/docs`` (Swagger UI from a package);
* :mod:`~gw_ops.local_gracedb.pages.data`: what each page shows, bounded;
* :mod:`~gw_ops.local_gracedb.pages.session`: the login cookie and the form tokens;
* :mod:`~gw_ops.local_gracedb.pages.render`: the template environment and page headers.

Templates are in ``gw_ops/local_gracedb/templates/``.
"""
