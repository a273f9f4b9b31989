"""Scheduled maintenance DAGs (GWCelery's Celery beat): health, mock events, delayed actions.

Declarations only; the task functions live in gw_ops.airflow.maintenance.
"""
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from gw_ops.airflow.handler_dags import default_args, every_minutes
from gw_ops.airflow.maintenance import (
    check_dead_letters,
    check_listeners,
    delayed_actions,
    mock_event,
    smoke,
)
from gw_ops.airflow.triggers import DueActionTrigger
from gw_ops.config import get_settings

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
    schedule=every_minutes(5),
    catchup=False,
    max_active_runs=1,
    tags=["gw-ops", "maintenance", "health"],
    default_args=default_args(retries=0),
    doc_md="### gw_ops_listener_health\n\nEvery 5 minutes: fails visibly when the LVAlert listener, the "
           "GCN listener or the VOEvent broker has been disconnected (or silent) longer than "
           "`GW_OPS_LISTENER_DOWN_ALARM_S`; and while input was dead-lettered (rejected at "
           "the door) that no operator has acknowledged (`gw-ops dead-letters --ack`).",
):
    PythonOperator(task_id="check_listeners", python_callable=check_listeners)
    PythonOperator(task_id="check_dead_letters", python_callable=check_dead_letters)

_settings = get_settings()

with DAG(
    dag_id="gw_ops_mock_event",
    schedule=every_minutes(_settings.mock_event_interval_minutes)
    if _settings.mock_event_interval_minutes else None,
    catchup=False,
    max_active_runs=1,
    tags=["gw-ops", "maintenance", "mock"],
    default_args=default_args(retries=1),
    doc_md="### gw_ops_mock_event\n\nThe mock-event challenge (GWCelery's hourly playground event): a "
           "bundled CBC coincidence shifted to now, uploaded as gstlal/MDC, signed off ADV OK/NO after "
           "the vetting timeout; every second one also gets a mock Fermi GRB through the broker. "
           "Interval: `GW_OPS_MOCK_EVENT_INTERVAL_MINUTES` (0 turns it off).",
):
    PythonOperator(task_id="upload_mock_event", python_callable=mock_event)

with DAG(
    dag_id="gw_ops_delayed_actions",
    schedule=[Asset(name="gw_ops.transport.delayed.due", watchers=[
        AssetWatcher(name="delayed_actions_due", trigger=DueActionTrigger())])],
    catchup=False,
    tags=["gw-ops", "maintenance"],
    default_args=default_args(retries=2),
    doc_md="### gw_ops_delayed_actions\n\nRuns delayed actions when they fall due: the second "
           "preliminary alert (270 s after the first) and the mock events' vetting signoff. The wait "
           "happens in the triggerer (no worker slot held); actions live in Redis.",
):
    PythonOperator(task_id="run_due_actions", python_callable=delayed_actions)
