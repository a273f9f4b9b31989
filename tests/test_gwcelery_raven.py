"""RAVEN publishing rule against GWCelery 2.5.0's ``test_trigger_raven_alert`` rows
(issue 13 item 3), the label order of a publication (item 1), the SubGRBTargeted joint
FAR and the 365-day year of the external rates (item 7)."""
from __future__ import annotations

import math

import pytest

from gw_ops.config import get_settings
from gw_ops.rules import raven
from gw_ops.rules.events import event_kind
from gw_ops.rules.thresholds import parse_alert_thresholds
from tests.gwcelery_tables import in_2_5_0, rows

SETTINGS = get_settings(env={})
THRESHOLDS = parse_alert_thresholds(SETTINGS.superevent_alert_thresholds)
DAY, YEAR = 86400.0, 365 * 86400.0


@pytest.mark.parametrize("row", rows("trigger_raven_alert.json", in_2_5_0))
def test_trigger_raven_alert(row):
    superevent, ext = row["superevent"], row["ext_event"]
    preferred = superevent["preferred_event_data"]
    # GWCelery's test names the GW group explicitly; the lookups use it
    group = row["gw_group_argument"]
    kind = event_kind({"group": group, "pipeline": "cwb" if group == "Burst" else "gstlal"})
    decision = raven.publish_decision(
        gw_kind=kind, gw_search=preferred["search"].lower(), gw_far=superevent["far"],
        gw_group=preferred["group"],
        gw_category="Test" if superevent["superevent_id"].startswith("TS") else "Production",
        ext_event=ext, temporal=row["coinc_far"].get("temporal_coinc_far"),
        spatial=row["coinc_far"].get("spatiotemporal_coinc_far"), thresholds=THRESHOLDS,
        settings=SETTINGS)
    assert decision.publish is row["expected_raven_alert"]
    reference = row["reference_2.5.0"]
    for name in ("far_type", "trials_factor", "passes_far", "ext_subthreshold", "not_grb",
                 "missing_skymap", "test_event", "previous_raven_alert", "negative_far"):
        assert getattr(decision, name) == reference[name], name
    assert decision.far_with_trials == pytest.approx(reference["far_with_trials"], rel=1e-12)
    assert decision.threshold == pytest.approx(reference["threshold"], rel=1e-12)
    if row["expected_raven_alert"]:
        preferred_id = row["expected_labels_in_order"][-1][1]
        written = raven.raven_alert_labels(superevent["superevent_id"], ext["graceid"],
                                           preferred_id)
        assert [list(pair) for pair in written] == row["expected_labels_in_order"]


def test_subgrb_targeted_joint_far():
    """ligo-raven's targeted formula with GWCelery 2.5.0's thresholds: GW 10/day (the CBC
    all-sky less-significant FAR), Fermi GRB 1e-4 Hz; Fermi window (-1, 11) s."""
    window = raven.coincidence_window(SETTINGS, "Fermi", "SubGRBTargeted", "cbc")
    assert window == (-1, 11)
    grb_far, gw_far = 1e-5, 1e-7
    z = 12 * grb_far * gw_far
    z_max = 12 * 1e-4 * (10 / DAY)
    expected = z * (1 - math.log(z / z_max))
    ext = {"graceid": "E1", "gpstime": 1e9 + 2, "pipeline": "Fermi",
           "search": "SubGRBTargeted", "group": "External", "labels": [], "far": grb_far}
    superevent = {"superevent_id": "S1", "t_0": 1e9, "far": gw_far, "category": "Production",
                  "preferred_event": "G1",
                  "preferred_event_data": {"graceid": "G1", "group": "CBC",
                                           "pipeline": "gstlal", "search": "AllSky"}}
    result = raven.evaluate(superevent, ext, SETTINGS, overlap=10.0)
    assert result.temporal_coinc_far == pytest.approx(expected, rel=1e-12)
    assert result.spatiotemporal_coinc_far == pytest.approx(expected / 10, rel=1e-12)
    assert result.publishable  # a targeted trigger is not "sub-threshold" for publishing


@pytest.mark.parametrize("search, per_year", [("GRB", 305), ("MDC", 305), ("SubGRB", 370)])
def test_external_rates_are_gwcelery_2_5_0_per_365_days(search, per_year):
    """GWCelery 2.5.0 ``raven_ext_rates`` (thresholds_2.5.0.json other_settings)."""
    import json

    from tests.gwcelery_tables import TABLES
    about = json.loads((TABLES / "thresholds_2.5.0.json").read_text())["about"]
    theirs = about["other_settings"]["raven_ext_rates"][search]
    assert raven.external_rate_hz(SETTINGS, search) == pytest.approx(theirs, rel=1e-12)
    assert theirs == pytest.approx(per_year / YEAR, rel=1e-12)
