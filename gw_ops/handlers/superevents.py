"""Superevent manager: groups the low-latency pipelines' events into superevents.

Every ``new`` or ``label_added`` LVAlert message of a search pipeline's node (a *G
event*) is handled, one at a time, by :func:`handle` in the Airflow pool
``superevent`` (one slot, so superevent decisions never race).  The rules follow
GWCelery 2.x:

* **Skip** events that are too frequent (FAR above ``superevent_far_threshold_hz``),
  offline, from detectors this deployment does not use, hardware injections (when
  ``skip_injections``), or of a category the deployment does not handle.
* **Category**: the MDC search gives ``mdc`` (superevent ids ``MS...``), the ``Test``
  group gives ``test`` (``TS...``), everything else ``production`` (``S...``).
  Categories never mix.
* **Windows**: a CBC event spans gpstime +- ``superevent_cbc_window_s``; a cWB event
  spans gpstime +- its ``duration``; an oLIB event gpstime +- quality/frequency (its
  mean number of cycles / frequency, i.e. the burst's duration).  The event joins the
  first superevent of its category (looked up within +- ``superevent_query_window_s``
  of its gpstime) whose [t_start, t_end] overlaps its window, widening the
  superevent to the union; otherwise it founds a superevent with itself preferred.
* **Preferred event**: the largest :func:`ranking_key` -- complete, then significant,
  then less-significant, then search (CBC all-sky > other CBC searches > burst),
  then number of detectors (CBC), then SNR (CBC) or lowest FAR (burst).  A superevent
  carrying a lock label (``SIGNIF_LOCKED`` or ``LOW_SIGNIF_LOCKED``) keeps its
  preferred event.
* **Superevent labels** (from its preferred event): ``EM_READY`` when complete;
  ``ADVREQ`` when significant; ``SIGNIF_LOCKED`` (``EARLY_WARNING`` for the
  early-warning search) when significant and complete; ``LOW_SIGNIF_LOCKED`` when it
  passes the less-significant threshold, is publishable and complete.

The rules are pure functions of GraceDB JSON dicts; :func:`handle` is the thin part
that talks to GraceDB.  It is idempotent -- GraceDB's state is the truth: an event
found in a superevent is never added again, and every decision (window, preferred
event, labels) is recomputed from what GraceDB holds, so a duplicate message changes
nothing and a retry after a crash mid-way completes the job.

Units: times are GPS seconds, durations seconds, false alarm rates Hz.
This module stays light at import (the DAG processor imports it): no GraceDB client,
no astropy or healpy at module level.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

from gw_ops.config import Settings, get_settings
from gw_ops.errors import PermanentError
from gw_ops.transport import lvalert

log = logging.getLogger(__name__)

# --- pipelines and nodes -------------------------------------------------------------

#: Pipelines whose events are compact-binary coalescence (CBC) candidates.  GraceDB
#: knows MBTA under its current name and under its O3 name ``MBTAOnline``.
CBC_PIPELINES: tuple[str, ...] = ("gstlal", "pycbc", "spiir", "mbta", "mbtaonline")
#: Pipelines whose events are unmodelled burst candidates.
BURST_PIPELINES: tuple[str, ...] = ("cwb", "olib")

#: LVAlert nodes handled: GraceDB publishes an event on ``<group>_<pipeline>``
#: (lowercase).  MDC-search events belong to the CBC/Burst groups, so they arrive on the
#: production nodes; the ``Test`` group has nodes of its own.
NODES: tuple[str, ...] = (
    *(f"cbc_{pipeline}" for pipeline in CBC_PIPELINES),
    *(f"burst_{pipeline}" for pipeline in BURST_PIPELINES),
    *(f"test_{pipeline}" for pipeline in CBC_PIPELINES + BURST_PIPELINES),
)

# --- labels --------------------------------------------------------------------------

SKYMAP_READY = "SKYMAP_READY"
PASTRO_READY = "PASTRO_READY"
EMBRIGHT_READY = "EMBRIGHT_READY"
#: Superevent label: the preferred event has all data products needed for annotations.
EM_READY = "EM_READY"
#: Superevent label: a significant candidate awaits an advocate.
ADVREQ = "ADVREQ"
#: Superevent label: significant and complete; the preferred event is frozen.
SIGNIF_LOCKED = "SIGNIF_LOCKED"
#: Superevent label: passes the less-significant threshold and complete; frozen.
LOW_SIGNIF_LOCKED = "LOW_SIGNIF_LOCKED"
#: Superevent label: the significant, complete preferred event is an early warning.
#: It does not freeze the preferred event: the full-bandwidth search must be able to
#: take over once it reports.
EARLY_WARNING = "EARLY_WARNING"
#: Event label of hardware injections.
INJ = "INJ"

#: Event labels that make an event complete, per kind of search.
REQUIRED_LABELS: Mapping[str, frozenset[str]] = {
    "cbc": frozenset({PASTRO_READY, EMBRIGHT_READY, SKYMAP_READY}),
    "burst": frozenset({SKYMAP_READY}),
}
#: Superevent labels after which the preferred event never changes.
LOCK_LABELS: frozenset[str] = frozenset({SIGNIF_LOCKED, LOW_SIGNIF_LOCKED})

#: Superevent-id prefix of each category (GraceDB assigns the ids).
CATEGORY_PREFIX: Mapping[str, str] = {"production": "S", "mdc": "MS", "test": "TS"}

#: Rank of searches in the preferred-event choice (larger wins).
_SEARCH_RANK_CBC_ALLSKY = 2
_SEARCH_RANK_CBC_OTHER = 1  # early warning, SSM, MDC, ...
_SEARCH_RANK_BURST = 0


class SupereventError(PermanentError, ValueError):
    """A message the superevent manager can never process (malformed or inconsistent).

    A :class:`~gw_ops.errors.PermanentError`: the lane dead-letters it at once instead of
    retrying it.
    """


# --- reading events ------------------------------------------------------------------


def _require(event: Mapping[str, Any], key: str) -> Any:
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
    group = str(_require(event, "group")).lower()
    if group in ("cbc", "burst"):
        return group
    return "burst" if str(_require(event, "pipeline")).lower() in BURST_PIPELINES else "cbc"


def event_search(event: Mapping[str, Any]) -> str:
    """The event's search in lowercase (``allsky``, ``earlywarning``, ``mdc``, ...)."""
    return str(event.get("search") or "allsky").lower()


def event_category(event: Mapping[str, Any]) -> str:
    """Superevent category of an event: ``mdc``, ``test`` or ``production``."""
    if event_search(event) == "mdc":
        return "mdc"
    if str(_require(event, "group")).lower() == "test":
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
    """Network SNR of an event (CBC: CoincInspiral; cWB: MultiBurst; oLIB: omicron)."""
    attributes = event.get("extra_attributes") or {}
    try:
        if event_kind(event) == "cbc":
            return float(attributes["CoincInspiral"]["snr"])
        if str(event.get("pipeline", "")).lower() == "olib":
            return float(attributes["LalInferenceBurst"]["omicron_snr_network"])
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


# --- time windows --------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A closed time interval [t_start, t_end] in GPS seconds."""

    t_start: float
    t_end: float

    def overlaps(self, other: Window) -> bool:
        """True when the two intervals share more than an end point."""
        return self.t_start < other.t_end and other.t_start < self.t_end

    def union(self, other: Window) -> Window:
        """Smallest interval covering both."""
        return Window(min(self.t_start, other.t_start), max(self.t_end, other.t_end))


def event_window(event: Mapping[str, Any], settings: Settings) -> tuple[float, Window]:
    """The event's reference time t_0 and its time window (GPS s).

    * CBC: gpstime +- ``settings.superevent_cbc_window_s``.
    * cWB: gpstime +- the event's ``duration`` (MultiBurst), so a long burst covers
      every candidate it could be confused with.
    * oLIB: gpstime +- quality_mean / frequency_mean (cycles / Hz = the burst's
      duration in s).
    * Other burst pipelines: like CBC.
    """
    t_0 = float(_require(event, "gpstime"))
    pipeline = str(event.get("pipeline", "")).lower()
    attributes = event.get("extra_attributes") or {}
    try:
        if event_kind(event) == "burst" and pipeline == "cwb":
            half_width = float(attributes["MultiBurst"]["duration"])
        elif event_kind(event) == "burst" and pipeline == "olib":
            olib = attributes["LalInferenceBurst"]
            half_width = float(olib["quality_mean"]) / float(olib["frequency_mean"])
        else:
            half_width = settings.superevent_cbc_window_s
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        raise SupereventError(f"burst event {event.get('graceid', '?')} has no usable "
                              f"duration in extra_attributes ({exc!r})") from None
    return t_0, Window(t_0 - half_width, t_0 + half_width)


def superevent_window(superevent: Mapping[str, Any]) -> Window:
    """The [t_start, t_end] window of a superevent dict."""
    return Window(float(superevent["t_start"]), float(superevent["t_end"]))


def superevent_category(superevent: Mapping[str, Any]) -> str:
    """Category of a superevent dict in lowercase (GraceDB writes ``Production``...)."""
    return str(superevent.get("category", "production")).lower()


# --- join or create ------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where an event goes.

    Attributes
    ----------
    action : str
        ``"member"`` (already in ``superevent``), ``"join"`` (add it to ``superevent``)
        or ``"create"`` (found a new superevent; ``superevent`` is None).
    superevent : dict or None
        The GraceDB superevent dict concerned.
    """

    action: str
    superevent: Mapping[str, Any] | None = None


def place_event(graceid: str, window: Window, category: str,
                superevents: Iterable[Mapping[str, Any]]) -> Placement:
    """Decide whether an event is already grouped, joins a superevent, or founds one.

    Parameters
    ----------
    graceid : str
        The event's id.
    window : Window
        The event's time window (GPS s).
    category : str
        The event's category; superevents of other categories are ignored.
    superevents : iterable of dict
        Nearby superevents as GraceDB lists them (the first overlapping one wins).

    Returns
    -------
    Placement
    """
    same_category = [s for s in superevents if superevent_category(s) == category]
    for superevent in same_category:
        if graceid in (superevent.get("gw_events") or ()):
            return Placement("member", superevent)
    for superevent in same_category:
        if superevent_window(superevent).overlaps(window):
            return Placement("join", superevent)
    return Placement("create")


# --- alert thresholds ----------------------------------------------------------------


@dataclass(frozen=True)
class AlertThreshold:
    """Public-alert thresholds of one search.

    Attributes
    ----------
    trials_factor : float
        The event's FAR is multiplied by this (number of searches that could have
        produced it) before comparing.
    significant_far_hz : float
        Largest trials-weighted FAR (Hz) of a significant event.
    less_significant_far_hz : float or None
        Largest trials-weighted FAR (Hz) of a less-significant alert; None when the
        search sends no less-significant alerts.
    """

    trials_factor: float
    significant_far_hz: float
    less_significant_far_hz: float | None


def _rate(text: str) -> float:
    """A rate written as a number or a fraction, e.g. ``1/2592000``."""
    return float(Fraction(text.strip()))


@lru_cache(maxsize=8)
def parse_alert_thresholds(entries: tuple[str, ...]) -> dict[tuple[str, str], AlertThreshold]:
    """Read ``settings.superevent_alert_thresholds``.

    Parameters
    ----------
    entries : tuple of str
        ``"<kind>:<search>:<trials factor>:<significant FAR>:<less-significant FAR|off>"``
        with FARs in Hz (fractions allowed).

    Returns
    -------
    dict
        ``{(kind, search): AlertThreshold}`` with kind and search in lowercase.
    """
    table = {}
    for entry in entries:
        parts = entry.split(":")
        if len(parts) != 5:
            raise ValueError(f"superevent_alert_thresholds entry {entry!r} is not "
                             "kind:search:trials:significant_far:less_significant_far")
        kind, search, trials, significant, less_significant = (p.strip() for p in parts)
        try:
            table[kind.lower(), search.lower()] = AlertThreshold(
                trials_factor=float(trials), significant_far_hz=_rate(significant),
                less_significant_far_hz=(None if less_significant.lower() == "off"
                                         else _rate(less_significant)))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"superevent_alert_thresholds entry {entry!r}: {exc}") from None
    return table


def is_publishable(event: Mapping[str, Any]) -> bool:
    """An event may become a public alert: online and not a hardware injection."""
    return not event.get("offline", False) and INJ not in event_labels(event)


def passes_thresholds(event: Mapping[str, Any],
                      thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple[bool, bool]:
    """Whether a publishable event passes its search's (significant, less-significant) threshold.

    Searches without thresholds never pass.
    """
    threshold = thresholds.get((event_kind(event), event_search(event)))
    if threshold is None or not is_publishable(event):
        return False, False
    weighted_far = float(_require(event, "far")) * threshold.trials_factor
    significant = weighted_far <= threshold.significant_far_hz
    less_significant = (threshold.less_significant_far_hz is not None
                        and weighted_far <= threshold.less_significant_far_hz)
    return significant, less_significant


def is_complete(event: Mapping[str, Any]) -> bool:
    """The event has every data product its kind needs (see :data:`REQUIRED_LABELS`)."""
    return REQUIRED_LABELS[event_kind(event)] <= event_labels(event)


# --- preferred event -----------------------------------------------------------------


def search_rank(event: Mapping[str, Any]) -> int:
    """Search preference: CBC all-sky (2) > other CBC searches (1) > burst (0)."""
    if event_kind(event) == "burst":
        return _SEARCH_RANK_BURST
    return _SEARCH_RANK_CBC_ALLSKY if event_search(event) == "allsky" else _SEARCH_RANK_CBC_OTHER


def ranking_key(event: Mapping[str, Any],
                thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple:
    """Comparison key of the preferred-event choice: the larger key is preferred.

    Elements, compared in order: complete, significant, less-significant, search rank,
    number of detectors (CBC; 0 for burst), SNR (CBC) or -FAR (burst: lower FAR is
    better; -FAR rather than 1/FAR so that FAR = 0 ranks).
    """
    significant, less_significant = passes_thresholds(event, thresholds)
    if event_kind(event) == "cbc":
        detectors, strength = len(event_instruments(event)), event_snr(event)
    else:
        detectors, strength = 0, -float(_require(event, "far"))
    return (is_complete(event), significant, less_significant, search_rank(event),
            detectors, strength)


def is_locked(superevent_labels: Iterable[str]) -> bool:
    """The superevent's preferred event is frozen (it carries a lock label)."""
    return not LOCK_LABELS.isdisjoint(superevent_labels)


def wanted_labels(preferred_event: Mapping[str, Any],
                  thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple[str, ...]:
    """Superevent labels its preferred event calls for, in the order to write them.

    The significant lock comes before ``LOW_SIGNIF_LOCKED`` so that whoever reacts to
    the latter already sees that a significant alert takes precedence.
    """
    complete = is_complete(preferred_event)
    significant, less_significant = passes_thresholds(preferred_event, thresholds)
    labels = []
    if complete:
        labels.append(EM_READY)
    if significant:
        labels.append(ADVREQ)
    if significant and complete:
        labels.append(EARLY_WARNING if event_search(preferred_event) == "earlywarning"
                      else SIGNIF_LOCKED)
    if less_significant and complete:  # passes_thresholds already required publishable
        labels.append(LOW_SIGNIF_LOCKED)
    return tuple(labels)


@dataclass(frozen=True)
class SupereventUpdate:
    """What to change on an existing superevent.

    Attributes
    ----------
    fields : dict
        Keyword arguments of ``GraceDb.update_superevent`` (``t_start``, ``t_end``,
        ``t_0``, ``preferred_event``); empty when nothing changes.
    labels : tuple of str
        Labels to add, in order.
    preferred_event : dict
        The preferred event after the update.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    preferred_event: Mapping[str, Any] = field(default_factory=dict)


def plan_update(superevent: Mapping[str, Any], preferred_event: Mapping[str, Any],
                event: Mapping[str, Any], t_0: float, window: Window,
                thresholds: Mapping[tuple[str, str], AlertThreshold]) -> SupereventUpdate:
    """Changes to a superevent that contains (or now receives) an event.

    Parameters
    ----------
    superevent : dict
        The superevent as GraceDB has it (``t_start``, ``t_end``, ``labels``).
    preferred_event : dict
        Its current preferred event as GraceDB has it.
    event : dict
        The event of the message (its labels include the one announced).
    t_0 : float
        The event's reference time (GPS s), the superevent's t_0 if it becomes preferred.
    window : Window
        The event's time window (GPS s).
    thresholds : dict
        From :func:`parse_alert_thresholds`.

    Returns
    -------
    SupereventUpdate
        Only real differences: applying it twice changes nothing the second time.
    """
    fields: dict[str, Any] = {}
    current = superevent_window(superevent)
    widened = current.union(window)
    if widened.t_start < current.t_start:
        fields["t_start"] = widened.t_start
    if widened.t_end > current.t_end:
        fields["t_end"] = widened.t_end

    superevent_labels = frozenset(superevent.get("labels") or ())
    if preferred_event.get("graceid") == event.get("graceid"):
        # Same event: either copy may be the fresher one, and labels are only added.
        preferred_event = dict(preferred_event,
                               labels=sorted(event_labels(preferred_event) | event_labels(event)))
    elif (not is_locked(superevent_labels)
          and ranking_key(event, thresholds) > ranking_key(preferred_event, thresholds)):
        fields["preferred_event"] = event["graceid"]
        fields["t_0"] = t_0
        preferred_event = event
    labels = tuple(label for label in wanted_labels(preferred_event, thresholds)
                   if label not in superevent_labels)
    return SupereventUpdate(fields=fields, labels=labels, preferred_event=preferred_event)


# --- message triage ------------------------------------------------------------------


def sort_key(message: Mapping[str, Any]) -> int:
    """Order of a drained batch: ``label_added`` before ``new``, otherwise arrival order.

    A label can complete an event already grouped, which may change a preferred event
    and lock it, so it goes first; the batch sort is stable, so messages of equal key
    keep their arrival order.
    """
    return 0 if message.get("alert_type") == "label_added" else 1


def skip_reason(message: Mapping[str, Any], event: Mapping[str, Any],
                settings: Settings) -> str | None:
    """Why a message needs no superevent work, or None when it does.

    Parameters
    ----------
    message : dict
        The LVAlert message (``alert_type``, ``data``).
    event : dict
        Its event, labels including the one a ``label_added`` announces.
    settings : Settings
    """
    alert_type = message.get("alert_type")
    if alert_type not in ("new", "label_added"):
        return f"alert type {alert_type!r} is not handled"
    if alert_type == "label_added":
        label = (message.get("data") or {}).get("name")
        if label not in REQUIRED_LABELS[event_kind(event)]:
            return f"label {label!r} does not affect completeness"
        if not is_complete(event):
            # The label that completes it will bring it back.
            return "event is not complete yet"
    far = event.get("far")
    if far is None:
        return "event has no FAR"
    if float(far) > settings.superevent_far_threshold_hz:
        return f"FAR {far} Hz is above {settings.superevent_far_threshold_hz} Hz"
    if event.get("offline", False):
        return "offline event"
    instruments = event_instruments(event)
    if not instruments or not instruments <= set(settings.pipeline_instruments):
        return (f"instruments {','.join(sorted(instruments)) or 'none'} are not all among "
                f"{','.join(settings.pipeline_instruments)}")
    if settings.skip_injections and INJ in event_labels(event):
        return "hardware injection"
    category = event_category(event)
    if category not in settings.superevent_categories:
        return f"category {category} is not handled by this deployment"
    return None


# --- the handler ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What :func:`handle` did with one message.

    Attributes
    ----------
    action : str
        ``skipped``, ``created``, ``added`` (joined a superevent), ``updated`` (an
        already grouped event changed its superevent) or ``unchanged``.
    graceid : str
    superevent_id : str or None
    reason : str
        Why it was skipped (empty otherwise).
    fields : dict
        Superevent fields written.
    labels : tuple of str
        Superevent labels written.
    """

    action: str
    graceid: str
    superevent_id: str | None = None
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()


def _superevent_query(category: str, gpstime: float, settings: Settings) -> str:
    """GraceDB query of the superevents of a category whose t_0 is near ``gpstime``."""
    half_width = settings.superevent_query_window_s
    return f"category: {category} {gpstime - half_width} .. {gpstime + half_width}"


@lvalert.handler(*NODES, pool="superevent", sort_key=sort_key)
def handle(message: Mapping[str, Any], client: Any = None,
           settings: Settings | None = None) -> Outcome:
    """Group the event of one pipeline LVAlert message into its superevent.

    GraceDB calls: one superevent query; then one create, or one add (when the event
    joins), at most one update and one call per new label.

    Parameters
    ----------
    message : dict
        LVAlert message (``uid``, ``alert_type``, ``data``, ``object``, ``node``).
    client : ligo.gracedb.rest.GraceDb, optional
        Defaults to :func:`gw_ops.gracedb_client.gracedb_client` of the settings.
    settings : Settings, optional
        Defaults to :func:`gw_ops.config.get_settings`.

    Returns
    -------
    Outcome

    Raises
    ------
    SupereventError
        When the message lacks what the rules need (the lane isolates the failure).
    """
    settings = settings or get_settings()
    raw_event = message.get("object")
    if not isinstance(raw_event, Mapping) or not raw_event.get("graceid"):
        raise SupereventError(f"LVAlert message {message.get('uid', '?')} "
                              f"({message.get('node', '?')}) carries no event object")
    announced = (message.get("data") or {}).get("name") if message.get(
        "alert_type") == "label_added" else None
    event = with_label(raw_event, announced)
    graceid = event["graceid"]
    for required in ("group", "pipeline", "gpstime"):  # fail loudly, never skip silently
        _require(event, required)

    reason = skip_reason(message, event, settings)
    if reason:
        log.info("%s: skipped (%s)", graceid, reason)
        return Outcome("skipped", graceid, reason=reason)

    thresholds = parse_alert_thresholds(settings.superevent_alert_thresholds)
    category = event_category(event)
    t_0, window = event_window(event, settings)
    if client is None:
        client = _default_client(settings)

    nearby = list(client.superevents(query=_superevent_query(category, t_0, settings)))
    placement = place_event(graceid, window, category, nearby)

    if placement.action == "create":
        response = client.create_superevent(window.t_start, t_0, window.t_end, graceid,
                                           category=category)
        superevent_id = _json(response)["superevent_id"]
        labels = wanted_labels(event, thresholds)
        for label in labels:
            client.write_label(superevent_id, label)
        log.info("%s: created %s (%s)", graceid, superevent_id, ",".join(labels) or "no labels")
        return Outcome("created", graceid, superevent_id, labels=labels)

    superevent = placement.superevent
    superevent_id = superevent["superevent_id"]
    if placement.action == "join":
        client.add_event_to_superevent(superevent_id, graceid)
    preferred = superevent.get("preferred_event_data")
    if not preferred or preferred.get("graceid") != superevent.get("preferred_event"):
        preferred = _json(client.event(superevent["preferred_event"]))
    update = plan_update(superevent, preferred, event, t_0, window, thresholds)
    if update.fields:
        client.update_superevent(superevent_id, **update.fields)
    for label in update.labels:
        client.write_label(superevent_id, label)
    action = ("added" if placement.action == "join"
              else "updated" if update.fields or update.labels else "unchanged")
    log.info("%s: %s %s %s %s", graceid, action, superevent_id, update.fields,
             ",".join(update.labels))
    return Outcome(action, graceid, superevent_id, fields=update.fields, labels=update.labels)


@lru_cache(maxsize=4)
def _default_client(settings: Settings) -> Any:
    """GraceDB client of these settings, kept between messages of one worker process.

    Reusing it keeps its HTTP connection and the API root it reads once, instead of
    paying both on every message of the lane.
    """
    from gw_ops.gracedb_client import gracedb_client  # heavy; only when handling

    return gracedb_client(settings)


def _json(response: Any) -> dict[str, Any]:
    """Body of a GraceDB response (a ``requests`` response, or already a dict in tests)."""
    return response if isinstance(response, Mapping) else response.json()


__all__: Sequence[str] = (
    "NODES", "handle", "sort_key", "SupereventError", "Outcome", "Window", "Placement",
    "AlertThreshold", "SupereventUpdate", "event_window", "event_category", "event_kind",
    "place_event", "parse_alert_thresholds", "passes_thresholds", "is_complete",
    "ranking_key", "is_locked", "wanted_labels", "plan_update", "skip_reason",
)
