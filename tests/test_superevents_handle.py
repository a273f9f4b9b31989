"""``superevents.handle`` through the local GraceDB service: calls, idempotency, retries.

Events are uploaded as real coinc.xml / cWB files and the LVAlert messages the service
publishes are read back from their Redis streams.  The handler talks to the service
through :class:`RecordingGraceDb`, the real ``ligo.gracedb.rest.GraceDb`` client with a
record of the HTTP requests it sends, so these tests pin down the number of GraceDB
requests per message; it can also drop its connection around a chosen request (a worker
dying half-way through a handler) to check what the retry, with an ordinary client,
leaves in GraceDB.  The service itself is never altered.
"""
from __future__ import annotations

import itertools
import re
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from ligo.gracedb.rest import GraceDb

from gw_ops.errors import PermanentError, is_transient
from gw_ops.handlers import superevents as se
from tests.coinc_factory import coinc_xml, cwb_text
from tests.test_superevents import cbc
from tests.test_superevents_gracedb import Lane, superevents_near

CBC_COMPLETE = ["PASTRO_READY", "EMBRIGHT_READY", "SKYMAP_READY"]
LOCKED = ["ADVREQ", "EM_READY", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"]


# --- the real client, recording its requests -------------------------------------------

#: (HTTP method, path below the API root, name of the ligo-gracedb call that sends it).
_CALLS = [
    ("GET", r"", "api_root"),
    ("GET", r"superevents/", "superevents"),
    ("POST", r"superevents/", "create_superevent"),
    ("GET", r"superevents/[^/]+/", "superevent"),
    ("PATCH", r"superevents/[^/]+/", "update_superevent"),
    ("POST", r"superevents/[^/]+/events/", "add_event_to_superevent"),
    ("POST", r"superevents/[^/]+/labels/", "write_label"),
    ("PUT", r"events/[^/]+/labels/[^/]+", "write_label"),
    ("GET", r"(super)?events/[^/]+/labels/", "labels"),
    ("GET", r"events/[^/]+", "event"),
    ("POST", r"events/", "create_event"),
    ("POST", r"events/[^/]+/log/|superevents/[^/]+/logs/", "write_log"),
    ("GET", r"events/[^/]+/log/|superevents/[^/]+/logs/", "logs"),
    ("GET", r"(super)?events/[^/]+/files/.*", "files"),
]


def call_name(method: str, url: str) -> str:
    """Name of the client call an HTTP request belongs to (``"METHOD path"`` if unknown)."""
    path = urlsplit(url).path
    path = path.split("/api/", 1)[1] if "/api/" in path else path
    for verb, pattern, name in _CALLS:
        if verb == method.upper() and re.fullmatch(pattern, path):
            return name
    return f"{method.upper()} {path}"


class RecordingGraceDb(GraceDb):
    """``ligo.gracedb.rest.GraceDb`` that records the name of every request it sends.

    ``drop`` (optional) is asked ``drop(name, request_kwargs)`` before each request; the
    first time it answers ``"before"`` the connection drops before the request is sent,
    ``"after"`` once the service has answered (the work is done but the client never hears
    of it).  Either way ``requests.ConnectionError`` is raised, as when a worker loses its
    connection or dies half-way.  Only this test client is affected; the service is real.
    """

    def __init__(self, url, *, drop=None, **kwargs):
        super().__init__(url, force_noauth=True, **kwargs)
        self.calls: list[str] = []
        self.drop = drop

    def request(self, method, url, *args, **kwargs):
        name = call_name(method, url)
        self.calls.append(name)
        when = self.drop(name, kwargs) if self.drop else None
        if when:
            self.drop = None  # one dropped connection
        if when == "before":
            raise requests.ConnectionError(f"connection dropped before {name}")
        response = super().request(method, url, *args, **kwargs)
        if when == "after":
            raise requests.ConnectionError(f"connection dropped after {name} "
                                           f"({response.status_code})")
        return response


def recording_client(service, drop=None) -> RecordingGraceDb:
    """A :class:`RecordingGraceDb` with the pipeline's credentials for the local service.

    The API root is read up front (a worker's long-lived client has it) and not recorded.
    """
    client = RecordingGraceDb(service.url, drop=drop)
    client.headers["Authorization"] = service.client().headers["Authorization"]
    assert client.service_info["links"]
    client.calls.clear()
    return client


def nth(call: str, n: int = 1, when: str = "before"):
    """A ``drop`` rule: drop the connection ``when`` the ``n``-th request of ``call``."""
    seen = itertools.count(1)

    def rule(name, _kwargs):
        return when if name == call and next(seen) == n else None
    return rule


# --- fixtures and helpers ----------------------------------------------------------------

#: GPS times of this module: [1.0e9, 1.1e9), 10^4 s apart (other modules use other ranges).
_GPS = itertools.count(1_000_000_000.0 + (uuid.uuid4().int % 5_000) * 10_000.0, 10_000.0)


@pytest.fixture
def gps():
    """A GPS time no other test of the session uses (superevents are looked up +- 100 s)."""
    return next(_GPS)


@pytest.fixture
def lane(gracedb_service, redis_client):
    return Lane(gracedb_service, redis_client)


@pytest.fixture
def client(gracedb_service):
    """Plain client: the pipelines' uploads and the lane's redelivery."""
    return gracedb_service.client()


@pytest.fixture
def recorder(gracedb_service):
    return recording_client(gracedb_service)


def handle(client, message, service):
    return se.handle(message, client=client, settings=service.settings)


def upload(client, gpstime, snr=10.0, far=1e-9, instruments=("H1", "L1"), pipeline="gstlal",
           group="CBC", search="AllSky", labels=()):
    """Upload a CBC event (with labels applied at creation) and return its graceid."""
    content = coinc_xml(gpstime=gpstime, snr=snr, far=far, instruments=instruments,
                        pipeline=pipeline, masses=(1.4, 1.3))
    response = client.create_event(group, pipeline, "coinc.xml", search=search,
                                   labels=list(labels) or None, filecontents=content)
    return response.json()["graceid"]


def upload_cwb(client, gpstime, duration, far=1e-10):
    response = client.create_event("Burst", "CWB", "trigger.txt", search="AllSky",
                                   filecontents=cwb_text(gpstime, duration=duration, far=far))
    return response.json()["graceid"]


def new_messages(lane, graceids):
    """The ``new`` LVAlert message of each event, by graceid."""
    return {m["uid"]: m for m in lane.read(set(graceids)) if m["alert_type"] == "new"}


def label(client, lane, graceid, name):
    """Apply an event label as a pipeline does and return the LVAlert message it published."""
    client.write_label(graceid, name)
    (message,) = lane.read({graceid})
    assert message["alert_type"] == "label_added" and message["data"]["name"] == name
    return message


def the_superevent(client, gpstime, category="production"):
    """The only superevent of a category near ``gpstime`` (fails on duplicates)."""
    (superevent,) = superevents_near(client, gpstime, category)
    return superevent


def sixteen_uploads(client, gps):
    """4 pipelines x 4 uploads within 2 s; the 11th (3 detectors, SNR 13.5) must win."""
    graceids = []
    for number in range(1, 17):
        pipeline = ("gstlal", "pycbc", "spiir", "MBTA")[(number - 1) // 4]
        ifos = ("H1", "L1", "V1") if number in (7, 11) else ("H1", "L1")
        graceids.append(upload(client, gps + 0.12 * number, snr=8 + number / 2,
                               instruments=ifos, pipeline=pipeline))
    return graceids


# --- tests -------------------------------------------------------------------------------

def test_sixteen_uploads_make_one_superevent_with_minimal_calls(
        gracedb_service, client, recorder, lane, gps):
    graceids = sixteen_uploads(client, gps)
    messages = new_messages(lane, graceids)
    outcomes = [handle(recorder, messages[g], gracedb_service) for g in graceids]
    assert [o.action for o in outcomes] == ["created"] + ["added"] * 15
    superevent = the_superevent(client, gps)
    assert superevent["superevent_id"].startswith("S")
    assert sorted(superevent["gw_events"]) == sorted(graceids)
    assert superevent["preferred_event"] == graceids[10]  # 3 detectors beat higher SNR
    assert superevent["t_0"] == pytest.approx(gps + 0.12 * 11, abs=1e-5)
    assert (superevent["t_start"], superevent["t_end"]) == pytest.approx(
        (gps + 0.12 - 1, gps + 1.92 + 1), abs=1e-5)
    assert superevent["labels"] == ["ADVREQ"]  # significant, not complete yet
    # per message: one query, one create or add, at most one update (+ labels on create)
    calls = recorder.calls
    assert calls.count("superevents") == 16
    assert calls.count("create_superevent") == 1
    assert calls.count("add_event_to_superevent") == 15
    assert calls.count("event") == 0  # the superevent carries its preferred event's data
    assert calls.count("update_superevent") <= 15
    assert set(calls) <= {"superevents", "create_superevent", "add_event_to_superevent",
                          "update_superevent", "write_label"}


def test_duplicate_messages_change_nothing(gracedb_service, client, recorder, lane, gps):
    graceids = sixteen_uploads(client, gps)
    messages = new_messages(lane, graceids)
    for graceid in graceids:
        handle(client, messages[graceid], gracedb_service)
    before = the_superevent(client, gps)
    outcomes = [handle(recorder, messages[g], gracedb_service) for g in graceids]
    assert {o.action for o in outcomes} == {"unchanged"}
    assert the_superevent(client, gps) == before
    assert recorder.calls == ["superevents"] * 16  # read-only second pass


def test_completion_labels_switch_preferred_event_then_lock_it(
        gracedb_service, client, lane, gps):
    first, second = upload(client, gps, snr=20.0), upload(client, gps, snr=9.0)
    messages = new_messages(lane, [first, second])
    handle(client, messages[first], gracedb_service)
    handle(client, messages[second], gracedb_service)
    assert the_superevent(client, gps)["preferred_event"] == first
    # the second becomes complete first: completeness outranks SNR, and it locks
    for name in CBC_COMPLETE[:-1]:
        message = label(client, lane, second, name)
        assert handle(client, message, gracedb_service).action == "skipped"
    outcome = handle(client, label(client, lane, second, CBC_COMPLETE[-1]), gracedb_service)
    assert outcome.fields == {"preferred_event": second, "t_0": pytest.approx(gps, abs=1e-6)}
    superevent = the_superevent(client, gps)
    assert superevent["preferred_event"] == second
    assert superevent["labels"] == LOCKED
    # a louder complete event joins after the lock: widened window, same preferred event
    third = upload(client, gps + 0.3, snr=30.0, labels=CBC_COMPLETE)
    outcome = handle(client, new_messages(lane, [third])[third], gracedb_service)
    assert outcome.action == "added"
    assert outcome.fields == {"t_end": pytest.approx(gps + 1.3, abs=1e-5)}
    superevent = the_superevent(client, gps)
    assert superevent["preferred_event"] == second
    assert sorted(superevent["gw_events"]) == sorted([first, second, third])


def test_label_before_new_in_one_batch(gracedb_service, client, lane, gps):
    """The lane sorts label_added first: the event is grouped from its label message."""
    graceid = upload(client, gps)
    for name in CBC_COMPLETE:
        client.write_label(graceid, name)
    batch = lane.read({graceid})
    assert [m["alert_type"] for m in batch] == ["new"] + ["label_added"] * 3
    outcomes = [handle(client, m, gracedb_service) for m in sorted(batch, key=se.sort_key)]
    assert [o.action for o in outcomes] == ["skipped", "skipped", "created", "unchanged"]
    superevent = the_superevent(client, gps)
    assert superevent["gw_events"] == [graceid]
    assert superevent["labels"] == ["EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("crash_at", ["add_event_to_superevent", "update_superevent",
                                      "write_label"])
def test_retry_after_a_crash_finishes_the_job(gracedb_service, client, lane, gps, crash_at,
                                              when):
    """The connection drops before the request reaches GraceDB, or after GraceDB did it."""
    first = upload(client, gps, snr=8.0)
    second = upload(client, gps + 0.5, snr=30.0, labels=CBC_COMPLETE)
    messages = new_messages(lane, [first, second])
    handle(client, messages[first], gracedb_service)
    crashing = recording_client(gracedb_service, drop=nth(crash_at, when=when))
    with pytest.raises(requests.ConnectionError):
        handle(crashing, messages[second], gracedb_service)
    assert crash_at in crashing.calls
    handle(client, messages[second], gracedb_service)  # the lane's redelivery
    superevent = the_superevent(client, gps)  # no second superevent
    assert superevent["gw_events"] == [first, second]
    assert superevent["preferred_event"] == second
    assert superevent["t_end"] == pytest.approx(gps + 1.5, abs=1e-5)
    assert superevent["labels"] == LOCKED  # each label once


@pytest.mark.parametrize("when", ["before", "after"])
def test_retry_after_a_crash_between_create_and_labels(gracedb_service, client, lane, gps, when):
    graceid = upload(client, gps, labels=CBC_COMPLETE)
    message = new_messages(lane, [graceid])[graceid]
    crashing = recording_client(gracedb_service, drop=nth("write_label", 2, when))
    with pytest.raises(requests.ConnectionError):
        handle(crashing, message, gracedb_service)
    assert handle(client, message, gracedb_service).action == "updated"
    superevent = the_superevent(client, gps)  # still one superevent
    assert superevent["gw_events"] == [graceid]
    assert superevent["labels"] == ["EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"]


@pytest.mark.parametrize("uploads, expected_prefixes", [
    ([("cbc", 0.0, {}), ("cbc", 200.0, {})], ["S", "S"]),
    ([("cbc", 0.0, {}), ("cbc", 0.0, {"search": "MDC"})], ["MS", "S"]),
    ([("cbc", 0.0, {}), ("cbc", 0.0, {"group": "Test"})], ["S", "TS"]),
    ([("cwb", 0.0, {"duration": 3.0}), ("cbc", 3.5, {})], ["S"]),  # long burst window
    ([("cwb", 0.0, {"duration": 0.1}), ("cbc", 3.5, {})], ["S", "S"]),
], ids=["200s-apart", "mdc", "test-group", "long-burst", "short-burst"])
def test_grouping_by_time_and_category(gracedb_service, client, lane, gps, uploads,
                                       expected_prefixes):
    graceids = [upload_cwb(client, gps + offset, far=1e-10, **kwargs) if kind == "cwb"
                else upload(client, gps + offset, far=1e-10, **kwargs)
                for kind, offset, kwargs in uploads]
    messages = new_messages(lane, graceids)
    for graceid in graceids:
        handle(client, messages[graceid], gracedb_service)
    found = [s for category in ("production", "mdc", "test")
             for s in superevents_near(client, gps + 100.0, category)]
    prefixes = sorted(re.match(r"[A-Z]+", s["superevent_id"]).group()
                      for s in found)
    assert prefixes == expected_prefixes
    members = sorted(g for s in found for g in s["gw_events"])
    assert members == sorted(graceids)  # every event in exactly one superevent


@pytest.mark.parametrize("message, match", [
    ({"uid": "G1", "alert_type": "new", "node": "cbc_gstlal"}, "no event object"),
    ({"uid": "G1", "alert_type": "new", "object": {"graceid": "G1", "far": 1e-9}},
     "G1 lacks the field 'group'"),
    ({"uid": "G1", "alert_type": "new",
      "object": {k: v for k, v in cbc("G1").items() if k != "gpstime"}},
     "G1 lacks the field 'gpstime'"),
])
def test_bad_messages_raise_clear_permanent_errors(gracedb_service, recorder, message, match):
    with pytest.raises(se.SupereventError, match=match) as raised:
        handle(recorder, message, gracedb_service)
    # the lane dead-letters it at once rather than retrying
    assert isinstance(raised.value, PermanentError) and not is_transient(raised.value)
    assert recorder.calls == []


def test_skipped_message_makes_no_gracedb_call(gracedb_service, client, recorder, lane, gps):
    graceid = upload(client, gps, far=1.0)
    message = new_messages(lane, [graceid])[graceid]
    assert handle(recorder, message, gracedb_service).action == "skipped"
    assert recorder.calls == []
    assert superevents_near(client, gps) == []


# --- one drained batch: the lane's batch scope ---------------------------------------------

def test_batch_scope_groups_a_batch_like_single_messages_with_one_query(
        gracedb_service, client, recorder, lane, gps):
    graceids = sixteen_uploads(client, gps)
    messages = new_messages(lane, graceids)
    batch = [messages[g] for g in graceids]
    with se.batch_scope(batch, client=recorder, settings=gracedb_service.settings):
        outcomes = [handle(recorder, message, gracedb_service) for message in batch]
    assert [o.action for o in outcomes] == ["created"] + ["added"] * 15
    superevent = the_superevent(client, gps)
    assert sorted(superevent["gw_events"]) == sorted(graceids)
    assert superevent["preferred_event"] == graceids[10]
    assert (superevent["t_start"], superevent["t_end"]) == pytest.approx(
        (gps + 0.12 - 1, gps + 1.92 + 1), abs=1e-5)
    assert superevent["labels"] == ["ADVREQ"]
    calls = recorder.calls
    assert calls.count("superevents") == 1  # the whole batch: one query
    # the preferred event is only ever changed on the superevent read afresh
    assert calls.count("superevent") == sum("preferred_event" in o.fields for o in outcomes)
    assert calls.count("add_event_to_superevent") == 15
    # outside the scope the handler queries again, per message
    recorder.calls.clear()
    assert {handle(recorder, m, gracedb_service).action for m in batch} == {"unchanged"}
    assert recorder.calls.count("superevents") == 16


def test_batch_scope_sees_a_lock_another_writer_added_during_the_batch(
        gracedb_service, client, lane, gps):
    """The orchestrator may lock a superevent while a batch is handled: the preferred
    event is decided on GraceDB's state, not on the batch's copy."""
    first, louder = upload(client, gps, snr=9.0), upload(client, gps + 0.2, snr=30.0)
    messages = new_messages(lane, [first, louder])
    batch = [messages[first], messages[louder]]
    with se.batch_scope(batch, client=client, settings=gracedb_service.settings):
        assert handle(client, batch[0], gracedb_service).action == "created"
        superevent_id = the_superevent(client, gps)["superevent_id"]
        client.write_label(superevent_id, "SIGNIF_LOCKED")  # another writer, mid-batch
        outcome = handle(client, batch[1], gracedb_service)
    assert outcome.action == "added" and "preferred_event" not in outcome.fields
    superevent = the_superevent(client, gps)
    assert superevent["preferred_event"] == first
    assert "SIGNIF_LOCKED" in superevent["labels"]


def test_batch_scope_is_dropped_when_a_write_may_have_happened_unseen(
        gracedb_service, client, lane, gps):
    """The connection drops after GraceDB added the event: the batch's copy cannot know,
    so the rest of the batch, and the lane's redelivery, ask GraceDB again."""
    first, second = upload(client, gps), upload(client, gps + 0.1)
    messages = new_messages(lane, [first, second])
    batch = [messages[first], messages[second]]
    crashing = recording_client(gracedb_service, drop=nth("add_event_to_superevent", when="after"))
    with se.batch_scope(batch, client=crashing, settings=gracedb_service.settings):
        assert handle(crashing, batch[0], gracedb_service).action == "created"
        with pytest.raises(requests.ConnectionError):
            handle(crashing, batch[1], gracedb_service)
        crashing.calls.clear()
        assert handle(crashing, batch[1], gracedb_service).action == "updated"  # t_end
        assert crashing.calls[0] == "superevents"  # asked again, not the stale copy
    assert the_superevent(client, gps)["gw_events"] == [first, second]
