"""The listener triggers' event loop (:func:`gw_ops.airflow.triggers.ring_events`): one
trigger event per ring, and a listener whose receive loop ends fails loudly."""
from __future__ import annotations

import asyncio

import pytest

from gw_ops.airflow.triggers import ring_events


async def _collect(rings, pump, count):
    events = []
    async for event in ring_events(rings, pump, "test"):
        events.append(event.payload)
        if len(events) == count:
            break
    return events


def test_each_ring_becomes_one_event_in_order():
    async def scenario():
        rings = asyncio.Queue()
        pump = asyncio.get_running_loop().create_future()  # a listener still receiving
        for number in range(3):
            rings.put_nowait({"stream_id": f"{number}-0"})
        events = await _collect(rings, pump, 3)
        pump.cancel()
        return events

    events = asyncio.run(scenario())
    assert [event["notice"]["stream_id"] for event in events] == ["0-0", "1-0", "2-0"]
    assert all(event["rung_at"] > 0 for event in events)


def test_a_receive_loop_that_fails_raises_its_error():
    async def scenario():
        async def failing():
            raise ConnectionError("broker gone")
        await _collect(asyncio.Queue(), asyncio.ensure_future(failing()), 1)

    with pytest.raises(ConnectionError, match="broker gone"):
        asyncio.run(scenario())


def test_a_receive_loop_that_returns_is_an_error_naming_the_listener():
    async def scenario():
        async def returning():
            return None
        await _collect(asyncio.Queue(), asyncio.ensure_future(returning()), 1)

    with pytest.raises(RuntimeError, match="test listener stopped unexpectedly"):
        asyncio.run(scenario())
