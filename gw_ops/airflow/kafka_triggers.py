"""Kafka listener triggers: IGWN Alert and GCN Kafka into the lane streams, in the triggerer.

:class:`IgwnAlertListenerTrigger`
    Reads the IGWN Alert topics ``<igwn_alert_group>.<node>`` of every registered
    ``@lvalert.handler`` and writes each message into the ``lvalert:<node>`` stream
    before committing its offset.  The lanes' doorbells then ring as they do for the
    Redis transport, so this trigger fires no events of its own (one asset event per
    message would wake every LVAlert handler DAG).
:class:`GcnKafkaListenerTrigger`
    Reads the GCN Kafka topics of the setting ``gcn_kafka_topics`` into the
    ``gcn:incoming`` stream and fires once per stored notice, exactly like the VTP
    :class:`gw_ops.airflow.triggers.GcnListenerTrigger`.

Both run a :class:`gw_ops.transport.kafka.KafkaBridge` (a blocking confluent-kafka
consumer) in a worker thread, so the triggerer's event loop never blocks; on
cancellation the consumer is closed, leaving its group at once.

``python -m gw_ops.airflow.kafka_triggers igwn_alert|gcn_kafka`` runs one of them in
the foreground with the ``GW_OPS_*`` settings (for tests and for checking credentials).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from gw_ops.airflow.triggers import ring_events
from gw_ops.transport.kafka import lvalert_nodes

log = logging.getLogger(__name__)

#: Seconds to wait for the consumer thread to close after the trigger is cancelled.
CLOSE_TIMEOUT_S = 10.0




class _KafkaListenerTrigger(BaseEventTrigger):
    """Shared run loop: a bridge in a thread, one event per delivered record when ``ring``."""

    component = ""
    ring = False

    def __init__(self, topics: list[str] | None = None):
        super().__init__()
        self.topics = list(topics) if topics else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {"topics": self.topics})

    def make_bridge(self, settings, on_delivered):
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from gw_ops.config import get_settings

        settings = get_settings()
        loop = asyncio.get_running_loop()
        rings: asyncio.Queue = asyncio.Queue()

        def delivered(stream_id: str, fields: dict) -> None:
            if self.ring:  # from the bridge's thread: hand over to the event loop
                event = {"stream_id": stream_id, "notice_type": str(fields.get("notice_type", "")),
                         "ivorn": str(fields.get("ivorn", "")), "topic": str(fields.get("topic", ""))}
                loop.call_soon_threadsafe(rings.put_nowait, event)

        bridge = self.make_bridge(settings, delivered)
        stop = threading.Event()
        # A thread of its own: the consumer blocks for the trigger's whole life and must not
        # hold one of the few threads of the default executor that the doorbells share.
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.component)
        pump = loop.run_in_executor(executor, bridge.run, stop)
        try:
            async for event in ring_events(rings, pump, self.component):
                yield event
        finally:
            stop.set()
            try:
                await asyncio.wait({pump}, timeout=CLOSE_TIMEOUT_S)
            except BaseException:  # noqa: BLE001 (cancelled again while closing)
                pass
            executor.shutdown(wait=False)


class IgwnAlertListenerTrigger(_KafkaListenerTrigger):
    """IGWN Alert (GraceDB over Kafka) into the LVAlert lane streams.

    Parameters
    ----------
    topics : list of str, optional
        Only for tests: subscribe to these topics instead of the registered nodes'
        (records of a topic no handler reads are dead-lettered).
    """

    component = "igwn_alert"
    ring = False

    def make_bridge(self, settings, on_delivered):
        from gw_ops.transport.kafka import KafkaBridge, LVAlertRoute

        route = LVAlertRoute(settings, lvalert_nodes(settings))
        if self.topics:
            route.topics_override = list(self.topics)
        return KafkaBridge(settings, route, settings.igwn_alert_servers,
                           f"{settings.kafka_consumer_group}-lvalert", self.component,
                           on_delivered=on_delivered)


class GcnKafkaListenerTrigger(_KafkaListenerTrigger):
    """GCN Kafka notices into the ``gcn:incoming`` stream; fires once per stored notice.

    Parameters
    ----------
    topics : list of str, optional
        Topics to read (default: setting ``gcn_kafka_topics``).
    """

    component = "gcn_kafka"
    ring = True

    def make_bridge(self, settings, on_delivered):
        from gw_ops.transport.kafka import GcnRoute, KafkaBridge

        route = GcnRoute(settings, self.topics or settings.gcn_kafka_topics)
        return KafkaBridge(settings, route, settings.gcn_kafka_servers,
                           f"{settings.kafka_consumer_group}-gcn", self.component,
                           on_delivered=on_delivered)


TRIGGERS = {"igwn_alert": IgwnAlertListenerTrigger, "gcn_kafka": GcnKafkaListenerTrigger}


def main(argv: list[str] | None = None) -> int:
    """Run one listener in the foreground; print one line per event."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listener", choices=sorted(TRIGGERS))
    parser.add_argument("--topic", action="append", help="topic (repeatable; default: settings)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trigger = TRIGGERS[args.listener](topics=args.topic)

    async def forever() -> None:
        async for event in trigger.run():
            print(json.dumps(event.payload), flush=True)

    print(json.dumps({"listener": args.listener, "started": True}), flush=True)
    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
