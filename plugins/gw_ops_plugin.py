"""Airflow plugin of gw-ops: links from the Airflow UI to GraceDB's pages.

* the navigation bar's "Plugins" menu has "GraceDB" (GraceDB's home page: recent
  superevents and external events) and "GraceDB API docs";
* every task of a run named after a superevent (run id ``S261201a...``) gets the extra
  links "GraceDB superevent" and "Sky map" (see :mod:`gw_ops.airflow.links`).

Light at import: settings and the two link classes, nothing else.  The pipeline's
triggers, sensors and operators are *not* here: they live in the installed package
``gw_ops.airflow``, because the triggerer imports triggers from an installed package (a
class left only in plugins/ or dags/ fails with ModuleNotFoundError).
"""
from airflow.plugins_manager import AirflowPlugin

from gw_ops.airflow.links import GraceDbSkymapLink, GraceDbSupereventLink, gracedb_home_url
from gw_ops.config import get_settings


class GwOpsPlugin(AirflowPlugin):
    """Adds a GraceDB link to the Airflow navigation bar and GraceDB links to superevent runs."""

    name = "gw_ops"
    # Two entries on purpose: the Airflow 3.3 UI renders a *single* external nav entry as a
    # <button> carrying the href, which opens nothing; two or more go into its "Plugins"
    # menu as real links (opened in a new tab).
    external_views = [
        {"name": "GraceDB", "href": gracedb_home_url(get_settings()), "destination": "nav"},
        {"name": "GraceDB API docs", "href": gracedb_home_url(get_settings()) + "api/docs",
         "destination": "nav"},
    ]
    global_operator_extra_links = [GraceDbSupereventLink(), GraceDbSkymapLink()]
