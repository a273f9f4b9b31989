"""Per-subscriber delivery cursors of the VOEvent broker, kept in Redis.

Who a subscriber is
-------------------
VTP carries no login.  A subscriber names itself in the ``Response`` element of every
answer it sends (its iamalive answer comes first: the broker sends one as soon as a peer
connects), e.g. ``ivo://gw-ops/listener`` or pygcn's ``ivo://python_voeventclient/anonymous``.
Its identity here is that IVORN *and* its address, ``"<ivorn> from <ip>"``, so two sites
running the same client software stay apart.  When a second connection with the same
identity is live at once (two clients on one host with one IVORN), it becomes
``"<ivorn> from <ip> #2"`` (the lowest free number), so each keeps its own cursor.

What is kept
------------
``P broker:subscriber:cursor``
    Hash identity -> id of the newest outgoing-stream entry that this subscriber answered
    (``ack`` or ``nak``), every older one answered too (cursors move in stream order); for
    one that has answered nothing yet, the entry its delivery started after.  So a
    subscriber whose answers were all lost (a link reset drops answers the broker had not
    read yet) still resumes where it started, not "from now" as a new one.
``P broker:subscriber:seen``
    Hash identity -> Unix time (s) of its last contact (an answer, a connection, a
    disconnection).  Identities silent for longer than ``broker_replay_window_s`` are
    forgotten.
``P broker:cursor``
    The newest entry that *any* subscriber answered (:func:`gw_ops.vtp.broker.cursor_key`).

Where a subscriber starts
-------------------------
* Known and seen within ``broker_replay_window_s``: right after its own cursor, so it gets
  what it missed, in order, and nothing it already answered.
* Otherwise (new, or away too long): right after ``broker:cursor``.  With subscribers
  connected that is about "from now on"; when nobody was connected, the backlog nobody
  received goes to whoever connects first (late is better than never).
* Either way at most ``broker_replay_max_entries`` entries back from the newest.
"""
from __future__ import annotations

import time

from gw_ops.config import Settings


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream id (``"<ms>-<seq>"``) as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class SubscriberCursors:
    """The cursors above, read and written through a ``redis.asyncio`` client.

    Redis errors propagate: the broker retries them with backoff and raises its alarm.

    Parameters
    ----------
    client : redis.asyncio.Redis
    settings : Settings
        Uses ``broker_replay_window_s`` (s) and ``broker_replay_max_entries``.
    stream : str
        The outgoing stream key.
    global_key : str
        Key of the newest entry any subscriber answered.
    """

    def __init__(self, client, settings: Settings, stream: str, global_key: str):
        self.client, self.settings, self.stream, self.global_key = client, settings, stream, global_key
        self.cursor_key = settings.key("broker", "subscriber", "cursor")
        self.seen_key = settings.key("broker", "subscriber", "seen")
        #: Newest entry any subscriber answered, as this process last wrote or read it.
        self.global_cursor: str | None = None

    async def start_position(self, identity: str) -> tuple[str, str]:
        """Stream id to read after for ``identity``, and how it was chosen (for the log)."""
        await self.forget_stale()
        now = time.time()
        cursor = _text(await self.client.hget(self.cursor_key, identity))
        seen = _text(await self.client.hget(self.seen_key, identity))
        if cursor and seen and now - float(seen) <= self.settings.broker_replay_window_s:
            position, how = cursor, f"resuming after its cursor {cursor}"
        else:
            position = _text(await self.client.get(self.global_key)) or "0-0"
            how = f"new subscriber: from {position}, the newest entry anyone answered"
        newest = await self.client.xrevrange(self.stream, "+", "-",
                                             count=self.settings.broker_replay_max_entries + 1)
        if len(newest) > self.settings.broker_replay_max_entries:
            floor = _text(newest[-1][0])
            if entry_order(position) < entry_order(floor):
                position, how = floor, how + f", cut to the newest {len(newest) - 1} entries"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.seen_key, identity, repr(now))
            # what it starts after counts as answered: everything after it is owed to it
            pipe.hset(self.cursor_key, identity, position)
            await pipe.execute()
        return position, how

    async def settled(self, identity: str, entry_id: str) -> None:
        """Record that ``identity`` answered ``entry_id`` (and everything before it)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.cursor_key, identity, entry_id)
            pipe.hset(self.seen_key, identity, repr(time.time()))
            if self.global_cursor is None or entry_order(entry_id) > entry_order(self.global_cursor):
                pipe.set(self.global_key, entry_id)
            await pipe.execute()
        if self.global_cursor is None or entry_order(entry_id) > entry_order(self.global_cursor):
            self.global_cursor = entry_id

    async def touch(self, identity: str) -> None:
        """Record contact with ``identity`` now (it connected or left)."""
        await self.client.hset(self.seen_key, identity, repr(time.time()))

    async def forget_stale(self) -> None:
        """Drop identities not seen within ``broker_replay_window_s``."""
        seen = await self.client.hgetall(self.seen_key)
        cutoff = time.time() - self.settings.broker_replay_window_s
        stale = [name for name, when in seen.items() if float(when) < cutoff]
        if stale:
            await self.client.hdel(self.seen_key, *stale)
            await self.client.hdel(self.cursor_key, *stale)

    async def load_global(self) -> None:
        """Read the newest entry anyone answered (at start, so the cursor never moves back)."""
        self.global_cursor = _text(await self.client.get(self.global_key))
