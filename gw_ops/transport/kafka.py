"""Kafka in and out: IGWN Alert and GCN Kafka records into the lane streams, and a producer.

The listeners (:class:`KafkaBridge`, run by the triggers of
:mod:`gw_ops.airflow.kafka_triggers`) keep the lanes' guarantee, *N in, exactly N
handled*, across crashes:

1. each record is routed (:class:`LVAlertRoute`, :class:`GcnRoute`) to the Redis stream
   the handlers already drain (``lvalert:<node>``, ``gcn:incoming``) with the fields
   the Redis transport writes, or to the dead letters with its reason (bad JSON, bad XML,
   oversize, unknown topic);
2. one Lua script writes it *and* raises the partition's high-water mark, atomically,
   unless the record's offset is at or below the mark (a redelivery: written once
   already, nothing is written);
3. only then the offset is committed to Kafka (asynchronously: the record is durable
   already).

A crash (SIGKILL) between 2 and 3, or a commit that never reached the broker, makes
Kafka deliver the record again, and step 2 turns it into a no-op.  Offsets are committed
per record, so a crash redelivers at most the records whose commits were in flight.  The
handlers cannot tell which transport carried a message.

The mark holds ``"<offset> <max timestamp ms>"`` per ``group/topic/partition``: a record
counts as seen when its offset is at or below the mark *and* its timestamp is not newer
than every record seen there.  A redelivered record always meets both; a topic that was
deleted and re-created (a restarted in-memory broker) starts at offset 0 with newer
timestamps and is read, not silently dropped.

Record format (IGWN Alert through hop-client >= 0.5): the value is the bare JSON
document; headers ``_id`` (16 bytes), ``_sender``, ``_format`` (``json``, ``avro``,
``voevent``, ``blob``).  GCN's classic VOEvent topics carry raw XML without headers;
its JSON notice topics carry bare JSON.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from gw_ops.config import Settings

log = logging.getLogger(__name__)

#: Write one record into a stream unless its partition's mark says it was written.
#: KEYS[1] mark hash, KEYS[2] target stream, KEYS[3] counters hash.
#: ARGV: mark field, offset, timestamp (ms), stream maxlen, then field/value pairs.
_WRITE_ONCE = """
local mark = redis.call('HGET', KEYS[1], ARGV[1])
local newest = tonumber(ARGV[3])
if mark then
  local space = string.find(mark, ' ')
  local offset = tonumber(string.sub(mark, 1, space - 1))
  local stamp = tonumber(string.sub(mark, space + 1))
  if tonumber(ARGV[2]) <= offset and newest <= stamp then
    redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
    return false
  end
  if stamp > newest then newest = stamp end
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. newest)
redis.call('HINCRBY', KEYS[3], 'written', 1)
return id
"""

#: Seconds between health records of an idle listener.
HEARTBEAT_S = 30.0
#: hop's format header names.
FORMAT_HEADER = "_format"


class RecordRejected(ValueError):
    """A record that cannot be delivered: it goes to the dead letters with this reason."""


@dataclass(frozen=True)
class Delivery:
    """Where one record goes: a lane stream and its fields."""

    stream: str
    fields: dict[str, Any]
    kind: str  # "lvalert" or "gcn"


def headers_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    """A record's headers as a dict (the last value of a repeated name wins)."""
    return {name: value or b"" for name, value in (headers or [])}


def decode_json_value(value: bytes, headers: dict[str, bytes]) -> Any:
    """The JSON document of a hop record: bare JSON, a JSON string of JSON, or hop's old envelope.

    Raises
    ------
    RecordRejected
        Not UTF-8 JSON, or a format header other than json/blob.
    """
    fmt = headers.get(FORMAT_HEADER, b"").decode("ascii", "replace")
    if fmt and fmt not in ("json", "blob"):
        raise RecordRejected(f"format {fmt!r} where JSON was expected")
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordRejected(f"not JSON: {exc}") from None
    if isinstance(document, str):  # hop JSON-encodes a str payload once more
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise RecordRejected(f"JSON string that is not JSON: {exc}") from None
    if not fmt and isinstance(document, dict) and set(document) == {"format", "content"}:
        document = document["content"]  # hop < 0.5 envelope
    return document


def lvalert_nodes(settings: Settings | None = None) -> list[str]:
    """Nodes of every ``@lvalert.handler`` of the configured handler modules (the IGWN
    Alert topics to read): the same for every process with the same settings."""
    from gw_ops.transport.registry import load_handlers

    return sorted({node for spec in load_handlers(settings=settings) if spec.kind == "lvalert"
                   for node in spec.keys})


class LVAlertRoute:
    """IGWN Alert topics ``<group>.<node>`` to the ``lvalert:<node>`` lane streams.

    Parameters
    ----------
    settings : Settings
        ``igwn_alert_group`` names the topic prefix.
    nodes : iterable of str
        The nodes of every registered ``@lvalert.handler``.
    """

    kind = "lvalert"

    def __init__(self, settings: Settings, nodes: Iterable[str]):
        from gw_ops.transport.redis_client import lvalert_stream

        self.settings = settings
        self.group = settings.igwn_alert_group
        self.streams = {node: lvalert_stream(settings, node) for node in sorted(set(nodes))}
        #: Topics to subscribe to instead of the nodes' (tests: unknown topics).
        self.topics_override: list[str] | None = None

    @property
    def topics(self) -> list[str]:
        return self.topics_override or [f"{self.group}.{node}" for node in self.streams]

    def route(self, topic: str, value: bytes, headers: dict[str, bytes]) -> Delivery:
        group, _, node = topic.partition(".")
        if group != self.group or node not in self.streams:
            raise RecordRejected(f"unknown topic {topic!r}: no handler reads node {node!r} "
                                 f"of group {self.group!r}")
        message = decode_json_value(value, headers)
        if not isinstance(message, dict):
            raise RecordRejected(f"LVAlert on {topic} is not a JSON object")
        missing = [key for key in ("uid", "alert_type") if key not in message]
        if missing:
            raise RecordRejected(f"LVAlert on {topic} lacks {', '.join(missing)}")
        payload = json.dumps(message, separators=(",", ":"), sort_keys=True)
        return Delivery(self.streams[node], {"payload": payload}, self.kind)


class GcnRoute:
    """GCN Kafka topics to the ``gcn:incoming`` lane stream.

    Classic VOEvent topics (``gcn.classic.voevent.*``, and VOEvent topics under
    ``gcn.notices.*`` such as SVOM's) carry raw VOEvent XML: parsed with the hardened
    parser of the VTP listener, stored with the same fields (``xml``, ``notice_type``,
    ``ivorn``, ``received``, plus ``topic``).  JSON notices (IceCube, SVOM, Swift/BAT-GUANO,
    CHIME, Fermi targeted) are stored as field ``json`` (the JSON object, hop's wrappings
    removed) with notice type :data:`gw_ops.transport.gcn_notices.JSON_NOTICE`; their lane
    is :func:`gw_ops.handlers.kafka_notices.handle_json_notice`.
    """

    kind = "gcn"

    def __init__(self, settings: Settings, topics: Iterable[str]):
        from gw_ops.transport.redis_client import gcn_incoming_stream

        self.settings = settings
        self.stream = gcn_incoming_stream(settings)
        self._topics = list(dict.fromkeys(topics))

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def route(self, topic: str, value: bytes, headers: dict[str, bytes]) -> Delivery:
        from gw_ops.transport.gcn_notices import JSON_NOTICE
        from gw_ops.vtp import protocol as vtp

        if topic not in self._topics:
            raise RecordRejected(f"unknown topic {topic!r}: not a configured GCN Kafka topic")
        head = value.lstrip()[:1]
        if head == b"<":
            try:
                root = vtp.parse_xml(value)
                if vtp.classify(root) != vtp.VOEVENT:
                    raise vtp.BadPacket("not a VOEvent")
                ivorn = vtp.ivorn_of(root)
                notice_type = vtp.notice_type_of(root)
            except vtp.VTPError as exc:
                raise RecordRejected(f"bad VOEvent XML on {topic}: {exc}") from None
            return Delivery(self.stream, {"xml": value, "notice_type": notice_type.name,
                                          "ivorn": ivorn, "received": repr(time.time()),
                                          "topic": topic}, self.kind)
        document = decode_json_value(value, headers)
        if not isinstance(document, dict):
            raise RecordRejected(f"GCN JSON notice on {topic} is not a JSON object")
        return Delivery(self.stream, {"json": json.dumps(document, separators=(",", ":")),
                                      "notice_type": JSON_NOTICE, "ivorn": "",
                                      "received": repr(time.time()), "topic": topic}, self.kind)


class RedisSink:
    """Writes routed records into Redis exactly once per (topic, partition, offset)."""

    def __init__(self, settings: Settings, client, consumer_group: str):
        self.settings = settings
        self.client = client
        self.consumer_group = consumer_group
        self.mark_key = settings.key("kafka", "marks")
        self.counts_key = settings.key("kafka", "counts", consumer_group)
        self._script = client.register_script(_WRITE_ONCE)

    def write(self, topic: str, partition: int, offset: int, timestamp_ms: int, stream: str,
              fields: dict[str, Any], maxlen: int) -> str | None:
        """XADD unless already written; the new entry id, or None for a redelivery."""
        args: list[Any] = [f"{self.consumer_group}/{topic}/{partition}", offset, timestamp_ms, maxlen]
        for name, value in fields.items():
            args.extend((name, value))
        result = self._script(keys=[self.mark_key, stream, self.counts_key], args=args)
        if result is None:
            return None
        return result.decode() if isinstance(result, bytes) else result

    def dead_letter_fields(self, source: str, reason: str, payload: bytes) -> tuple[str, dict]:
        from gw_ops.transport.redis_client import deadletter_stream

        return deadletter_stream(self.settings, source), {
            "source": source, "reason": reason, "payload": payload, "time": repr(time.time())}


def _timestamp_ms(message) -> int:
    kind, stamp = message.timestamp()
    return int(stamp) if kind and stamp and stamp > 0 else int(time.time() * 1000)


class KafkaBridge:
    """A Kafka consumer whose records become lane-stream entries before their offsets commit.

    Parameters
    ----------
    settings : Settings
    route : LVAlertRoute or GcnRoute
    server : str
        Bootstrap servers.
    group_id : str
        Kafka consumer group (fixed, so offsets survive restarts).
    component : str
        Health record name (``igwn_alert``, ``gcn_kafka``).
    on_delivered : callable, optional
        ``on_delivered(stream_id, fields)`` after each record is durable (from the
        bridge's thread).
    """

    def __init__(self, settings: Settings, route, server: str, group_id: str, component: str,
                 on_delivered: Callable[[str, dict], Any] | None = None, redis_client=None):
        from gw_ops.transport.redis_client import get_redis

        self.settings = settings
        self.route = route
        self.server = server
        self.group_id = group_id
        self.component = component
        self.on_delivered = on_delivered
        self.redis = redis_client or get_redis(settings, socket_timeout=10)
        self.sink = RedisSink(settings, self.redis, group_id)

    def _consumer(self):
        from confluent_kafka import Consumer

        from gw_ops.transport.kafka_config import consumer_config

        return Consumer(consumer_config(self.settings, self.server, self.group_id))

    def _health(self, state: str, detail: str, seen: bool = False) -> None:
        from gw_ops.transport.redis_client import record_health

        try:
            record_health(self.redis, self.settings, self.component, state, detail, seen)
        except Exception as exc:  # noqa: BLE001 (health is advisory; Redis may be down)
            log.warning("%s: cannot record health: %s", self.component, exc)

    def handle(self, message) -> str:
        """Make one record durable (lane stream or dead letters); return what happened.

        Raises whatever Redis raises: the caller must then not commit the offset.
        """
        value = message.value() or b""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        stamp = _timestamp_ms(message)
        try:
            if len(value) > self.settings.kafka_max_record_bytes:
                raise RecordRejected(f"oversize record on {topic}: {len(value)} bytes, more than "
                                     f"the {self.settings.kafka_max_record_bytes} allowed")
            delivery = self.route.route(topic, value, headers_dict(message.headers()))
        except RecordRejected as exc:
            reason = f"{topic}[{partition}]@{offset}: {exc}"
            log.warning("%s: dead letter: %s", self.component, reason)
            stream, fields = self.sink.dead_letter_fields(
                self.route.kind, reason, value[: self.settings.kafka_max_record_bytes])
            written = self.sink.write(topic, partition, offset, stamp, stream, fields, 10_000)
            return "dead_lettered" if written else "duplicate"
        maxlen = (self.settings.lvalert_stream_maxlen if delivery.kind == "lvalert" else 100_000)
        stream_id = self.sink.write(topic, partition, offset, stamp, delivery.stream,
                                    {**delivery.fields, "kafka": f"{topic}/{partition}/{offset}"},
                                    maxlen)
        if stream_id is None:
            log.info("%s: %s/%d/%d redelivered: already in %s, not written again",
                     self.component, topic, partition, offset, delivery.stream)
            return "duplicate"
        if self.on_delivered is not None:
            self.on_delivered(stream_id, delivery.fields)
        return "delivered"

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Consume until ``stop`` is set; close the consumer (leave the group) on the way out."""
        from confluent_kafka import KafkaError

        consumer = self._consumer()
        topics = self.route.topics
        consumer.subscribe(topics)
        self._health("connected", f"subscribed to {len(topics)} topics on {self.server}")
        broken = False
        beat = time.monotonic()
        try:
            while not stop.is_set():
                message = consumer.poll(poll_s)
                if not broken and time.monotonic() - beat > HEARTBEAT_S:
                    # a quiet but live listener stays "connected" with a fresh time; a dead
                    # one goes stale, and the health DAG says so
                    beat = time.monotonic()
                    self._health("connected", f"subscribed to {len(topics)} topics on {self.server}")
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                        continue
                    log.warning("%s: Kafka error: %s", self.component, error)
                    broken = True
                    self._health("disconnected", f"{self.server}: {error}")
                    continue
                if broken:
                    broken = False
                    self._health("connected", f"receiving from {self.server}")
                self._handle_until_durable(consumer, message, stop)
        finally:
            consumer.close()
            self._health("disconnected", "listener stopped")

    def _handle_until_durable(self, consumer, message, stop: threading.Event) -> None:
        """Store one record, retrying Redis outages; commit only after it is durable."""
        wait = 0.5
        while True:
            try:
                outcome = self.handle(message)
                break
            except Exception as exc:  # noqa: BLE001 (Redis down: keep the record, retry)
                if not type(exc).__module__.startswith("redis") and not isinstance(exc, OSError):
                    raise
                log.error("%s: Redis unavailable (%s); record %s/%d/%d kept, retry in %.1f s",
                          self.component, exc, message.topic(), message.partition(),
                          message.offset(), wait)
                if stop.wait(wait):
                    return  # not committed: redelivered to the next listener
                wait = min(wait * 2, 10.0)
        # Asynchronous: the record is already durable, so a commit that is lost (crash,
        # rebalance, broker gone) only means one redelivery, which the mark turns into a
        # no-op; waiting for each commit would cost a broker round trip per record.
        try:
            consumer.commit(message=message, asynchronous=True)
        except Exception as exc:  # noqa: BLE001 (KafkaException: no coordinator right now)
            log.warning("%s: commit of %s/%d/%d failed (%s); it will be redelivered and skipped",
                        self.component, message.topic(), message.partition(), message.offset(), exc)
        self._health("connected", f"receiving from {self.server}", outcome == "delivered")
