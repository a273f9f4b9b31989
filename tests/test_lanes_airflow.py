"""Listeners and lanes through the real Airflow stack: every message reaches its handler
exactly once, also when the triggerer is killed mid-stream; a GCN notice pushed through
the broker reaches its handler."""
from __future__ import annotations

import os
import signal
import time
import uuid

from gw_ops.ops.probe import PROBE_NODE, make_probe_notice, read_probe_records, send_lvalert_probe
from gw_ops.transport.redis_client import gcn_incoming_stream, get_redis, lvalert_stream
from tests.helpers import lane_settled, wait_for

#: Consumer groups (handler DAG ids) of the probe lanes.
LVALERT_PROBE_LANE = "lvalert_probe_lvalert_probe"
GCN_PROBE_LANE = "gcn_probe_gcn_probe"


def probe_uids(stack, kind: str, prefix: str) -> list[str]:
    client = get_redis(stack.settings)
    return [r["uid"] for r in read_probe_records(client, stack.settings, kind) if r["uid"].startswith(prefix)]


def wait_lanes_ready(stack) -> None:
    """Wait until the probe handler DAGs are parsed and the doorbell triggers watch."""
    airflow = stack.airflow()
    airflow.wait_for_dag(LVALERT_PROBE_LANE, timeout=180)
    airflow.wait_for_dag(GCN_PROBE_LANE, timeout=180)


def wait_lane_settled(stack, stream: str, group: str) -> None:
    """Wait until the lane has taken and acknowledged every entry: no message can be
    handled again after that, so what the handler recorded is final."""
    wait_for(lambda: lane_settled(get_redis(stack.settings), stream, group), timeout=120,
             what=f"lane {group} settled")


def test_every_lvalert_message_reaches_its_handler_exactly_once(airflow_stack):
    wait_lanes_ready(airflow_stack)
    client = get_redis(airflow_stack.settings)
    prefix = f"burst-{uuid.uuid4().hex[:6]}-"
    for i in range(20):
        send_lvalert_probe(client, airflow_stack.settings, f"{prefix}{i}")
        time.sleep(0.1)
    wait_for(lambda: len(probe_uids(airflow_stack, "lvalert", prefix)) >= 20, timeout=180,
             what="20 probe messages handled")
    wait_lane_settled(airflow_stack, lvalert_stream(airflow_stack.settings, PROBE_NODE), LVALERT_PROBE_LANE)
    uids = probe_uids(airflow_stack, "lvalert", prefix)
    assert sorted(uids) == sorted(f"{prefix}{i}" for i in range(20))


def test_no_message_lost_or_doubled_when_the_triggerer_is_killed(airflow_stack):
    wait_lanes_ready(airflow_stack)
    client = get_redis(airflow_stack.settings)
    prefix = f"kill-{uuid.uuid4().hex[:6]}-"
    record = (airflow_stack.settings.state_path / "run" / "triggerer.json").read_text()
    import json
    pgid = json.loads(record)["pgid"]
    for i in range(10):
        if i == 5:
            os.killpg(pgid, signal.SIGKILL)  # mid-stream, no chance to clean up
        send_lvalert_probe(client, airflow_stack.settings, f"{prefix}{i}")
        time.sleep(0.1)
    restarted = airflow_stack.gw_ops("restart", "triggerer", timeout=240)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_for(lambda: len(probe_uids(airflow_stack, "lvalert", prefix)) >= 10, timeout=240,
             what="10 probe messages handled after the triggerer restart")
    wait_lane_settled(airflow_stack, lvalert_stream(airflow_stack.settings, PROBE_NODE), LVALERT_PROBE_LANE)
    assert sorted(probe_uids(airflow_stack, "lvalert", prefix)) == sorted(f"{prefix}{i}" for i in range(10))


def test_gcn_notice_through_broker_reaches_its_handler(airflow_stack, tmp_path):
    wait_lanes_ready(airflow_stack)
    suffix = f"probe-{uuid.uuid4().hex[:6]}"
    airflow_stack.wait_gcn_listener()
    path = tmp_path / "probe.xml"
    path.write_bytes(make_probe_notice(suffix))
    published = airflow_stack.gw_ops("gcn", "publish", str(path))
    assert published.returncode == 0, published.stdout + published.stderr
    wait_for(lambda: [u for u in probe_uids(airflow_stack, "gcn", "ivo://gw-ops/probe#") if u.endswith(suffix)],
             timeout=180, what="GCN probe handled")
    wait_lane_settled(airflow_stack, gcn_incoming_stream(airflow_stack.settings), GCN_PROBE_LANE)
    assert len([u for u in probe_uids(airflow_stack, "gcn", "ivo://") if u.endswith(suffix)]) == 1
