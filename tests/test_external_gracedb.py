"""External triggers and RAVEN through the local GraceDB service (real ligo-gracedb client).

Each test uses its own notice times so that tests sharing the session's service do not
see each other's events.  Sky maps are made at HEALPix order 5 to stay fast.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gw_ops.handlers import external_triggers as X
from gw_ops.handlers import raven
from gw_ops.handlers.external_triggers import InvalidNotice, process_notice
from gw_ops.mock.notices import make_mock_grb_notice
from gw_ops.rules import raven as raven_rules

DATA = Path(__file__).resolve().parent / "data" / "gcn"
YEAR = 365 * 86400  # GWCelery and ligo-raven count 365-day years


@pytest.fixture
def settings(gracedb_service):
    return dataclasses.replace(gracedb_service.settings, ext_skymap_max_order=5)


@pytest.fixture
def client(gracedb_service):
    return gracedb_service.client()


def notice(name: str) -> bytes:
    return (DATA / name).read_bytes()


def events_of_trigger(client, pipeline: str, gpstime: float) -> list[dict]:
    return list(client.events(f"pipeline: {pipeline} gpstime: {gpstime - 1} .. {gpstime + 1}"))


def log_count(client, object_id: str) -> int:
    return len(client.logs(object_id).json()["log"])


def labels(client, object_id: str) -> set[str]:
    return {label["name"] for label in client.labels(object_id).json()["labels"]}


def test_notice_becomes_external_event_with_skymap(client, settings):
    graceid = process_notice(notice("fermi_gbm_flt_pos.xml"), client=client, settings=settings)
    event = client.event(graceid).json()
    assert (event["group"], event["pipeline"], event["search"]) == ("External", "Fermi", "GRB")
    assert event["extra_attributes"]["GRB"]["trigger_id"] == "336801278"
    assert event["gpstime"] == pytest.approx(999143691.02, abs=1e-3)
    assert labels(client, graceid) == {"EXT_SKYMAP_READY"}
    assert "fermi_skymap.multiorder.fits" in client.files(graceid).json()

    from gw_ops.science import ext_skymaps
    skymap = ext_skymaps.read_skymap_bytes(
        client.files(graceid, "fermi_skymap.multiorder.fits").read())
    # the GBM statistical radius is 17.4 deg: most probability within 3 core widths
    assert ext_skymaps.probability_within(skymap, 193.0, -31.75, 3 * 17.8) > 0.85


def test_same_notice_twice_changes_nothing(client, settings):
    payload = notice("swift_bat_grb_pos.xml")
    first = process_notice(payload, client=client, settings=settings)
    logs_before = log_count(client, first)
    second = process_notice(payload, client=client, settings=settings)
    assert second == first
    assert log_count(client, first) == logs_before
    assert len(events_of_trigger(client, "Swift", 1346594743.76)) == 1


def test_later_notice_replaces_the_event(client, settings):
    # The real alert packet of GRB 180524 (GWCelery's copy carries another TrigID; the
    # IVORN keeps the original 548848711, which this restores).
    alert = notice("fermi_gbm_alert.xml").replace(b'value="548841234"', b'value="548848711"')
    graceid = process_notice(alert, client=client, settings=settings)
    assert labels(client, graceid) == {"NOT_GRB"}  # first packet: unclassified, no position
    assert "fermi_skymap.multiorder.fits" not in client.files(graceid).json()

    again = process_notice(notice("fermi_gbm_fin_pos.xml"), client=client, settings=settings)
    assert again == graceid
    assert labels(client, graceid) == {"EXT_SKYMAP_READY"}  # NOT_GRB lifted by the GRB notice
    event = client.event(graceid).json()
    assert event["extra_attributes"]["GRB"]["ra"] == pytest.approx(140.05)
    assert len(events_of_trigger(client, "Fermi", event["gpstime"])) == 1


def test_subthreshold_and_neutrino_triggers_without_recorded_trigger_id(client, settings):
    """GraceDB keeps only TrigID; Trans_Num and IceCube ids are matched by time."""
    for name, pipeline, search in (("fermi_gbm_subthresh.xml", "Fermi", "SubGRB"),
                                   ("icecube_gold.xml", "IceCube", "Neutrino")):
        payload = notice(name)
        graceid = process_notice(payload, client=client, settings=settings)
        assert process_notice(payload, client=client, settings=settings) == graceid
        event = client.event(graceid).json()
        # the local GraceDB names the HEN search "Neutrino"
        assert (event["pipeline"], event["search"]) == (pipeline, X.server_search_name(
            client, "HEN") if search == "Neutrino" else search)
        assert len(events_of_trigger(client, pipeline, event["gpstime"])) == 1


def test_icecube_revision_replaces_its_event(client, settings):
    """Revision 1 of an IceCube alert (refined time and position) updates the event."""
    first = notice("icecube_bronze.xml")
    graceid = process_notice(first, client=client, settings=settings)
    revision = (first.replace(b"_134207_033533447_0\"", b"_134207_033533447_1\"")
                .replace(b"<ISOTime>2020-06-20T03:03:32.28</ISOTime>",
                         b"<ISOTime>2020-06-20T03:03:32.78</ISOTime>")
                .replace(b"<C1>162.2481</C1>", b"<C1>162.5000</C1>"))
    assert process_notice(revision, client=client, settings=settings) == graceid
    event = client.event(graceid).json()
    assert event["extra_attributes"]["GRB"]["ra"] == pytest.approx(162.5)
    assert len(events_of_trigger(client, "IceCube", event["gpstime"])) == 1


def test_vetoed_and_positionless_notices(client, settings):
    swift = process_notice(notice("swift_bat_grb_pos_lost_lock.xml"), client=client,
                           settings=settings)
    assert labels(client, swift) == {"NOT_GRB", "EXT_SKYMAP_READY"}
    snews = process_notice(notice("snews.xml"), client=client, settings=settings)
    event = client.event(snews).json()
    assert (event["pipeline"], event["search"]) == ("SNEWS", "Supernova")
    assert labels(client, snews) == set()


def test_invalid_notice_writes_nothing(client, settings):
    bad = notice("swift_bat_grb_pos.xml").replace(b"2022-09-07T14:05:25.76Z", b"2022-09-07Tnope")
    before = list(client.events("pipeline: Swift"))
    with pytest.raises(InvalidNotice):
        process_notice(bad, client=client, settings=settings)
    assert list(client.events("pipeline: Swift")) == before


def test_test_notice_ignored_by_setting(client, settings):
    quiet = dataclasses.replace(settings, exttrig_test_notices="ignore")
    assert process_notice(notice("integral_wakeup_test.xml"), client=client,
                          settings=quiet) is None
    assert list(client.events("pipeline: INTEGRAL")) == []


def make_cbc_superevent(client, t_0: float, far: float, category: str = "P") -> dict:
    from tests.coinc_factory import coinc_xml

    group, search = ("CBC", "MDC") if category == "M" else ("CBC", "AllSky")
    event = client.create_event(group, "gstlal", "coinc.xml", search=search,
                               filecontents=coinc_xml(gpstime=t_0, snr=12.0, far=far)).json()
    return client.create_superevent(t_0 - 1, t_0, t_0 + 1, event["graceid"],
                                   category=category).json()


def test_grb_half_second_before_cbc_superevent(client, settings):
    t_gw, far = 1400001000.0, 1e-9
    superevent = make_cbc_superevent(client, t_gw, far)
    sid = superevent["superevent_id"]
    payload = make_mock_grb_notice("400001000", t_gw - 0.5, 120.0, 30.0, 4.0,
                                   role="observation", mdc=False)
    graceid = process_notice(payload, client=client, settings=settings)

    expected = 6 * 305 / YEAR * far  # window [-5, 1] s x 305 per year (GWCelery 2.5.0) x GW FAR
    assert "EM_COINC" in labels(client, sid) and "EM_COINC" in labels(client, graceid)
    fresh = client.superevent(sid).json()
    assert fresh["em_type"] == graceid
    assert graceid in fresh["em_events"]
    assert fresh["time_coinc_far"] == pytest.approx(expected, rel=1e-9)
    record = json.loads(client.files(sid, raven_rules.COINCIDENCE_FILE).read())
    assert record["temporal_coinc_far"] == pytest.approx(expected, rel=1e-9)
    assert record["dt"] == pytest.approx(-0.5, abs=1e-3)
    assert record["external_id"] == graceid
    assert record["spatiotemporal_coinc_far"] is None  # the superevent has no sky map
    assert "RAVEN_ALERT" not in labels(client, sid)

    # at-least-once delivery: the superevent's update alert (RAVEN's own em_type update)
    # searches once and records that; re-deliveries of it and of the notice write nothing
    alert = {"uid": sid, "alert_type": "update", "data": fresh, "object": fresh,
             "node": "superevent"}
    found = raven.handle_superevent_message(alert, client=client, settings=settings)
    assert [c.external_id for c in found] == [graceid]
    logs_before = log_count(client, sid), log_count(client, graceid)
    process_notice(payload, client=client, settings=settings)
    assert raven.handle_superevent_message(alert, client=client, settings=settings) == []
    assert (log_count(client, sid), log_count(client, graceid)) == logs_before


def test_superevent_alert_finds_earlier_grb_with_spatial_far(client, settings):
    """A GRB arrives first; the superevent's creation alert finds it and, with a GW sky
    map on the superevent, the space-time FAR and RAVEN_ALERT follow."""
    from gw_ops.science import ext_skymaps

    t_gw, far = 1400002000.0, 1e-7
    payload = make_mock_grb_notice("400002000", t_gw - 1.0, 200.0, -10.0, 3.0,
                                   role="observation", mdc=False)
    graceid = process_notice(payload, client=client, settings=settings)
    assert "EM_COINC" not in labels(client, graceid)  # no superevent yet

    superevent = make_cbc_superevent(client, t_gw, far)
    sid = superevent["superevent_id"]
    gw_map = ext_skymaps.make_external_skymap(200.0, -10.0, 10.0, "LVK", max_order=5)
    client.write_log(sid, "GW sky map", filename="bayestar.multiorder.fits",
                    filecontents=ext_skymaps.write_skymap_bytes(gw_map))
    found = raven.handle_superevent_message(
        {"uid": sid, "alert_type": "new", "data": superevent, "object": superevent,
         "node": "superevent"}, client=client, settings=settings)
    assert [c.external_id for c in found] == [graceid]
    coincidence = found[0]
    assert coincidence.overlap_integral > 10  # both maps centred on the same place
    assert coincidence.spatiotemporal_coinc_far == pytest.approx(
        coincidence.temporal_coinc_far / coincidence.overlap_integral)
    fresh = client.superevent(sid).json()
    assert fresh["space_coinc_far"] == pytest.approx(coincidence.spatiotemporal_coinc_far)
    # 6 s x 305/yr x 1e-7 Hz / overlap x 5 x 4 trials is far below one per month
    assert {"EM_COINC", "RAVEN_ALERT", "HIGH_PROFILE"} <= labels(client, sid)
    assert "RAVEN_ALERT" in labels(client, graceid)
    assert "RAVEN_ALERT" in labels(client, superevent["preferred_event"])

    # A search that stopped before the last label (the G event's) is completed by the
    # next one, although the GRB already carries RAVEN_ALERT (not published twice).
    preferred = superevent["preferred_event"]
    client.removeLabel(preferred, "RAVEN_ALERT")
    assert "RAVEN_ALERT" not in labels(client, preferred)
    again = raven.search_for_superevent(client, client.superevent(sid).json(), settings)
    assert [c.publishable for c in again] == [False]  # the GRB carries RAVEN_ALERT now
    assert "RAVEN_ALERT" in labels(client, preferred)


def test_mock_grb_pairs_with_mdc_superevent(client, settings):
    t_gw = 1400003000.0
    superevent = make_cbc_superevent(client, t_gw, 1e-8, category="M")
    graceid = process_notice(make_mock_grb_notice("MS3000", t_gw + 0.2, 10.0, 10.0, 5.0),
                             client=client, settings=settings)
    assert graceid.startswith("M")  # search MDC
    assert client.superevent(superevent["superevent_id"]).json()["em_type"] == graceid


def test_subthreshold_event_records_its_trigger_id(client, settings):
    """Issue 13: GraceDB stores Trans_Num as a sub-threshold event's trigger id, so the
    next notice of the trigger finds the event (GWCelery's look-up:
    ``grbevent.trigger_id = "578679123"``); a low-reliability notice makes no event."""
    graceid = process_notice(notice("fermi_gbm_subthresh.xml"), client=client,
                             settings=settings, run_raven=False)
    event = client.event(graceid).json()
    assert (event["group"], event["search"]) == ("External", "SubGRB")
    assert event["extra_attributes"]["GRB"]["trigger_id"] == "578679123"
    again = process_notice(notice("fermi_gbm_subthresh.xml"), client=client,
                           settings=settings, run_raven=False)
    assert again == graceid
    before = events_of_trigger(client, "Fermi", event["gpstime"])
    assert process_notice(notice("fermi_gbm_subthresh_lowconfidence.xml"), client=client,
                          settings=settings, run_raven=False) is None
    assert events_of_trigger(client, "Fermi", event["gpstime"]) == before


def test_integral_event_gets_the_trigger_id_of_its_ivorn(client, settings):
    graceid = process_notice(notice("integral_wakeup_test.xml"), client=client,
                             settings=settings, run_raven=False)
    event = client.event(graceid).json()
    assert event["group"] == "Test"  # role="test": GWCelery's group Test
    assert event["extra_attributes"]["GRB"]["trigger_id"] == "000000"


KAFKA = Path(__file__).resolve().parent / "data" / "gcn_kafka"


def test_json_notices_become_external_events(client, settings):
    """Issue 13: SVOM and IceCube GCN Kafka JSON notices become external events as
    GWCelery 3.0 makes them (fixtures: tests/data/gcn_kafka/SOURCES.md)."""
    from gw_ops.handlers.kafka_notices import process_json_notice

    svom = (KAFKA / "kafka_alert_svom_wakeup.json").read_bytes()
    graceid = process_json_notice(svom, client=client, settings=settings, run_raven=False)
    event = client.event(graceid).json()
    assert (event["group"], event["pipeline"], event["search"]) == ("External", "SVOM", "GRB")
    assert event["extra_attributes"]["GRB"]["trigger_id"] == "sb24022203"
    assert labels(client, graceid) == {"EXT_SKYMAP_READY"}
    assert "svom_skymap.multiorder.fits" in client.files(graceid).json()
    logs = log_count(client, graceid)
    assert process_json_notice(svom, client=client, settings=settings,
                               run_raven=False) == graceid
    assert log_count(client, graceid) == logs  # a redelivery changes nothing

    noise = json.loads((KAFKA / "kafka_alert_icecube_noise.json").read_text())
    neutrino = process_json_notice(noise, client=client, settings=settings, run_raven=False)
    event = client.event(neutrino).json()
    assert (event["pipeline"], event["extra_attributes"]["GRB"]["trigger_id"]) == \
        ("IceCube", "137840_57034692_0")
    assert "NOT_GRB" in labels(client, neutrino)  # p_astro 0.24 < 0.5
    retraction = process_json_notice((KAFKA / "kafka_alert_icecube_retraction.json").read_bytes(),
                                     client=client, settings=settings, run_raven=False)
    assert "NOT_GRB" in labels(client, retraction)
    assert "EXT_SKYMAP_READY" not in labels(client, retraction)  # no position


def test_json_notice_rejects_bad_input_before_gracedb(client, settings):
    from gw_ops.handlers.kafka_notices import process_json_notice

    with pytest.raises(InvalidNotice, match="not JSON"):
        process_json_notice(b"{nope", client=client, settings=settings)
    with pytest.raises(InvalidNotice, match="exceeds"):
        process_json_notice(b" " * (2 * 1024 * 1024), client=client, settings=settings)


def test_targeted_trigger_vetoed_as_not_grb_marks_no_coincidence(client, settings):
    """GWCelery 3.0.0: a targeted sub-threshold trigger with NOT_GRB (FAR above the
    Fermi threshold) gets no EM_COINC; an accepted one does (joint FAR of the targeted
    search)."""
    from gw_ops.handlers.kafka_notices import process_json_notice
    from gw_ops.rules.external_json import notice_from_json

    vetoed = json.loads((KAFKA / "kafka_alert_fermi_targeted_ignore.json").read_text())
    t_ext = notice_from_json(vetoed, settings).gpstime  # the trigger's centre
    superevent = make_cbc_superevent(client, t_ext - 2.0, 1e-7)
    sid = superevent["superevent_id"]
    graceid = process_json_notice(vetoed, client=client, settings=settings)
    assert "NOT_GRB" in labels(client, graceid)
    assert "EM_COINC" not in labels(client, graceid) | labels(client, sid)

    accepted = json.loads((KAFKA / "kafka_alert_fermi_targeted.json").read_text())
    accepted["id"] = ["699554499711", "20513"]  # another trigger at the same time
    other = process_json_notice(accepted, client=client, settings=settings)
    assert "NOT_GRB" not in labels(client, other)
    assert "EM_COINC" in labels(client, other) and "EM_COINC" in labels(client, sid)
    record = json.loads(client.files(sid, raven_rules.COINCIDENCE_FILE).read())
    assert record["ext_search"] == "SubGRBTargeted" and record["temporal_coinc_far"] > 0
