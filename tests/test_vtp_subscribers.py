"""The broker's per-subscriber cursors (:mod:`gw_ops.vtp.subscribers`) on the real Redis."""
from __future__ import annotations

import asyncio

from gw_ops.transport.redis_client import get_async_redis
from gw_ops.vtp.subscribers import SubscriberCursors


def test_a_subscriber_that_answered_nothing_resumes_where_it_started(fresh_prefix_settings, redis_client):
    """Its answers lost with its link (a reset), a subscriber reconnecting within the replay
    window gets everything since its start, even after others answered newer entries."""
    settings = fresh_prefix_settings
    stream = settings.key("voevent", "outgoing")
    ids = [redis_client.xadd(stream, {"xml": b"<x/>"}).decode() for _ in range(4)]
    global_key = settings.key("broker", "cursor")
    redis_client.set(global_key, ids[0])

    async def scenario():
        client = get_async_redis(settings)
        try:
            cursors = SubscriberCursors(client, settings, stream, global_key)
            await cursors.load_global()
            first, how_first = await cursors.start_position("ivo://flaky from 127.0.0.1")
            await cursors.settled("ivo://steady from 127.0.0.1", ids[3])  # others move on
            again, how_again = await cursors.start_position("ivo://flaky from 127.0.0.1")
            return first, how_first, again, how_again
        finally:
            await client.aclose()
    first, how_first, again, how_again = asyncio.run(scenario())
    assert first == ids[0] and how_first.startswith("new subscriber")
    assert again == ids[0] and how_again.startswith("resuming after its cursor"), how_again
