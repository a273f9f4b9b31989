"""The local stack on Kafka end to end: ``GW_OPS_TRANSPORT=kafka`` makes ``gw-ops up`` start
tansu, the local GraceDB publish its LVAlerts to IGWN Alert topics, the triggerer's Kafka
listener read them into the lanes, and ``gw-ops demo`` carry a mock event to a public alert,
which also goes out on Kafka as Avro and JSON.  Heavy: run under
``flock /tmp/gw-ops-heavy.lock``."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from gw_ops.handlers import kafka_alerts
from gw_ops.transport.redis_client import get_redis, lvalert_stream, read_health
from tests.fixtures.kafka import read_topic
from tests.fixtures.stack import stack_env, stack_settings, started_pids, stop_stack
from tests.helpers import REPO_ROOT, free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_demo_runs_on_the_kafka_transport(base_settings, durable_redis_url):
    # gw-ops up refuses a Redis that does not persist (the machine's): the session's own
    # append-only one, as the Airflow stack fixture uses
    settings = dataclasses.replace(
        stack_settings(base_settings, "kafkastack", redis_url=durable_redis_url), transport="kafka",
        kafka_port=free_port(),
        kafka_consumer_group="kafkastack",
        kafka_alert_topics=("avro@/igwn.gwalert", "json@/igwn.gwalert-json"))
    env = stack_env(settings)
    pids: list[int] = []
    try:
        demo = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "demo"], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=1000)
        pids = started_pids(settings)
        assert demo.returncode == 0, f"{demo.stdout}\n{demo.stderr}\nlogs in {settings.state_path / 'logs'}"
        sid = next(line.split()[1] for line in demo.stdout.splitlines() if line.startswith("superevent "))
        status = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "status"], env=env, cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert any(line.split()[0] == "kafka" and "healthy" in line for line in status.stdout.splitlines()), \
            status.stdout
        client = get_redis(settings)
        # the LVAlerts the handlers drained came through Kafka: every entry names its record
        entries = [fields for key in client.scan_iter(match=lvalert_stream(settings, "*"))
                   for _, fields in client.xrange(key)]
        assert entries and all(b"kafka" in fields for fields in entries)
        assert any(json.loads(f[b"payload"])["uid"] == sid for f in entries)
        assert read_health(client, settings, "igwn_alert")["state"] == "connected"
        # the preliminary alert also went out on Kafka, once per form, valid
        for fmt, topic in (("avro", "igwn.gwalert"), ("json", "igwn.gwalert-json")):
            alerts = [kafka_alerts.decode(m.value(), fmt) for m in read_topic(settings.local_kafka_bootstrap, topic)]
            preliminaries = [a for a in alerts if a["superevent_id"] == sid]
            assert preliminaries, f"no {fmt} alert of {sid} on {topic}"
            assert len({(a["alert_type"], a["time_created"]) for a in preliminaries}) == len(preliminaries)
            for alert in preliminaries:
                (kafka_alerts.validate_avro_record if fmt == "avro" else kafka_alerts.validate_json_form)(alert)
    finally:
        down, survivors = stop_stack(settings, env, pids)
        assert down.returncode == 0 and not survivors, f"gw-ops down left {survivors}: {down.stdout}"
