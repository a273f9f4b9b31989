"""Alert policy: which label or file sends which public alert (pure decisions).

State machine (label added to a superevent -> alert):

============================  ================================================
``EARLY_WARNING``             EarlyWarning (once; not after a Preliminary, not once
                              ``SIGNIF_LOCKED``); freezes the preferred event
``SIGNIF_LOCKED``             significant Preliminary #1 (once), also after a
                              less-significant one (a RAVEN coincidence raises a
                              candidate); the preferred event is re-selected first
``LOW_SIGNIF_LOCKED``         less-significant Preliminary (once; not when
                              ``SIGNIF_LOCKED``/``EARLY_WARNING``/``ADVOK``/``ADVNO``)
(each Preliminary)            copies the preferred event's sky map and classification
                              files first; labels ``GCN_PRELIM_SENT``
(after the clean-up timeout)  Preliminary #2 for significant candidates, with the
                              re-selected preferred event; a second less-significant
                              Preliminary unless the candidate was raised meanwhile
                              (``ADVREQ``, ``SIGNIF_LOCKED``, ``EARLY_WARNING``) or vetted
``ADVOK``                     Initial (once)
``ADVNO``                     Retraction (once; only after an earlier public alert)
new sky map / p_astro /       Update, once per uploaded file version, only after
em_bright file after Initial  the Initial alert and never after a Retraction
============================  ================================================

No alert follows a Retraction; ``DQV`` (data-quality veto) blocks every alert except the
Retraction.  Each alert has a *key* (``Preliminary-1``, ``Initial``,
``Update:<file>,<version>``...): the same key is never sent twice for one superevent.

The I/O around these decisions lives in :mod:`gw_ops.handlers.orchestrator` (labels and
files of superevents) and :mod:`gw_ops.handlers.alert_sender` (sending and recording).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gw_ops.formats import alert_content
from gw_ops.vocabulary import (
    ADVNO,
    ADVOK,
    ADVREQ,
    DQV,
    EARLY_WARNING,
    EMBRIGHT_FILENAME,
    LOW_SIGNIF_LOCKED,
    PASTRO_FILENAME,
    SIGNIF_LOCKED,
)


@dataclass(frozen=True)
class AlertDecision:
    """An alert to send.

    Attributes
    ----------
    alert_type : str
        One of :data:`gw_ops.formats.alert_content.ALERT_TYPES`.
    key : str
        Idempotency key: the same key is never sent twice for one superevent.
    reason : str
        Why (for logs).
    """

    alert_type: str
    key: str
    reason: str = ""


def preliminary_key(number: int) -> str:
    """Key of the ``number``-th significant Preliminary alert (1 or 2)."""
    return f"{alert_content.PRELIMINARY}-{number}"


#: Key of the less-significant Preliminary alert: a candidate that later becomes
#: significant (RAVEN_ALERT) still gets its significant ``Preliminary-1``.
LESS_SIGNIFICANT_PRELIMINARY_KEY = f"{alert_content.PRELIMINARY}-less-significant"

#: Key of the second less-significant Preliminary (after the clean-up timeout).
SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY = f"{LESS_SIGNIFICANT_PRELIMINARY_KEY}-2"

#: Labels after which the advocate has decided: no Preliminary or EarlyWarning any more.
_VETTED = frozenset({ADVOK, ADVNO})


def update_key(filename: str, file_version: int | str | None) -> str:
    """Key of the Update alert triggered by one version of one file."""
    return f"{alert_content.UPDATE}:{filename},{'' if file_version is None else file_version}"


def _has_public_alert(sent_keys: set[str]) -> bool:
    return bool(sent_keys - {alert_content.RETRACTION})


def decide_on_label(label: str, labels: Iterable[str],
                    sent_keys: Iterable[str]) -> AlertDecision | None:
    """The alert a newly added label calls for, if any.

    Parameters
    ----------
    label : str
        The label just added.
    labels : iterable of str
        All labels of the superevent now (``label`` included or not).
    sent_keys : iterable of str
        Keys of the alerts already sent for the superevent.

    Returns
    -------
    AlertDecision or None
    """
    labels = set(labels) | {label}
    sent = set(sent_keys)
    if alert_content.RETRACTION in sent:
        return None  # nothing follows a retraction
    if label == ADVNO:
        if not _has_public_alert(sent):
            return None  # nothing public to retract
        return AlertDecision(alert_content.RETRACTION, alert_content.RETRACTION, "ADVNO: vetted as not viable")
    if DQV in labels:
        return None
    if label == EARLY_WARNING:
        if (alert_content.EARLY_WARNING in sent or any(k.startswith(alert_content.PRELIMINARY) for k in sent)
                or SIGNIF_LOCKED in labels or labels & _VETTED):
            return None
        return AlertDecision(alert_content.EARLY_WARNING, alert_content.EARLY_WARNING,
                             "EARLY_WARNING label")
    if label == SIGNIF_LOCKED:
        if preliminary_key(1) in sent or alert_content.INITIAL in sent or labels & _VETTED:
            return None
        return AlertDecision(alert_content.PRELIMINARY, preliminary_key(1), f"{label} label")
    if label == LOW_SIGNIF_LOCKED:
        if (any(k.startswith(alert_content.PRELIMINARY) for k in sent) or alert_content.INITIAL in sent
                or labels & ({SIGNIF_LOCKED, EARLY_WARNING} | _VETTED)):
            return None
        return AlertDecision(alert_content.PRELIMINARY, LESS_SIGNIFICANT_PRELIMINARY_KEY,
                             f"{label} label: less-significant")
    if label == ADVOK:
        if alert_content.INITIAL in sent:
            return None
        return AlertDecision(alert_content.INITIAL, alert_content.INITIAL, "ADVOK: vetted as viable")
    return None


def decide_second_preliminary(labels: Iterable[str], sent_keys: Iterable[str],
                              follows: str | None = None) -> AlertDecision | None:
    """Whether a second Preliminary alert (after the clean-up timeout) goes out.

    ``follows`` names the first one (default: the significant ``Preliminary-1``).  After
    a significant one: only for significant candidates (``SIGNIF_LOCKED``), not once the
    Initial alert or a Retraction was sent or a DQV label came.  After a
    less-significant one (GWCelery 2.5): unless the candidate was raised or vetted
    meanwhile (``ADVREQ``, ``ADVOK``, ``ADVNO``, ``SIGNIF_LOCKED``, ``EARLY_WARNING``).
    """
    labels, sent = set(labels), set(sent_keys)
    if follows == LESS_SIGNIFICANT_PRELIMINARY_KEY:
        raised = {ADVREQ, SIGNIF_LOCKED, EARLY_WARNING, DQV} | _VETTED
        if (LESS_SIGNIFICANT_PRELIMINARY_KEY not in sent or labels & raised
                or SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY in sent
                or preliminary_key(1) in sent or alert_content.INITIAL in sent
                or alert_content.RETRACTION in sent):
            return None
        return AlertDecision(alert_content.PRELIMINARY, SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY,
                             "clean-up timeout: second less-significant preliminary")
    if (SIGNIF_LOCKED not in labels or DQV in labels or preliminary_key(1) not in sent
            or preliminary_key(2) in sent or alert_content.INITIAL in sent
            or alert_content.RETRACTION in sent):
        return None
    return AlertDecision(alert_content.PRELIMINARY, preliminary_key(2),
                         "clean-up timeout: re-selected preferred event")


def is_update_trigger_file(filename: str | None) -> bool:
    """Whether a file uploaded to a superevent is a new sky map or classification."""
    if not filename:
        return False
    name = filename.split(",")[0]
    return (name.endswith(".multiorder.fits") or name.endswith(PASTRO_FILENAME)
            or name.endswith(EMBRIGHT_FILENAME))


def decide_on_file(filename: str | None, file_version: int | str | None, labels: Iterable[str],
                   sent_keys: Iterable[str]) -> AlertDecision | None:
    """The Update alert a file uploaded to the superevent calls for, if any.

    A new sky map or classification after the Initial alert gives one Update per file
    version; before the Initial alert the Initial will carry it anyway.
    """
    sent, labels = set(sent_keys), set(labels)
    if (not is_update_trigger_file(filename) or alert_content.INITIAL not in sent
            or alert_content.RETRACTION in sent or DQV in labels):
        return None
    key = update_key(filename, file_version)
    if key in sent:
        return None
    return AlertDecision(alert_content.UPDATE, key, f"new file {filename}")


def is_significant(labels: Iterable[str]) -> bool:
    """Significance of the candidate from its lock labels (unlocked: significant)."""
    labels = set(labels)
    return not (LOW_SIGNIF_LOCKED in labels and SIGNIF_LOCKED not in labels)


def next_serial_number(taken: Iterable[int]) -> int:
    """The serial number (``Pkt_Ser_Num``) of the next notice: one above the highest."""
    return max(taken, default=0) + 1


_VOEVENT_FILE = re.compile(r"^(?P<sid>[A-Z]*S\d{6}[a-z]+)-(?P<serial>\d+)-(?P<type>[A-Za-z]+)"
                           r"\.xml$")
_KEY_IN_COMMENT = re.compile(r"\[alert key (?P<key>[^\]]+)\]")


def sent_alerts_from_logs(logs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Alerts recorded in a superevent's GraceDB log: ``{key: serial number}``.

    A log entry counts when its file is a notice (``<sid>-<n>-<AlertType>.xml``); its
    key is read from the comment (``[alert key ...]``), or, for notices uploaded by
    something else, derived from the type (the n-th Preliminary is ``Preliminary-n``).
    """
    sent: dict[str, int] = {}
    preliminaries = 0
    for entry in logs:
        match = _VOEVENT_FILE.match((entry.get("filename") or "").split(",")[0])
        if not match or match["type"] not in alert_content.ALERT_TYPES:
            continue
        serial = int(match["serial"])
        key_match = _KEY_IN_COMMENT.search(entry.get("comment") or "")
        if key_match:
            key = key_match["key"]
        elif match["type"] == alert_content.PRELIMINARY:
            preliminaries += 1
            key = preliminary_key(preliminaries)
        elif match["type"] == alert_content.UPDATE:
            key = f"{alert_content.UPDATE}:serial-{serial}"
        else:
            key = match["type"]
        sent.setdefault(key, serial)
    return sent


def latest_files(logs: Sequence[Mapping[str, Any]]) -> dict[str, int | None]:
    """The newest version of each file named in a GraceDB log: ``{name: version}``."""
    files: dict[str, int | None] = {}
    for entry in logs:
        name = entry.get("filename")
        if name:
            files[name.split(",")[0]] = entry.get("file_version")
    return files


def newest_matching(logs: Sequence[Mapping[str, Any]], suffix: str) -> str | None:
    """Name of the file ending in ``suffix`` uploaded last, if any."""
    chosen = None
    for entry in logs:
        name = (entry.get("filename") or "").split(",")[0]
        if name.endswith(suffix):
            chosen = name
    return chosen


def type_of_key(key: str) -> str:
    """Alert type of an alert key (``Preliminary-2`` -> ``Preliminary``)."""
    for alert_type in alert_content.ALERT_TYPES:
        if key.startswith(alert_type):
            return alert_type
    return key


def gcn_notice_number(trigger_id: Any) -> int:
    """``External_GCN_Notice_Id`` of a coincident trigger: its trigger id as a number.

    The VOEvent and JSON alert fields are integers, but trigger ids are strings and not
    always numbers (mock GRBs are ``mock<gps>``; some instruments use letters): such an
    id, or none, gives 0, and the alert names the trigger by its IVORN.
    """
    text = "" if trigger_id is None else str(trigger_id).strip()
    return int(text) if text.isdigit() else 0


#: :func:`decide_signoff`: the advocate was not asked (no ``ADVREQ``): nothing to wait for.
SIGNOFF_NOT_ASKED = "not asked"
#: :func:`decide_signoff`: asked (``ADVREQ``) and not answered yet: wait for the advocate.
SIGNOFF_WAIT = "wait"


def decide_signoff(labels: Iterable[str]) -> str:
    """Where the advocate signoff of a superevent stands, from its labels.

    Returns
    -------
    str
        ``ADVNO`` or ``ADVOK`` when the advocate answered (``ADVNO`` wins when both are
        there: a Retraction is final, and the Initial, if sent, came first), else
        :data:`SIGNOFF_WAIT` while ``ADVREQ`` asks for an answer, else
        :data:`SIGNOFF_NOT_ASKED`.
    """
    labels = set(labels)
    for answer in (ADVNO, ADVOK):
        if answer in labels:
            return answer
    return SIGNOFF_WAIT if ADVREQ in labels else SIGNOFF_NOT_ASKED
