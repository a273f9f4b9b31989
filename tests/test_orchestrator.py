"""Alert state machine: the pure decision tables (no GraceDB, no Redis).

The send path is tested through the local GraceDB service and the real Redis in
``test_orchestrator_gracedb.py``."""
from __future__ import annotations

import pytest

from gw_ops.formats import alert_content
from gw_ops.handlers import orchestrator as orc
from gw_ops.rules import alert_policy as policy
from gw_ops.rules import localization as localization_rules

P1, P2 = policy.preliminary_key(1), policy.preliminary_key(2)
LOW = policy.LESS_SIGNIFICANT_PRELIMINARY_KEY


# --- pure decisions -------------------------------------------------------------------

@pytest.mark.parametrize("label, labels, sent, expected", [
    ("SIGNIF_LOCKED", set(), set(), (alert_content.PRELIMINARY, P1)),
    ("LOW_SIGNIF_LOCKED", set(), set(), (alert_content.PRELIMINARY, LOW)),
    # a less-significant candidate raised by RAVEN still gets its significant Preliminary
    ("SIGNIF_LOCKED", {"LOW_SIGNIF_LOCKED"}, {LOW}, (alert_content.PRELIMINARY, P1)),
    ("LOW_SIGNIF_LOCKED", {"SIGNIF_LOCKED"}, set(), None),    # significant takes precedence
    ("LOW_SIGNIF_LOCKED", {"EARLY_WARNING"}, set(), None),
    ("LOW_SIGNIF_LOCKED", set(), {LOW}, None),
    ("LOW_SIGNIF_LOCKED", set(), {P1}, None),
    ("SIGNIF_LOCKED", {"ADVNO"}, set(), None),
    ("EARLY_WARNING", {"SIGNIF_LOCKED"}, set(), None),       # the full search took over
    ("SIGNIF_LOCKED", set(), {P1}, None),                     # same label twice: one alert
    ("SIGNIF_LOCKED", set(), {alert_content.INITIAL}, None),
    ("SIGNIF_LOCKED", {"DQV"}, set(), None),
    ("EARLY_WARNING", set(), set(), (alert_content.EARLY_WARNING, alert_content.EARLY_WARNING)),
    ("EARLY_WARNING", set(), {alert_content.EARLY_WARNING}, None),
    ("EARLY_WARNING", set(), {P1}, None),                     # too late for early warning
    ("ADVOK", set(), {P1}, (alert_content.INITIAL, alert_content.INITIAL)),
    ("ADVOK", set(), {P1, alert_content.INITIAL}, None),
    ("ADVNO", set(), {P1}, (alert_content.RETRACTION, alert_content.RETRACTION)),
    ("ADVNO", {"DQV"}, {P1}, (alert_content.RETRACTION, alert_content.RETRACTION)),
    ("ADVNO", set(), set(), None),                            # nothing public to retract
    ("ADVNO", set(), {P1, alert_content.RETRACTION}, None),
    ("ADVOK", set(), {P1, alert_content.RETRACTION}, None),          # nothing after a retraction
    ("EM_READY", set(), set(), None),
    ("ADVREQ", set(), set(), None),
])
def test_decide_on_label(label, labels, sent, expected):
    decision = policy.decide_on_label(label, labels, sent)
    assert (decision and (decision.alert_type, decision.key)) == expected


@pytest.mark.parametrize("labels, sent, due", [
    ({"SIGNIF_LOCKED"}, {P1}, True),
    ({"LOW_SIGNIF_LOCKED"}, {P1}, False),                     # low significance: one only
    ({"SIGNIF_LOCKED"}, set(), False),
    ({"SIGNIF_LOCKED"}, {P1, P2}, False),
    ({"SIGNIF_LOCKED"}, {P1, alert_content.INITIAL}, False),
    ({"SIGNIF_LOCKED"}, {P1, alert_content.RETRACTION}, False),
    ({"SIGNIF_LOCKED", "DQV"}, {P1}, False),
])
def test_decide_second_preliminary(labels, sent, due):
    decision = policy.decide_second_preliminary(labels, sent)
    assert bool(decision) == due
    if due:
        assert decision.key == P2 and decision.alert_type == alert_content.PRELIMINARY


@pytest.mark.parametrize("filename, version, sent, expected_key", [
    ("Bilby.multiorder.fits", 0, {P1, alert_content.INITIAL}, "Update:Bilby.multiorder.fits,0"),
    ("p_astro.json", 2, {P1, alert_content.INITIAL}, "Update:p_astro.json,2"),
    ("em_bright.json", 1, {P1, alert_content.INITIAL}, "Update:em_bright.json,1"),
    ("Bilby.multiorder.fits", 0, {P1}, None),                 # before Initial: no update
    ("Bilby.multiorder.fits", 0, {P1, alert_content.INITIAL, "Update:Bilby.multiorder.fits,0"}, None),
    ("Bilby.multiorder.fits", 0, {P1, alert_content.INITIAL, alert_content.RETRACTION}, None),
    ("bayestar.png", 0, {P1, alert_content.INITIAL}, None),
    ("S230518h-2-Initial.xml", 0, {P1, alert_content.INITIAL}, None),
    (None, None, {P1, alert_content.INITIAL}, None),
])
def test_decide_on_file(filename, version, sent, expected_key):
    decision = policy.decide_on_file(filename, version, set(), sent)
    assert (decision and decision.key) == expected_key


def test_significance_and_serials():
    assert policy.is_significant({"SIGNIF_LOCKED"})
    assert not policy.is_significant({"LOW_SIGNIF_LOCKED"})
    assert policy.is_significant({"ADVOK"})
    assert policy.next_serial_number([]) == 1
    assert policy.next_serial_number([1, 3, 2]) == 4


def test_sent_alerts_from_logs():
    logs = [
        {"filename": "bayestar.multiorder.fits", "comment": "copied"},
        {"filename": "S1-1-Preliminary.xml", "comment": "Sent ... [alert key Preliminary-1]"},
        {"filename": "MS230101a-2-Preliminary.xml", "comment": "uploaded by hand"},
        {"filename": "MS230101a-3-Initial.xml", "comment": ""},
        {"filename": "MS230101a-4-Update.xml", "comment": "[alert key Update:x.fits,0]"},
        {"filename": "MS230101a-1-Preliminary.json", "comment": "[alert key Preliminary-1]"},
        {"comment": "no file"},
    ]
    assert policy.sent_alerts_from_logs(logs) == {P1: 2, alert_content.INITIAL: 3, "Update:x.fits,0": 4}


def test_localization_order_puts_preferred_events_first():
    messages = [{"uid": f"G{i}", "object": {"superevent": "S1"}} for i in range(16)]
    messages.insert(3, {"uid": "G99", "object": {}})           # not in a superevent yet
    messages.append({"uid": "G5", "object": {"superevent": "S1"}})  # duplicate delivery
    order = [m["uid"] for m in localization_rules.localization_order(messages, {"S1": "G11"})]
    assert order[0] == "G11"
    assert order[1] == "G99"
    assert order.count("G5") == 1 and len(order) == 17
    assert order[2:] == [f"G{i}" for i in range(16) if i != 11]
    skipped = localization_rules.localization_order(messages, {"S1": "G11"}, skip_superseded=True)
    assert [m["uid"] for m in skipped] == ["G11", "G99"]
    assert localization_rules.localization_order(["G1", "G2"], {"S": "G2"}) == ["G2", "G1"]


def test_handler_is_registered_for_superevent_nodes():
    spec = orc.handle_superevent.handler_spec
    assert set(spec.keys) == {"superevent", "mdc_superevent", "test_superevent"}
    assert spec.task_kwargs["priority_weight"] > 1


@pytest.mark.parametrize("trigger_id, number", [
    ("mock1354000000", 0),   # gw_ops.mock.pipeline's mock GRBs (issue 11's lost alert)
    ("123456789", 123456789),
    (123456789, 123456789),
    ("132910_57145925", 0),  # IceCube run_event
    (None, 0),
    ("", 0),
])
def test_gcn_notice_number_of_string_trigger_ids(trigger_id, number):
    assert policy.gcn_notice_number(trigger_id) == number
