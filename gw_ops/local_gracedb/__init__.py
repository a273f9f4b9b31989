"""The local GraceDB service of gw-ops.

GraceDB cannot be installed outside LIGO, yet every part of the pipeline reads
and writes it.  This package is a GraceDB-compatible service that the unmodified
``ligo-gracedb`` client talks to:

* :mod:`gw_ops.local_gracedb.app` - the FastAPI app (``create_app``) and ``serve``
  (``gw-ops gracedb serve``);
* :mod:`gw_ops.local_gracedb.routes` - one ``APIRouter`` per resource (events,
  superevents, logs, files, labels, VOEvents, signoffs, the API root);
* :mod:`gw_ops.local_gracedb.service` - request handling, one section per resource;
* :mod:`gw_ops.local_gracedb.store` / :mod:`~gw_ops.local_gracedb.db` - database, files;
* :mod:`gw_ops.local_gracedb.permissions` - roles (pipeline, robot, advocate) and public reads;
* :mod:`gw_ops.local_gracedb.middleware` - URL/body limits, credentials, anonymous reads;
* :mod:`gw_ops.local_gracedb.request_body` / :mod:`~gw_ops.local_gracedb.errors` - bodies,
  error answers and input checks;
* :mod:`gw_ops.local_gracedb.auth` - accounts, the pipeline's service credentials
  (``ensure_service_credentials``) and ``add_user`` for people;
* :mod:`gw_ops.gracedb_client` - ``gracedb_client(settings)``, an authenticated client;
* :mod:`gw_ops.local_gracedb.outbox` - LVAlert messages on Redis streams after each commit;
* :mod:`gw_ops.local_gracedb.parsing` - coinc.xml / cWB / external VOEvent readers.
"""
