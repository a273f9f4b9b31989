"""Airflow glue of gw-ops: pools, triggers, sensors, operators and DAG factories.

Everything here imports Airflow; the domain library (:mod:`gw_ops`) never imports this
package.  Triggers live here (not in ``dags/``) because the triggerer imports them from
the installed package.
"""
