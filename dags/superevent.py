"""The ``superevent`` DAG: one run per superevent, run id = superevent id.

Declarations only: see gw_ops.airflow.superevent_dag.
"""
from gw_ops.airflow.handler_dags import default_args
from gw_ops.airflow.superevent_dag import declare_alert_record_dag, declare_superevent_dag

superevent = declare_superevent_dag(default_args(retries=2))
superevent_alert = declare_alert_record_dag(default_args(retries=2))
