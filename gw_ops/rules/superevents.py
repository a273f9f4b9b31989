"""Superevent rules: how the low-latency pipelines' events group into superevents.

Why one module of about 430 lines: skip rules, windows, category, preferred-event
ranking and labels are one decision made per message, tested as one table; most of
the length is the rules' documentation below.

Every ``new`` or ``label_added`` LVAlert message of a search pipeline's node (a *G
event*) is handled, one at a time, by :func:`handle` in the Airflow pool
``superevent`` (one slot, so superevent decisions never race).  The rules follow
GWCelery 2.x:

* **Skip** events with KAGRA data (``superevent_skip_kagra``, GWCelery 2.5's rule),
  of the ``VTInjection`` search, without a FAR or too frequent (FAR above
  ``superevent_far_threshold_hz``), offline, from detectors this deployment does not
  use, hardware injections (when ``skip_injections``), or of a category the deployment
  does not handle.  A ``label_added`` message counts when its label completes the event
  or is ``RAVEN_ALERT`` (a publishable GRB coincidence, processed even when the event
  is incomplete).
* **Category**: the MDC search gives ``mdc`` (superevent ids ``MS...``), the ``Test``
  group gives ``test`` (``TS...``), everything else ``production`` (``S...``).
  Categories never mix.
* **Windows**: a CBC event spans gpstime +- ``superevent_cbc_window_s``; a cWB or MLy
  event spans gpstime +- its ``duration``; an oLIB event gpstime +- quality/frequency (its
  mean number of cycles / frequency, i.e. the burst's duration).  The event joins the
  first superevent of its category (looked up within +- ``superevent_query_window_s``
  of its gpstime) whose [t_start, t_end] overlaps its window, widening the
  superevent to the union; otherwise it founds a superevent with itself preferred.
* **Preferred event**: the largest :func:`ranking_key` -- complete, publishable,
  significant, publishable, less-significant (GWCelery's order), then search (CBC
  all-sky > other CBC searches > burst), then number of detectors (CBC), then SNR (CBC)
  or lowest FAR (burst).  A superevent carrying a lock label (``SIGNIF_LOCKED`` or
  ``LOW_SIGNIF_LOCKED``) keeps its preferred event; the orchestrator re-selects it,
  ignoring the lock, when a significant alert goes out (:func:`select_preferred`).
* **Superevent labels** (from the *incoming* event, as GWCelery decides them, so a
  significant event that is not preferred still raises the superevent): ``EM_READY``
  when complete; ``ADVREQ`` when significant; ``SIGNIF_LOCKED`` (``EARLY_WARNING`` for
  an early-warning event) when significant and complete; ``LOW_SIGNIF_LOCKED`` when
  less-significant (a significant event is too) and complete, so a significant early
  warning freezes the preferred event as well.

(About 430 lines: the grouping, ranking, labelling and triage rules of one manager are
kept in one module so that GWCelery's ``superevents`` rules can be read side by side.)

These rules are pure functions of GraceDB JSON dicts;
:func:`gw_ops.handlers.superevents.handle` is the thin part that talks to GraceDB.

Units: times are GPS seconds, durations seconds, false alarm rates Hz.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gw_ops.config import Settings
from gw_ops.rules.events import (
    SupereventError,
    event_category,
    event_instruments,
    event_kind,
    event_labels,
    event_search,
    event_snr,
    require,
)
from gw_ops.rules.thresholds import AlertThreshold, passes_thresholds, threshold_flags
from gw_ops.vocabulary import (
    ADVREQ,
    EARLY_WARNING,
    EM_READY,
    EMBRIGHT_READY,
    INJ,
    LOW_SIGNIF_LOCKED,
    PASTRO_READY,
    RAVEN_ALERT,
    SIGNIF_LOCKED,
    SKYMAP_READY,
)

#: Event labels that make an event complete, per kind of search.
REQUIRED_LABELS: Mapping[str, frozenset[str]] = {
    "cbc": frozenset({PASTRO_READY, EMBRIGHT_READY, SKYMAP_READY}),
    "burst": frozenset({SKYMAP_READY}),
}
#: Detector whose events GWCelery 2.5 leaves out of superevents (``superevent_skip_kagra``).
KAGRA = "K1"
#: Search of injections for sensitivity (VT) studies: never grouped.
VT_INJECTION_SEARCH = "vtinjection"

#: Superevent labels after which the superevent manager keeps the preferred event (only
#: the orchestrator re-selects it, before a significant alert or an early warning).
LOCK_LABELS: frozenset[str] = frozenset({SIGNIF_LOCKED, LOW_SIGNIF_LOCKED})

#: Rank of searches in the preferred-event choice (larger wins).
_SEARCH_RANK_CBC_ALLSKY = 2
_SEARCH_RANK_CBC_OTHER = 1  # early warning, SSM, MDC, ...
_SEARCH_RANK_BURST = 0


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
      every candidate it could be confused with; MLy likewise (MLyBurst ``duration``).
    * oLIB: gpstime +- quality_mean / frequency_mean (cycles / Hz = the burst's
      duration in s).
    * Other burst pipelines: like CBC.
    """
    t_0 = float(require(event, "gpstime"))
    pipeline = str(event.get("pipeline", "")).lower()
    attributes = event.get("extra_attributes") or {}
    try:
        if event_kind(event) == "burst" and pipeline == "cwb":
            half_width = float(attributes["MultiBurst"]["duration"])
        elif event_kind(event) == "burst" and pipeline == "mly":
            half_width = float(attributes["MLyBurst"]["duration"])
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

def required_labels(event: Mapping[str, Any]) -> frozenset[str]:
    """Labels that make an event complete (:data:`REQUIRED_LABELS` of its kind).

    cWB's BBH search produces the CBC data products (p_astro, em_bright), so it needs
    the CBC labels although its thresholds are the ``burst``/``bbh`` ones.
    """
    if (str(event.get("pipeline", "")).lower() == "cwb"
            and event_search(event) == "bbh"):
        return REQUIRED_LABELS["cbc"]
    return REQUIRED_LABELS[event_kind(event)]


def is_complete(event: Mapping[str, Any]) -> bool:
    """The event has every data product it needs (:func:`required_labels`)."""
    return required_labels(event) <= event_labels(event)

# --- preferred event -----------------------------------------------------------------


def search_rank(event: Mapping[str, Any]) -> int:
    """Search preference: CBC all-sky (2) > other CBC searches (1) > burst (0)."""
    if event_kind(event) == "burst":
        return _SEARCH_RANK_BURST
    return _SEARCH_RANK_CBC_ALLSKY if event_search(event) == "allsky" else _SEARCH_RANK_CBC_OTHER


def ranking_key(event: Mapping[str, Any],
                thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple:
    """Comparison key of the preferred-event choice: the larger key is preferred.

    Elements, compared in order (GWCelery 2.5's ``keyfunc``): complete, publishable,
    significant (or ``RAVEN_ALERT``), publishable, less-significant (or ``RAVEN_ALERT``),
    search rank, number of detectors (CBC; 0 for burst), SNR (CBC) or -FAR (burst:
    lower FAR is better; -FAR rather than 1/FAR so that FAR = 0 ranks).
    """
    flags = threshold_flags(event, thresholds)
    if event_kind(event) == "cbc":
        detectors, strength = len(event_instruments(event)), event_snr(event)
    else:
        detectors, strength = 0, -float(require(event, "far"))
    return (is_complete(event), flags.publishable, flags.significant, flags.publishable,
            flags.less_significant, search_rank(event), detectors, strength)


def select_preferred(events: Iterable[Mapping[str, Any]],
                     thresholds: Mapping[tuple[str, str], AlertThreshold]) -> Mapping[str, Any]:
    """The event a superevent should prefer among all of its G events (lock ignored).

    The first of equally ranked events wins, so listing the current preferred event
    first keeps it on ties.

    Raises
    ------
    ValueError
        No events.
    """
    best = None
    for event in events:
        if best is None or ranking_key(event, thresholds) > ranking_key(best, thresholds):
            best = event
    if best is None:
        raise ValueError("select_preferred needs at least one event")
    return best


def is_locked(superevent_labels: Iterable[str]) -> bool:
    """The superevent's preferred event is frozen (it carries a lock label)."""
    return not LOCK_LABELS.isdisjoint(superevent_labels)


def is_early_warning(event: Mapping[str, Any]) -> bool:
    """An early-warning event: of the ``EarlyWarning`` search or labelled ``EARLY_WARNING``
    (GWCelery looks at the label only; gw-ops' mock and replay uploads carry the search)."""
    return event_search(event) == "earlywarning" or EARLY_WARNING in event_labels(event)


def wanted_labels(event: Mapping[str, Any],
                  thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple[str, ...]:
    """Superevent labels an event of the superevent calls for, in the order to write them.

    Decided from the event the message is about (GWCelery's ``process``), whether or not
    it is preferred.  The significant lock comes before ``LOW_SIGNIF_LOCKED`` so that
    whoever reacts to the latter already sees that a significant alert takes precedence.
    """
    complete = is_complete(event)
    significant, less_significant = passes_thresholds(event, thresholds)
    labels = []
    if complete:
        labels.append(EM_READY)
    if significant:
        labels.append(ADVREQ)
    if significant and complete:
        labels.append(EARLY_WARNING if is_early_warning(event) else SIGNIF_LOCKED)
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
        event = preferred_event
    elif (not is_locked(superevent_labels)
          and ranking_key(event, thresholds) > ranking_key(preferred_event, thresholds)):
        fields["preferred_event"] = event["graceid"]
        fields["t_0"] = t_0
        preferred_event = event
    labels = tuple(label for label in wanted_labels(event, thresholds)
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
    instruments = event_instruments(event)
    if settings.superevent_skip_kagra and KAGRA in instruments:
        return f"KAGRA ({KAGRA}) data: superevent_skip_kagra is set"
    if event_search(event) == VT_INJECTION_SEARCH:
        return "VT injection"
    far = event.get("far")
    if far is None:
        return "event has no FAR"
    if float(far) > settings.superevent_far_threshold_hz:
        return f"FAR {far} Hz is above {settings.superevent_far_threshold_hz} Hz"
    if alert_type == "label_added":
        label = (message.get("data") or {}).get("name")
        if label == RAVEN_ALERT:
            pass  # a publishable coincidence raises the event even when incomplete
        elif label not in required_labels(event):
            return f"label {label!r} does not affect completeness"
        elif not is_complete(event):
            # The label that completes it will bring it back.
            return "event is not complete yet"
    if event.get("offline", False):
        return "offline event"
    if not instruments or not instruments <= set(settings.pipeline_instruments):
        return (f"instruments {','.join(sorted(instruments)) or 'none'} are not all among "
                f"{','.join(settings.pipeline_instruments)}")
    if settings.skip_injections and INJ in event_labels(event):
        return "hardware injection"
    category = event_category(event)
    if category not in settings.superevent_categories:
        return f"category {category} is not handled by this deployment"
    return None


__all__ = [
    "Window", "Placement", "SupereventUpdate", "REQUIRED_LABELS",
    "LOCK_LABELS", "event_window", "superevent_window", "superevent_category", "place_event",
    "is_complete", "required_labels", "search_rank", "ranking_key", "select_preferred",
    "is_locked", "is_early_warning", "wanted_labels", "plan_update", "sort_key", "skip_reason",
]
