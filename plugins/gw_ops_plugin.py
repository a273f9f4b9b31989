"""Airflow plugin of gw-ops: links from the Airflow UI to GraceDB's pages.

* the navigation bar's "GraceDB" entry opens GraceDB's home page (recent superevents);
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
    external_views = [
        {
            "name": "GraceDB",
            "href": gracedb_home_url(get_settings()),
            "destination": "nav",
            "category": "gw-ops",
        },
    ]
    global_operator_extra_links = [GraceDbSupereventLink(), GraceDbSkymapLink()]
