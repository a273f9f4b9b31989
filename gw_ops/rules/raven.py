"""RAVEN: coincidences of gravitational-wave superevents with external triggers.

Why one module of about 400 lines: the windows, the two FAR formulas and the search
that applies them are one method and are tested as one table; publishing is already
its own module (:mod:`gw_ops.rules.raven_publish`).

Written for gw-ops from the published RAVEN method (Urban 2016; Cho et al. 2019,
ligo-raven); the computation is small enough that gw-ops does it itself rather than
depend on ligo-raven, whose search queries GraceDB with its own query strings.

Time windows
    ``dt = t_ext - t_gw`` (s) must lie in the window of the pair (settings
    ``raven_window_*``): GRB and CBC, GRB and burst, Fermi/Swift subthreshold GRB,
    IceCube neutrino and CBC/burst, SNEWS.
Temporal coincidence FAR (Hz)
    ``(upper - lower) * R_ext * FAR_gw`` with the window width (s), the rate of
    external triggers of that kind ``R_ext`` (Hz, from ``raven_rate_*_per_year``, a year
    being 365 days) and the superevent's FAR (Hz).  Not defined for SNEWS (no
    background rate).  Targeted sub-threshold GRBs (``SubGRBTargeted``) use the
    targeted-search formula instead: ``z (1 - ln(z / z_max))`` with ``z = width x FAR_grb
    x FAR_gw`` and ``z_max = width x GRB threshold x GW threshold`` (GW threshold: the
    CBC all-sky less-significant FAR; GRB threshold per instrument,
    :data:`gw_ops.rules.raven_publish.TARGETED_GRB_FAR_THRESHOLD_HZ`).
Space-time coincidence FAR (Hz)
    temporal FAR / overlap integral of the GW and external sky maps
    (:func:`gw_ops.science.ext_skymaps.overlap_integral`), when both sky maps exist.
Publishing (GWCelery 2.5.0's ``trigger_raven_alert``, :mod:`gw_ops.rules.raven_publish`)
    With ``t`` the significant trials factor of the GW search: the joint FAR
    (space-time if the sky maps gave one, else temporal) x ``t (t - 1)`` must be <= the
    significant-alert threshold of the GW search; for SNEWS the GW FAR x ``t`` must be
    below ``raven_snews_gw_far_threshold_hz`` (1/day), and SNEWS pairs only with burst
    all-sky (or MDC) superevents.  Nothing is published for a sub-threshold GRB
    (``SubGRB``; targeted ones are eligible), a ``NOT_GRB`` trigger, a missing sky map,
    a Test event, a negative FAR, or a trigger that already carries ``RAVEN_ALERT``.
    Publishing writes ``RAVEN_ALERT`` and ``HIGH_PROFILE`` on the superevent, then
    ``RAVEN_ALERT`` on the external event, then on the preferred G event -- last, so the
    superevent already carries it when the G event's label raises the candidate to
    significant (:func:`raven_alert_labels`).

Records in GraceDB (each written only when it would change something, so repeated
searches are idempotent): the external event joins the superevent (``add_event_to_superevent``);
``EM_COINC`` on both; a log line per coincidence; for the superevent's preferred
coincidence ``update_superevent(em_type, time_coinc_far, space_coinc_far)`` and a
``coincidence_far.json`` file; ``RAVEN_ALERT`` on the superevent, its preferred event and
the external event when significant.

This module is the pure part (windows, rates, FARs, significance, preference, log lines);
:mod:`gw_ops.handlers.raven` reads and writes GraceDB.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from gw_ops.config import Settings
from gw_ops.rules.events import event_kind, event_search
from gw_ops.rules.raven_publish import (
    SNEWS_GW_SEARCHES,
    TARGETED_SEARCH,
    PublishDecision,
    publish_decision,
    raven_alert_labels,
    targeted_coincidence_far,
    targeted_far,
)
from gw_ops.rules.thresholds import parse_alert_thresholds
from gw_ops.vocabulary import (
    CATEGORY_NAME,
    EM_READY,
    EXTERNAL_GROUP,
    MDC_SEARCH,
    NOT_GRB,
    RAVEN_ALERT,
    SKYMAP_READY,
    TEST_GROUP,
    YEAR_S,
)

#: File of the superevent's preferred coincidence and its joint FARs.
COINCIDENCE_FILE = "coincidence_far.json"

#: Preference of external searches when several triggers coincide with one superevent
#: (larger wins): a SNEWS trigger over threshold GRBs and neutrinos over subthreshold.
SEARCH_PREFERENCE: dict[str, int] = {"Supernova": 3, "GRB": 2, "MDC": 2, "HEN": 1, "Neutrino": 1,
                                     "SubGRB": 0}

#: Superevent labels after which a RAVEN search is worth running again: the spatial FAR
#: becomes computable once the superevent has a sky map.
SKYMAP_LABELS = frozenset({SKYMAP_READY, EM_READY})


# --- pure rules ----------------------------------------------------------------------

def parse_window(values: Iterable[str]) -> tuple[float, float]:
    """A ``raven_window_*`` setting as ``(lower, upper)`` seconds.

    Raises
    ------
    ValueError
        Not two numbers with lower < upper.
    """
    numbers = tuple(float(v) for v in values)
    if len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise ValueError(f"a RAVEN window must be two numbers lower,upper; got {values!r}")
    return numbers  # type: ignore[return-value]


def coincidence_window(settings: Settings, ext_pipeline: str, ext_search: str,
                       gw_kind: str) -> tuple[float, float] | None:
    """Window ``(lower, upper)`` of ``t_ext - t_gw`` (s) for one pair, or None.

    Parameters
    ----------
    settings : Settings
    ext_pipeline : str
        ``Fermi``, ``Swift``, ``INTEGRAL``, ``SNEWS``, ``IceCube``, ...
    ext_search : str
        ``GRB``, ``SubGRB``, ``HEN``, ``Supernova`` or ``MDC`` (a mock GRB).
    gw_kind : str
        ``cbc`` or ``burst``.

    Returns
    -------
    tuple of float or None
        None when the pair is not searched (e.g. a subthreshold trigger of an
        instrument without a subthreshold window).
    """
    gw_kind = gw_kind.lower()
    if ext_pipeline == "SNEWS" or ext_search == "Supernova":
        return parse_window(settings.raven_window_snews)
    if ext_search in ("SubGRB", TARGETED_SEARCH):
        if ext_pipeline == "Fermi":
            return parse_window(settings.raven_window_subfermi)
        if ext_pipeline == "Swift":
            return parse_window(settings.raven_window_subswift)
        return None
    if ext_search in ("HEN", "Neutrino") or ext_pipeline == "IceCube":
        return parse_window(settings.raven_window_hen_cbc if gw_kind == "cbc"
                            else settings.raven_window_hen_burst)
    if ext_search in ("GRB", MDC_SEARCH):
        return parse_window(settings.raven_window_grb_cbc if gw_kind == "cbc"
                            else settings.raven_window_grb_burst)
    return None


def external_rate_hz(settings: Settings, ext_search: str) -> float | None:
    """Rate (Hz) of external triggers of a search; None where RAVEN has none (SNEWS)."""
    per_year = {"GRB": settings.raven_rate_grb_per_year,
                "MDC": settings.raven_rate_grb_per_year,
                "SubGRB": settings.raven_rate_subgrb_per_year,
                "HEN": settings.raven_rate_hen_per_year,
                "Neutrino": settings.raven_rate_hen_per_year}.get(ext_search)
    return None if per_year is None else per_year / YEAR_S


def temporal_coincidence_far(window: tuple[float, float], ext_rate_hz: float,
                             gw_far_hz: float) -> float:
    """Joint temporal FAR (Hz): window width (s) x external rate (Hz) x GW FAR (Hz)."""
    return (window[1] - window[0]) * ext_rate_hz * gw_far_hz


def spacetime_coincidence_far(temporal_far_hz: float, overlap: float | None) -> float | None:
    """Joint space-time FAR (Hz): temporal FAR / sky-map overlap integral.

    None when there is no overlap integral or it is not positive (disjoint maps: the
    coincidence is spatially excluded, which no finite FAR expresses).
    """
    if overlap is None or not overlap > 0:
        return None
    return temporal_far_hz / overlap


def category_of_external(ext_event: dict[str, Any]) -> str:
    """Superevent category an external event may pair with: ``MDC``, ``Test`` or ``Production``."""
    if ext_event.get("search") == MDC_SEARCH:
        return CATEGORY_NAME["mdc"]
    if ext_event.get("group") == TEST_GROUP:
        return CATEGORY_NAME["test"]
    return CATEGORY_NAME["production"]


def gw_kind_of(superevent: dict[str, Any]) -> str:
    """``cbc`` or ``burst``: the kind of the superevent's preferred event."""
    preferred = superevent.get("preferred_event_data") or {}
    try:
        return event_kind(preferred)
    except ValueError:
        return "cbc"


@dataclass(frozen=True)
class Coincidence:
    """One superevent / external-trigger coincidence and its significance.

    Attributes
    ----------
    superevent_id, external_id, preferred_event : str
    ext_pipeline, ext_search, gw_kind, gw_search : str
    window : tuple of float
        ``(lower, upper)`` bounds of ``t_ext - t_gw`` (s).
    dt : float
        ``t_ext - t_gw`` (s).
    gw_far : float
        Superevent FAR (Hz).
    ext_rate : float or None
        External trigger rate (Hz).
    temporal_coinc_far, spatiotemporal_coinc_far : float or None
        Joint FARs (Hz).
    overlap_integral : float or None
        Sky-map overlap integral; None when a sky map is missing.
    trials_factor : float
        Significant trials factor t of the GW search.
    far_with_trials : float or None
        The FAR compared with the threshold (Hz): joint FAR x t x (t - 1), or the GW
        FAR x t for SNEWS.
    significant_far_threshold : float or None
        The threshold it is compared with (Hz): the GW search's significant-alert
        threshold, or the SNEWS GW threshold; None when the search has none.
    significant : bool
        The FAR test of :func:`publish_decision` passes.
    not_grb : bool
        The external trigger carries ``NOT_GRB``.
    publishable : bool
        Significant and meets every other RAVEN_ALERT condition.
    """

    superevent_id: str
    external_id: str
    preferred_event: str
    ext_pipeline: str
    ext_search: str
    gw_kind: str
    gw_search: str
    window: tuple[float, float]
    dt: float
    gw_far: float
    ext_rate: float | None
    temporal_coinc_far: float | None
    spatiotemporal_coinc_far: float | None
    overlap_integral: float | None
    trials_factor: float
    far_with_trials: float | None
    significant_far_threshold: float | None
    significant: bool
    not_grb: bool
    publishable: bool

    @staticmethod
    def previous_raven_alert_of(ext_event: dict[str, Any]) -> bool:
        """The external event already carries ``RAVEN_ALERT`` (published before)."""
        return RAVEN_ALERT in set(ext_event.get("labels") or ())

    def as_json(self) -> dict[str, Any]:
        """Contents of ``coincidence_far.json`` (GWCelery's keys plus the inputs)."""
        data = asdict(self)
        data["window"] = list(self.window)
        return data


def evaluate(superevent: dict[str, Any], ext_event: dict[str, Any], settings: Settings,
             overlap: float | None = None) -> Coincidence | None:
    """The coincidence of a superevent and an external event, or None when not coincident.

    Parameters
    ----------
    superevent : dict
        GraceDB superevent (``superevent_id``, ``t_0``, ``far``, ``category``,
        ``preferred_event``, ``preferred_event_data``).
    ext_event : dict
        GraceDB external event (``graceid``, ``gpstime``, ``pipeline``, ``search``,
        ``group``, ``labels``).
    settings : Settings
    overlap : float, optional
        Sky-map overlap integral when both sky maps exist.
    """
    if str(superevent.get("category", CATEGORY_NAME["production"])) != \
            category_of_external(ext_event):
        return None
    gw_kind = gw_kind_of(superevent)
    window = coincidence_window(settings, ext_event["pipeline"], ext_event["search"], gw_kind)
    if window is None:
        return None
    dt = float(ext_event["gpstime"]) - float(superevent["t_0"])
    if not window[0] <= dt <= window[1]:
        return None
    gw_far = float(superevent.get("far") or 0.0)
    preferred = superevent.get("preferred_event_data") or {}
    gw_search = event_search(preferred) if preferred else "allsky"
    is_snews = ext_event["pipeline"] == "SNEWS"
    if is_snews and not (gw_kind == "burst" and gw_search in SNEWS_GW_SEARCHES):
        return None  # GWCelery searches SNEWS only against burst all-sky superevents
    thresholds = parse_alert_thresholds(tuple(settings.superevent_alert_thresholds))
    rate = external_rate_hz(settings, ext_event["search"])
    if ext_event["search"] == TARGETED_SEARCH:
        temporal = targeted_far(window, ext_event, gw_far, thresholds)
    else:
        temporal = None if rate is None else temporal_coinc_far_or_none(window, rate, gw_far)
    spatial = None if temporal is None else spacetime_coincidence_far(temporal, overlap)
    decision = publish_decision(
        gw_kind=gw_kind, gw_search=gw_search, gw_far=gw_far,
        gw_group=str(preferred.get("group", "")),
        gw_category=str(superevent.get("category", CATEGORY_NAME["production"])),
        ext_event=ext_event, temporal=temporal, spatial=spatial, thresholds=thresholds,
        settings=settings)
    return Coincidence(
        superevent_id=superevent["superevent_id"], external_id=ext_event["graceid"],
        preferred_event=superevent.get("preferred_event") or "",
        ext_pipeline=ext_event["pipeline"], ext_search=ext_event["search"], gw_kind=gw_kind,
        gw_search=gw_search, window=window, dt=dt, gw_far=gw_far, ext_rate=rate,
        temporal_coinc_far=temporal, spatiotemporal_coinc_far=spatial,
        overlap_integral=overlap, trials_factor=decision.trials_factor,
        far_with_trials=decision.far_with_trials,
        significant_far_threshold=decision.threshold, significant=decision.passes_far,
        not_grb=decision.not_grb, publishable=decision.publish)


def temporal_coinc_far_or_none(window: tuple[float, float], rate: float,
                               gw_far: float) -> float | None:
    """:func:`temporal_coincidence_far`, or None without a GW FAR."""
    if gw_far is None:
        return None
    return temporal_coincidence_far(window, rate, gw_far)


def preference_key(coincidence: Coincidence, ext_labels: Iterable[str]) -> tuple:
    """Comparison key of the superevent's preferred coincidence: the larger wins.

    Likely astrophysical (no ``NOT_GRB``) first, then already alerted (``RAVEN_ALERT``),
    then search (:data:`SEARCH_PREFERENCE`), then lower space-time FAR, then lower
    temporal FAR.
    """
    labels = set(ext_labels)
    spatial = coincidence.spatiotemporal_coinc_far
    temporal = coincidence.temporal_coinc_far
    return (NOT_GRB not in labels, RAVEN_ALERT in labels,
            SEARCH_PREFERENCE.get(coincidence.ext_search, -1),
            -spatial if spatial is not None else -math.inf,
            -temporal if temporal is not None else -math.inf)

def choose_gw_skymap(names: Iterable[str]) -> str | None:
    """The GW sky map among an object's file names: a multi-order map that is not an
    external one (``<instrument>_skymap.multiorder.fits``), ``bayestar`` first, then the
    latest name in alphabetical order; None when there is none."""
    found = [name for name in names
             if name.endswith(".multiorder.fits") and "_skymap." not in name]
    if not found:
        return None
    return max(found, key=lambda name: ("bayestar" in name, name))


def _far_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g} Hz"


def coincidence_comment(coincidence: Coincidence) -> str:
    """Superevent log line of a coincidence (also its idempotency key)."""
    c = coincidence
    return (f"RAVEN: {c.external_id} ({c.ext_pipeline} {c.ext_search}) coincides with "
            f"{c.superevent_id}: t_ext - t_gw = {c.dt:+.3f} s in [{c.window[0]:g}, "
            f"{c.window[1]:g}] s; temporal FAR {_far_text(c.temporal_coinc_far)}, space-time "
            f"FAR {_far_text(c.spatiotemporal_coinc_far)}"
            + (f" (overlap integral {c.overlap_integral:.4g})"
               if c.overlap_integral is not None else ""))


def same_far(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)



def replace_fars(template: Coincidence, ext_event: dict[str, Any], temporal: float | None,
                  spatial: float | None) -> Coincidence:
    """The superevent's current coincidence, rebuilt from its recorded FARs."""
    return dataclasses.replace(template, external_id=ext_event["graceid"],
                               ext_pipeline=ext_event.get("pipeline", ""),
                               ext_search=ext_event.get("search", ""),
                               temporal_coinc_far=temporal, spatiotemporal_coinc_far=spatial)


def windows_span(settings: Settings) -> tuple[float, float]:
    """Widest ``(lower, upper)`` over all RAVEN windows (s)."""
    windows = [parse_window(getattr(settings, name)) for name in (
        "raven_window_grb_cbc", "raven_window_grb_burst", "raven_window_subfermi",
        "raven_window_subswift", "raven_window_hen_cbc", "raven_window_hen_burst",
        "raven_window_snews")]
    return min(w[0] for w in windows), max(w[1] for w in windows)


def category_handled(category: str, settings: Settings) -> bool:
    return category.lower() in {c.lower() for c in settings.superevent_categories}



def external_groups(category: str) -> tuple[str, ...]:
    """GraceDB groups of the external events a superevent of ``category`` may pair with."""
    return (TEST_GROUP,) if category == CATEGORY_NAME["test"] else (EXTERNAL_GROUP,)


def searched_comment(superevent_id: str, preferred_event: str | None) -> str:
    """Superevent log line recording a finished RAVEN search for one preferred event."""
    return f"RAVEN: searched external triggers for {superevent_id} " \
           f"(preferred event {preferred_event})"


__all__ = ["Coincidence", "coincidence_window", "external_rate_hz", "temporal_coincidence_far",
           "spacetime_coincidence_far", "targeted_coincidence_far", "evaluate",
           "publish_decision", "PublishDecision", "raven_alert_labels", "preference_key", "parse_window",
           "COINCIDENCE_FILE", "coincidence_comment", "searched_comment", "choose_gw_skymap"]
