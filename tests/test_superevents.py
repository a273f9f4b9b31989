"""Pure rules of the superevent manager (no I/O): table-driven."""
from __future__ import annotations

import dataclasses

import pytest

from gw_ops import vocabulary
from gw_ops.config import get_settings
from gw_ops.handlers import superevents as handler
from gw_ops.rules import events, thresholds
from gw_ops.rules import superevents as se

SETTINGS = get_settings(env={})
THRESHOLDS = thresholds.parse_alert_thresholds(SETTINGS.superevent_alert_thresholds)
CBC_COMPLETE = ["PASTRO_READY", "EMBRIGHT_READY", "SKYMAP_READY"]
DAY, MONTH, YEAR = 86400.0, 30 * 86400.0, 365 * 86400.0


def cbc(graceid="G1", gpstime=1000.0, snr=10.0, far=1e-10, ifos=("H1", "L1"), labels=(),
        search="AllSky", group="CBC", pipeline="gstlal", offline=False):
    """A CBC event dict shaped like GraceDB's JSON."""
    return {"graceid": graceid, "gpstime": gpstime, "far": far, "group": group,
            "pipeline": pipeline, "search": search, "offline": offline,
            "labels": list(labels), "instruments": ",".join(ifos),
            "extra_attributes": {"CoincInspiral": {"snr": snr},
                                 "SingleInspiral": [{"ifo": ifo} for ifo in ifos]}}


def burst(graceid="G9", gpstime=1000.0, far=1e-10, duration=0.5, labels=(), search="AllSky",
          group="Burst", pipeline="CWB", ifos=("H1", "L1")):
    """A cWB event dict shaped like GraceDB's JSON."""
    return {"graceid": graceid, "gpstime": gpstime, "far": far, "group": group,
            "pipeline": pipeline, "search": search, "offline": False, "labels": list(labels),
            "instruments": ",".join(ifos),
            "extra_attributes": {"MultiBurst": {"duration": duration, "snr": 8.0}}}


def superevent(sid="S1", t_start=999.0, t_end=1001.0, gw_events=("G1",), category="Production",
               labels=(), preferred="G1"):
    return {"superevent_id": sid, "t_start": t_start, "t_0": (t_start + t_end) / 2,
            "t_end": t_end, "gw_events": list(gw_events), "category": category,
            "labels": list(labels), "preferred_event": preferred}


# --- windows ---------------------------------------------------------------------------

@pytest.mark.parametrize("event, settings_changes, expected", [
    (cbc(gpstime=1000.0), {}, (1000.0, 999.0, 1001.0)),
    (cbc(gpstime=1000.0), {"superevent_cbc_window_s": 2.5}, (1000.0, 997.5, 1002.5)),
    (cbc(gpstime=1000.0, group="Test", pipeline="pycbc"), {}, (1000.0, 999.0, 1001.0)),
    (burst(gpstime=1000.0, duration=0.25), {}, (1000.0, 999.75, 1000.25)),
    (burst(gpstime=1000.0, duration=4.0, group="Test"), {}, (1000.0, 996.0, 1004.0)),
    ({**burst(gpstime=1000.0, pipeline="oLIB"), "extra_attributes": {
        "LalInferenceBurst": {"quality_mean": 10.0, "frequency_mean": 100.0}}},
     {}, (1000.0, 999.9, 1000.1)),
])
def test_event_window(event, settings_changes, expected):
    settings = dataclasses.replace(SETTINGS, **settings_changes)
    t_0, window = se.event_window(event, settings)
    assert (t_0, window.t_start, window.t_end) == pytest.approx(expected)


def test_burst_without_duration_is_a_clear_error():
    event = burst(graceid="G77")
    event["extra_attributes"] = {}
    with pytest.raises(events.SupereventError, match="G77.*duration"):
        se.event_window(event, SETTINGS)


@pytest.mark.parametrize("a, b, overlaps, union", [
    ((0, 2), (1, 3), True, (0, 3)),
    ((0, 10), (4, 5), True, (0, 10)),
    ((0, 1), (1, 2), False, (0, 2)),   # touching end points do not overlap
    ((0, 1), (200, 202), False, (0, 202)),
])
def test_window_overlap_and_union(a, b, overlaps, union):
    wa, wb = se.Window(*a), se.Window(*b)
    assert wa.overlaps(wb) is overlaps and wb.overlaps(wa) is overlaps
    assert wa.union(wb) == se.Window(*union) == wb.union(wa)


# --- categories and joining ------------------------------------------------------------

@pytest.mark.parametrize("event, category, prefix", [
    (cbc(), "production", "S"),
    (cbc(search="MDC"), "mdc", "MS"),
    (cbc(group="Test"), "test", "TS"),
    (cbc(group="Test", search="MDC"), "mdc", "MS"),
    (burst(), "production", "S"),
])
def test_category(event, category, prefix):
    assert events.event_category(event) == category
    assert vocabulary.CATEGORY_PREFIX[category] == prefix


@pytest.mark.parametrize("graceid, window, category, candidates, action, sid", [
    # already a member: wins even over an earlier overlapping superevent
    ("G5", (999, 1001), "production",
     [superevent("S1", gw_events=["G1"]), superevent("S2", gw_events=["G5"])], "member", "S2"),
    # joins the first overlapping superevent
    ("G5", (1000.5, 1002.5), "production",
     [superevent("S0", 900, 902), superevent("S1"), superevent("S2", 1000, 1003)], "join", "S1"),
    # overlapping but of another category: never mixed
    ("G5", (999, 1001), "mdc", [superevent("S1")], "create", None),
    ("G5", (999, 1001), "mdc",
     [superevent("S1"), superevent("MS1", category="MDC")], "join", "MS1"),
    # 200 s away: a new superevent
    ("G5", (1199, 1201), "production", [superevent("S1")], "create", None),
    # touching windows do not join
    ("G5", (1001, 1003), "production", [superevent("S1")], "create", None),
    ("G5", (999, 1001), "production", [], "create", None),
])
def test_place_event(graceid, window, category, candidates, action, sid):
    placement = se.place_event(graceid, se.Window(*window), category, candidates)
    assert placement.action == action
    assert (placement.superevent or {}).get("superevent_id") == sid


# --- thresholds ----------------------------------------------------------------------------

def test_default_thresholds_match_the_documented_table():
    assert THRESHOLDS == {
        # GWCelery 2.5.0 (gwcelery/conf/__init__.py); less-significant: 2/day x trials
        ("cbc", "allsky"): thresholds.AlertThreshold(5, 1 / MONTH, 5, 10 / DAY),
        ("cbc", "earlywarning"): thresholds.AlertThreshold(3, 1 / MONTH, 3, None),
        ("cbc", "mdc"): thresholds.AlertThreshold(5, 1 / MONTH, 5, None),
        ("cbc", "ssm"): thresholds.AlertThreshold(2, None, 2, None),
        ("burst", "allsky"): thresholds.AlertThreshold(2, 1 / YEAR, 5, 10 / DAY),
        ("burst", "bbh"): thresholds.AlertThreshold(5, 1 / MONTH, 5, 10 / DAY),
    }


@pytest.mark.parametrize("entry", ["cbc:allsky:7:1/2592000:7", "cbc:allsky:x:1e-7:7:off",
                                   "cbc:allsky:7:1/0:7:off",
                                   "cbc:allsky:7:1/2592000:2/86400"])  # the old 5-field form
def test_malformed_threshold_entries_are_rejected(entry):
    with pytest.raises(ValueError, match="superevent_alert_thresholds"):
        thresholds.parse_alert_thresholds((entry,))


@pytest.mark.parametrize("event, significant, less_significant", [
    (cbc(far=0.99 / MONTH / 5), True, True),
    (cbc(far=1.01 / MONTH / 5), False, True),       # the trials factor matters
    (cbc(far=1.9 / DAY), False, True),              # less-significant: FAR <= 2/day
    (cbc(far=2.1 / DAY), False, False),
    # a significant event is less-significant too, even without a low threshold
    (cbc(far=0.99 / MONTH / 3, search="EarlyWarning"), True, True),
    (cbc(far=1.01 / MONTH / 3, search="EarlyWarning"), False, False),  # no low-signif EW
    (cbc(far=0.99 / MONTH / 5, search="MDC"), True, True),
    (cbc(far=1e-30, search="SSM"), False, False),   # SSM alerts are off in 2.5.0
    (burst(far=0.99 / YEAR / 2), True, True),
    (burst(far=1.01 / YEAR / 2), False, True),
    (burst(far=1.9 / DAY), False, True),
    (burst(far=0.99 / MONTH / 5, search="BBH"), True, True),
    (cbc(far=1.9 / DAY, labels=["RAVEN_ALERT"]), True, True),   # a GRB coincidence
    (cbc(far=1e-3, labels=["RAVEN_ALERT"]), True, True),
    (cbc(far=1e-3, labels=["RAVEN_ALERT", "INJ"]), False, False),
    (burst(far=1e-20, group="Test"), True, True),    # Test group: rules of its pipeline
    (cbc(far=1e-20, offline=True), False, False),    # offline is never published
    (cbc(far=1e-20, labels=["INJ"]), False, False),  # nor an injection
    (cbc(far=1e-20, search="IMBH"), False, False),   # a search without thresholds
])
def test_passes_thresholds(event, significant, less_significant):
    assert thresholds.passes_thresholds(event, THRESHOLDS) == (significant, less_significant)


@pytest.mark.parametrize("event, complete", [
    (cbc(labels=CBC_COMPLETE), True),
    (cbc(labels=["SKYMAP_READY", "PASTRO_READY"]), False),
    (cbc(labels=[]), False),
    (burst(labels=["SKYMAP_READY"]), True),
    (burst(labels=["PASTRO_READY"]), False),
    (cbc(group="Test", labels=CBC_COMPLETE), True),
])
def test_is_complete(event, complete):
    assert se.is_complete(event) is complete


# --- preferred event -----------------------------------------------------------------------

SIGNIFICANT, LESS_SIGNIFICANT, INSIGNIFICANT = 1e-10, 1e-6, 1e-4


@pytest.mark.parametrize("better, worse, why", [
    (cbc(far=INSIGNIFICANT, snr=5, labels=CBC_COMPLETE), cbc(far=SIGNIFICANT, snr=30),
     "complete beats incomplete"),
    (cbc(far=SIGNIFICANT, snr=5), cbc(far=LESS_SIGNIFICANT, snr=30),
     "significant beats less-significant"),
    (cbc(far=LESS_SIGNIFICANT, snr=5), cbc(far=INSIGNIFICANT, snr=30),
     "less-significant beats neither"),
    (cbc(far=SIGNIFICANT, snr=5, ifos=("H1",)),
     cbc(far=SIGNIFICANT, snr=30, search="EarlyWarning", ifos=("H1", "L1", "V1")),
     "all-sky beats early warning"),
    (cbc(far=INSIGNIFICANT, snr=5, search="SSM"), burst(far=INSIGNIFICANT),
     "CBC beats burst at equal significance"),
    (burst(far=1e-20), cbc(far=SIGNIFICANT, snr=30, search="SSM"),
     "a burst passing both thresholds beats an SSM event that has no low-signif threshold"),
    (cbc(far=SIGNIFICANT, snr=5, search="MDC"), burst(far=1e-30, search="MDC"),
     "CBC MDC beats burst MDC"),
    (cbc(far=SIGNIFICANT, snr=5, ifos=("H1", "L1", "V1")), cbc(far=SIGNIFICANT, snr=30),
     "more detectors beat higher SNR"),
    (cbc(far=SIGNIFICANT, snr=12), cbc(far=SIGNIFICANT / 10, snr=11),
     "then higher SNR, whatever the FAR"),
    (burst(far=1e-12), burst(far=1e-11), "burst: lower FAR"),
    (burst(far=0.0), burst(far=1e-30), "burst: FAR 0 ranks"),
    (cbc(far=LESS_SIGNIFICANT, snr=8),
     cbc(far=LESS_SIGNIFICANT, snr=30, search="EarlyWarning"),
     "low-significance all-sky beats low-significance early warning"),
])
def test_ranking_key_order(better, worse, why):
    assert se.ranking_key(better, THRESHOLDS) > se.ranking_key(worse, THRESHOLDS), why


# --- labels and locks ----------------------------------------------------------------------

@pytest.mark.parametrize("preferred, labels", [
    (cbc(far=SIGNIFICANT, labels=CBC_COMPLETE),
     ("EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED")),
    (cbc(far=SIGNIFICANT), ("ADVREQ",)),
    # a significant early warning locks the preferred event too (GWCelery 2.5)
    (cbc(far=SIGNIFICANT, search="EarlyWarning", labels=CBC_COMPLETE),
     ("EM_READY", "ADVREQ", "EARLY_WARNING", "LOW_SIGNIF_LOCKED")),
    (cbc(far=LESS_SIGNIFICANT, labels=CBC_COMPLETE), ("EM_READY", "LOW_SIGNIF_LOCKED")),
    (cbc(far=LESS_SIGNIFICANT), ()),
    (cbc(far=INSIGNIFICANT, labels=CBC_COMPLETE), ("EM_READY",)),
    (cbc(far=SIGNIFICANT, labels=CBC_COMPLETE + ["INJ"]), ("EM_READY",)),
    (cbc(far=LESS_SIGNIFICANT, search="SSM", labels=CBC_COMPLETE), ("EM_READY",)),
    (burst(far=1e-20, labels=["SKYMAP_READY"]),
     ("EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED")),
])
def test_wanted_labels(preferred, labels):
    assert se.wanted_labels(preferred, THRESHOLDS) == labels


def _plan(se_labels, preferred, event, window=(999.5, 1000.5), t_0=1000.0):
    return se.plan_update(superevent(labels=se_labels, preferred=preferred["graceid"]),
                          preferred, event, t_0, se.Window(*window), THRESHOLDS)


BETTER = cbc("G2", snr=30, far=SIGNIFICANT, labels=CBC_COMPLETE)
WORSE = cbc("G1", snr=8, far=LESS_SIGNIFICANT)


@pytest.mark.parametrize("se_labels, preferred, event, fields, labels", [
    # unlocked: the better event takes over, t_0 follows it, its labels come
    ([], WORSE, BETTER, {"preferred_event": "G2", "t_0": 1000.0},
     ("EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED")),
    # locked either way: preferred event frozen
    (["LOW_SIGNIF_LOCKED"], WORSE, BETTER, {}, ("EM_READY", "ADVREQ", "SIGNIF_LOCKED")),
    (["SIGNIF_LOCKED", "EM_READY"], WORSE, BETTER, {}, ("ADVREQ", "LOW_SIGNIF_LOCKED")),
    # labels come from the incoming event: a significant event raises a locked
    # superevent (the orchestrator then re-selects the preferred event)
    (["LOW_SIGNIF_LOCKED", "EM_READY"], WORSE, BETTER, {},
     ("ADVREQ", "SIGNIF_LOCKED")),
    # EARLY_WARNING alone does not freeze: the all-sky search can take over
    (["EARLY_WARNING"], {**WORSE, "search": "EarlyWarning"}, BETTER,
     {"preferred_event": "G2", "t_0": 1000.0},
     ("EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED")),
    # a worse event changes nothing
    ([], BETTER, WORSE, {}, ()),
    (["EM_READY", "ADVREQ", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"], BETTER, WORSE, {}, ()),
    # a label completing the preferred event itself: locks without a preferred change
    (["ADVREQ"], cbc("G2", far=SIGNIFICANT, labels=["SKYMAP_READY"]),
     cbc("G2", far=SIGNIFICANT, labels=CBC_COMPLETE), {},
     ("EM_READY", "SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED")),
])
def test_plan_update_preferred_event_and_locks(se_labels, preferred, event, fields, labels):
    update = _plan(se_labels, preferred, event)
    assert update.fields == fields
    assert update.labels == labels


@pytest.mark.parametrize("se_labels", [[], ["SIGNIF_LOCKED"]])
@pytest.mark.parametrize("window, fields", [
    ((999.5, 1000.5), {}),
    ((998.0, 1000.0), {"t_start": 998.0}),
    ((1000.0, 1003.0), {"t_end": 1003.0}),
    ((990.0, 1010.0), {"t_start": 990.0, "t_end": 1010.0}),
])
def test_plan_update_widens_the_window_even_when_locked(se_labels, window, fields):
    update = _plan(se_labels, BETTER, WORSE, window=window)
    assert update.fields == fields


def test_plan_update_is_idempotent():
    first = _plan([], WORSE, BETTER)
    after = superevent(labels=first.labels, preferred="G2")
    second = se.plan_update(after, first.preferred_event, BETTER, 1000.0,
                            se.Window(999.5, 1000.5), THRESHOLDS)
    assert second.fields == {} and second.labels == ()


# --- message triage --------------------------------------------------------------------

def _message(event, alert_type="new", label=None):
    return {"uid": event["graceid"], "alert_type": alert_type, "object": event,
            "data": {"name": label} if label else {}, "node": "cbc_gstlal"}


@pytest.mark.parametrize("message, settings_changes, reason", [
    (_message(cbc()), {}, None),
    (_message(cbc(labels=CBC_COMPLETE), "label_added", "SKYMAP_READY"), {}, None),
    (_message(cbc(), "log"), {}, "alert type"),
    # GWCelery 2.5 leaves KAGRA events out (superevent_skip_kagra, default on)
    (_message(cbc(ifos=("H1", "L1", "K1"))), {}, "KAGRA"),
    (_message(cbc(ifos=("H1", "L1", "K1"))), {"superevent_skip_kagra": False}, None),
    (_message(cbc(search="VTInjection")), {}, "VT injection"),
    # RAVEN_ALERT counts even on an incomplete event
    (_message(cbc(labels=["RAVEN_ALERT"]), "label_added", "RAVEN_ALERT"), {}, None),
    (_message(cbc(far=1.01 / 3600, labels=["RAVEN_ALERT"]), "label_added", "RAVEN_ALERT"),
     {}, "FAR"),
    (_message(cbc(labels=CBC_COMPLETE), "label_added", "DQOK"), {}, "does not affect"),
    (_message(cbc(labels=["SKYMAP_READY"]), "label_added", "SKYMAP_READY"), {},
     "not complete"),
    (_message(cbc(far=1.01 / 3600)), {}, "FAR"),
    (_message({**cbc(), "far": None}), {}, "no FAR"),
    (_message(cbc(offline=True)), {}, "offline"),
    (_message(cbc(ifos=("H1", "G1"))), {}, "instruments"),
    (_message(cbc(ifos=("H1", "V1"))), {"pipeline_instruments": ("H1", "L1")}, "instruments"),
    (_message(cbc(labels=["INJ"])), {}, "injection"),
    (_message(cbc(labels=["INJ"])), {"skip_injections": False}, None),
    (_message(cbc(search="MDC")), {"superevent_categories": ("production",)}, "category mdc"),
    (_message(cbc(group="Test")), {"superevent_categories": ("production",)}, "category test"),
])
def test_skip_reason(message, settings_changes, reason):
    settings = dataclasses.replace(SETTINGS, **settings_changes)
    event = events.with_label(message["object"], (message.get("data") or {}).get("name"))
    found = se.skip_reason(message, event, settings)
    if reason is None:
        assert found is None
    else:
        assert reason in found


def test_label_of_a_label_added_message_counts_even_if_the_object_lacks_it():
    message = _message(cbc(labels=["SKYMAP_READY", "PASTRO_READY"]), "label_added",
                       "EMBRIGHT_READY")
    event = events.with_label(message["object"], "EMBRIGHT_READY")
    assert se.is_complete(event)
    assert se.skip_reason(message, event, SETTINGS) is None


def test_sort_key_puts_labels_first_and_keeps_arrival_order():
    batch = [_message(cbc("G1")), _message(cbc("G2", labels=CBC_COMPLETE), "label_added", "X"),
             _message(cbc("G3")), _message(cbc("G4"), "label_added", "Y")]
    assert [m["uid"] for m in sorted(batch, key=se.sort_key)] == ["G2", "G4", "G1", "G3"]


def test_handler_registration():
    spec = handler.handle.handler_spec
    assert spec.kind == "lvalert"
    assert set(spec.keys) >= {"cbc_gstlal", "cbc_pycbc", "cbc_spiir", "cbc_mbta", "burst_cwb",
                              "burst_olib", "test_gstlal", "test_cwb"}
    assert spec.task_kwargs["pool"] == "superevent"
    assert spec.task_kwargs["sort_key"] is se.sort_key


def test_module_is_light_at_import():
    import subprocess
    import sys
    code = ("import sys, gw_ops.handlers.superevents; "
            "heavy = [m for m in ('ligo.gracedb.rest', 'ligo.skymap', 'astropy', 'healpy', "
            "'airflow', 'igwn_ligolw') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_coinc_factory_writes_a_readable_coinc():
    import io

    from igwn_ligolw import lsctables
    from igwn_ligolw import utils as ligolw_utils

    from tests.coinc_factory import coinc_xml
    content = coinc_xml(gpstime=1400000000.125, snr=12.0, far=2e-9, instruments=("H1", "L1", "V1"),
                        pipeline="pycbc", masses=(30.0, 25.0))
    document = ligolw_utils.load_fileobj(io.BytesIO(content))
    (coinc,) = lsctables.CoincInspiralTable.get_table(document)
    singles = lsctables.SnglInspiralTable.get_table(document)
    assert (coinc.end_time, coinc.end_time_ns) == (1400000000, 125000000)
    assert (coinc.snr, coinc.combined_far, coinc.mass) == (12.0, 2e-9, 55.0)
    assert sorted(row.ifo for row in singles) == ["H1", "L1", "V1"]
    assert sum(row.snr ** 2 for row in singles) == pytest.approx(144.0, rel=1e-6)
