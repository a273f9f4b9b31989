"""Kafka alerts out: igwn-gwalert-schema Avro and JSON records beside the VOEvent.

Targets come from the setting ``kafka_alert_topics`` (``<avro|json>@<host:port>/<topic>``;
GWCelery 3.0 sends Avro to SCIMMA's ``igwn.gwalert`` and JSON to GCN's).  The
alert sender (:mod:`gw_ops.handlers.alert_sender`) calls

1. :func:`prepare` before anything is sent: both forms are built and validated against
   the schemas of the ``igwn-gwalert-schema`` package (Avro with fastavro, strict; JSON
   with its JSON Schema).  A failure is a bug and fails red; nothing was sent.
2. :func:`deliver` after the VOEvent was appended and *before* the alert is recorded in
   GraceDB: each target not yet marked as sent gets one record, and the mark (Redis,
   in the superevent's alert record) is written only after the broker acknowledged it.
   A failed send raises :class:`KafkaAlertNotSent` (transient): the lane retries, the
   task goes red while it persists, and the alert is not recorded in GraceDB until every
   target has it.  A redelivery sends only to the targets without a mark, from the alert
   stored at the first attempt, so no target gets an alert twice.  A failed attempt ends
   only on the producer's own verdict on the record (timed out, refused), never while the
   producer could still send it, and its producer is dropped.  Two windows are left: a
   crash between the broker's acknowledgement and the mark, and a record that timed out
   while in flight yet was written; the resent record then carries the same ``_id``
   header (a UUID derived from superevent, alert key and target), so a subscriber can
   tell it is the same alert.

Records carry hop's headers (``_id``, ``_sender``, ``_format``), so hop and igwn-alert
subscribers decode them as they decode GWCelery's: Avro as an Object Container File
with the writer schema embedded (hop's ``AvroBlob``), JSON as the bare document with the
sky map in base64.
"""
from __future__ import annotations

import base64
import copy
import functools
import io
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from gw_ops.config import Settings
from gw_ops.errors import TransientError

log = logging.getLogger(__name__)

#: Schema files of igwn-gwalert-schema 1.3.0.
AVRO_SCHEMA_FILE = "igwn.alerts.Alert.avsc"
JSON_SCHEMA_FILE = "igwn.alerts.Alert.schema.json"
FORMATS = ("avro", "json")
#: Namespace of the deterministic ``_id`` header of each alert record.
RECORD_ID_NAMESPACE = uuid.UUID("6f9d3c1e-3a43-4d0e-9a55-2b1f3f6e7a10")


class KafkaAlertNotSent(TransientError):
    """A broker did not acknowledge an alert record: retry (the alert is not recorded yet)."""


class AlertSchemaError(RuntimeError):
    """An alert does not validate against igwn-gwalert-schema (a bug: fail red, send nothing)."""


@dataclass(frozen=True)
class Target:
    """One place alerts go: format, bootstrap servers, topic."""

    fmt: str
    server: str
    topic: str

    @property
    def name(self) -> str:
        return f"{self.fmt}@{self.server}/{self.topic}"


def targets(settings: Settings) -> list[Target]:
    """The configured targets (setting ``kafka_alert_topics``; empty host means the local broker)."""
    found = []
    for entry in settings.kafka_alert_topics:
        fmt, at, rest = entry.partition("@")
        server, slash, topic = rest.rpartition("/")
        if not at or not slash or fmt not in FORMATS or not topic:
            raise ValueError(f"GW_OPS_KAFKA_ALERT_TOPICS entry {entry!r} is not "
                             "'<avro|json>@<host:port>/<topic>'")
        found.append(Target(fmt, server or settings.local_kafka_bootstrap, topic))
    return found


@functools.lru_cache(maxsize=1)
def schemas() -> tuple[Any, dict]:
    """Parsed Avro schema and JSON Schema of igwn-gwalert-schema."""
    import importlib.resources

    import fastavro

    package = importlib.resources.files("igwn_gwalert_schema")
    avro = fastavro.parse_schema(json.loads(package.joinpath(AVRO_SCHEMA_FILE).read_text()))
    return avro, json.loads(package.joinpath(JSON_SCHEMA_FILE).read_text())


def schema_form(alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON alert of :func:`gw_ops.formats.json_alert.build_json_alert` in the schema's fields.

    ``urls`` keeps only ``gracedb`` (gw-ops' extra ``urls.skymap`` is not in the schema).
    """
    form = copy.deepcopy(alert)
    form["urls"] = {"gracedb": alert["urls"]["gracedb"]}
    return form


def to_avro_record(alert: dict[str, Any]) -> dict[str, Any]:
    """The Avro form: the sky map as raw bytes instead of base64 text."""
    record = schema_form(alert)
    event = record.get("event")
    if event is not None and event.get("skymap") is not None:
        event["skymap"] = base64.b64decode(event["skymap"])
    return record


def validate_json_form(document: dict[str, Any]) -> None:
    import jsonschema

    _, json_schema = schemas()
    validator = jsonschema.validators.validator_for(json_schema)
    try:
        validator(json_schema, format_checker=validator.FORMAT_CHECKER).validate(document)
    except jsonschema.ValidationError as exc:
        raise AlertSchemaError(f"JSON alert invalid: {exc.message} at {list(exc.absolute_path)}") from exc


def validate_avro_record(record: dict[str, Any]) -> None:
    import fastavro.validation

    avro_schema, _ = schemas()
    try:
        fastavro.validation.validate(record, avro_schema, raise_errors=True, strict=True)
    except fastavro.validation.ValidationError as exc:
        raise AlertSchemaError(f"Avro alert invalid: {exc}") from exc


def serialize(alert: dict[str, Any], fmt: str) -> bytes:
    """Validated bytes of one form: Avro Object Container File, or JSON text."""
    import fastavro

    if fmt == "avro":
        record = to_avro_record(alert)
        validate_avro_record(record)
        buffer = io.BytesIO()
        fastavro.writer(buffer, schemas()[0], [record])
        return buffer.getvalue()
    document = schema_form(alert)
    validate_json_form(document)
    return json.dumps(document, separators=(",", ":")).encode()


def decode(value: bytes, fmt: str) -> dict[str, Any]:
    """One record's alert (for subscribers and tests): Avro OCF or JSON."""
    import fastavro

    if fmt == "avro":
        (record,) = list(fastavro.reader(io.BytesIO(value)))
        return record
    return json.loads(value)


def prepare(alert: dict[str, Any], settings: Settings) -> dict[str, bytes]:
    """Build and validate every configured form before anything is sent: ``{target name: bytes}``."""
    return {target.name: serialize(alert, target.fmt) for target in targets(settings)}


def _mark_field(target: Target, key: str) -> str:
    return f"kafka:{target.name}:{key}"


def _stored_field(key: str) -> str:
    return f"kafkaalert:{key}"


#: One producer per server, with the delivery timeout it was made with (librdkafka fixes
#: ``message.timeout.ms`` at creation).
_producers: dict[str, tuple[float, Any]] = {}


def _producer(settings: Settings, server: str):
    from confluent_kafka import Producer

    from gw_ops.transport.kafka_config import producer_config

    timeout_s, producer = _producers.get(server, (None, None))
    if producer is None or timeout_s != settings.kafka_alert_timeout_s:
        _discard_producer(server)
        producer = Producer(producer_config(settings, server))
        _producers[server] = (settings.kafka_alert_timeout_s, producer)
    return producer


def _discard_producer(server: str) -> None:
    """Drop a server's producer, taking back what it still holds.

    After a failed send the next attempt gets a fresh producer: the old one would keep
    reconnecting and asking for its topics' metadata (which makes a broker that creates
    topics on demand create them), and could still hold records.
    """
    _, producer = _producers.pop(server, (None, None))
    if producer is not None:
        producer.purge(in_queue=True, in_flight=True)
        producer.flush(0)


def record_id(superevent_id: str, key: str, target: Target) -> bytes:
    """The ``_id`` header: the same UUID for every send of one alert to one target."""
    return uuid.uuid5(RECORD_ID_NAMESPACE, f"{superevent_id}/{key}/{target.name}").bytes


def deliver(settings: Settings, redis_client, record_key: str, superevent_id: str, key: str,
            alert: dict[str, Any] | None) -> dict[str, str]:
    """Send the alert to every target that lacks it; return ``{target: "partition/offset"}`` sent now.

    Parameters
    ----------
    record_key : str
        The superevent's alert record (Redis hash) that holds the marks.
    alert : dict or None
        The JSON alert; None to resend the one stored at the first attempt (completing
        a sender that crashed).

    Raises
    ------
    KafkaAlertNotSent
        A broker did not acknowledge within ``kafka_alert_timeout_s``.
    """
    from confluent_kafka import KafkaException

    from gw_ops.transport.kafka_client import DeliveryFailed, hop_headers, produce_acked

    wanted = targets(settings)
    if not wanted:
        return {}
    if alert is None:
        stored = redis_client.hget(record_key, _stored_field(key))
        if stored is None:
            log.warning("%s: no stored Kafka alert for %s (sent before Kafka alerts were on?)",
                        superevent_id, key)
            return {}
        alert = json.loads(stored)
    else:
        redis_client.hsetnx(record_key, _stored_field(key), json.dumps(alert, separators=(",", ":")))
    sent = {}
    for target in wanted:
        if redis_client.hexists(record_key, _mark_field(target, key)):
            continue
        value = serialize(alert, target.fmt)
        headers = hop_headers(target.fmt, "gw-ops", record_id(superevent_id, key, target))
        try:
            partition, offset = produce_acked(_producer(settings, target.server), target.topic, value,
                                              headers, settings.kafka_alert_timeout_s)
        except (DeliveryFailed, KafkaException, BufferError) as exc:  # BufferError: local queue full
            _discard_producer(target.server)
            raise KafkaAlertNotSent(f"{superevent_id} {key} to {target.name}: {exc}") from exc
        redis_client.hset(record_key, _mark_field(target, key), f"{partition}/{offset}")
        sent[target.name] = f"{partition}/{offset}"
        log.info("%s %s: Kafka alert acknowledged by %s at %d/%d", superevent_id, key, target.name,
                 partition, offset)
    return sent
