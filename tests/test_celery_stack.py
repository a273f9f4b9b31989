"""The distributed stack for real: ``gw-ops up --executor celery`` (CeleryExecutor on the
stack's own durable Redis and its own PostgreSQL database, one Celery worker per queue,
Flower), one mock event carried to the preliminary VOEvent that pygcn's client receives,
every task of it run by the worker of its queue, as Celery's result backend records, and
the superevent lane's runs one after the other.

Its own stack (state folder, ports, Redis, database), apart from the suite's shared
LocalExecutor stack; stopped at the end with ``gw-ops down``, leaving no process, and its
database dropped.  Needs PostgreSQL at ``GW_OPS_TEST_POSTGRES_URL`` (default the machine's
cluster, ``postgresql://postgres@127.0.0.1:5432/postgres``, which ``.ci/run`` starts).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from gw_ops.ops import distributed
from gw_ops.ops.demo import PIPELINE_DAGS, AlertReceiver
from tests.fixtures.stack import RunningStack, stack_env, stack_settings, stop_stack
from tests.helpers import REPO_ROOT, free_port, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TEST_POSTGRES_URL = os.environ.get("GW_OPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def celery_stack(base_settings) -> RunningStack:
    settings = stack_settings(base_settings, "celery-stack")
    settings = dataclasses.replace(
        settings, executor="celery", postgres_url=TEST_POSTGRES_URL, flower_port=free_port(),
        # nothing answers on the embedded Redis port: up starts its own durable Redis there
        redis_url=f"redis://127.0.0.1:{settings.embedded_redis_port}/0",
        # the default queue's worker with 2 slots: enough for the alert path, less memory
        celery_default_concurrency=2)
    env = stack_env(settings)
    result = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "up"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    try:
        assert result.returncode == 0, (f"gw-ops up --executor celery failed:\n{result.stdout}\n{result.stderr}"
                                        f"\nlogs in {settings.state_path / 'logs'}")
        yield RunningStack(settings=settings, env=env, up_output=result.stdout)
    finally:
        down, survivors = stop_stack(settings, env)
        distributed.drop_stack_database(settings)
        assert down.returncode == 0 and not survivors, f"gw-ops down left {survivors}: {down.stdout}"
        for queue in distributed.WORKER_QUEUES:
            assert f"stopped {distributed.worker_service(queue)}" in down.stdout, down.stdout


def metadata_query(settings, query: str, *args) -> list[tuple]:
    """Rows of ``query`` on the stack's Airflow metadata database (PostgreSQL)."""
    import psycopg2
    url = settings.airflow_sql_alchemy_conn.replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query, args)
        return cursor.fetchall()


def test_status_shows_every_celery_worker_and_flower_healthy(celery_stack):
    def healthy_report():
        report = celery_stack.gw_ops("status")
        return report if report.returncode == 0 else None
    report = wait_for(healthy_report, timeout=120, interval=2, what="gw-ops status all healthy")
    lines = {line.split()[0]: line for line in report.stdout.splitlines() if line.strip()}
    settings = celery_stack.settings
    for queue in distributed.WORKER_QUEUES:
        line = lines[distributed.worker_service(queue)]
        assert " running " in line and "answers ping" in line, line
        assert f"queue {queue}, {distributed.worker_concurrency(settings, queue)} slots" in line, line
    assert " running " in lines["flower"] and "HTTP 200" in lines["flower"]
    assert "CeleryExecutor" in celery_stack.up_output


def test_mock_event_reaches_pygcn_and_each_task_ran_on_its_queues_worker(celery_stack):
    from gw_ops.formats.voevent import voevent_params
    from gw_ops.mock.pipeline import upload_mock_event

    settings = celery_stack.settings
    airflow = celery_stack.airflow()
    for dag_id in PIPELINE_DAGS:
        airflow.wait_for_dag(dag_id, timeout=180)
    receiver = AlertReceiver(settings.host, settings.broker_port)
    receiver.start()
    client = celery_stack.gracedb()
    upload = upload_mock_event(settings, uploads=1, index=0, with_external=False, client=client)
    graceid = upload["graceids"][0]
    sid = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=120,
                   what="superevent of the mock event")
    arrived, payload = wait_for(lambda: receiver.preliminary_for(sid), timeout=300,
                                what=f"preliminary VOEvent of {sid} received by pygcn")
    assert voevent_params(payload)["AlertType"] == "Preliminary"

    # Airflow's task instance names the Celery task (external_executor_id); Celery's result
    # backend (same database, result_extended) names the worker that ran it and its queue.
    # A lane's drain task keeps reading what arrives, so it may still run when the alert is
    # out: running tasks count (Celery records STARTED with the worker, task_track_started).
    def started_tasks():
        rows = metadata_query(settings, """
            SELECT ti.dag_id, ti.queue, m.worker, m.queue
            FROM task_instance ti JOIN celery_taskmeta m ON m.task_id = ti.external_executor_id
            WHERE ti.state IN ('running', 'success') AND m.worker IS NOT NULL""")
        return rows if {row[0] for row in rows} >= set(PIPELINE_DAGS) else None
    rows = wait_for(started_tasks, timeout=120, interval=1, what="Celery records of the alert path's lanes")
    ran_on = {}
    for dag_id, queue, worker, celery_queue in rows:
        assert celery_queue == queue and worker == distributed.worker_node(queue), (dag_id, queue, worker)
        ran_on.setdefault(dag_id, set()).add(worker)
    assert ran_on["lvalert_orchestrator_localize_preferred"] == {distributed.worker_node("openmp")}
    assert ran_on["lvalert_superevents_handle"] == {distributed.worker_node("superevent")}
    assert ran_on["lvalert_orchestrator_handle_superevent"] == {distributed.worker_node("default")}
    event_labels = {entry["name"] for entry in client.labels(graceid).json()["labels"]}
    assert "SKYMAP_READY" in event_labels

    # the superevent lane is serial on the Celery stack too: its runs never overlap
    spans = metadata_query(settings, """
        SELECT start_date, end_date FROM task_instance
        WHERE dag_id = 'lvalert_superevents_handle' AND end_date IS NOT NULL ORDER BY start_date""")
    assert spans
    for (_, previous_end), (start, _) in zip(spans, spans[1:]):
        assert start >= previous_end, spans
