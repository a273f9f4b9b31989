"""Reading GraceDB G-event JSON: kind, search, category, labels, detectors, SNR.

Shared by the superevent rules, the thresholds and RAVEN.  Pure functions of the event
dicts GraceDB returns (``group``, ``pipeline``, ``search``, ``labels``,
``extra_attributes``...).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gw_ops.errors import PermanentError
from gw_ops.vocabulary import BURST_PIPELINES, MDC_SEARCH, TEST_GROUP


class SupereventError(PermanentError, ValueError):
    """A message the superevent manager can never process (malformed or inconsistent).

    A :class:`~gw_ops.errors.PermanentError`: the lane dead-letters it at once instead of
    retrying it.
    """


def require(event: Mapping[str, Any], key: str) -> Any:
    """``event[key]``, or a :class:`SupereventError` naming the event and the field."""
    try:
        return event[key]
    except KeyError:
        raise SupereventError(
            f"event {event.get('graceid', '?')} lacks the field {key!r}") from None


def event_kind(event: Mapping[str, Any]) -> str:
    """``"cbc"`` or ``"burst"``: which rules (completeness, thresholds) apply.

    The group says it for CBC and Burst events; ``Test``-group events are classified
    by their pipeline.
    """
    group = str(require(event, "group")).lower()
    if group in ("cbc", "burst"):
        return group
    return "burst" if str(require(event, "pipeline")).lower() in BURST_PIPELINES else "cbc"


def event_search(event: Mapping[str, Any]) -> str:
    """The event's search in lowercase (``allsky``, ``earlywarning``, ``mdc``, ...)."""
    return str(event.get("search") or "allsky").lower()


def event_category(event: Mapping[str, Any]) -> str:
    """Superevent category of an event: ``mdc``, ``test`` or ``production``."""
    if event_search(event) == MDC_SEARCH.lower():
        return "mdc"
    if str(require(event, "group")).lower() == TEST_GROUP.lower():
        return "test"
    return "production"


def event_labels(event: Mapping[str, Any]) -> frozenset[str]:
    """The event's labels as a set."""
    return frozenset(event.get("labels") or ())


def event_instruments(event: Mapping[str, Any]) -> frozenset[str]:
    """Detectors that contributed data to the event.

    The ``SingleInspiral`` rows of a CBC event are preferred over the ``instruments``
    string because a pipeline may list detectors there that produced no trigger.
    """
    singles = (event.get("extra_attributes") or {}).get("SingleInspiral") or ()
    ifos = {single["ifo"] for single in singles if single.get("ifo")}
    if ifos:
        return frozenset(ifos)
    return frozenset(ifo.strip() for ifo in str(event.get("instruments") or "").split(",")
                     if ifo.strip())


def event_snr(event: Mapping[str, Any]) -> float:
    """Network SNR of an event (CBC: CoincInspiral; cWB: MultiBurst; oLIB: omicron;
    MLy: MLyBurst)."""
    attributes = event.get("extra_attributes") or {}
    try:
        if event_kind(event) == "cbc":
            return float(attributes["CoincInspiral"]["snr"])
        if str(event.get("pipeline", "")).lower() == "olib":
            return float(attributes["LalInferenceBurst"]["omicron_snr_network"])
        if str(event.get("pipeline", "")).lower() == "mly":
            return float(attributes["MLyBurst"]["SNR"])
        return float(attributes["MultiBurst"]["snr"])
    except (KeyError, TypeError) as exc:
        raise SupereventError(f"event {event.get('graceid', '?')} has no SNR "
                              f"({exc!r} missing in extra_attributes)") from None


def with_label(event: Mapping[str, Any], label: str | None) -> dict[str, Any]:
    """A copy of the event whose labels include ``label`` (the one a message announces)."""
    merged = dict(event)
    if label:
        merged["labels"] = sorted(event_labels(event) | {label})
    return merged
