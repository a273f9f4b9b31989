"""The distributed stack for real: ``gw-ops up --executor celery`` (CeleryExecutor on the
stack's own durable Redis and its own PostgreSQL database, one Celery worker per queue,
Flower), one mock event carried to the preliminary VOEvent that pygcn's client receives,
every task of it run by the worker of its queue, as Celery's result backend records, and
the superevent lane's runs one after the other; the superevent worker SIGKILLed inside a
handler (the task retried, one superevent, each alert once); a second ``openmp`` worker,
as on another host, localizing beside the first.

Its own stack (state folder, ports, Redis, database), apart from the suite's shared
LocalExecutor stack; stopped at the end with ``gw-ops down``, leaving no process, and its
database dropped.  Needs PostgreSQL at ``GW_OPS_TEST_POSTGRES_URL`` (default the machine's
cluster, ``postgresql://postgres@127.0.0.1:5432/postgres``, which ``.ci/run`` starts).
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
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
        celery_default_concurrency=2,
        # a task lost with its killed worker is retried this soon (test_worker_killed_...)
        task_heartbeat_timeout_s=30.0,
        # this machine's openmp worker has 1 slot; the pool one more, for the openmp
        # worker of a second "host" (test_a_second_openmp_worker_...)
        omp_threads=2, celery_openmp_concurrency=1, openmp_pool_slots=2)
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

    # the superevent lane is serial on the Celery stack too: its runs never overlap (a drain
    # lingers `lane_linger_s` after its last message, so the first may still run here)
    def ended_lane_spans():
        return metadata_query(settings, """
            SELECT start_date, end_date FROM task_instance
            WHERE dag_id = 'lvalert_superevents_handle' AND end_date IS NOT NULL ORDER BY start_date""")
    spans = wait_for(ended_lane_spans, timeout=120, interval=1, what="a superevent-lane task ended")
    for (_, previous_end), (start, _) in zip(spans, spans[1:]):
        assert start >= previous_end, spans


SUPEREVENT_LANE = "lvalert_superevents_handle"


def _component_pgid(settings, name: str) -> int:
    from gw_ops.ops import stack
    component = next(c for c in stack.COMPONENTS if c.name == name)
    return stack.read_record(settings, component)["pgid"]


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _alerts_for(receiver, superevent_id):
    from gw_ops.formats.voevent import voevent_params
    found = []
    for _, payload in list(receiver.received):
        params = voevent_params(payload)
        if params.get("GraceID") == superevent_id:
            found.append((params["AlertType"], int(params["Pkt_Ser_Num"])))
    return found


def test_worker_killed_in_a_superevent_task_retries_it_and_alerts_once(celery_stack):
    """SIGKILL of the superevent worker's whole process group (its Celery pool and the
    Airflow task inside it) while the lane's handler waits on GraceDB.

    What recovers the task in Airflow 3 is not Celery's late acknowledgement: the message
    of the dead worker's task is redelivered only after the visibility timeout, and the
    execution API would refuse to start that try again anyway.  The scheduler fails the
    task instance once its heartbeat stops (``task_heartbeat_timeout_s``), the retry runs
    on the restarted worker, and its drain reclaims the message the dead one left pending
    in the lane's consumer group.  The handler is idempotent, so the superevent comes out
    right, and the alert is sent once.

    Deterministic without any sleep in production code: the superevent worker is stopped
    (SIGSTOP) while the event is uploaded, GraceDB is stopped before the worker goes on,
    so the drain blocks in its first GraceDB call (the batch's superevent query, or the
    handler's own); the kill comes once the lane's drain holds the event's message
    (delivered to it, unacknowledged) and Airflow shows the task running.
    """
    from gw_ops.handlers import superevents
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.transport.redis_client import get_redis, lvalert_stream

    settings = celery_stack.settings
    airflow = celery_stack.airflow()
    for dag_id in PIPELINE_DAGS:
        airflow.wait_for_dag(dag_id, timeout=180)
    receiver = AlertReceiver(settings.host, settings.broker_port)
    receiver.start()
    client = celery_stack.gracedb()
    redis_client = get_redis(settings)
    unfinished_key = settings.key("lane", "unfinished", SUPEREVENT_LANE)
    worker_pgid = _component_pgid(settings, distributed.worker_service("superevent"))
    gracedb_pgid = _component_pgid(settings, "gracedb")

    lane_streams = [lvalert_stream(settings, node) for node in superevents.NODES]

    def drain_holds_the_event():
        """Whether a drain of the lane was delivered a message of the event and has not
        acknowledged it: it is inside the batch or the handler, blocked on GraceDB."""
        for stream in lane_streams:
            for entry in redis_client.xpending_range(stream, SUPEREVENT_LANE, min="-", max="+", count=100):
                for _, fields in redis_client.xrange(stream, entry["message_id"], entry["message_id"]):
                    if json.loads(fields[b"payload"]).get("uid") == graceid:
                        return True
        return False

    def running_lane_try():
        rows = metadata_query(settings, """
            SELECT run_id, try_number FROM task_instance
            WHERE dag_id = %s AND task_id = 'drain' AND state = 'running'""", SUPEREVENT_LANE)
        return rows[0] if rows else None

    _signal_group(worker_pgid, signal.SIGSTOP)
    try:
        upload = upload_mock_event(settings, uploads=1, index=0, with_external=False, client=client)
        graceid = upload["graceids"][0]
        # every LVAlert message of the upload is on its stream (GraceDB publishes before it
        # answers); from now on the handler's GraceDB calls wait
        _signal_group(gracedb_pgid, signal.SIGSTOP)
        _signal_group(worker_pgid, signal.SIGCONT)
        # generous: with both cores busy (stress-ng) the lane's task started 80 s after the
        # upload (ring, scheduler, Celery, task process)
        wait_for(drain_holds_the_event, timeout=300, interval=0.05,
                 what="the superevent lane's drain holding the event's message")
        killed_run_id, killed_try = wait_for(running_lane_try, timeout=60, interval=0.2,
                                             what="the superevent lane's task running")
        assert drain_holds_the_event(), "the drain must still hold the message when the worker dies"
        _signal_group(worker_pgid, signal.SIGKILL)
    finally:
        _signal_group(gracedb_pgid, signal.SIGCONT)
        _signal_group(worker_pgid, signal.SIGCONT)
    restarted = celery_stack.gw_ops("restart", distributed.worker_service("superevent"))
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr

    # the scheduler failed the dead try (no heartbeat) and the retry, on the new worker, did the work
    def retried():
        rows = metadata_query(settings, """
            SELECT ti.try_number, ti.state, m.worker FROM task_instance ti
            LEFT JOIN celery_taskmeta m ON m.task_id = ti.external_executor_id
            WHERE ti.dag_id = %s AND ti.task_id = 'drain' AND ti.run_id = %s""",
                              SUPEREVENT_LANE, killed_run_id)
        return rows[0] if rows and rows[0][0] > killed_try and rows[0][1] == "success" else None
    try_number, _, worker = wait_for(retried, timeout=300, interval=2,
                                     what="the killed superevent task retried and succeeded")
    assert worker == distributed.worker_node("superevent")
    history = metadata_query(settings, """
        SELECT state FROM task_instance_history
        WHERE dag_id = %s AND task_id = 'drain' AND run_id = %s AND try_number = %s""",
                             SUPEREVENT_LANE, killed_run_id, killed_try)
    assert len(history) == 1 and history[0][0] != "success", history
    assert not any(int(count) for count in redis_client.hvals(unfinished_key)), \
        "every message the dead worker began was handled again and recorded"

    # one superevent, with the event as its preferred event
    sid = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=120,
                   what="superevent of the mock event")
    superevent = client.superevent(sid).json()
    assert superevent["preferred_event"] == graceid
    assert superevent["gw_events"] == [graceid]
    gpstime = float(client.event(graceid).json()["gpstime"])
    around = list(client.superevents(query=f"t_0: {gpstime - 5} .. {gpstime + 5}"))
    assert [s["superevent_id"] for s in around] == [sid], around

    # each alert once: the sender's records in GraceDB's log ("Sent ... GCN notice") and
    # what pygcn received agree, and no serial number came twice
    wait_for(lambda: receiver.preliminary_for(sid), timeout=300, what=f"preliminary of {sid} received by pygcn")
    wait_for(lambda: "GCN_PRELIM_SENT" in {e["name"] for e in client.labels(sid).json()["labels"]},
             timeout=60, what="GCN_PRELIM_SENT")

    def receipts_match_records():
        from gw_ops.gracedb_client import log_comments
        recorded = [c for c in log_comments(client, sid) if c.startswith("Sent ") and " GCN notice " in c]
        return len(_alerts_for(receiver, sid)) == len(recorded) > 0
    wait_for(receipts_match_records, timeout=120, interval=1, what="every recorded VOEvent received")
    serials = [serial for _, serial in _alerts_for(receiver, sid)]
    assert len(serials) == len(set(serials)), f"an alert was sent twice: {_alerts_for(receiver, sid)}"
    redis_client.close()


LOCALIZATION_LANE = "lvalert_orchestrator_localize_preferred"
#: Celery node name of the openmp worker of the second "host".
OTHER_HOST_WORKER = "openmp@other-host"


@pytest.fixture
def other_host_openmp_worker(celery_stack, tmp_path):
    """An ``openmp`` worker as on another host: its own AIRFLOW_HOME and log folder; what it
    shares with the stack is the settings, the DAG files, Redis (broker) and PostgreSQL
    (result backend) URLs and the API server it reports to."""
    from gw_ops.ops import stack
    settings = celery_stack.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GW_OPS_", "AIRFLOW"))}
    env.update(stack.airflow_env(stack.running_settings(settings)))
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(tmp_path / "logs"))
    log = open(tmp_path / "worker.log", "ab")
    worker = subprocess.Popen(
        [distributed.airflow_executable(), "celery", "worker", "--queues", "openmp", "--concurrency", "1",
         "--celery-hostname", OTHER_HOST_WORKER, "--skip-serve-logs"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    app = distributed._control_app(stack.running_settings(settings))
    try:
        wait_for(lambda: app.control.ping(destination=[OTHER_HOST_WORKER], timeout=1.0), timeout=120,
                 interval=1, what="the second host's openmp worker answers ping")
        yield worker
    finally:
        app.close()
        _signal_group(worker.pid, signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            _signal_group(worker.pid, signal.SIGKILL)
            worker.wait(10)


def _localization_spans(settings) -> list[tuple[str, float, float, str]]:
    """``(message id, start, end, Celery worker)`` of every message the localization lane's
    drains handled (their XCom), with the worker each drain ran on."""
    spans = []
    for value, worker in metadata_query(settings, """
            SELECT x.value, m.worker FROM xcom x
            JOIN task_instance ti ON ti.dag_id = x.dag_id AND ti.run_id = x.run_id
                AND ti.task_id = x.task_id AND ti.map_index = x.map_index
            JOIN celery_taskmeta m ON m.task_id = ti.external_executor_id
            WHERE x.dag_id = %s AND x.key = 'return_value'""", LOCALIZATION_LANE):
        while isinstance(value, str):
            value = json.loads(value)
        spans.extend((message_id, start, end, worker) for message_id, start, end in value.get("spans", []))
    return spans


def _messages_about(settings, graceid: str) -> set[str]:
    """Ids of the localization lane's messages about ``graceid`` (its own, or its superevent's
    while it is the preferred event)."""
    from gw_ops.transport.redis_client import get_redis
    from gw_ops.transport.registry import load_handlers
    from gw_ops.transport.streams import lane_streams
    spec = next(spec for spec in load_handlers(settings=settings) if spec.dag_id == LOCALIZATION_LANE)
    client = get_redis(settings)
    found = set()
    try:
        for stream in lane_streams(spec, settings):
            for message_id, fields in client.xrange(stream):
                message = json.loads(fields[b"payload"])
                about = {message.get("uid"), (message.get("object") or {}).get("preferred_event")}
                if graceid in about:
                    found.add(message_id.decode())
    finally:
        client.close()
    return found


def _lane_settled(settings) -> bool:
    """Whether the localization lane has taken and acknowledged everything and no drain of
    it is queued or running: every drain's XCom is written."""
    from gw_ops.transport.redis_client import get_redis
    from gw_ops.transport.registry import load_handlers
    from gw_ops.transport.streams import lane_streams
    from tests.helpers import lane_settled
    busy = metadata_query(settings, """SELECT count(*) FROM task_instance WHERE dag_id = %s
        AND state IN ('scheduled', 'queued', 'running', 'up_for_retry')""", LOCALIZATION_LANE)[0][0]
    if busy:
        return False
    spec = next(spec for spec in load_handlers(settings=settings) if spec.dag_id == LOCALIZATION_LANE)
    client = get_redis(settings)
    try:
        return all(lane_settled(client, stream, LOCALIZATION_LANE) for stream in lane_streams(spec, settings)
                   if client.exists(stream))
    finally:
        client.close()


def test_a_second_openmp_worker_on_another_host_localizes_beside_the_first(celery_stack,
                                                                           other_host_openmp_worker):
    """Two candidates wait while both openmp workers are held (SIGSTOP); the lane has a run
    per pool slot queued by then, each worker takes one, and each drain takes one message
    at a time (both inside a handler call before GraceDB answers again): the two
    localizations run at once, one on each worker, as the drains' XCom spans show."""
    from gw_ops.formats.gpstime import now_gps
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.transport.redis_client import get_redis

    settings = celery_stack.settings
    for dag_id in PIPELINE_DAGS:
        celery_stack.airflow().wait_for_dag(dag_id, timeout=180)
    pool_slots = metadata_query(settings, "SELECT slots FROM slot_pool WHERE pool = 'openmp'")[0][0]
    assert pool_slots == 2 == distributed.worker_concurrency(settings, "openmp") + 1
    wait_for(lambda: _lane_settled(settings), timeout=300, interval=1, what="earlier localizations done")
    client = celery_stack.gracedb()
    workers = [_component_pgid(settings, distributed.worker_service("openmp")), other_host_openmp_worker.pid]
    gracedb_pgid = _component_pgid(settings, "gracedb")
    redis_client = get_redis(settings)
    unfinished_key = settings.key("lane", "unfinished", LOCALIZATION_LANE)
    for pgid in workers:
        _signal_group(pgid, signal.SIGSTOP)
    try:
        first = upload_mock_event(settings, uploads=1, index=0, with_external=False, client=client)["graceids"][0]
        # the next candidate in a superevent of its own: its time (now) past the first's window
        first_sid = wait_for(lambda: client.event(first).json().get("superevent"), timeout=120,
                             what=f"superevent of {first}")
        first_end = float(client.superevent(first_sid).json()["t_end"])
        wait_for(lambda: now_gps() > first_end + 1.0, timeout=60, what=f"GPS time past the window of {first_sid}")
        second = upload_mock_event(settings, uploads=1, index=1, with_external=False, client=client)["graceids"][0]
        wait_for(lambda: client.event(second).json().get("superevent"), timeout=120,
                 what=f"superevent of {second}")

        def two_drains_queued():
            return metadata_query(settings, """SELECT count(*) FROM task_instance
                WHERE dag_id = %s AND state = 'queued'""", LOCALIZATION_LANE)[0][0] >= 2
        wait_for(two_drains_queued, timeout=120, interval=0.5, what="a localization drain queued per openmp slot")
        # Both drains must hold a message before either can localize: with GraceDB paused,
        # a drain's handler waits inside its first GraceDB call.  Without this gate a drain
        # that starts a few seconds late (task start on a loaded machine) finds the first
        # drain done with one event and already on the next, and both run on one worker.
        _signal_group(gracedb_pgid, signal.SIGSTOP)
        for pgid in workers:
            _signal_group(pgid, signal.SIGCONT)

        def two_handlers_inside():
            return sum(int(count) >= 1 for count in redis_client.hvals(unfinished_key)) >= 2
        wait_for(two_handlers_inside, timeout=180, interval=0.2,
                 what="a localization handler call in progress in each drain")
    finally:
        _signal_group(gracedb_pgid, signal.SIGCONT)
        for pgid in workers:
            _signal_group(pgid, signal.SIGCONT)
        redis_client.close()
    # GraceDB, resumed, closes the keep-alive connections that idled while it was paused: a
    # read racing that close is reset, so it is retried like any wait on a resuming service
    superevents = wait_for(lambda: {client.event(g).json()["superevent"] for g in (first, second)},
                           timeout=60, what="the two candidates' superevents")
    assert len(superevents) == 2, superevents
    for graceid in (first, second):
        wait_for(lambda graceid=graceid: "SKYMAP_READY" in {e["name"] for e in client.labels(graceid).json()["labels"]},
                 timeout=400, interval=2, what=f"sky map of {graceid}")
    wait_for(lambda: _lane_settled(settings), timeout=300, interval=1, what="every localization drain done")

    spans = _localization_spans(settings)

    def localization_of(graceid):
        """The longest handler call about the event: its localization (the others take ms)."""
        about = _messages_about(settings, graceid)
        return max((span for span in spans if span[0] in about), key=lambda span: span[2] - span[1])
    (_, first_start, first_end, first_worker), (_, second_start, second_end, second_worker) = (
        localization_of(first), localization_of(second))
    assert {first_worker, second_worker} == {distributed.worker_node("openmp"), OTHER_HOST_WORKER}, spans
    assert first_start < second_end and second_start < first_end, f"the localizations did not overlap: {spans}"
