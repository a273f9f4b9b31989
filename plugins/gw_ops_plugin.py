"""Airflow plugin of gw-ops: links from the Airflow UI to the local GraceDB.

The pipeline's triggers, sensors and operators are *not* here: they live in the
installed package ``gw_ops.airflow``, because the triggerer imports triggers from an
installed package (a class left only in plugins/ or dags/ fails with ModuleNotFoundError).
"""
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from gw_ops.config import get_settings
from gw_ops.handlers.superevent_runs import (
    ALERT_DAG_ID,
    SUPEREVENT_DAG_ID,
    gracedb_page_url,
    skymap_image_url,
)

#: DAGs whose run ids start with a superevent id.
_SUPEREVENT_DAGS = (SUPEREVENT_DAG_ID, ALERT_DAG_ID)


class GraceDBSupereventLink(BaseOperatorLink):
    """Extra link of every task of a superevent run: the superevent's GraceDB page."""

    name = "GraceDB superevent"

    def get_link(self, operator, *, ti_key) -> str:
        if ti_key.dag_id not in _SUPEREVENT_DAGS:
            return ""
        return gracedb_page_url(get_settings(), ti_key.run_id.split(".")[0])


class SkyMapImageLink(BaseOperatorLink):
    """Extra link of every task of a superevent run: its sky-map image."""

    name = "Sky map"

    def get_link(self, operator, *, ti_key) -> str:
        if ti_key.dag_id not in _SUPEREVENT_DAGS:
            return ""
        return skymap_image_url(get_settings(), ti_key.run_id.split(".")[0])


class GwOpsPlugin(AirflowPlugin):
    """Adds a GraceDB link to the Airflow navigation bar, and to each superevent run's
    tasks links to the superevent's GraceDB page and sky-map image (run id = superevent id)."""

    name = "gw_ops"
    global_operator_extra_links = [GraceDBSupereventLink(), SkyMapImageLink()]
    external_views = [
        {
            "name": "GraceDB",
            "href": get_settings().gracedb_api_url.removesuffix("api/"),
            "destination": "nav",
            "category": "gw-ops",
        },
    ]
