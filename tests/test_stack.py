"""The local stack through its real processes: up, status, a DAG run over the REST API,
pools, port refusal.  (``down`` leaving nothing behind is checked when the shared
``airflow_stack`` fixture stops.)"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid

import pytest

from gw_ops.ops.airflow_api import ApiException
from tests.fixtures.stack import stack_env
from tests.helpers import REPO_ROOT, free_port

COMPONENT_NAMES = ("gracedb", "broker", "api-server", "scheduler", "dag-processor", "triggerer")


def healthy_status(env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    """``gw-ops status`` once it reports every component healthy (exit 0).

    Right after ``up`` a loaded machine can keep the API server from answering one health
    request in time (status then honestly says UNHEALTHY): wait for the healthy report.
    """
    from tests.helpers import wait_for
    reports = []

    def all_healthy():
        reports.append(subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "status"], env=env, cwd=cwd,
                                      capture_output=True, text=True, timeout=120))
        return reports[-1].returncode == 0
    try:
        wait_for(all_healthy, timeout=120, interval=2, what="gw-ops status to report every component healthy")
    except TimeoutError:
        raise AssertionError(reports[-1].stdout + reports[-1].stderr) from None
    return reports[-1]


def test_status_lists_every_component_healthy(airflow_stack):
    result = healthy_status(airflow_stack.env, REPO_ROOT)
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in COMPONENT_NAMES:
        assert name in lines, f"status has no line for {name}: {result.stdout}"
        assert " running " in lines[name] and "healthy" in lines[name] and "UNHEALTHY" not in lines[name]


def test_first_up_prints_generated_admin_password_once(airflow_stack):
    from gw_ops.ops.stack import airflow_login
    _, password = airflow_login(airflow_stack.settings)
    assert password in airflow_stack.up_output
    assert len(password) >= 12 and password != "admin"


def test_smoke_dag_run_succeeds_through_the_rest_api(airflow_stack):
    airflow = airflow_stack.airflow()
    airflow.wait_for_dag("gw_ops_smoke", timeout=120)
    run_id = f"test_{uuid.uuid4().hex[:8]}"
    airflow.trigger("gw_ops_smoke", run_id=run_id)
    run = airflow.wait_run("gw_ops_smoke", run_id, timeout=180)
    assert run["state"] == "success"
    # a second run with the same id is refused: run ids are unique
    with pytest.raises(ApiException) as refused:
        airflow.trigger("gw_ops_smoke", run_id=run_id)
    assert refused.value.status == 409


def test_pools_are_declared_with_their_sizes(airflow_stack):
    from gw_ops.airflow.pools import pool_specs
    airflow = airflow_stack.airflow()
    pools = {pool.name: pool.slots for pool in airflow.call(airflow.pools.get_pools).pools}
    for spec in pool_specs(airflow_stack.settings):
        assert pools.get(spec.name) == spec.slots


def test_up_refuses_a_port_taken_by_something_else(airflow_stack, tmp_path):
    # a second stack whose GraceDB port is the running stack's Airflow port
    settings = dataclasses.replace(airflow_stack.settings, state_dir=tmp_path / "second",
                                   gracedb_port=airflow_stack.settings.airflow_port,
                                   airflow_port=free_port(), broker_port=free_port())
    result = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "up"], env=stack_env(settings),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"port 127.0.0.1:{airflow_stack.settings.airflow_port} is taken" in result.stdout
    assert not list((tmp_path / "second" / "run").glob("*.json")), "nothing may be started"


def test_new_state_folder_does_not_inherit_redis_data_of_an_earlier_stack(airflow_stack):
    from gw_ops.transport.redis_client import get_redis
    assert not get_redis(airflow_stack.settings).exists(airflow_stack.settings.key("stale", "alert-record"))
    assert "deleted 1 Redis keys" in airflow_stack.up_output


def test_airflow_connections_hold_redis_and_gracedb(airflow_stack):
    """`up` wrote both connections into the metadata DB (the UI lists them); Airflow processes
    get no GW_OPS_REDIS_URL/GW_OPS_GRACEDB_URL, so their tasks and triggers can only reach
    this stack's own Redis (not the default 6379) through redis_default."""
    import json

    import psutil

    from gw_ops.airflow.connections import gracedb_url_from_fields, redis_url_from_fields
    from gw_ops.ops.airflow_api import plain
    settings = airflow_stack.settings
    airflow = airflow_stack.airflow()
    redis_conn = plain(airflow.call(airflow.connections.get_connection, "redis_default"))
    gracedb_conn = plain(airflow.call(airflow.connections.get_connection, "gracedb_default"))
    assert redis_conn["conn_type"] == "redis" and gracedb_conn["conn_type"] == "http"
    assert redis_url_from_fields(redis_conn) == settings.redis_url != "redis://127.0.0.1:6379/0"
    assert gracedb_url_from_fields(gracedb_conn) == settings.gracedb_api_url
    # (/proc/PID/environ of Airflow processes is overwritten by setproctitle: check what
    # `up` hands them; the next test proves a task really used the connection)
    from gw_ops.ops.stack import COMPONENTS, _child_env
    for component in COMPONENTS:
        env = _child_env(settings, airflow=component.airflow)
        assert ("GW_OPS_REDIS_URL" in env) is (not component.airflow), component.name
        assert env["GW_OPS_KEY_PREFIX"] == settings.key_prefix
    broker_pid = json.loads((settings.state_path / "run" / "broker.json").read_text())["pid"]
    assert psutil.Process(broker_pid).environ()["GW_OPS_REDIS_URL"] == settings.redis_url


def test_probe_handled_by_a_task_that_found_redis_through_the_connection(airflow_stack):
    """A probe LVAlert reaches its handler task, which records it in this stack's Redis: the
    task resolved redis_url from redis_default (its environment has no GW_OPS_REDIS_URL)."""
    from gw_ops.ops.probe import read_probe_records, send_lvalert_probe
    from gw_ops.transport.redis_client import get_redis
    from tests.helpers import wait_for
    airflow_stack.airflow().wait_for_dag("lvalert_probe_lvalert_probe", timeout=180)
    client = get_redis(airflow_stack.settings)
    uid = f"connection-{uuid.uuid4().hex[:8]}"
    send_lvalert_probe(client, airflow_stack.settings, uid)
    wait_for(lambda: any(r["uid"] == uid for r in read_probe_records(client, airflow_stack.settings, "lvalert")),
             timeout=180, what="the probe handled")


def test_a_crashed_triggerer_is_started_again_and_its_listeners_with_it(airflow_stack, tmp_path):
    """The triggerer process dies (SIGKILL of it and its trigger runner, as a crash): its
    supervisor starts it again, `status` shows the restart and health, and an LVAlert sent
    afterwards reaches its handler, so the listeners came back with it."""
    import json
    import os
    import signal

    import psutil

    from gw_ops.ops import stack
    from gw_ops.ops.probe import read_probe_records, send_lvalert_probe
    from gw_ops.transport.redis_client import get_redis
    from tests.helpers import wait_for
    settings = airflow_stack.settings
    triggerer = next(c for c in stack.COMPONENTS if c.name == "triggerer")
    supervisor = psutil.Process(stack.read_record(settings, triggerer)["pid"])
    (crashed,) = supervisor.children()
    for process in (*crashed.children(recursive=True), crashed):
        os.kill(process.pid, signal.SIGKILL)
    restarted = wait_for(lambda: [c for c in supervisor.children() if c.pid != crashed.pid], timeout=60,
                         what="the triggerer started again")
    assert supervisor.is_running() and restarted
    record = json.loads((settings.state_path / "run" / "triggerer.json").read_text())
    assert record["restarts"] >= 1 and record["last_exit"] == -signal.SIGKILL, record
    status = healthy_status(airflow_stack.env, tmp_path)
    line = next(line for line in status.stdout.splitlines() if line.startswith("triggerer "))
    assert " healthy " in line and "restarted" in line, line
    client = get_redis(settings)
    uid = f"after-restart-{uuid.uuid4().hex[:8]}"
    send_lvalert_probe(client, settings, uid)
    wait_for(lambda: any(r["uid"] == uid for r in read_probe_records(client, settings, "lvalert")),
             timeout=180, what="a probe handled after the triggerer's restart")


def test_status_down_and_settings_find_the_stack_from_another_folder(airflow_stack, tmp_path):
    """No GW_OPS_STATE_DIR and a working folder elsewhere: the state folder recorded by `up`
    is found, so status reports the real state and settings shows the stack's connections."""
    env = {k: v for k, v in airflow_stack.env.items() if k != "GW_OPS_STATE_DIR"}
    status = healthy_status(env, tmp_path)
    assert "UNHEALTHY" not in status.stdout and "stopped" not in status.stdout
    assert all(f"{name} " in status.stdout for name in COMPONENT_NAMES)
    env.pop("GW_OPS_REDIS_URL")
    shown = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "settings"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"GW_OPS_REDIS_URL = {airflow_stack.settings.redis_url}   [Airflow connection redis_default]" in lines
    assert any(line.startswith(f"GW_OPS_STATE_DIR = {airflow_stack.settings.state_path}   [recorded by gw-ops up")
               for line in lines), shown.stdout


def test_airflow_metadata_database_is_in_write_ahead_log_mode_and_private(airflow_stack):
    """Readers of the SQLite metadata database never hold up its writer (see
    gw_ops.ops.stack.use_write_ahead_log); the log files beside it are private too."""
    import contextlib
    import sqlite3
    database = airflow_stack.settings.airflow_home / "airflow.db"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for companion in (database.with_name("airflow.db-wal"), database.with_name("airflow.db-shm")):
        assert companion.exists() and companion.stat().st_mode & 0o077 == 0, companion


def test_files_private_and_log_servers_on_loopback(airflow_stack):
    """airflow.db 0600 in a 0700 state folder; every port the stack listens on is bound to
    127.0.0.1 (Airflow's own log servers would bind every interface)."""
    import json

    import psutil
    settings = airflow_stack.settings
    assert settings.state_path.stat().st_mode & 0o777 == 0o700
    assert (settings.airflow_home / "airflow.db").stat().st_mode & 0o777 == 0o600
    listening = {}
    for record in (settings.state_path / "run").glob("*.json"):
        root = psutil.Process(json.loads(record.read_text())["pid"])
        for proc in (root, *root.children(recursive=True)):
            try:
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        listening[(conn.laddr.ip, conn.laddr.port)] = record.stem
            except psutil.NoSuchProcess:
                continue
    ports = {port for _, port in listening}
    assert {settings.airflow_worker_log_port, settings.airflow_trigger_log_port} <= ports, listening
    assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
