"""Superevent manager through the local GraceDB service.

Events are uploaded as coinc.xml files; the LVAlert messages GraceDB publishes are read
from their Redis streams and given to ``superevents.handle`` in stream order, as the
handler's lane does (the through-Airflow version lives with the lane's tests).
"""
from __future__ import annotations

import random

import pytest

from gw_ops.handlers import superevents as se
from gw_ops.transport.redis_client import lvalert_stream
from tests.coinc_factory import coinc_xml, cwb_text

CBC_COMPLETE = ("PASTRO_READY", "EMBRIGHT_READY", "SKYMAP_READY")


class Lane:
    """Reads the LVAlert streams of the superevent handler's nodes like its lane does."""

    def __init__(self, service, redis_client):
        self.service, self.redis = service, redis_client
        self.last_ids = {node: b"0-0" for node in se.NODES}
        self.skip_existing()

    def skip_existing(self):
        """Start after whatever earlier tests left in the streams."""
        for node in se.NODES:
            newest = self.redis.xrevrange(lvalert_stream(self.service.settings, node), count=1)
            if newest:
                self.last_ids[node] = newest[0][0]

    def read(self, graceids=None):
        """New messages of all nodes, merged in arrival (stream id) order."""
        import json
        batch = []
        for node in se.NODES:
            key = lvalert_stream(self.service.settings, node)
            for entry_id, fields in self.redis.xrange(key, min=b"(" + self.last_ids[node]):
                self.last_ids[node] = entry_id
                message = dict(json.loads(fields[b"payload"]), node=node)
                if graceids is None or message["uid"] in graceids:
                    ms, seq = entry_id.decode().split("-")
                    batch.append(((int(ms), int(seq)), message))
        return [message for _, message in sorted(batch, key=lambda item: item[0])]

    def drain(self, client, graceids=None):
        """Handle every new message, label_added first (the lane's sort), and return them."""
        messages = sorted(self.read(graceids), key=se.sort_key)
        outcomes = [se.handle(m, client=client, settings=self.service.settings)
                    for m in messages]
        return messages, outcomes


@pytest.fixture
def lane(gracedb_service, redis_client):
    return Lane(gracedb_service, redis_client)


@pytest.fixture
def client(gracedb_service):
    return gracedb_service.client()


@pytest.fixture
def gps():
    """A GPS time no other test uses (superevents are looked up +- 100 s)."""
    return 1_300_000_000.0 + random.randrange(1, 400_000) * 1000.0


def upload(client, gpstime, snr, far=1e-9, pipeline="gstlal", instruments=("H1", "L1"),
           group="CBC", search="AllSky"):
    """Upload one CBC event and return its graceid."""
    content = coinc_xml(gpstime=gpstime, snr=snr, far=far, instruments=instruments,
                        pipeline=pipeline, masses=(1.4, 1.3))
    response = client.create_event(group, pipeline, "coinc.xml", search=search,
                                  filecontents=content)
    return response.json()["graceid"]


def superevents_near(client, gpstime, category="production"):
    query = f"category: {category} {gpstime - 500} .. {gpstime + 500}"
    return list(client.superevents(query=query))


def test_sixteen_uploads_from_four_pipelines_make_one_superevent(client, lane, gps):
    graceids, expected_preferred = [], None
    for number in range(16):
        pipeline = ("gstlal", "pycbc", "spiir", "MBTA")[number % 4]
        three_detectors = number == 9
        graceid = upload(client, gps + 0.125 * number, snr=8.0 + 0.25 * number,
                         pipeline=pipeline,
                         instruments=("H1", "L1", "V1") if three_detectors else ("H1", "L1"))
        graceids.append(graceid)
        if three_detectors:
            expected_preferred = graceid

    messages, outcomes = lane.drain(client, set(graceids))
    assert len(messages) == 16
    assert [o.action for o in outcomes].count("created") == 1
    (superevent,) = superevents_near(client, gps)
    assert superevent["superevent_id"].startswith("S")
    assert sorted(superevent["gw_events"]) == sorted(graceids)
    # three detectors outrank the louder two-detector events
    assert superevent["preferred_event"] == expected_preferred
    assert superevent["t_start"] == pytest.approx(gps - 1.0)
    assert superevent["t_end"] == pytest.approx(gps + 0.125 * 15 + 1.0)
    assert set(superevent["labels"]) == {"ADVREQ"}  # significant, not complete yet

    # the loudest two-detector event becomes complete: completeness outranks detectors,
    # and a significant complete preferred event locks the superevent
    loudest = graceids[15]
    for label in CBC_COMPLETE:
        client.write_label(loudest, label)
    lane.drain(client, set(graceids))
    (superevent,) = superevents_near(client, gps)
    assert superevent["preferred_event"] == loudest
    assert superevent["t_0"] == pytest.approx(gps + 0.125 * 15, abs=1e-6)
    assert set(superevent["labels"]) == {"ADVREQ", "EM_READY", "SIGNIF_LOCKED",
                                         "LOW_SIGNIF_LOCKED"}

    # after the lock a complete three-detector event does not take over
    for label in CBC_COMPLETE:
        client.write_label(expected_preferred, label)
    lane.drain(client, set(graceids))
    (superevent,) = superevents_near(client, gps)
    assert superevent["preferred_event"] == loudest


def test_events_200_s_apart_make_two_superevents(client, lane, gps):
    first, second = upload(client, gps, snr=10.0), upload(client, gps + 200.0, snr=10.0)
    lane.drain(client, {first, second})
    found = sorted(superevents_near(client, gps + 100), key=lambda s: s["t_0"])
    assert [s["gw_events"] for s in found] == [[first], [second]]
    assert [s["preferred_event"] for s in found] == [first, second]


def test_mdc_event_makes_an_ms_superevent_apart_from_production(client, lane, gps):
    production = upload(client, gps, snr=10.0)
    mdc = upload(client, gps + 0.1, snr=12.0, search="MDC")
    lane.drain(client, {production, mdc})
    (mdc_superevent,) = superevents_near(client, gps, "mdc")
    (production_superevent,) = superevents_near(client, gps, "production")
    assert mdc_superevent["superevent_id"].startswith("MS")
    assert mdc_superevent["gw_events"] == [mdc]
    assert production_superevent["gw_events"] == [production]


def test_duplicate_messages_make_no_duplicates(client, lane, gps):
    graceids = {upload(client, gps + 0.2 * n, snr=9.0 + n, pipeline=p)
                for n, p in enumerate(("gstlal", "pycbc", "spiir"))}
    messages = lane.read(graceids)
    for message in messages + messages:  # every message delivered twice
        se.handle(message, client=client, settings=lane.service.settings)
    before = superevents_near(client, gps)
    outcomes = [se.handle(m, client=client, settings=lane.service.settings) for m in messages]
    assert {o.action for o in outcomes} == {"unchanged"}
    (superevent,) = superevents_near(client, gps)
    assert superevent == before[0]
    assert sorted(superevent["gw_events"]) == sorted(graceids)


def test_cwb_event_joins_through_its_duration_and_cbc_stays_preferred(client, lane, gps):
    """A 3 s cWB burst founds a superevent; a CBC event 2.5 s later overlaps its window."""
    burst = client.create_event("Burst", "CWB", "trigger.txt", search="AllSky",
                                filecontents=cwb_text(gps, duration=3.0, far=1e-12))
    burst_id = burst.json()["graceid"]
    cbc_id = upload(client, gps + 2.5, snr=9.0, far=1e-9)
    lane.drain(client, {burst_id, cbc_id})
    (superevent,) = superevents_near(client, gps)
    assert sorted(superevent["gw_events"]) == sorted([burst_id, cbc_id])
    assert superevent["preferred_event"] == cbc_id  # CBC all-sky outranks burst
    assert (superevent["t_start"], superevent["t_end"]) == pytest.approx((gps - 3.0, gps + 3.5))


def test_test_group_event_makes_a_ts_superevent(client, lane, gps):
    graceid = upload(client, gps, snr=10.0, group="Test")
    messages, outcomes = lane.drain(client, {graceid})
    assert [m["node"] for m in messages] == ["test_gstlal"]
    (superevent,) = superevents_near(client, gps, "test")
    assert superevent["superevent_id"].startswith("TS")
    assert superevent["gw_events"] == [graceid]
