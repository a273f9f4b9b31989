"""The long-lived listeners survive a restart of Redis (issue 12 item 5), with real processes.

Each trigger of the triggerer is driven directly with asyncio (as the triggerer does)
against a private ``redis-server`` that the test SIGKILLs and starts again on the same
port and folder.  The GCN listener is run against a real TCP server while its Redis is
down: it must back off, not spin, and store the notice once Redis is back.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

import pytest

from gw_ops.transport.redis_client import gcn_incoming_stream, lvalert_stream, read_health
from gw_ops.transport.streams import drain, ensure_group
from gw_ops.vtp import protocol as vtp
from tests.private_redis import private_redis  # noqa: F401 - fixture
from tests.test_vtp_listen import GOOD, GOOD_IVORN, ScriptedServer, frame

pytest.importorskip("airflow.triggers.base")
GROUP = "faults_lane"


@pytest.fixture
def redis_settings(fresh_prefix_settings, private_redis):  # noqa: F811
    """Settings on the private Redis, with short waits."""
    return dataclasses.replace(fresh_prefix_settings, redis_url=private_redis.url, redis_retry_cap_s=1.0,
                               lvalert_poll_block_ms=200, gcn_timeout_s=3.0, gcn_backoff_cap_s=2.0)


async def wait_until(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` (a sync callable, run in a thread) until true."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class RunningTrigger:
    """A trigger's ``run()`` consumed by a task; its events land in ``events``."""

    def __init__(self, trigger):
        self.events: list[dict] = []
        self.task = asyncio.ensure_future(self._consume(trigger))

    async def _consume(self, trigger):
        async for event in trigger.run():
            self.events.append(event.payload)

    def alive(self) -> bool:
        if self.task.done():
            raise AssertionError(f"the trigger ended: {self.task.exception()!r}")
        return True

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def test_doorbell_trigger_survives_redis_restart(redis_settings, private_redis, monkeypatch, caplog):  # noqa: F811
    from gw_ops.airflow import triggers
    settings = redis_settings
    monkeypatch.setattr(triggers, "_settings", lambda: settings)
    caplog.set_level(logging.WARNING, logger="gw_ops.airflow.triggers")
    stream = lvalert_stream(settings, "superevent")
    client = private_redis.client()
    ensure_group(client, stream, GROUP, "0")

    def publish(uid: str) -> None:
        client.xadd(stream, {"payload": json.dumps({"uid": uid, "alert_type": "new", "data": {}, "object": {}})})

    async def main():
        doorbell = RunningTrigger(triggers.StreamDoorbellTrigger([stream], GROUP, rering_s=3600))
        try:
            publish("S1")
            await wait_until(lambda: doorbell.alive() and len(doorbell.events) == 1, 15, "the first ring")
            await asyncio.to_thread(drain, client, settings, [stream], GROUP, "c1", lambda m: None)
            private_redis.kill()
            killed_at = time.monotonic()
            await wait_until(lambda: doorbell.alive() and caplog.text.count("Redis still unavailable") >= 3,
                             20, "the doorbell to keep trying while Redis is down")
            outage_s = time.monotonic() - killed_at
            private_redis.start()
            publish("S2")
            await wait_until(lambda: doorbell.alive() and len(doorbell.events) == 2, 20,
                             "a ring for the message added after the restart")
            assert doorbell.events[1]["work"] == {stream: 1}
            health = read_health(client, settings, "lvalert")
            assert health["state"] == "connected" and "Redis was down" in health["detail"], health
            print(f"doorbell: Redis down {outage_s:.1f} s, trigger alive, rang for the new message")
        finally:
            await doorbell.stop()

    try:
        asyncio.run(main())
    finally:
        client.close()
    assert "Redis unavailable" in caplog.text and "Redis answers again" in caplog.text


def test_due_action_trigger_survives_redis_restart(redis_settings, private_redis, monkeypatch):  # noqa: F811
    from gw_ops.airflow import triggers
    from gw_ops.transport.delayed import queue_key, schedule
    settings = redis_settings
    monkeypatch.setattr(triggers, "_settings", lambda: settings)
    client = private_redis.client()

    async def main():
        due = RunningTrigger(triggers.DueActionTrigger(poll_s=0.1))
        try:
            schedule(client, settings, "second_preliminary", {"superevent_id": "S1"}, time.time() - 1)
            await wait_until(lambda: due.alive() and len(due.events) == 1, 15, "the first due action")
            client.delete(queue_key(settings))
            private_redis.kill()
            await asyncio.sleep(2)  # an outage of several polls (the time is the fault here)
            assert due.alive()
            private_redis.start()
            schedule(client, settings, "second_preliminary", {"superevent_id": "S2"}, time.time() - 1)
            await wait_until(lambda: due.alive() and len(due.events) == 2, 20,
                             "the action scheduled after the restart")
        finally:
            await due.stop()

    try:
        asyncio.run(main())
    finally:
        client.close()


def test_gcn_listener_backs_off_while_its_redis_is_down(redis_settings, private_redis, caplog):  # noqa: F811
    """Storage down: the notice stays unacked, the listener waits 1, 2, 2 s between tries
    (it does not spin on the server's resends), and stores it once Redis is back."""
    settings = redis_settings
    caplog.set_level(logging.WARNING, logger="gw_ops.vtp.protocol")
    server = ScriptedServer([[frame(GOOD)]])  # every connection sends the notice again
    private_redis.kill()

    async def main():
        address = await server.start()
        stop = asyncio.Event()
        task = asyncio.ensure_future(vtp.gcn_to_redis(settings, servers=[address], stop=stop))
        try:
            await wait_until(lambda: caplog.text.count("notice callback failed:") >= 3, 20,
                             "three failed attempts to store the notice")
            assert not task.done(), repr(task.exception())
            attempts_while_down = server.connections
            private_redis.start()
            client = private_redis.client()
            try:
                await wait_until(lambda: client.xlen(gcn_incoming_stream(settings)) >= 1, 20,
                                 "the notice stored after Redis came back")
            finally:
                client.close()
            await wait_until(lambda: (vtp.ACK, GOOD_IVORN) in server.answer_roles(), 10, "the ack")
            assert not task.done()
            return attempts_while_down
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await server.close()

    attempts_while_down = asyncio.run(main())
    # it waited 1 s, then 2 s, between failures; a listener that reconnected at once
    # would fail again within milliseconds, as fast as the server resends
    failures = [r.created for r in caplog.records if "notice callback failed:" in r.getMessage()]
    gaps = [b - a for a, b in zip(failures, failures[1:], strict=False)]
    assert gaps[0] > 0.9 and gaps[1] > 1.8, gaps
    assert attempts_while_down <= 4, attempts_while_down
    assert "retry in 1 s" in caplog.text and "retry in 2 s" in caplog.text
    assert [role for role, _ in server.answer_roles()].count(vtp.ACK) == 1
    print(f"GCN listener, Redis down: {attempts_while_down} connections in 3 failures, "
          "then stored and acked once")


def test_doorbell_rings_for_the_next_message_at_once(fresh_prefix_settings, redis_client, monkeypatch):
    """One message drained and the next one arrived: the same count waits, but it is new work."""
    from gw_ops.airflow import triggers
    settings = dataclasses.replace(fresh_prefix_settings, lvalert_poll_block_ms=200)
    monkeypatch.setattr(triggers, "_settings", lambda: settings)
    stream = lvalert_stream(settings, "superevent")
    ensure_group(redis_client, stream, GROUP, "0")

    def publish(uid: str) -> None:
        redis_client.xadd(stream, {"payload": json.dumps({"uid": uid, "alert_type": "new", "data": {},
                                                          "object": {}})})

    async def main():
        doorbell = RunningTrigger(triggers.StreamDoorbellTrigger([stream], GROUP, rering_s=3600))
        try:
            publish("S1")
            await wait_until(lambda: doorbell.alive() and len(doorbell.events) == 1, 15, "the first ring")
            await asyncio.to_thread(drain, redis_client, settings, [stream], GROUP, "c1", lambda m: None)
            publish("S2")  # before the doorbell looks again: still "1 waiting"
            started = time.monotonic()
            await wait_until(lambda: doorbell.alive() and len(doorbell.events) == 2, 10,
                             "a ring for the second message (not after rering_s)")
            print(f"doorbell rang for the next message after {time.monotonic() - started:.2f} s")
        finally:
            await doorbell.stop()

    asyncio.run(main())
