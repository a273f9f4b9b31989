"""Airflow plugin of gw-ops: links from the Airflow UI to the local GraceDB.

The pipeline's triggers, sensors and operators are *not* here: they live in the
installed package ``gw_ops.airflow``, because the triggerer imports triggers from an
installed package (a class left only in plugins/ or dags/ fails with ModuleNotFoundError).
"""
from airflow.plugins_manager import AirflowPlugin

from gw_ops.config import get_settings


class GwOpsPlugin(AirflowPlugin):
    """Adds a GraceDB link to the Airflow navigation bar."""

    name = "gw_ops"
    external_views = [
        {
            "name": "GraceDB",
            "href": get_settings().gracedb_api_url.removesuffix("api/"),
            "destination": "nav",
            "category": "gw-ops",
        },
    ]
