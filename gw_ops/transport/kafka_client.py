"""Kafka client helpers: hop headers, an acknowledged produce, topics, broker readiness.

Shared by the listeners' tests, the Kafka alerts (:mod:`gw_ops.handlers.kafka_alerts`),
the local GraceDB's publisher and ``gw-ops up`` (the local tansu broker).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Iterable

from gw_ops.errors import TransientError


def hop_headers(fmt: str, sender: str = "gw-ops", record_id: bytes | None = None) -> list[tuple[str, bytes]]:
    """Headers hop-client 0.13 writes: ``_id`` (16 bytes), ``_sender``, ``_format``."""
    return [("_id", record_id or uuid.uuid4().bytes), ("_sender", sender.encode()),
            ("_format", fmt.encode())]


class DeliveryFailed(TransientError):
    """The broker did not acknowledge a record in time (transient: retry)."""


#: Extra seconds to wait for librdkafka's own verdict on a record after ``timeout_s``: it
#: expires records on a periodic scan (about once a second), so a verdict may come late.
VERDICT_GRACE_S = 5.0


def produce_acked(producer, topic: str, value: bytes, headers: list[tuple[str, bytes]],
                  timeout_s: float, verdict_grace_s: float = VERDICT_GRACE_S) -> tuple[int, int]:
    """Produce one record and wait for the broker's acknowledgement.

    The wait ends on librdkafka's verdict (acknowledged, refused, timed out), not on a
    clock alone: a record given up on while the producer still holds it could reach the
    broker later, after the caller retried it, and go out twice.  The producer must be
    configured with ``message.timeout.ms`` at most ``timeout_s``, so the verdict comes
    about ``timeout_s`` after the call; should none come ``verdict_grace_s`` (s) later,
    the record is purged from the producer's queue if it was not sent yet.

    Returns
    -------
    tuple of int
        ``(partition, offset)`` the broker assigned.

    Raises
    ------
    DeliveryFailed
        The broker refused it or did not acknowledge it within ``timeout_s`` (s).
    """
    outcome: dict[str, Any] = {}

    def on_delivery(error, message) -> None:
        outcome["error"] = error
        outcome["message"] = message

    producer.produce(topic, value, headers=headers, on_delivery=on_delivery)
    deadline = time.monotonic() + timeout_s + verdict_grace_s
    while "error" not in outcome and time.monotonic() < deadline:
        producer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
    if "error" not in outcome:
        producer.purge(in_queue=True, in_flight=False)  # not sent yet: it never will be
        producer.poll(0)
        raise DeliveryFailed(f"no verdict on a record to {topic} within {timeout_s} s "
                             f"(+{verdict_grace_s} s); {'purged' if outcome else 'possibly in flight'}")
    if outcome["error"] is not None:
        raise DeliveryFailed(f"broker did not acknowledge a record to {topic} within "
                             f"{timeout_s} s: {outcome['error']}")
    message = outcome["message"]
    return message.partition(), message.offset()


def ensure_topics(server: str, topics: Iterable[str], config: dict | None = None,
                  timeout_s: float = 10.0) -> None:
    """Create topics that do not exist yet (one partition) and wait until they are listed."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server, **(config or {})})
    wanted = set(topics)
    missing = wanted - set(admin.list_topics(timeout=timeout_s).topics)
    if missing:
        futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                                       for t in sorted(missing)])
        for future in futures.values():
            try:
                future.result(timeout_s)
            except Exception as exc:  # noqa: BLE001 (a concurrent creator won: fine)
                if "exist" not in str(exc).lower():
                    raise
    deadline = time.monotonic() + timeout_s
    while wanted - set(admin.list_topics(timeout=timeout_s).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {sorted(wanted)} not listed by {server} after {timeout_s} s")
        time.sleep(0.05)


def wait_ready(server: str, timeout_s: float = 30.0, alive: Callable[[], bool] | None = None) -> float:
    """Wait until a broker answers a metadata request with brokers; return the seconds waited.

    ``alive()`` is checked on the way, so a broker process that exited fails at once.
    """
    from confluent_kafka.admin import AdminClient

    start = time.monotonic()
    admin = AdminClient({"bootstrap.servers": server, "socket.connection.setup.timeout.ms": 1000,
                         "log_level": 0})
    last: Exception | None = None
    while time.monotonic() - start < timeout_s:
        if alive is not None and not alive():
            raise RuntimeError(f"Kafka broker at {server} exited before it was ready")
        try:
            # a busy broker (or machine) may need over a second to answer; 3 s at most, so
            # a broker that exited is noticed soon
            wait = min(3.0, max(0.5, timeout_s - (time.monotonic() - start)))
            if admin.list_topics(timeout=wait).brokers:
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 (transport errors until it listens)
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"Kafka broker {server} not ready after {timeout_s} s: {last}")
