"""The local GraceDB's LVAlert messages on Kafka, in IGWN Alert's format (``transport = kafka``).

GraceDB announces changes through IGWN Alert: one Kafka topic per node,
``<group>.<node>`` (group: setting ``igwn_alert_group``), each record the bare JSON
message with hop's headers (``_id``, ``_sender``, ``_format: json``).  This publisher
writes exactly that, so the Kafka listener reads the local GraceDB as it would read
gracedb.ligo.org.

The outbox (:mod:`gw_ops.local_gracedb.outbox`) hands it messages in commit order after
each commit; it returns only once the broker acknowledged every one of them, so a
message leaves the outbox only when it is on Kafka.  One idempotent producer and one
record key per topic (the node) keep each topic in commit order, retries included.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from gw_ops.config import Settings

log = logging.getLogger(__name__)

#: ``_sender`` header of the records (hop puts the Kafka user name there).
SENDER = "gracedb-local"
#: Longest wait (s) for the broker's acknowledgements while the service holds its write
#: lock (plus librdkafka's expiry scan): a broker outage fails the request quickly and
#: leaves the messages in the outbox.
PUBLISH_TIMEOUT_S = 5.0


class KafkaLVAlertPublisher:
    """Publishes outbox rows (``node``, ``payload``) to IGWN Alert topics."""

    def __init__(self, settings: Settings):
        from confluent_kafka import Producer

        from gw_ops.transport.kafka_config import producer_config

        self.settings = settings
        self.timeout_s = min(settings.kafka_alert_timeout_s, PUBLISH_TIMEOUT_S)
        # records expire when the publish gives up on them, so none goes out later
        self.producer = Producer({**producer_config(settings, settings.igwn_alert_servers),
                                  "message.timeout.ms": int(self.timeout_s * 1000)})

    def topic(self, node: str) -> str:
        return f"{self.settings.igwn_alert_group}.{node}"

    def publish(self, messages: Sequence[Any]) -> None:
        """Produce every message and wait for the producer's verdict on each.

        The wait ends on the verdicts (acknowledged, refused, expired after
        ``timeout_s``), not on a clock alone: a record given up on while the producer
        still held it would reach the broker later, beside the outbox's retry.

        Raises
        ------
        RuntimeError
            Some message was refused or not acknowledged within ``timeout_s`` (s); the
            caller keeps them all in the outbox (a retry may send some twice: the
            listener and the handlers are idempotent).
        """
        from gw_ops.transport.kafka_client import VERDICT_GRACE_S, hop_headers

        failures: list[str] = []
        outstanding = [len(messages)]

        def on_delivery(error, message) -> None:
            outstanding[0] -= 1
            if error is not None:
                failures.append(f"{message.topic()}: {error}")

        for message in messages:
            payload = message.payload
            value = payload.encode() if isinstance(payload, str) else bytes(payload)
            # one key per topic: one partition, so the topic keeps the commit order (a
            # broker that auto-creates topics may give them several partitions)
            self.producer.produce(self.topic(message.node), value, key=message.node.encode(),
                                  headers=hop_headers("json", SENDER), on_delivery=on_delivery)
            self.producer.poll(0)
        deadline = time.monotonic() + self.timeout_s + VERDICT_GRACE_S
        while outstanding[0] and time.monotonic() < deadline:
            self.producer.poll(0.1)
        if outstanding[0]:  # no verdict yet: take back what was not sent
            self.producer.purge(in_queue=True, in_flight=False)
            self.producer.poll(0)
        if outstanding[0] or failures:
            raise RuntimeError(f"LVAlert publish to Kafka {self.settings.igwn_alert_servers}: "
                               f"{outstanding[0] + len(failures)} unacknowledged within "
                               f"{self.timeout_s} s: {failures[:3]}")


def for_settings(settings: Settings) -> KafkaLVAlertPublisher | None:
    """The Kafka publisher when the setting ``transport`` is ``kafka``, else None."""
    return KafkaLVAlertPublisher(settings) if settings.transport == "kafka" else None
