"""The doorbell-and-drain delivery core (gw_ops.transport.streams) against the real Redis."""
from __future__ import annotations

import json

import pytest

from gw_ops.errors import PermanentError, TransientError
from gw_ops.transport import lvalert
from gw_ops.transport.redis_client import deadletter_stream, lvalert_stream
from gw_ops.transport.streams import drain, ensure_group, waiting_work
from tests.fixtures.streams import LANE_GROUP as GROUP


def publish(client, stream, uid, alert_type="new", **extra):
    payload = json.dumps({"uid": uid, "alert_type": alert_type, "data": extra, "object": {}})
    return client.xadd(stream, {"payload": payload})


def recorder(seen):
    def handle(message):
        decoded = lvalert.decode_message(message.fields[b"payload"] if b"payload" in message.fields
                                         else message.fields["payload"], lvalert.node_of_stream(message.stream))
        seen.append((decoded["node"], decoded["uid"], decoded["alert_type"]))
    return handle


def test_every_message_handled_exactly_once_across_streams(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    for i in range(30):
        publish(redis_client, streams[i % 2], f"G{i}")
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=60)
    seen = []
    report = drain(redis_client, settings, streams, GROUP, "c1", recorder(seen))
    assert sorted(uid for _, uid, _ in seen) == sorted(f"G{i}" for i in range(30))
    assert len(report.handled) == 30
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=60) == {}
    # a second drain finds nothing: no message is handled twice
    assert drain(redis_client, settings, streams, GROUP, "c2", recorder(seen)).summary()["handled"] == 0
    assert len(seen) == 30


def test_sort_key_orders_batch_and_ties_keep_arrival(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1", "new")
    publish(redis_client, streams[0], "G1", "label_added")
    publish(redis_client, streams[1], "G2", "new")
    publish(redis_client, streams[1], "G2", "label_added")
    seen = []

    def sort_key(message):
        payload = json.loads(message.fields["payload"])
        return 0 if payload["alert_type"] == "label_added" else 1

    drain(redis_client, settings, streams, GROUP, "c1", recorder(seen), sort_key=sort_key)
    assert [(uid, kind) for _, uid, kind in seen] == [
        ("G1", "label_added"), ("G2", "label_added"), ("G1", "new"), ("G2", "new")]


def test_batch_scope_wraps_each_batch_and_a_failing_one_loses_nothing(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    for i in range(5):
        publish(redis_client, streams[i % 2], f"G{i}")
    events, seen = [], []

    class Scope:
        def __init__(self, batch):
            self.size = len(batch)

        def __enter__(self):
            events.append(("open", self.size, len(seen)))

        def __exit__(self, *exc):
            events.append(("close", self.size, len(seen)))

    report = drain(redis_client, settings, streams, GROUP, "c1", recorder(seen), batch_scope=Scope)
    assert len(report.handled) == 5
    assert events == [("open", 5, 0), ("close", 5, 5)]  # one scope around the whole batch

    def broken(batch):
        raise RuntimeError("the scope's read failed")
    publish(redis_client, streams[0], "G5")
    report = drain(redis_client, settings, streams, GROUP, "c2", recorder(seen), batch_scope=broken)
    assert len(report.handled) == 1 and seen[-1][1] == "G5"  # handled without the scope
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=60) == {}


def test_messages_of_a_dead_consumer_are_reclaimed(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    for i in range(5):
        publish(redis_client, streams[0], f"G{i}")
    # a consumer reads the messages and dies before acknowledging them
    redis_client.xreadgroup(GROUP, "dead-consumer", {streams[0]: ">"}, count=10)
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=0) == {streams[0]: 5}
    import dataclasses
    settings = dataclasses.replace(settings, lvalert_claim_idle_s=0)
    seen = []
    report = drain(redis_client, settings, streams, GROUP, "c2", recorder(seen))
    assert report.reclaimed == 5
    assert sorted(uid for _, uid, _ in seen) == [f"G{i}" for i in range(5)]
    assert redis_client.xpending(streams[0], GROUP)["pending"] == 0


def test_redelivered_message_already_done_is_not_handled_again(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1")
    seen = []
    drain(redis_client, settings, streams, GROUP, "c1", recorder(seen))
    # simulate the crash window: the done marker and ack went through, then Redis
    # delivers the same id again to another group member (e.g. after XCLAIM by hand)
    message_id = redis_client.xrange(streams[0])[0][0]
    redis_client.xgroup_setid(streams[0], GROUP, id="0")
    report = drain(redis_client, settings, streams, GROUP, "c2", recorder(seen))
    assert report.skipped_duplicates == [message_id.decode()]
    assert len(seen) == 1


def test_bad_json_is_dead_lettered_and_the_lane_goes_on(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    redis_client.xadd(streams[0], {"payload": "{not json"})
    redis_client.xadd(streams[0], {"payload": json.dumps({"alert_type": "new"})})  # no uid
    publish(redis_client, streams[0], "G-good")
    seen = []
    report = drain(redis_client, settings, streams, GROUP, "c1", recorder(seen))
    assert [uid for _, uid, _ in seen] == ["G-good"]
    assert len(report.dead_lettered) == 2
    letters = redis_client.xrange(deadletter_stream(settings, "lvalert"))
    reasons = [fields[b"reason"].decode() for _, fields in letters]
    assert any("not JSON" in r for r in reasons) and any("lacks uid" in r for r in reasons)
    assert redis_client.xpending(streams[0], GROUP)["pending"] == 0


def test_transient_failure_is_retried_then_succeeds(lvalert_lane, redis_client, monkeypatch):
    import gw_ops.transport.streams as streams_module
    monkeypatch.setattr(streams_module, "TRANSIENT_RETRY_WAITS_S", (0.01, 0.01))
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1")
    attempts = []

    def flaky(message):
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientError("GraceDB answered 503")

    report = drain(redis_client, settings, streams, GROUP, "c1", flaky)
    assert len(attempts) == 3 and len(report.handled) == 1


def test_persistent_transient_failure_leaves_message_pending(lvalert_lane, redis_client, monkeypatch):
    import gw_ops.transport.streams as streams_module
    monkeypatch.setattr(streams_module, "TRANSIENT_RETRY_WAITS_S", (0.01,))
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1")

    def down(message):
        raise ConnectionError("connection refused")

    report = drain(redis_client, settings, streams, GROUP, "c1", down)
    assert len(report.left_pending) == 1 and not report.dead_lettered
    assert redis_client.xpending(streams[0], GROUP)["pending"] == 1


def test_permanent_error_dead_letters_once(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1")

    def reject(message):
        raise PermanentError("instrument X1 is not configured")

    report = drain(redis_client, settings, streams, GROUP, "c1", reject)
    assert len(report.dead_lettered) == 1
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=0) == {}


# --- transient, permanent and unexpected failures (issue 12 item 2, issue 11 item 3) -----
def test_transient_outage_longer_than_max_deliveries_is_never_dead_lettered(lvalert_lane, redis_client,
                                                                            monkeypatch):
    """A GraceDB outage spanning many runs: the message waits, the alarm says why, then it works."""
    import dataclasses

    import gw_ops.transport.streams as streams_module
    from gw_ops.transport.redis_client import read_health
    monkeypatch.setattr(streams_module, "TRANSIENT_RETRY_WAITS_S", (0.01,))
    settings, streams = lvalert_lane
    settings = dataclasses.replace(settings, lvalert_claim_idle_s=0, lvalert_max_deliveries=2)
    publish(redis_client, streams[0], "G1")
    publish(redis_client, streams[1], "G2")
    outage = {"on": True}
    attempts = []

    def through_graceDB(message):
        attempts.append(message.message_id)
        if outage["on"]:
            raise ConnectionError("GraceDB: connection refused")

    runs_during_outage = settings.lvalert_max_deliveries * 3
    for run in range(runs_during_outage):
        report = drain(redis_client, settings, streams, GROUP, f"c{run}", through_graceDB)
        assert sorted(report.left_pending) == sorted(
            m.decode() for s in streams for m, _ in redis_client.xrange(s)), report
        assert not report.dead_lettered
        alarm = read_health(redis_client, settings, streams_module.lane_health_component(GROUP))
        assert alarm["state"] == "retrying" and "connection refused" in alarm["detail"], alarm
    deliveries = max(int(p["times_delivered"]) for p in redis_client.xpending_range(
        streams[0], GROUP, min="-", max="+", count=10))
    assert deliveries > settings.lvalert_max_deliveries  # the old rule would have dead-lettered it
    outage["on"] = False
    report = drain(redis_client, settings, streams, GROUP, "after", through_graceDB)
    assert len(report.handled) == 2 and not report.dead_lettered and not report.left_pending
    assert redis_client.xlen(deadletter_stream(settings, "lvalert")) == 0
    assert redis_client.xpending(streams[0], GROUP)["pending"] == 0
    alarm = read_health(redis_client, settings, streams_module.lane_health_component(GROUP))
    assert alarm["state"] == "ok", alarm
    print(f"outage over {runs_during_outage} runs (max_deliveries {settings.lvalert_max_deliveries}): "
          f"{len(attempts)} attempts, 2/2 handled, 0 dead letters")


def test_handler_bug_fails_the_drain_and_stays_pending(lvalert_lane, redis_client):
    from gw_ops.transport.redis_client import read_health
    from gw_ops.transport.streams import LaneFailed, lane_health_component
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G-bug")
    publish(redis_client, streams[0], "G-fine")
    seen = []

    def buggy(message):
        payload = json.loads(message.fields["payload"])
        if payload["uid"] == "G-bug":
            return {}["missing"]  # a KeyError: a bug, not bad input
        seen.append(payload["uid"])

    with pytest.raises(LaneFailed) as failure:
        drain(redis_client, settings, streams, GROUP, "c1", buggy)
    assert seen == ["G-fine"]  # the rest of the batch was handled
    assert len(failure.value.report.failed) == 1 and "KeyError" in str(failure.value)
    assert redis_client.xpending(streams[0], GROUP)["pending"] == 1
    assert redis_client.xlen(deadletter_stream(settings, "lvalert")) == 0
    assert read_health(redis_client, settings, lane_health_component(GROUP))["state"] == "failing"
    # it stays visible: the doorbell sees it as work once it has been idle long enough
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=0) == {streams[0]: 1}


def test_permanent_error_is_dead_lettered_with_its_reason(lvalert_lane, redis_client):
    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1")

    def reject(message):
        raise PermanentError("instrument X1 is not configured")

    report = drain(redis_client, settings, streams, GROUP, "c1", reject)
    assert len(report.dead_lettered) == 1
    [(_, letter)] = redis_client.xrange(deadletter_stream(settings, "lvalert"))
    assert b"PermanentError: instrument X1 is not configured" in letter[b"reason"]
    assert letter[b"source"] == f"lvalert:{GROUP}".encode()


class WorkerDied(BaseException):
    """Stands for a kill inside the handler: nothing after the call runs."""


def test_message_whose_handler_never_returns_is_dead_lettered_after_max(lvalert_lane, redis_client):
    import dataclasses
    settings, streams = lvalert_lane
    settings = dataclasses.replace(settings, lvalert_claim_idle_s=0, lvalert_max_deliveries=2)
    publish(redis_client, streams[0], "G-poison")

    def dies(message):
        raise WorkerDied()

    for run in range(settings.lvalert_max_deliveries):
        with pytest.raises(WorkerDied):
            drain(redis_client, settings, streams, GROUP, f"c{run}", dies)
    report = drain(redis_client, settings, streams, GROUP, "last", dies)
    assert len(report.dead_lettered) == 1
    [(_, letter)] = redis_client.xrange(deadletter_stream(settings, "lvalert"))
    assert b"never returned in 2 attempts" in letter[b"reason"]

def test_group_created_after_messages_still_gets_them(fresh_prefix_settings, redis_client):
    """Groups start at the stream's first entry, never at '$': a message added before its
    group existed (a group lost with a Redis restart, an early publisher) is delivered."""
    settings = fresh_prefix_settings
    stream = lvalert_stream(settings, "cbc_gstlal")
    for i in range(3):
        publish(redis_client, stream, f"early{i}")
    assert ensure_group(redis_client, stream, GROUP) is True
    assert ensure_group(redis_client, stream, GROUP) is False  # exists: left as it is
    seen = []
    drain(redis_client, settings, [stream], GROUP, "c1", recorder(seen))
    assert [uid for _, uid, _ in seen] == ["early0", "early1", "early2"]


def test_lingering_drain_handles_a_later_message_then_returns_after_its_linger(lvalert_lane, redis_client):
    """A lane on the alert path keeps reading for ``linger_s`` after it ran dry: a message
    published meanwhile is handled by the same drain (no second task start), and the drain
    returns once ``linger_s`` has passed without a message."""
    import threading
    import time

    settings, streams = lvalert_lane
    publish(redis_client, streams[0], "G1")
    seen, handled_at = [], {}
    record = recorder(seen)

    def handle(message):
        record(message)
        handled_at[seen[-1][1]] = time.monotonic()

    published = threading.Event()

    def publish_later():
        # published once the first message was handled: the drain is then lingering
        while "G1" not in handled_at:
            time.sleep(0.01)
        publish(redis_client, streams[1], "G2")
        published.set()

    publisher = threading.Thread(target=publish_later)
    publisher.start()
    report = drain(redis_client, settings, streams, GROUP, "c1", handle, linger_s=3.0)
    returned_at = time.monotonic()
    publisher.join()
    assert published.is_set()
    assert [uid for _, uid, _ in seen] == ["G1", "G2"] and len(report.handled) == 2
    # the wait starts again after each handled message, and ends
    assert 3.0 <= returned_at - handled_at["G2"] < 3.0 + 2 * 1.0
    assert waiting_work(redis_client, streams, GROUP, claim_idle_s=60) == {}


def test_drain_without_linger_returns_when_the_streams_are_empty(lvalert_lane, redis_client):
    import time

    settings, streams = lvalert_lane
    started = time.monotonic()
    assert drain(redis_client, settings, streams, GROUP, "c1", recorder([])).summary()["handled"] == 0
    assert time.monotonic() - started < 1.0


def test_the_superevent_lane_opens_its_handlers_batch_scope_on_decoded_messages(
        fresh_prefix_settings, monkeypatch):
    from gw_ops.airflow.lanes import message_batch_scope
    from gw_ops.handlers import superevents
    from gw_ops.transport.registry import get_handler
    from gw_ops.transport.streams import Message

    opened = []
    monkeypatch.setattr(superevents.handle, "batch_scope", opened.append)
    scope = message_batch_scope(get_handler("gw_ops.handlers.superevents.handle"))
    stream = lvalert_stream(fresh_prefix_settings, "cbc_gstlal")
    scope([Message(stream, "1-0", {"payload": json.dumps({"uid": "G1", "alert_type": "new"})}),
           Message(stream, "2-0", {"payload": b"not json"})])  # left to its handler call
    assert opened == [[{"uid": "G1", "alert_type": "new", "node": "cbc_gstlal"}]]
    assert message_batch_scope(get_handler("gw_ops.ops.probe.lvalert_probe")) is None


def test_the_superevent_lane_drains_label_added_first_and_lingers_as_set(fresh_prefix_settings):
    from gw_ops.airflow.lanes import drain_options
    from gw_ops.transport.registry import get_handler
    from gw_ops.transport.streams import Message

    options = drain_options(get_handler("gw_ops.handlers.superevents.handle"), fresh_prefix_settings)
    stream = lvalert_stream(fresh_prefix_settings, "cbc_gstlal")
    batch = [Message(stream, "1-0", {"payload": b"not json"}),
             Message(stream, "2-0", {"payload": json.dumps({"uid": "G1", "alert_type": "new"})}),
             Message(stream, "3-0", {"payload": json.dumps({"uid": "G1", "alert_type": "label_added"})})]
    assert [m.message_id for m in sorted(batch, key=options["sort_key"])] == ["3-0", "2-0", "1-0"]
    assert options["linger_s"] == fresh_prefix_settings.lane_linger_s
    assert options["batch_scope"] is not None and options["source"] == "lvalert"
    assert options["claim_one"] is False
    probe = drain_options(get_handler("gw_ops.ops.probe.lvalert_probe"), fresh_prefix_settings)
    assert probe["linger_s"] == 0.0 and probe["sort_key"] is None and probe["batch_scope"] is None
