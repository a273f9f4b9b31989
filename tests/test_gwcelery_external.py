"""External notices against GWCelery's test rows (issue 13 item 6): VOEvent notices
(2.5.0 rows, gw-ops' copies of the same GCN notices in tests/data/gcn) and GCN Kafka JSON
notices (3.0.0 rows and fixtures in tests/data/gcn_kafka)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gw_ops.config import get_settings
from gw_ops.handlers.external_triggers import parse_notice
from gw_ops.rules import external as rules
from gw_ops.rules.external_json import notice_from_json
from tests.gwcelery_tables import in_2_5_0, rows

DATA = Path(__file__).resolve().parent / "data"
SETTINGS = get_settings(env={})

#: GWCelery's fixture -> gw-ops' copy of the same notice (tests/data/gcn/SOURCES.md).
VOEVENT_FIXTURES = {
    "fermi_grb_gcn.xml": "fermi_gbm_fin_pos.xml",
    "fermi_subthresh_grb_lowconfidence.xml": "fermi_gbm_subthresh_lowconfidence.xml",
    "fermi_subthresh_grb_gcn.xml": "fermi_gbm_subthresh.xml",
    "fermi_noise_gcn.xml": "fermi_gbm_flt_pos_noise.xml",
    "fermi_initial_grb_gcn.xml": "fermi_gbm_alert.xml",
}


def _voevent(name: str) -> bytes:
    return (DATA / "gcn" / name).read_bytes()


def _fixture_of(row) -> str | None:
    if "fixture" not in row:
        return None
    name = row["fixture"].split()[0].rsplit("/", 1)[-1]
    return VOEVENT_FIXTURES.get(name)


def _outcome(payload: bytes, settings=SETTINGS):
    """(group, search, pipeline, labels) of the event a notice makes, or None (dropped)."""
    notice = parse_notice(payload, settings=settings)
    if rules.drop_reason(notice, settings):
        return None
    group, search = rules.gracedb_group_and_search(notice, settings)
    return {"group": group, "search": search, "pipeline": notice.pipeline,
            "labels": ["NOT_GRB"] if notice.not_grb_reasons else None}


@pytest.mark.parametrize("row", rows("external_notices.json",
                                     lambda r: in_2_5_0(r) and _fixture_of(r)))
def test_voevent_notice_rows(row):
    outcome = _outcome(_voevent(_fixture_of(row)))
    expected = row["expected_create_event"]
    if expected is None:
        assert outcome is None  # dropped (low reliability): no event at all
    else:
        assert outcome == expected


def test_fermi_noise_2_most_likely_class_only():
    """``fermi_noise_gcn_2.xml`` (GWCelery): Most_Likely_Index 4 at 49 % -> NOT_GRB; the
    second class does not rescue it."""
    text = _voevent("fermi_gbm_flt_pos.xml").decode()
    for name, value in (("Most_Likely_Prob", "49"), ("Sec_Most_Likely_Index", "4"),
                        ("Sec_Most_Likely_Prob", "51")):
        start = text.index(f'name="{name}"')
        value_at = text.index('value="', start) + len('value="')
        text = text[:value_at] + value + text[text.index('"', value_at):]
    assert _outcome(text.encode())["labels"] == ["NOT_GRB"]


def test_integral_trigger_id_from_ivorn():
    """``test_handle_create_grb_event`` (2.5.0): INTEGRAL's id is in the IVORN fragment;
    replays and MDC tests keep TrigID."""
    assert rules.integral_trigger_id("ivo://nasa.gsfc.gcn/INTEGRAL#Wakeup_Pos_123456-0-640") \
        == "123456"
    assert rules.integral_trigger_id(
        "ivo://lvk.internal/INTEGRAL#O3-replay_event2023-04-04T06:31:24.821Z") is None
    assert parse_notice(_voevent("integral_wakeup_test.xml"), settings=SETTINGS).trigger_id \
        == "000000"


@pytest.mark.parametrize("host, created", [
    ("https://gracedb.ligo.org/api/", False),
    ("https://gracedb-playground.ligo.org/api/", True),
    ("https://gracedb-test.ligo.org/api/", True)])
def test_handle_integral_test(host, created):
    """``test_handle_integral_test`` (2.5.0): an INTEGRAL test notice becomes a Test-group
    event, except on the production GraceDB where it is dropped."""
    settings = dataclasses.replace(SETTINGS, gracedb_url=host)
    outcome = _outcome(_voevent("integral_wakeup_test.xml"), settings)
    if created:
        assert outcome == {"group": "Test", "search": "GRB", "pipeline": "INTEGRAL",
                           "labels": None}
    else:
        assert outcome is None


@pytest.mark.parametrize("name, group", [("snews.xml", "External"),
                                         ("snews_test.xml", "Test")])
def test_handle_create_snews_event(name, group):
    """``test_handle_create_snews_event``: role test -> group Test (search unchanged)."""
    assert _outcome(_voevent(name)) == {"group": group, "search": "Supernova",
                                        "pipeline": "SNEWS", "labels": None}


@pytest.mark.parametrize("existing, new, replaces", [
    ("GRB", "GRB", True), ("SubGRB", "GRB", True), ("GRB", "SubGRB", False),
    ("SubGRB", "SubGRB", True)])
def test_handle_replace_grb_event(existing, new, replaces):
    """``test_handle_replace_grb_event`` (2.5.0): a sub-threshold notice never replaces
    a GRB event."""
    assert rules.may_replace(existing, new) is replaces


# --- GCN Kafka JSON notices (GWCelery 3.0.0) --------------------------------------------

def _json(row) -> dict:
    return json.loads((DATA / "gcn_kafka" / row["fixture"].rsplit("/", 1)[-1]).read_text())


def _has_kafka_fixture(row) -> bool:
    return "fixture" in row and (DATA / "gcn_kafka" / row["fixture"].split()[0].rsplit("/", 1)[-1]).exists()


@pytest.mark.parametrize("row", rows("kafka_notices.json",
                                     lambda r: _has_kafka_fixture(r) and
                                     ("derived" in r or "expected" in r)))
def test_kafka_notice_rows(row):
    expected = row.get("expected") or row["derived"]
    alert_types = row.get("param_alert_type") or [None]
    for alert_type in alert_types:
        alert = _json(row)
        if alert_type is not None:
            alert["alert_type"] = alert_type
        notice = notice_from_json(alert, SETTINGS)
        group, search = rules.gracedb_group_and_search(notice, SETTINGS)
        assert (notice.pipeline, search, group) == \
            (expected["pipeline"], expected["search"], expected["group"])
        labels = expected.get("labels", expected.get("labels_on_create"))
        vetoed = labels == ["NOT_GRB"] or alert_type == "retraction"
        assert bool(notice.not_grb_reasons) is vetoed, notice.not_grb_reasons
        if "notice_type" in expected:
            assert notice.notice_type == expected["notice_type"]
        assert notice.trigger_id == "_".join(str(x) for x in alert["id"])
        if "trigger_id" in expected and not expected["trigger_id"].startswith('"'):
            assert notice.trigger_id == expected["trigger_id"]
        if expected.get("skymap") == "none":
            assert not notice.has_position


def test_targeted_notice_time_is_the_centre():
    """GWCelery 3.0.0: a targeted trigger's time is its start + half its duration."""
    alert = json.loads((DATA / "gcn_kafka" / "kafka_alert_fermi_targeted.json").read_text())
    notice = notice_from_json(alert, SETTINGS)
    start = notice_from_json({**alert, "instrument": "GBM"}, SETTINGS).gpstime
    assert notice.gpstime - start == pytest.approx(1.024 / 2, abs=1e-6)


def test_test_tense_is_a_test_notice():
    alert = json.loads((DATA / "gcn_kafka" / "kafka_alert_svom_wakeup.json").read_text())
    notice = notice_from_json({**alert, "alert_tense": "test"}, SETTINGS)
    assert rules.gracedb_group_and_search(notice, SETTINGS) == ("Test", "GRB")


def test_chime_error_ellipse_becomes_the_circle_of_its_semi_major_axis():
    """CHIME sends ra_dec_error as [a, b, rotation] (deg): the circle of radius a contains it."""
    alert = json.loads((DATA / "kafka" / "json" / "kafka_alert_chime_detection.json").read_text())
    assert alert["ra_dec_error"] == [0.503806986334273, 0.598921231135782, 0]
    notice = notice_from_json(alert, SETTINGS)
    assert notice.error_radius == pytest.approx(0.598921231135782)
    assert (notice.pipeline, notice.search) == ("CHIME", "FRB")


@pytest.mark.parametrize("alert, reason", [
    ([], "not an object"),
    ({"id": ["x"], "trigger_time": "2024-02-22T08:51:31"}, "no instrument"),
    ({"instrument": "ECLAIRs", "trigger_time": "2024-02-22T08:51:31"}, "no id"),
    ({"instrument": "ECLAIRs", "id": ["x"]}, "no trigger_time"),
    ({"instrument": "ECLAIRs", "id": ["x"], "trigger_time": "yesterday"}, "malformed"),
    ({"instrument": "ECLAIRs", "id": ["x"], "trigger_time": "2024-02-22T08:51:31",
      "ra": 400.0, "dec": 0.0, "ra_dec_error": 1.0}, "outside the sky"),
    ({"instrument": "ECLAIRs", "id": ["x"], "trigger_time": "2024-02-22T08:51:31",
      "ra": "north"}, "not a finite number"),
    ({"instrument": "Unknown", "id": ["x"], "trigger_time": "2024-02-22T08:51:31"},
     "not one gw-ops knows"),
    ({"instrument": "ECLAIRs", "id": ["x"], "trigger_time": "2024-02-22T08:51:31",
      "ra": 1.0, "dec": 0.0, "ra_dec_error": [1.0, 0.5]}, "neither a radius nor an ellipse"),
])
def test_bad_json_notices_raise_invalid_notice(alert, reason):
    with pytest.raises(rules.InvalidNotice, match=reason):
        notice_from_json(alert, SETTINGS)
