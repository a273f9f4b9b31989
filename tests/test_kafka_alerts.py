"""Kafka alerts out: validated Avro and JSON, consumed back from a real tansu broker and
validated again; recorded in GraceDB only after the broker acknowledged; a failed send is
retried (transient) and never sends twice."""
from __future__ import annotations

import dataclasses
import itertools
import uuid

import pytest

from gw_ops.errors import is_transient
from gw_ops.formats import alert_content, json_alert
from gw_ops.handlers import alert_sender, kafka_alerts
from gw_ops.rules import alert_policy as policy
from gw_ops.transport.kafka_client import ensure_topics
from gw_ops.transport.redis_client import voevent_outgoing_stream
from tests.fixtures.kafka import TansuBroker, read_topic
from tests.helpers import free_port
from tests.test_alerts import make_content
from tests.test_orchestrator_gracedb import SKYMAP, upload_mdc_event

AVRO_TOPIC, JSON_TOPIC = "igwn.gwalert", "igwn.gwalert-json"
_GPS = itertools.count(1_250_000_000.1 + (uuid.uuid4().int % 5_000) * 10_000.0, 10_000.0)
pytestmark = pytest.mark.timeout(180)


def test_both_forms_validate_and_a_broken_alert_is_refused_before_sending():
    alert = json_alert.build_json_alert(make_content())
    for fmt in ("avro", "json"):
        decoded = kafka_alerts.decode(kafka_alerts.serialize(alert, fmt), fmt)
        assert decoded["superevent_id"] == "S230518h" and decoded["alert_type"] == "PRELIMINARY"
    assert kafka_alerts.decode(kafka_alerts.serialize(alert, "avro"), "avro")["event"]["skymap"] == \
        b"SIMPLE  = T tiny fits"
    broken = dict(alert, alert_type="preliminary")
    for fmt in ("avro", "json"):
        with pytest.raises(kafka_alerts.AlertSchemaError):
            kafka_alerts.serialize(broken, fmt)
    no_event_time = dict(alert, event={k: v for k, v in alert["event"].items() if k != "time"})
    with pytest.raises(kafka_alerts.AlertSchemaError):
        kafka_alerts.serialize(no_event_time, "json")
    retraction = json_alert.build_json_alert(make_content(alert_type=alert_content.RETRACTION))
    assert kafka_alerts.decode(kafka_alerts.serialize(retraction, "avro"), "avro")["event"] is None


def test_a_record_given_up_on_never_goes_out_later(tmp_path):
    """produce_acked ends on the producer's verdict: a record it gave up on is not left in
    the producer, to reach the broker later beside the retried alert.  The producer here
    would hold records for 60 s; the broker comes up right after the give-up."""
    from confluent_kafka import Producer

    from gw_ops.transport.kafka_client import DeliveryFailed, produce_acked

    broker = TansuBroker(free_port(), tmp_path / "tansu.log")  # not started: the broker is down
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 60_000,
                         "log_level": 0})
    with pytest.raises(DeliveryFailed, match="purged"):
        produce_acked(producer, JSON_TOPIC, b"given up", [], timeout_s=1.0, verdict_grace_s=0.5)
    broker.start()
    try:
        ensure_topics(broker.bootstrap, [JSON_TOPIC])
        # the same producer, connected now: anything it still held would go out first
        produce_acked(producer, JSON_TOPIC, b"sent", [], timeout_s=60.0)
        assert [record.value() for record in read_topic(broker.bootstrap, JSON_TOPIC)] == [b"sent"]
    finally:
        broker.stop()


@pytest.fixture
def superevent(gracedb_service, redis_client):
    client = gracedb_service.client()
    gpstime = next(_GPS)
    preferred = upload_mdc_event(client, gpstime, far=1e-9)
    superevent_id = client.create_superevent(gpstime - 1, gpstime, gpstime + 1, preferred,
                                             category="mdc").json()["superevent_id"]
    client.write_label(superevent_id, "SIGNIF_LOCKED")
    yield client, superevent_id, preferred


def own_settings(gracedb_service, redis_client, **changes):
    base = gracedb_service.settings
    return dataclasses.replace(base, key_prefix=base.key_prefix + uuid.uuid4().hex[:8] + ":", **changes)


def recorded_notices(client, superevent_id) -> list[str]:
    return [e["filename"] for e in client.logs(superevent_id).json()["log"]
            if e["filename"].endswith("Preliminary.xml")]


def test_alert_goes_to_kafka_validated_and_once(tansu_broker, gracedb_service, redis_client, superevent):
    client, superevent_id, preferred = superevent
    server = tansu_broker.bootstrap
    ensure_topics(server, [AVRO_TOPIC, JSON_TOPIC])
    settings = own_settings(gracedb_service, redis_client, kafka_alert_topics=(
        f"avro@{server}/{AVRO_TOPIC}", f"json@{server}/{JSON_TOPIC}"))
    decision = policy.decide_on_label("SIGNIF_LOCKED", [], [])
    result = alert_sender.send_alert(decision, superevent_id, settings=settings, client=client,
                                     redis_client=redis_client)
    assert result["status"] == "sent"
    again = alert_sender.send_alert(decision, superevent_id, settings=settings, client=client,
                                    redis_client=redis_client)
    assert again["status"] == "already sent"
    (avro_record,) = read_topic(server, AVRO_TOPIC)
    (json_record,) = read_topic(server, JSON_TOPIC)
    avro_alert = kafka_alerts.decode(avro_record.value(), "avro")
    json_alert = kafka_alerts.decode(json_record.value(), "json")
    kafka_alerts.validate_avro_record(avro_alert)   # consumed back: still valid
    kafka_alerts.validate_json_form(json_alert)
    for alert in (avro_alert, json_alert):
        assert alert["superevent_id"] == superevent_id and alert["alert_type"] == "PRELIMINARY"
        assert alert["event"]["pipeline"] == "gstlal" and alert["event"]["significant"] is True
    assert avro_alert["event"]["skymap"] == SKYMAP + preferred.encode()
    headers = dict(avro_record.headers())
    assert headers["_format"] == b"avro" and len(headers["_id"]) == 16
    assert dict(json_record.headers())["_format"] == b"json"
    assert recorded_notices(client, superevent_id) == [f"{superevent_id}-1-Preliminary.xml"]


def test_failed_send_is_retried_not_recorded_and_never_doubled(tmp_path, gracedb_service, redis_client, superevent):
    client, superevent_id, _ = superevent
    broker = TansuBroker(free_port(), tmp_path / "tansu.log")  # not started: the broker is down
    settings = own_settings(gracedb_service, redis_client, kafka_alert_timeout_s=2.0,
                            kafka_alert_topics=(f"json@{broker.bootstrap}/{JSON_TOPIC}",))
    decision = policy.decide_on_label("SIGNIF_LOCKED", [], [])
    with pytest.raises(kafka_alerts.KafkaAlertNotSent) as failure:
        alert_sender.send_alert(decision, superevent_id, settings=settings, client=client,
                                redis_client=redis_client)
    assert is_transient(failure.value)  # the lane retries it, and the task goes red meanwhile
    assert recorded_notices(client, superevent_id) == []  # not recorded without the broker's ack
    assert len(redis_client.xrange(voevent_outgoing_stream(settings))) == 1
    broker.start()
    try:
        ensure_topics(broker.bootstrap, [JSON_TOPIC])
        # The redelivery may wait as long as it needs for the broker's acknowledgement: the
        # 2 s above only makes the outage fail fast, and a loaded machine needs more.
        settings = dataclasses.replace(settings, kafka_alert_timeout_s=60.0)
        redelivered = alert_sender.send_alert(decision, superevent_id, settings=settings,
                                              client=client, redis_client=redis_client)
        assert redelivered["status"] == "completed"
        assert alert_sender.send_alert(decision, superevent_id, settings=settings, client=client,
                                       redis_client=redis_client)["status"] == "already sent"
        (record,) = read_topic(broker.bootstrap, JSON_TOPIC)
        kafka_alerts.validate_json_form(kafka_alerts.decode(record.value(), "json"))
        assert recorded_notices(client, superevent_id) == [f"{superevent_id}-1-Preliminary.xml"]
        assert len(redis_client.xrange(voevent_outgoing_stream(settings))) == 1
    finally:
        broker.stop()
