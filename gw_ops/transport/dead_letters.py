"""The dead-letter alarm: how much input was rejected at the door, and what is new.

Rejected input is kept in one Redis stream per source family (``lvalert``, ``gcn``, ...;
see :func:`gw_ops.transport.redis_client.dead_letter`).  A dead letter is *new* until an
operator acknowledges it (``gw-ops dead-letters --ack``): ``gw-ops status`` shows a count
per source with the last reason, and the health DAG fails while any is new, so a
rejected message is never lost in silence (issue 11: a lost alert showed green).
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

from gw_ops.config import Settings
from gw_ops.transport.redis_client import deadletter_stream

#: Most entries counted as "new" per source (the count says "at least" beyond it).
NEW_COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class DeadLetterSource:
    """Dead letters of one source family.

    Attributes
    ----------
    source : str
        Family, e.g. ``lvalert``.
    count : int
        Entries kept (the stream is trimmed to about 10 000).
    new : int
        Entries after the last acknowledged one.
    last_reason : str
        Reason of the newest entry, with the lane that rejected it.
    last_time : float
        Unix time (s) of the newest entry.
    """

    source: str
    count: int
    new: int
    last_reason: str
    last_time: float


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def ack_key(settings: Settings, source: str) -> str:
    """Key holding the stream id of the last acknowledged dead letter of ``source``."""
    return settings.key("deadletter_ack", source)


def sources(client: redis.Redis, settings: Settings) -> list[str]:
    """Source families that have a dead-letter stream."""
    prefix = deadletter_stream(settings, "")
    return sorted(_text(key)[len(prefix):] for key in client.scan_iter(match=prefix + "*", count=1000))


def summary(client: redis.Redis, settings: Settings) -> list[DeadLetterSource]:
    """One :class:`DeadLetterSource` per source family with dead letters."""
    found = []
    for source in sources(client, settings):
        stream = deadletter_stream(settings, source)
        newest = client.xrevrange(stream, count=1)
        if not newest:
            continue
        _, fields = newest[0]
        fields = {_text(k): _text(v) for k, v in fields.items()}
        acked = client.get(ack_key(settings, source))
        start = f"({_text(acked)}" if acked else "-"
        new = len(client.xrange(stream, min=start, max="+", count=NEW_COUNT_LIMIT))
        found.append(DeadLetterSource(source, int(client.xlen(stream)), new,
                                      f"{fields.get('source', source)}: {fields.get('reason', '?')}",
                                      float(fields.get("time", 0) or 0)))
    return found


def acknowledge(client: redis.Redis, settings: Settings) -> dict[str, int]:
    """Mark every dead letter seen; returns ``{source: entries newly acknowledged}``."""
    acknowledged = {}
    for entry in summary(client, settings):
        newest = client.xrevrange(deadletter_stream(settings, entry.source), count=1)
        client.set(ack_key(settings, entry.source), newest[0][0])
        acknowledged[entry.source] = entry.new
    return acknowledged


def problems(entries: list[DeadLetterSource]) -> list[str]:
    """Pure rule of the alarm: one line per source with unacknowledged dead letters."""
    return [f"{entry.source}: {entry.new} new dead letter(s); last: {entry.last_reason}"
            for entry in entries if entry.new]


def status_lines(entries: list[DeadLetterSource]) -> list[str]:
    """Lines of ``gw-ops status``: count per source, new ones, last reason."""
    if not entries:
        return ["dead letters   none"]
    return [f"dead letters   {entry.source:<8} {entry.count} kept, {entry.new} new"
            f"{' (ALARM)' if entry.new else ''}  last: {entry.last_reason[:200]}"
            for entry in entries]
