"""LVAlert publication: the transactional outbox drained onto Redis streams.

Every change writes its messages into the ``lvalert_outbox`` table in the same
transaction; after the commit, still holding the service's write lock, the
outbox is drained in id order with ``XADD <prefix>lvalert:<node> payload=<json>``.
Because all writes of the service go through that one lock, the order on each
stream is the commit order.  A publish that keeps failing after
``PUBLISH_ATTEMPTS`` tries raises :class:`PublishError` (the request answers 500)
and the messages stay in the outbox; the next write or the background retry sends
them, still in order, so nothing is silently dropped.
"""
from __future__ import annotations

import logging
import time

import redis
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gw_ops.config import Settings
from gw_ops.local_gracedb.db import Outbox
from gw_ops.transport.redis_client import get_redis, lvalert_stream

log = logging.getLogger(__name__)

#: Tries of one XADD before a request is failed.
PUBLISH_ATTEMPTS = 4
#: First pause (s) between tries; doubles each time.
PUBLISH_BACKOFF_S = 0.05


class PublishError(RuntimeError):
    """LVAlert messages of a committed change could not be put on Redis (yet)."""


class AlertPublisher:
    """Drains the outbox to Redis streams."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None):
        self.settings = settings
        self.redis = client or get_redis(settings, socket_timeout=5, socket_connect_timeout=5)
        from gw_ops.local_gracedb import kafka_publisher  # transport = kafka: IGWN Alert topics
        self.kafka = kafka_publisher.for_settings(settings)

    def _xadd_batch(self, messages: list[Outbox]) -> None:
        """XADD ``messages`` in order in one round trip, retried as a whole on failure."""
        if self.kafka is not None:
            try:
                return self.kafka.publish(messages)
            except RuntimeError as exc:
                raise PublishError(str(exc)) from exc
        pause = PUBLISH_BACKOFF_S
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                pipeline = self.redis.pipeline(transaction=False)
                for message in messages:
                    pipeline.xadd(lvalert_stream(self.settings, message.node),
                                  {"payload": message.payload},
                                  maxlen=self.settings.lvalert_stream_maxlen, approximate=True)
                pipeline.execute()
                return
            except redis.RedisError as exc:
                if attempt == PUBLISH_ATTEMPTS:
                    raise PublishError(f"LVAlert publish of {len(messages)} message(s) failed "
                                       f"after {attempt} tries: {exc}") from exc
                log.warning("LVAlert publish failed (%s), retrying", exc)
                time.sleep(pause)
                pause *= 2

    def drain(self, session: Session) -> int:
        """Publish every pending outbox message in order; return how many were sent.

        Must be called with the service's write lock held.  A retry after a
        partial failure may send some messages twice (never zero times, never
        out of order); LVAlert handlers are idempotent.
        """
        sent = 0
        while True:
            pending = session.execute(select(Outbox).order_by(Outbox.id).limit(500)).scalars().all()
            if not pending:
                return sent
            self._xadd_batch(pending)
            session.execute(delete(Outbox).where(Outbox.id <= pending[-1].id))
            session.commit()
            sent += len(pending)
