"""IGWN Alert and GCN Kafka in: real tansu broker, real Redis, listener processes killed for real.

The listener runs as ``python -m gw_ops.airflow.kafka_triggers`` (the trigger's own run
loop, in its own process), so a SIGKILL hits it exactly as it would hit the triggerer.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from gw_ops.transport import gcn_notices, lvalert
from gw_ops.transport.kafka import KafkaBridge, LVAlertRoute, lvalert_nodes
from gw_ops.transport.kafka_client import ensure_topics, hop_headers
from gw_ops.transport.kafka_config import consumer_config
from gw_ops.transport.redis_client import deadletter_stream, gcn_incoming_stream, lvalert_stream
from gw_ops.transport.streams import RedisStreamsTransport
from tests.helpers import REPO_ROOT, wait_for

DATA = Path(__file__).parent / "data" / "kafka"
pytestmark = pytest.mark.timeout(180)


def start_listener(settings, which: str, log_path: Path, topics=()) -> subprocess.Popen:
    args = [sys.executable, "-m", "gw_ops.airflow.kafka_triggers", which]
    for topic in topics:
        args += ["--topic", topic]
    return subprocess.Popen(args, env={**os.environ, **settings.as_env()}, cwd=REPO_ROOT,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(15)


def lvalert_message(uid: str, alert_type: str = "new") -> bytes:
    return json.dumps({"uid": uid, "alert_type": alert_type, "data": {}, "object": {"superevent_id": uid}}).encode()


def entries(redis_client, stream: str) -> list[dict]:
    return [fields for _, fields in redis_client.xrange(stream)]


def lvalert_uids(redis_client, settings, nodes) -> list[str]:
    uids = []
    for node in nodes:
        uids += [json.loads(f[b"payload"])["uid"] for f in entries(redis_client, lvalert_stream(settings, node))]
    return uids


def test_n_lvalerts_in_exactly_n_handled(kafka_settings, redis_client, tmp_path):
    settings = kafka_settings
    nodes = lvalert_nodes(settings)  # what the listener process subscribes to
    topics = [f"{settings.igwn_alert_group}.{node}" for node in nodes]
    ensure_topics(settings.igwn_alert_servers, topics)
    producer = Producer({"bootstrap.servers": settings.igwn_alert_servers})
    sent = {}
    for i in range(60):
        node = nodes[i % len(nodes)]
        sent[f"S{i:03d}"] = node
        producer.produce(f"{settings.igwn_alert_group}.{node}", lvalert_message(f"S{i:03d}"),
                         headers=hop_headers("json"))
    assert producer.flush(10) == 0
    # the lane's consumer group exists before anything is published (as gw-ops up does)
    transport = RedisStreamsTransport(redis_client, settings)
    streams = [lvalert_stream(settings, node) for node in nodes]
    for stream in streams:
        transport.ensure_group(stream, "kafka_test_lane")
    listener = start_listener(settings, "igwn_alert", tmp_path / "listener.log")
    try:
        wait_for(lambda: len(lvalert_uids(redis_client, settings, nodes)) >= 60, timeout=60,
                 what="60 LVAlerts in the lane streams")
    finally:
        kill(listener)
    # Drain every lane stream as the handler DAGs do; count what the handler saw.
    handled = collections.Counter()

    def handle(message):
        decoded = lvalert.decode_message(message.fields["payload"], lvalert.node_of_stream(message.stream))
        handled[(decoded["uid"], decoded["node"])] += 1

    report = transport.drain(streams, "kafka_test_lane", "c1", handle)
    assert report.summary()["handled"] == 60
    assert handled == collections.Counter({(uid, node): 1 for uid, node in sent.items()})


def test_sigkill_while_records_flow_loses_and_duplicates_nothing(kafka_settings, redis_client, tmp_path):
    settings = kafka_settings
    node = "superevent"
    topic = f"{settings.igwn_alert_group}.{node}"
    ensure_topics(settings.igwn_alert_servers, [topic])
    producer = Producer({"bootstrap.servers": settings.igwn_alert_servers})
    total = 150

    def produce():
        for i in range(total):
            producer.produce(topic, lvalert_message(f"K{i:03d}"), headers=hop_headers("json"))
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(10)

    listener = start_listener(settings, "igwn_alert", tmp_path / "listener.log")
    # warm-up: once this record is stored the listener has joined its group, so the kill
    # below lands while records are still arriving
    producer.produce(topic, lvalert_message("K-warmup"), headers=hop_headers("json"))
    producer.flush(10)
    wait_for(lambda: lvalert_uids(redis_client, settings, [node]) == ["K-warmup"], timeout=60,
             what="the warm-up record")
    feeder = threading.Thread(target=produce)
    feeder.start()
    wait_for(lambda: len(lvalert_uids(redis_client, settings, [node])) >= 31, timeout=60,
             what="the listener to store 30 records")
    kill(listener, signal.SIGKILL)  # mid-stream: some records written, not committed
    at_kill = len(lvalert_uids(redis_client, settings, [node]))
    feeder.join()
    assert at_kill < total + 1, "the kill came after everything was stored: the test proves nothing"
    listener = start_listener(settings, "igwn_alert", tmp_path / "listener.log")
    try:
        wait_for(lambda: len(lvalert_uids(redis_client, settings, [node])) >= total + 1, timeout=90,
                 what=f"all {total} records after the restart")
    finally:
        kill(listener)
    uids = lvalert_uids(redis_client, settings, [node])
    assert sorted(uids) == sorted([f"K{i:03d}" for i in range(total)] + ["K-warmup"])


def test_record_written_but_not_committed_is_a_no_op_when_redelivered(kafka_settings, redis_client):
    """The crash window itself: stored in Redis, offset never committed, consumer gone."""
    settings = kafka_settings
    node = "superevent"
    topic = f"{settings.igwn_alert_group}.{node}"
    ensure_topics(settings.igwn_alert_servers, [topic])
    producer = Producer({"bootstrap.servers": settings.igwn_alert_servers})
    for i in range(5):
        producer.produce(topic, lvalert_message(f"W{i}"), headers=hop_headers("json"))
    assert producer.flush(10) == 0
    route = LVAlertRoute(settings, [node])
    group_id = f"{settings.kafka_consumer_group}-lvalert"
    bridge = KafkaBridge(settings, route, settings.igwn_alert_servers, group_id, "igwn_alert")
    consumer = Consumer(consumer_config(settings, settings.igwn_alert_servers, group_id))
    consumer.subscribe([topic])
    first = wait_for(lambda: consumer.poll(0.2), timeout=30, what="the first record")
    assert bridge.handle(first) == "delivered"  # durable in the lane stream ...
    consumer.close()  # ... and the offset never committed
    assert lvalert_uids(redis_client, settings, [node]) == ["W0"]
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: len(lvalert_uids(redis_client, settings, [node])) == 5, timeout=30,
                 what="the other 4 records")
        wait_for(lambda: redis_client.hget(settings.key("kafka", "counts", group_id), "duplicates"),
                 timeout=30, what="the redelivered record to be seen")
    finally:
        stop.set()
        runner.join(15)
    assert lvalert_uids(redis_client, settings, [node]) == ["W0", "W1", "W2", "W3", "W4"]
    assert int(redis_client.hget(settings.key("kafka", "counts", group_id), "duplicates")) == 1


def test_malformed_records_are_dead_lettered_and_the_listener_stays_up(kafka_settings, redis_client, tmp_path):
    settings = dataclasses.replace(kafka_settings, kafka_max_record_bytes=64 * 1024)
    group = settings.igwn_alert_group
    unknown = f"{group}.no_such_node"
    topics = [f"{group}.superevent", unknown]
    ensure_topics(settings.igwn_alert_servers, topics)
    producer = Producer({"bootstrap.servers": settings.igwn_alert_servers})
    producer.produce(f"{group}.superevent", b'{"uid": "S1", ', headers=hop_headers("json"))
    producer.produce(f"{group}.superevent", b'{"alert_type": "new"}', headers=hop_headers("json"))
    producer.produce(f"{group}.superevent", b"[1, 2]", headers=hop_headers("json"))
    producer.produce(f"{group}.superevent", b" " * (settings.kafka_max_record_bytes + 1))
    producer.produce(unknown, lvalert_message("S2"), headers=hop_headers("json"))
    producer.produce(f"{group}.superevent", lvalert_message("S3"), headers=hop_headers("json"))
    assert producer.flush(10) == 0
    listener = start_listener(settings, "igwn_alert", tmp_path / "listener.log", topics=topics)
    try:
        dead = deadletter_stream(settings, "lvalert")
        wait_for(lambda: redis_client.xlen(dead) >= 5, timeout=60, what="5 dead letters")
        wait_for(lambda: lvalert_uids(redis_client, settings, ["superevent"]) == ["S3"], timeout=30,
                 what="the good record after the bad ones")
        assert listener.poll() is None, "the listener died"
    finally:
        kill(listener)
    # one partition per topic: the order holds within each topic
    letters = entries(redis_client, dead)
    assert len(letters) == 5
    on_superevent = [f[b"reason"].decode() for f in letters if b"no_such_node" not in f[b"reason"]]
    assert "not JSON" in on_superevent[0]
    assert "lacks uid" in on_superevent[1]
    assert "not a JSON object" in on_superevent[2]
    assert "oversize record" in on_superevent[3]
    (unknown_letter,) = [f for f in letters if b"no_such_node" in f[b"reason"]]
    assert b"unknown topic" in unknown_letter[b"reason"]
    assert json.loads(unknown_letter[b"payload"])["uid"] == "S2"
    assert [f[b"payload"] for f in letters if b"not JSON" in f[b"reason"]] == [b'{"uid": "S1", ']


XML_NOTICES = {  # fixture -> notice type the listener must record
    "fermi_grb_gcn.xml": "FERMI_GBM_FLT_POS",
    "fermi_final_gcn.xml": "FERMI_GBM_FIN_POS",
    "fermi_subthresh_grb_gcn.xml": "FERMI_GBM_SUBTHRESH",
    "swift_grb_gcn.xml": "SWIFT_BAT_GRB_POS_ACK",
    "snews_gcn.xml": "SNEWS",
}


def test_gcn_kafka_classic_voevents_and_json_notices(kafka_settings, redis_client, tmp_path):
    settings = kafka_settings
    classic = "gcn.classic.voevent.FERMI_GBM_FLT_POS"
    json_topic = "gcn.notices.icecube.gold_bronze_track_alerts"
    topics = [classic, json_topic]
    ensure_topics(settings.gcn_kafka_servers, topics)
    producer = Producer({"bootstrap.servers": settings.gcn_kafka_servers})
    expected = []
    rounds = 4
    for _ in range(rounds):
        for name, notice_type in XML_NOTICES.items():
            producer.produce(classic, (DATA / "xml" / name).read_bytes())  # raw XML, no headers
            expected.append(notice_type)
    producer.produce(json_topic, (DATA / "json" / "kafka_alert_icecube_gold.json").read_bytes())
    producer.produce(classic, b"<VOEvent><unclosed>")
    producer.produce(classic, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    assert producer.flush(10) == 0
    log_path = tmp_path / "gcn.log"
    listener = start_listener(dataclasses.replace(settings, gcn_kafka_topics=tuple(topics)),
                              "gcn_kafka", log_path)
    stream = gcn_incoming_stream(settings)
    dead = deadletter_stream(settings, "gcn")
    try:
        wait_for(lambda: redis_client.xlen(stream) >= len(expected) + 1 and redis_client.xlen(dead) >= 2,
                 timeout=90, what="every notice stored or dead-lettered")
        # one event per stored notice, as the VTP listener fires
        wait_for(lambda: log_path.read_text().count('"stream_id"') >= len(expected) + 1, timeout=60,
                 what="one trigger event per notice")
        assert listener.poll() is None
    finally:
        kill(listener)
    stored = entries(redis_client, stream)
    voevents = [f for f in stored if b"xml" in f]
    assert [f[b"notice_type"].decode() for f in voevents] == expected
    for fields in voevents:  # the lanes decode them as they decode VTP notices
        name, payload, root = gcn_notices.decode_notice({k.decode(): v for k, v in fields.items()})
        assert name == fields[b"notice_type"].decode() and root.get("ivorn") == fields[b"ivorn"].decode()
    (json_notice,) = [f for f in stored if b"json" in f]  # for the JSON notices' lane
    name, _, notice = gcn_notices.decode_notice({k.decode(): v for k, v in json_notice.items()})
    assert name == gcn_notices.JSON_NOTICE and notice["mission"] == "IceCube"
    reasons = [f[b"reason"].decode() for f in entries(redis_client, dead)]
    assert len(reasons) == 2
    assert any("bad VOEvent XML" in r and "not well-formed" in r for r in reasons)
    assert any("DOCTYPE" in r for r in reasons)
    assert log_path.read_text().count('"stream_id"') == len(expected) + 1


#: GCN Kafka JSON notices -> (topic, pipeline, search) of the external event each must become
#: (expected values: tests/data/kafka/SOURCES.md and tests/data/gcn_kafka/SOURCES.md).
JSON_NOTICES = {
    DATA / "json" / "kafka_alert_icecube_bronze.json":
        ("gcn.notices.icecube.gold_bronze_track_alerts", "IceCube", "HEN"),
    DATA / "json" / "kafka_alert_swift_targeted.json": ("gcn.notices.swift.bat.guano", "Swift", "SubGRBTargeted"),
    DATA / "json" / "kafka_alert_chime_detection.json": ("gcn.notices.chime.frb", "CHIME", "FRB"),
    DATA.parent / "gcn_kafka" / "kafka_alert_fermi_targeted.json":
        ("fermi.gbm.targeted.private.igwn", "Fermi", "SubGRBTargeted"),
    # SVOM's JSON form (GWCelery 3.0 reads SVOM's VOEvent topic); the topic name is the test's
    DATA / "json" / "kafka_alert_svom_wakeup.json": ("gcn.notices.svom.json.eclairs", "SVOM", "GRB"),
}


def test_json_notices_from_kafka_become_external_events(kafka_settings, gracedb_service, redis_client,
                                                        tmp_path, monkeypatch):
    """End to end: JSON notices on GCN Kafka topics -> listener -> gcn:incoming -> the JSON
    notices' lane (run as the handler DAG's task runs it) -> external events in GraceDB."""
    from gw_ops.airflow.lanes import run_lane
    from gw_ops.rules.external_json import notice_from_json

    topics = tuple(dict.fromkeys(topic for topic, _, _ in JSON_NOTICES.values()))
    settings = dataclasses.replace(
        gracedb_service.settings, key_prefix=kafka_settings.key_prefix, gcn_kafka_topics=topics,
        gcn_kafka_bootstrap=kafka_settings.gcn_kafka_bootstrap, ext_skymap_max_order=5,
        kafka_consumer_group=kafka_settings.kafka_consumer_group,
        kafka_session_timeout_ms=kafka_settings.kafka_session_timeout_ms,
        kafka_heartbeat_interval_ms=kafka_settings.kafka_heartbeat_interval_ms)
    ensure_topics(settings.gcn_kafka_servers, topics)
    # the Fermi targeted notice carries its sky map: 1 MB, above librdkafka's default limit
    producer = Producer({"bootstrap.servers": settings.gcn_kafka_servers, "message.max.bytes": 2 << 20})
    for path, (topic, _, _) in JSON_NOTICES.items():
        producer.produce(topic, path.read_bytes())  # GCN's JSON records: bare JSON, no headers
    assert producer.flush(10) == 0
    stream = gcn_incoming_stream(settings)
    listener = start_listener(settings, "gcn_kafka", tmp_path / "gcn.log")
    try:
        wait_for(lambda: redis_client.xlen(stream) >= len(JSON_NOTICES), timeout=90,
                 what="every JSON notice in gcn:incoming")
    finally:
        kill(listener)
    for name, value in settings.as_env().items():  # the handler reads the process settings
        monkeypatch.setenv(name, value)
    summary = run_lane("gw_ops.handlers.kafka_notices.handle_json_notice", consumer="kafka-test",
                       settings=settings)
    reasons = [f[b"reason"].decode() for f in entries(redis_client, deadletter_stream(settings, "gcn"))]
    assert (summary["handled"], summary["dead_lettered"], summary["failed"]) == (len(JSON_NOTICES), 0, 0), reasons
    client = gracedb_service.client()
    for path, (_, pipeline, search) in JSON_NOTICES.items():
        notice = notice_from_json(json.loads(path.read_text()), settings)
        found = [e for e in client.events(f"pipeline: {pipeline} gpstime: {notice.gpstime - 1} .. "
                                          f"{notice.gpstime + 1}")
                 if e["extra_attributes"]["GRB"]["trigger_id"] == notice.trigger_id]
        assert [(e["group"], e["search"]) for e in found] == [("External", search)], path.name


def test_listener_stays_up_across_a_broker_restart_and_reads_the_new_log(
        kafka_settings, tansu_broker, redis_client, tmp_path):
    """tansu's memory store forgets its topics on restart: the re-created topic starts at
    offset 0 again, with newer timestamps; those records are read, not taken for redeliveries."""
    settings = kafka_settings
    node = "superevent"
    topic = f"{settings.igwn_alert_group}.{node}"

    def produce(uids):
        ensure_topics(settings.igwn_alert_servers, [topic])
        producer = Producer({"bootstrap.servers": settings.igwn_alert_servers})
        for uid in uids:
            producer.produce(topic, lvalert_message(uid), headers=hop_headers("json"))
        assert producer.flush(10) == 0

    produce([f"A{i}" for i in range(5)])
    listener = start_listener(settings, "igwn_alert", tmp_path / "listener.log")
    try:
        wait_for(lambda: len(lvalert_uids(redis_client, settings, [node])) == 5, timeout=60,
                 what="the first 5 records")
        tansu_broker.restart()  # SIGKILL, then a fresh broker on the same port
        produce([f"B{i}" for i in range(5)])
        wait_for(lambda: len(lvalert_uids(redis_client, settings, [node])) >= 10, timeout=90,
                 what="the 5 records of the new log")
        assert listener.poll() is None, "the listener died with the broker"
    finally:
        kill(listener)
    assert lvalert_uids(redis_client, settings, [node]) == [f"A{i}" for i in range(5)] + [f"B{i}" for i in range(5)]


def test_gcn_notices_across_a_sigkill_exactly_once(kafka_settings, redis_client, tmp_path):
    from tests.test_lanes_airflow import make_probe_notice

    topic = "gcn.classic.voevent.TEST_COORDS"
    settings = dataclasses.replace(kafka_settings, gcn_kafka_topics=(topic,))
    ensure_topics(settings.gcn_kafka_servers, [topic])
    producer = Producer({"bootstrap.servers": settings.gcn_kafka_servers})
    total = 120
    stream = gcn_incoming_stream(settings)

    def produce():
        for i in range(total):
            producer.produce(topic, make_probe_notice(f"kill{i:03d}"))
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(10)

    listener = start_listener(settings, "gcn_kafka", tmp_path / "gcn.log")
    # warm-up: the listener has joined its group once this one is stored, so the kill
    # below lands while the notices are still arriving
    producer.produce(topic, make_probe_notice("warmup"))
    producer.flush(10)
    wait_for(lambda: redis_client.xlen(stream) == 1, timeout=60, what="the warm-up notice")
    feeder = threading.Thread(target=produce)
    feeder.start()
    wait_for(lambda: redis_client.xlen(stream) >= 21, timeout=60, what="20 notices stored")
    kill(listener, signal.SIGKILL)
    at_kill = redis_client.xlen(stream)
    feeder.join()
    assert at_kill < total + 1, "the kill came after everything was stored: the test proves nothing"
    listener = start_listener(settings, "gcn_kafka", tmp_path / "gcn.log")
    try:
        wait_for(lambda: redis_client.xlen(stream) >= total + 1, timeout=90, what=f"all {total} notices")
    finally:
        kill(listener)
    ivorns = [f[b"ivorn"].decode() for f in entries(redis_client, stream)]
    assert sorted(ivorns) == sorted([f"ivo://gw-ops/probe#kill{i:03d}" for i in range(total)]
                                    + ["ivo://gw-ops/probe#warmup"])
