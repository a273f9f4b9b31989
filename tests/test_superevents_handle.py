"""``superevents.handle`` against an in-memory GraceDB double: calls, idempotency, retries.

The double keeps GraceDB's rules that matter here (an event belongs to at most one
superevent, a label is applied once, ids per category) and counts every call, so
these tests pin down the number of GraceDB calls per message and what a crash
half-way leaves for the retry.  The same scenarios run against the real local
GraceDB service in ``test_superevents_gracedb.py``.
"""
from __future__ import annotations

import copy

import pytest

from gw_ops import superevents as se
from gw_ops.config import get_settings
from tests.test_superevents import CBC_COMPLETE, burst, cbc

SETTINGS = get_settings(env={})


class Crash(RuntimeError):
    """Simulated process death in the middle of a handler."""


class FakeGraceDb:
    """Just enough of ``ligo.gracedb.rest.GraceDb`` for the superevent manager."""

    PREFIX = {"production": "S", "mdc": "MS", "test": "TS"}
    DISPLAY = {"production": "Production", "mdc": "MDC", "test": "Test"}

    def __init__(self, events):
        self.events = {event["graceid"]: copy.deepcopy(event) for event in events}
        self.store: dict[str, dict] = {}
        self.calls: list[str] = []
        self.crash_before: dict[str, int] = {}  # method -> crash at its n-th call

    def _call(self, name):
        self.calls.append(name)
        if name in self.crash_before:
            self.crash_before[name] -= 1
            if self.crash_before[name] == 0:
                del self.crash_before[name]
                raise Crash(name)

    def _owner(self, graceid):
        return next((s for s in self.store.values() if graceid in s["gw_events"]), None)

    def _view(self, superevent):
        view = copy.deepcopy(superevent)
        view["preferred_event_data"] = copy.deepcopy(self.events[superevent["preferred_event"]])
        return view

    def superevents(self, query=""):
        self._call("superevents")
        _, category, low, _, high = query.split()
        return [self._view(s) for s in self.store.values()
                if s["category"].lower() == category and float(low) <= s["t_0"] <= float(high)]

    def create_superevent(self, t_start, t_0, t_end, preferred_event, category="production"):
        self._call("create_superevent")
        assert self._owner(preferred_event) is None, f"{preferred_event} already grouped"
        sid = f"{self.PREFIX[category]}{len(self.store) + 1}"
        self.store[sid] = {"superevent_id": sid, "category": self.DISPLAY[category],
                           "t_start": t_start, "t_0": t_0, "t_end": t_end,
                           "preferred_event": preferred_event, "gw_events": [preferred_event],
                           "labels": []}
        return self._view(self.store[sid])

    def add_event_to_superevent(self, superevent_id, graceid):
        self._call("add_event_to_superevent")
        assert self._owner(graceid) is None, f"{graceid} already grouped"
        self.store[superevent_id]["gw_events"].append(graceid)

    def update_superevent(self, superevent_id, **fields):
        self._call("update_superevent")
        if "preferred_event" in fields:
            assert fields["preferred_event"] in self.store[superevent_id]["gw_events"]
        self.store[superevent_id].update(fields)

    def write_label(self, object_id, label):
        self._call("write_label")
        if object_id in self.events:
            labels = self.events[object_id]["labels"]
        else:
            labels = self.store[object_id]["labels"]
        assert label not in labels, f"{label} already on {object_id}"
        labels.append(label)

    def event(self, graceid):
        self._call("event")
        return copy.deepcopy(self.events[graceid])

    # test conveniences -------------------------------------------------------------------
    def new_message(self, graceid):
        return {"uid": graceid, "alert_type": "new", "data": {},
                "object": copy.deepcopy(self.events[graceid]), "node": "cbc_gstlal"}

    def label(self, graceid, label):
        """Apply an event label as a pipeline would and return its LVAlert message."""
        self.events[graceid]["labels"].append(label)
        return {"uid": graceid, "alert_type": "label_added", "data": {"name": label},
                "object": copy.deepcopy(self.events[graceid]), "node": "cbc_gstlal"}


def handle(client, message):
    return se.handle(message, client=client, settings=SETTINGS)


def sixteen_uploads():
    """4 pipelines x 4 uploads within 2 s; G11 (3 detectors, SNR 14) must win."""
    events, number = [], 0
    for pipeline in ("gstlal", "pycbc", "spiir", "MBTA"):
        for _ in range(4):
            number += 1
            ifos = ("H1", "L1", "V1") if number in (7, 11) else ("H1", "L1")
            events.append(cbc(f"G{number}", gpstime=1000.0 + 0.12 * number, snr=8 + number / 2,
                              far=1e-9, ifos=ifos, pipeline=pipeline))
    return events


def test_sixteen_uploads_make_one_superevent_with_minimal_calls():
    client = FakeGraceDb(sixteen_uploads())
    outcomes = [handle(client, client.new_message(g)) for g in list(client.events)]
    assert [o.action for o in outcomes] == ["created"] + ["added"] * 15
    (superevent,) = client.store.values()
    assert superevent["superevent_id"] == "S1"
    assert sorted(superevent["gw_events"]) == sorted(client.events)
    assert superevent["preferred_event"] == "G11"  # 3 detectors beat higher SNR
    assert superevent["t_0"] == pytest.approx(1000.0 + 0.12 * 11)
    assert (superevent["t_start"], superevent["t_end"]) == pytest.approx((1000.12 - 1,
                                                                          1001.92 + 1))
    assert superevent["labels"] == ["ADVREQ"]  # significant, not complete yet
    # per message: one query, one create or add, at most one update (+ labels on create)
    assert client.calls.count("superevents") == 16
    assert client.calls.count("create_superevent") == 1
    assert client.calls.count("add_event_to_superevent") == 15
    assert client.calls.count("event") == 0
    assert client.calls.count("update_superevent") <= 15


def test_duplicate_messages_change_nothing():
    client = FakeGraceDb(sixteen_uploads())
    messages = [client.new_message(g) for g in client.events]
    for message in messages:
        handle(client, message)
    before, writes = copy.deepcopy(client.store), len(client.calls)
    outcomes = [handle(client, message) for message in messages]
    assert {o.action for o in outcomes} == {"unchanged"}
    assert client.store == before
    assert client.calls[writes:] == ["superevents"] * 16  # read-only second pass


def test_completion_labels_switch_preferred_event_then_lock_it():
    client = FakeGraceDb([cbc("G1", snr=20, far=1e-9), cbc("G2", snr=9, far=1e-9),
                          cbc("G3", snr=30, far=1e-9, gpstime=1000.3)])
    handle(client, client.new_message("G1"))
    handle(client, client.new_message("G2"))
    assert client.store["S1"]["preferred_event"] == "G1"
    # G2 becomes complete first: completeness outranks SNR, and it locks the superevent
    for label in CBC_COMPLETE[:-1]:
        assert handle(client, client.label("G2", label)).action == "skipped"
    outcome = handle(client, client.label("G2", CBC_COMPLETE[-1]))
    assert outcome.fields == {"preferred_event": "G2", "t_0": 1000.0}
    assert client.store["S1"]["labels"] == ["ADVREQ", "EM_READY", "SIGNIF_LOCKED",
                                            "LOW_SIGNIF_LOCKED"]
    # a louder complete event joins after the lock: widened window, same preferred event
    for label in CBC_COMPLETE:
        client.events["G3"]["labels"].append(label)
    outcome = handle(client, client.new_message("G3"))
    assert outcome.action == "added" and outcome.fields == {"t_end": pytest.approx(1001.3)}
    assert client.store["S1"]["preferred_event"] == "G2"


def test_label_before_new_in_one_batch():
    """The lane sorts label_added first: the event is grouped from its label message."""
    client = FakeGraceDb([cbc("G1", far=1e-9)])
    batch = [client.new_message("G1")]
    batch += [client.label("G1", label) for label in CBC_COMPLETE]
    outcomes = [handle(client, m) for m in sorted(batch, key=se.sort_key)]
    assert [o.action for o in outcomes] == ["skipped", "skipped", "created", "unchanged"]
    assert client.store["S1"]["labels"] == ["EM_READY", "ADVREQ", "SIGNIF_LOCKED",
                                            "LOW_SIGNIF_LOCKED"]


@pytest.mark.parametrize("crash_at", ["add_event_to_superevent", "update_superevent", "write_label"])
def test_retry_after_a_crash_finishes_the_job(crash_at):
    client = FakeGraceDb([cbc("G1", snr=8, far=1e-9),
                          cbc("G2", snr=30, far=1e-9, labels=CBC_COMPLETE, gpstime=1000.5)])
    handle(client, client.new_message("G1"))
    message = client.new_message("G2")
    client.crash_before[crash_at] = 1
    with pytest.raises(Crash):
        handle(client, message)
    handle(client, message)  # the lane's redelivery
    superevent = client.store["S1"]
    assert superevent["gw_events"] == ["G1", "G2"]
    assert superevent["preferred_event"] == "G2"
    assert superevent["t_end"] == pytest.approx(1001.5)
    assert superevent["labels"] == ["ADVREQ", "EM_READY", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"]


def test_retry_after_a_crash_between_create_and_labels():
    client = FakeGraceDb([cbc("G1", far=1e-9, labels=CBC_COMPLETE)])
    client.crash_before["write_label"] = 2
    with pytest.raises(Crash):
        handle(client, client.new_message("G1"))
    assert handle(client, client.new_message("G1")).action == "updated"
    assert list(client.store) == ["S1"]
    assert client.store["S1"]["labels"] == ["EM_READY", "ADVREQ", "SIGNIF_LOCKED",
                                            "LOW_SIGNIF_LOCKED"]


@pytest.mark.parametrize("events, expected_ids", [
    ([cbc("G1", gpstime=1000.0), cbc("G2", gpstime=1200.0)], ["S1", "S2"]),
    ([cbc("G1"), cbc("M1", search="MDC")], ["MS2", "S1"]),
    ([cbc("G1"), cbc("T1", group="Test")], ["S1", "TS2"]),
    ([burst("G1", duration=3.0), cbc("G2", gpstime=1003.5)], ["S1"]),  # long burst window
    ([burst("G1", duration=0.1), cbc("G2", gpstime=1003.5)], ["S1", "S2"]),
])
def test_grouping_by_time_and_category(events, expected_ids):
    client = FakeGraceDb(events)
    for graceid in client.events:
        handle(client, client.new_message(graceid))
    assert sorted(client.store) == expected_ids


def test_superevent_without_preferred_event_data_costs_one_read():
    client = FakeGraceDb([cbc("G1", far=1e-9), cbc("G2", far=1e-9, snr=30)])
    handle(client, client.new_message("G1"))
    client._view = lambda s: copy.deepcopy(s)  # an older GraceDB: no preferred_event_data
    handle(client, client.new_message("G2"))
    assert client.calls.count("event") == 1
    assert client.store["S1"]["preferred_event"] == "G2"


@pytest.mark.parametrize("message, match", [
    ({"uid": "G1", "alert_type": "new", "node": "cbc_gstlal"}, "no event object"),
    ({"uid": "G1", "alert_type": "new", "object": {"graceid": "G1", "far": 1e-9}},
     "G1 lacks the field 'group'"),
    ({"uid": "G1", "alert_type": "new",
      "object": {k: v for k, v in cbc("G1").items() if k != "gpstime"}},
     "G1 lacks the field 'gpstime'"),
])
def test_bad_messages_raise_clear_permanent_errors(message, match):
    from gw_ops.errors import PermanentError, is_transient
    with pytest.raises(se.SupereventError, match=match) as raised:
        handle(FakeGraceDb([]), message)
    # the lane dead-letters it at once rather than retrying
    assert isinstance(raised.value, PermanentError) and not is_transient(raised.value)


def test_skipped_message_makes_no_gracedb_call():
    client = FakeGraceDb([cbc("G1", far=1.0)])
    assert handle(client, client.new_message("G1")).action == "skipped"
    assert client.calls == []
