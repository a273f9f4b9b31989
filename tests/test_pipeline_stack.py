"""Superevent manager and external triggers through the running stack (Airflow lanes):
16 uploads from 4 pipelines → one superevent; 200 s apart → two; a GCN notice published
through the broker → an external event; the same notice again → no duplicate."""
from __future__ import annotations

import random
import uuid
from pathlib import Path

from gw_ops.transport.redis_client import gcn_incoming_stream, get_redis
from tests.coinc_factory import coinc_xml
from tests.helpers import lane_settled, wait_for

PIPELINES = ("gstlal", "pycbc", "MBTA", "spiir")


def unique_gpstime() -> float:
    # far from other tests' events: superevents are matched within ±100 s
    return 1400000000.0 + (uuid.uuid4().int % 10**7) * 1000.0


def superevents_of(client, graceids):
    """Superevent ids of the events, in order, once every event has one (else None)."""
    found = [client.event(graceid).json().get("superevent") for graceid in graceids]
    return None if None in found else found


def wait_superevent_lane(stack):
    stack.airflow().wait_for_dag("lvalert_superevents_handle", timeout=180)


def test_sixteen_uploads_from_four_pipelines_make_one_superevent(airflow_stack):
    wait_superevent_lane(airflow_stack)
    client = airflow_stack.gracedb()
    rng = random.Random(7)
    t0 = unique_gpstime()
    graceids, snrs = [], {}
    for i in range(16):
        snr = 9.0 + rng.random() * 6
        pipeline = PIPELINES[i % 4]
        event = client.create_event("CBC", pipeline, "coinc.xml", search="AllSky",
                                    filecontents=coinc_xml(gpstime=t0 + rng.uniform(-0.2, 0.2), snr=snr,
                                                           far=1e-9, pipeline=pipeline)).json()
        graceids.append(event["graceid"])
        snrs[event["graceid"]] = snr
    superevent_ids = set(wait_for(lambda: superevents_of(client, graceids), timeout=180,
                                  what="all 16 events grouped"))
    assert len(superevent_ids) == 1
    (sid,) = superevent_ids
    superevent = client.superevent(sid).json()
    assert sid.startswith("S")
    assert sorted(superevent["gw_events"]) == sorted(graceids)
    # none is complete (no sky maps), all pass the threshold: the highest SNR is preferred
    assert superevent["preferred_event"] == max(snrs, key=snrs.get)
    labels = {entry["name"] for entry in client.labels(sid).json()["labels"]}
    assert "ADVREQ" in labels and "SIGNIF_LOCKED" not in labels


def test_events_200_s_apart_make_two_superevents_and_mdc_makes_ms(airflow_stack):
    wait_superevent_lane(airflow_stack)
    client = airflow_stack.gracedb()
    t0 = unique_gpstime()
    first = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                filecontents=coinc_xml(gpstime=t0, snr=10, far=1e-9)).json()["graceid"]
    second = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                 filecontents=coinc_xml(gpstime=t0 + 200, snr=10, far=1e-9)).json()["graceid"]
    mdc = client.create_event("CBC", "gstlal", "coinc.xml", search="MDC",
                              filecontents=coinc_xml(gpstime=t0 + 400, snr=10, far=1e-9)).json()["graceid"]
    ids = wait_for(lambda: superevents_of(client, (first, second, mdc)), timeout=180,
                   what="three events grouped")
    assert ids[0] != ids[1]
    assert ids[0].startswith("S") and ids[1].startswith("S") and ids[2].startswith("MS")


def test_gcn_notice_through_broker_becomes_one_external_event(airflow_stack, tmp_path):
    airflow_stack.airflow().wait_for_dag("gcn_external_triggers_handle_notice", timeout=180)
    airflow_stack.wait_gcn_listener()
    from gw_ops.handlers.external_triggers import parse_notice
    path = Path(__file__).parent / "data" / "gcn" / "fermi_gbm_flt_pos.xml"
    notice = parse_notice(path.read_bytes())
    client = airflow_stack.gracedb()

    def external_events():
        query = (f"group: External pipeline: {notice.pipeline} "
                 f"gpstime: {notice.gpstime - 1:.3f} .. {notice.gpstime + 1:.3f}")
        return list(client.events(query))

    for _ in range(2):  # the same notice twice: replaced, never duplicated
        published = airflow_stack.gw_ops("gcn", "publish", str(path))
        assert published.returncode == 0, published.stdout + published.stderr
    wait_for(external_events, timeout=180, what="external event in GraceDB")
    # both deliveries handled and acknowledged: a duplicate would exist by now
    wait_for(lambda: lane_settled(get_redis(airflow_stack.settings), gcn_incoming_stream(airflow_stack.settings),
                                  "gcn_external_triggers_handle_notice"), timeout=120, what="GCN lane settled")
    found = external_events()
    assert len(found) == 1
    assert abs(found[0]["gpstime"] - notice.gpstime) < 1e-3
    labels = wait_for(lambda: {e["name"] for e in client.labels(found[0]["graceid"]).json()["labels"]}
                      & {"EXT_SKYMAP_READY"}, timeout=60, what="external sky map")
    assert labels == {"EXT_SKYMAP_READY"}
