"""Airflow glue of gw-ops: pools, triggers, sensors, operators and DAG factories.

Everything here imports Airflow; the domain library (:mod:`gw_ops`) never imports this
package.  Triggers live here (not in ``dags/``) because the triggerer imports them from
the installed package.
"""

# Inside Airflow tasks and triggers, settings take redis_url and gracedb_url from the
# Airflow connections: importing the module installs that lookup into gw_ops.config.
from gw_ops.airflow import connections as _connections  # noqa: E402,F401
