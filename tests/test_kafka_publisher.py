"""The local GraceDB's LVAlerts on Kafka in IGWN Alert's format (real tansu)."""
from __future__ import annotations

import dataclasses
import json
import time
import uuid
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer

from gw_ops.local_gracedb.kafka_publisher import PUBLISH_TIMEOUT_S, KafkaLVAlertPublisher, for_settings
from gw_ops.transport.kafka import LVAlertRoute, headers_dict
from gw_ops.transport.kafka_client import VERDICT_GRACE_S
from tests.helpers import free_port

pytestmark = pytest.mark.timeout(120)


def row(node: str, uid: str, alert_type: str = "new"):
    return SimpleNamespace(node=node, payload=json.dumps({"uid": uid, "alert_type": alert_type,
                                                          "data": {}, "object": {}}))


def test_records_are_igwn_alert_records_in_commit_order(kafka_settings):
    publisher = KafkaLVAlertPublisher(kafka_settings)
    publisher.publish([row("superevent", f"S{i}") for i in range(5)] + [row("cbc_gstlal", "G1")])
    consumer = Consumer({"bootstrap.servers": kafka_settings.igwn_alert_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 1000,
                         "heartbeat.interval.ms": 100})
    group = kafka_settings.igwn_alert_group
    consumer.subscribe([f"{group}.superevent", f"{group}.cbc_gstlal"])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 6 and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is not None and not message.error():
            got.append(message)
    consumer.close()
    superevent = [m for m in got if m.topic() == f"{group}.superevent"]
    assert [json.loads(m.value())["uid"] for m in superevent] == ["S0", "S1", "S2", "S3", "S4"]
    headers = headers_dict(got[0].headers())
    assert headers["_format"] == b"json" and len(headers["_id"]) == 16 and headers["_sender"]
    # what the listener accepts, unchanged
    route = LVAlertRoute(kafka_settings, ["superevent", "cbc_gstlal"])
    for message in got:
        delivery = route.route(message.topic(), message.value(), headers_dict(message.headers()))
        assert json.loads(delivery.fields["payload"])["alert_type"] == "new"


def test_broker_down_fails_the_publish_quickly(kafka_settings):
    down = dataclasses.replace(kafka_settings, igwn_alert_bootstrap=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="unacknowledged"):
        KafkaLVAlertPublisher(down).publish([row("superevent", "S9")])
    assert time.monotonic() - started < PUBLISH_TIMEOUT_S + VERDICT_GRACE_S


def test_redis_transport_has_no_kafka_publisher(base_settings):
    assert for_settings(base_settings) is None
    assert isinstance(for_settings(dataclasses.replace(base_settings, transport="kafka")), KafkaLVAlertPublisher)
