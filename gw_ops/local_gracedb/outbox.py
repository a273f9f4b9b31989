"""LVAlert publication: the transactional outbox drained onto Redis streams, message by message.

Every change writes its messages into the ``lvalert_outbox`` table in the same
transaction.  After the commit, still holding the service's write lock, the outbox
is drained in id order, one ``XADD <prefix>lvalert:<node> payload=<json>`` per
message; because all writes of the service go through that one lock, the order on
each stream is the commit order.

What can go wrong, and what happens:

* **Redis unreachable, busy, out of memory** (transient): draining stops at that
  message, which stays at the head of the outbox with everything after it, and
  :class:`PublishError` is raised.  The request that committed the change still
  answers 2xx (its change *is* committed; answering 500 made retrying clients
  upload duplicates), the failure is logged as an error, and the service's
  background retry drains the outbox once Redis answers, still in order.
* **A message that can never be published** (larger than
  ``settings.lvalert_max_message_bytes``, or refused by Redis with a permanent
  error such as ``WRONGTYPE``): it is moved, whole, to the ``lvalert_dead_letter``
  table with its reason, announced on the ``deadletter:lvalert_outbox`` stream
  (reason and the first bytes), and draining goes on: it blocks nothing.

A retry after a lost answer may send a message twice (never zero times, never out
of order); LVAlert handlers are idempotent.
"""
from __future__ import annotations

import logging

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from gw_ops.config import Settings
from gw_ops.local_gracedb.db import Outbox, OutboxDeadLetter, utcnow
from gw_ops.transport.redis_client import dead_letter, get_redis, lvalert_stream

log = logging.getLogger(__name__)

#: Messages read from the outbox per database query.
DRAIN_BATCH = 100
#: Bytes of a dead-lettered message copied into the Redis dead-letter notice.
DEAD_LETTER_HEAD_BYTES = 4096
#: Redis error replies that mean "not now" rather than "never" (see the Redis docs).
TRANSIENT_REPLIES = ("OOM", "LOADING", "BUSY", "MISCONF", "READONLY", "TRYAGAIN",
                     "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS")


class PublishError(RuntimeError):
    """LVAlert messages of a committed change could not be put on Redis (yet)."""


def is_transient(exc: redis.RedisError) -> bool:
    """Whether a Redis failure may go away by itself (so the message must wait, not die)."""
    if isinstance(exc, redis.ResponseError):
        return str(exc).split(" ", 1)[0].upper() in TRANSIENT_REPLIES
    return True  # connection refused or lost, timeouts


class AlertPublisher:
    """Drains the outbox to Redis streams."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None):
        self.settings = settings
        self.redis = client or get_redis(settings, socket_timeout=5, socket_connect_timeout=5)
        from gw_ops.local_gracedb import kafka_publisher  # transport = kafka: IGWN Alert topics
        self.kafka = kafka_publisher.for_settings(settings)

    def _publish(self, message: Outbox) -> str | None:
        """XADD one message; ``None`` when sent, else why it can never be sent.

        Raises
        ------
        PublishError
            On a transient failure (the message must wait).
        """
        size = len(message.payload.encode())
        if size > self.settings.lvalert_max_message_bytes:
            return (f"message of {size} bytes is larger than the "
                    f"{self.settings.lvalert_max_message_bytes} bytes allowed")
        if self.kafka is not None:  # transport = kafka: the IGWN Alert topic of the node
            try:
                self.kafka.publish([message])
            except RuntimeError as exc:  # refused or not acknowledged: the message waits
                raise PublishError(str(exc)) from exc
            return None
        try:
            self.redis.xadd(lvalert_stream(self.settings, message.node),
                            {"payload": message.payload},
                            maxlen=self.settings.lvalert_stream_maxlen, approximate=True)
        except redis.RedisError as exc:
            if is_transient(exc):
                raise PublishError(f"LVAlert publish to {message.node} failed: {exc}") from exc
            return f"Redis refused the message: {exc}"
        return None

    def _bury(self, session: Session, message: Outbox, reason: str) -> None:
        """Keep an unpublishable message, whole, in the dead-letter table."""
        session.add(OutboxDeadLetter(node=message.node, payload=message.payload, reason=reason,
                                     created=utcnow()))
        log.error("LVAlert message %d to %s dead-lettered: %s", message.id, message.node, reason)
        try:
            dead_letter(self.redis, self.settings, f"lvalert_outbox:{message.node}", reason,
                        message.payload[:DEAD_LETTER_HEAD_BYTES])
        except redis.RedisError as exc:  # the table keeps it; the notice is a convenience
            log.warning("dead-letter notice for message %d not sent: %s", message.id, exc)

    def drain(self, session: Session) -> int:
        """Publish every pending outbox message in order; return how many left the outbox.

        Must be called with the service's write lock held.

        Raises
        ------
        PublishError
            When Redis failed transiently; the messages from that one on stay.
        """
        handled = 0
        while True:
            pending = session.execute(select(Outbox).order_by(Outbox.id)
                                      .limit(DRAIN_BATCH)).scalars().all()
            if not pending:
                return handled
            try:
                for message in pending:
                    reason = self._publish(message)
                    if reason is not None:
                        self._bury(session, message, reason)
                    session.delete(message)
                    handled += 1
            finally:
                session.commit()  # what was sent (or buried) leaves the outbox
