"""Orchestrator decisions against GWCelery 2.5.0's ``test_handle_superevent`` rows
(issue 13 items 1 and 5): which label sends which alert, the significant Preliminary
after a less-significant one, early warnings, and the second Preliminaries."""
from __future__ import annotations

import pytest

from gw_ops.config import get_settings
from gw_ops.formats import alert_content
from gw_ops.rules import alert_policy as policy
from gw_ops.rules.thresholds import parse_alert_thresholds, passes_thresholds
from tests.gwcelery_tables import rows

THRESHOLDS = parse_alert_thresholds(get_settings(env={}).superevent_alert_thresholds)
P1, P2 = policy.preliminary_key(1), policy.preliminary_key(2)
LOW = policy.LESS_SIGNIFICANT_PRELIMINARY_KEY
LOW2 = policy.SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY

#: What GWCelery's expectation text says -> (alert type, key) gw-ops decides, or None.
OUTCOMES = {
    "less-significant preliminary": (alert_content.PRELIMINARY, LOW),
    "significant preliminary": (alert_content.PRELIMINARY, P1),
    "LOW_SIGNIF_LOCKED added first, then significant preliminary": (alert_content.PRELIMINARY, P1),
    "second preliminary": (alert_content.PRELIMINARY, P2),
    "second less-significant preliminary": (alert_content.PRELIMINARY, LOW2),
    "EarlyWarning alert": (alert_content.EARLY_WARNING, alert_content.EARLY_WARNING),
    "no alert": None,
    "nothing": None,
    "second less-significant blocked": None,
}


def _expected(text: str):
    for prefix in sorted(OUTCOMES, key=len, reverse=True):
        if text.startswith(prefix):
            return OUTCOMES[prefix]
    raise AssertionError(f"no reading of {text!r}")


@pytest.mark.parametrize("row", rows("orchestrator_handle_superevent.json"))
def test_handle_superevent(row):
    label, labels = row["label"], set(row["superevent_labels"])
    expected = _expected(row["expected"])
    if row["alert_type"] != "label_added":
        decision = None  # only labels and files send alerts
    elif label == "GCN_PRELIM_SENT":  # the first significant Preliminary went out
        decision = policy.decide_second_preliminary(labels | {label}, {P1})
    elif label == "LOW_SIGNIF_PRELIM_SENT":  # the first less-significant one went out
        decision = policy.decide_second_preliminary(labels | {label}, {LOW}, follows=LOW)
    else:
        decision = policy.decide_on_label(label, labels, set())
    assert (decision and (decision.alert_type, decision.key)) == expected
    if expected is not None and expected[0] == alert_content.PRELIMINARY:
        # GWCelery re-checks at send time that the preferred event may be published
        significant, less_significant = passes_thresholds(row["preferred_event"], THRESHOLDS)
        assert less_significant if expected[1] in (LOW, LOW2) else significant


def test_significant_preliminary_follows_a_less_significant_one():
    """Item 1: a candidate raised by RAVEN after its less-significant alert still gets a
    significant Preliminary, and then its own second Preliminary."""
    first = policy.decide_on_label("LOW_SIGNIF_LOCKED", set(), set())
    assert first.key == LOW
    raised = policy.decide_on_label("SIGNIF_LOCKED", {"LOW_SIGNIF_LOCKED", "ADVREQ"}, {LOW})
    assert (raised.alert_type, raised.key) == (alert_content.PRELIMINARY, P1)
    assert policy.decide_second_preliminary({"SIGNIF_LOCKED"}, {LOW, P1}).key == P2
    assert policy.decide_second_preliminary({"SIGNIF_LOCKED"}, {LOW, P1}, follows=LOW) is None
