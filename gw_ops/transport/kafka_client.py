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


def produce_acked(producer, topic: str, value: bytes, headers: list[tuple[str, bytes]],
                  timeout_s: float) -> tuple[int, int]:
    """Produce one record and wait for the broker's acknowledgement.

    Returns
    -------
    tuple of int
        ``(partition, offset)`` the broker assigned.

    Raises
    ------
    DeliveryFailed
        The broker refused it or did not answer within ``timeout_s`` (s).
    """
    outcome: dict[str, Any] = {}

    def on_delivery(error, message) -> None:
        outcome["error"] = error
        outcome["message"] = message

    producer.produce(topic, value, headers=headers, on_delivery=on_delivery)
    deadline = time.monotonic() + timeout_s
    while "error" not in outcome and time.monotonic() < deadline:
        producer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
    if "error" not in outcome:
        raise DeliveryFailed(f"no acknowledgement for a record to {topic} within {timeout_s} s")
    if outcome["error"] is not None:
        raise DeliveryFailed(f"broker refused a record to {topic}: {outcome['error']}")
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
            if admin.list_topics(timeout=1.0).brokers:
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 (transport errors until it listens)
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"Kafka broker {server} not ready after {timeout_s} s: {last}")
