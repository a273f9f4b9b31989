"""Drains that take one message at a time (``claim_one``), several of them on one lane at once:
how the localization lane lets every ``openmp`` slot, on every host, localize an event."""
from __future__ import annotations

import dataclasses
import json
import threading
import time

from gw_ops.transport.streams import drain, waiting_work
from tests.fixtures.streams import LANE_GROUP as GROUP


def publish(client, stream, uid):
    payload = json.dumps({"uid": uid, "alert_type": "new", "data": {}, "object": {}})
    return client.xadd(stream, {"payload": payload}).decode()


def uid_of(message) -> str:
    return json.loads(message.fields["payload"])["uid"]


def run_drains(redis_client, settings, streams, handle, consumers):
    """Run one claim_one drain per consumer name in its own thread; their reports."""
    reports, errors = {}, []

    def run(consumer):
        try:
            reports[consumer] = drain(redis_client, settings, streams, GROUP, consumer, handle, claim_one=True)
        except Exception as exc:  # noqa: BLE001 (re-raised by the test)
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(name,)) for name in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return reports


def test_two_drains_handle_two_messages_at_once_and_every_message_once(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    sent = [publish(redis_client, streams[i % 2], f"G{i}") for i in range(8)]
    # the first handler call of each drain waits for the other drain's first call: the
    # barrier breaks (and the test fails) unless both hold a message at the same time
    both_inside = threading.Barrier(2, timeout=20)
    seen, calls = [], threading.local()

    def handle(message):
        if not getattr(calls, "count", 0):
            both_inside.wait()
        calls.count = getattr(calls, "count", 0) + 1
        seen.append(uid_of(message))

    reports = run_drains(redis_client, settings, streams, handle, ["host-a", "host-b"])
    assert sorted(seen) == sorted(f"G{i}" for i in range(8)), "every message once, none twice"
    handled = [message_id for report in reports.values() for message_id in report.handled]
    assert sorted(handled) == sorted(sent)
    assert all(report.handled for report in reports.values()), "both drains took work"
    (_, a_start, a_end), (_, b_start, b_end) = reports["host-a"].spans[0], reports["host-b"].spans[0]
    assert a_start < b_end and b_start < a_end, "the first calls of the two drains overlapped"
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=0) == {}


def test_a_drain_holds_one_message_so_an_idle_drain_takes_the_next(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    for i in range(2):
        publish(redis_client, streams[0], f"G{i}")
    first_taken, release = threading.Event(), threading.Event()
    handled_by = {}

    def slow(message):
        handled_by[uid_of(message)] = "slow"
        first_taken.set()
        assert release.wait(20), "the other drain never finished"

    def quick(message):
        handled_by[uid_of(message)] = "quick"

    slow_thread = threading.Thread(target=lambda: drain(redis_client, settings, streams, GROUP, "slow", slow,
                                                        claim_one=True))
    slow_thread.start()
    assert first_taken.wait(20)
    # while the slow drain is inside G0, the second message is still in the stream, untaken
    report = drain(redis_client, settings, streams, GROUP, "quick", quick, claim_one=True)
    release.set()
    slow_thread.join(20)
    assert handled_by == {"G0": "slow", "G1": "quick"}
    assert report.handled and report.reclaimed == 0


def test_a_live_handler_keeps_its_message_past_the_claim_idle_time(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    settings = dataclasses.replace(settings, lvalert_claim_idle_s=0.3)
    publish(redis_client, streams[0], "G-long")
    inside, release = threading.Event(), threading.Event()
    calls = []

    def long_localization(message):
        calls.append(("long", uid_of(message)))
        inside.set()
        assert release.wait(20)

    thread = threading.Thread(target=lambda: drain(redis_client, settings, streams, GROUP, "long",
                                                   long_localization, claim_one=True))
    thread.start()
    assert inside.wait(20)
    # the property is about elapsed time: the handler outlives the claim idle time 5 times
    time.sleep(5 * settings.lvalert_claim_idle_s)
    other = drain(redis_client, settings, streams, GROUP, "other", lambda m: calls.append(("other", uid_of(m))),
                  claim_one=True)
    release.set()
    thread.join(20)
    assert calls == [("long", "G-long")], "a live handler's message is never reclaimed"
    assert other.reclaimed == 0 and not other.handled


def test_a_dead_drains_message_is_reclaimed_by_a_claim_one_drain(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    settings = dataclasses.replace(settings, lvalert_claim_idle_s=0)
    message_id = publish(redis_client, streams[1], "G-orphan")
    # a drain that took the message and died (no acknowledgement, no refresh)
    redis_client.xreadgroup(GROUP, "dead", {streams[1]: ">"}, count=1)
    seen = []
    report = drain(redis_client, settings, streams, GROUP, "heir",
                   lambda m: seen.append((uid_of(m), m.deliveries)), claim_one=True)
    assert seen == [("G-orphan", 2)]
    assert report.handled == [message_id]
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=0) == {}
