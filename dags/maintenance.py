"""Scheduled maintenance DAGs (GWCelery's Celery beat): health checks and the smoke test.

Declarations only; the task functions live in gw_ops.airflow.maintenance.
"""
from datetime import timedelta

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from gw_ops.airflow.handler_dags import default_args
from gw_ops.airflow.maintenance import check_listeners, smoke

with DAG(
    dag_id="gw_ops_smoke",
    schedule=None,
    catchup=False,
    tags=["gw-ops", "maintenance"],
    default_args=default_args(retries=0),
    doc_md="### gw_ops_smoke\n\nOne task that reaches Redis and GraceDB: proves the stack runs tasks. "
           "`gw-ops demo` and the stack test trigger it.",
):
    PythonOperator(task_id="smoke", python_callable=smoke)

with DAG(
    dag_id="gw_ops_listener_health",
    schedule=timedelta(minutes=5),
    catchup=False,
    max_active_runs=1,
    tags=["gw-ops", "maintenance", "health"],
    default_args=default_args(retries=0),
    doc_md="### gw_ops_listener_health\n\nEvery 5 minutes: fails visibly when the LVAlert listener, the "
           "GCN listener or the VOEvent broker has been disconnected (or silent) longer than "
           "`GW_OPS_LISTENER_DOWN_ALARM_S`.",
):
    PythonOperator(task_id="check_listeners", python_callable=check_listeners)
