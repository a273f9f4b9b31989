"""RAVEN: coincidences of gravitational-wave superevents with external triggers.

Written for gw-ops from the published RAVEN method (Urban 2016; Cho et al. 2019,
ligo-raven); the computation is small enough that gw-ops does it itself rather than
depend on ligo-raven, whose search queries GraceDB with its own query strings.

Time windows
    ``dt = t_ext - t_gw`` (s) must lie in the window of the pair (settings
    ``raven_window_*``): GRB and CBC, GRB and burst, Fermi/Swift subthreshold GRB,
    IceCube neutrino and CBC/burst, SNEWS.
Temporal coincidence FAR (Hz)
    ``(upper - lower) * R_ext * FAR_gw`` with the window width (s), the rate of
    external triggers of that kind ``R_ext`` (Hz, from ``raven_rate_*_per_year``) and the
    superevent's FAR (Hz).  Not defined for SNEWS (no background rate).
Space-time coincidence FAR (Hz)
    temporal FAR / overlap integral of the GW and external sky maps
    (:func:`gw_ops.science.ext_skymaps.overlap_integral`), when both sky maps exist.
Significance
    The FAR (space-time if available, else temporal; the GW FAR for SNEWS) times the
    trials factor of the GW search is compared with the significant-alert threshold of
    that search (``settings.superevent_alert_thresholds``, shared with the superevent
    manager).  ``RAVEN_ALERT`` is applied when it passes and the external trigger is a
    threshold trigger (not ``SubGRB``), not vetoed (``NOT_GRB``), not a Test event, and,
    except for SNEWS, both sky maps were used.

Records in GraceDB (each written only when it would change something, so repeated
searches are idempotent): the external event joins the superevent (``add_event_to_superevent``);
``EM_COINC`` on both; a log line per coincidence; for the superevent's preferred
coincidence ``update_superevent(em_type, time_coinc_far, space_coinc_far)`` and a
``coincidence_far.json`` file; ``RAVEN_ALERT`` on the superevent, its preferred event and
the external event when significant.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from gw_ops.config import Settings, get_settings

log = logging.getLogger(__name__)

EM_COINC = "EM_COINC"
RAVEN_ALERT = "RAVEN_ALERT"
NOT_GRB = "NOT_GRB"
COINCIDENCE_FILE = "coincidence_far.json"

#: Seconds per Julian year, to turn per-year rates into Hz.
YEAR_S = 365.25 * 86400

#: Preference of external searches when several triggers coincide with one superevent
#: (larger wins): a SNEWS trigger over threshold GRBs and neutrinos over subthreshold.
SEARCH_PREFERENCE: dict[str, int] = {"Supernova": 3, "GRB": 2, "MDC": 2, "HEN": 1, "Neutrino": 1,
                                     "SubGRB": 0}

#: Superevent alerts after which a RAVEN search is worth running again: the spatial FAR
#: becomes computable once the superevent has a sky map.
_SKYMAP_LABELS = frozenset({"SKYMAP_READY", "EM_READY"})


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
    if ext_search == "SubGRB":
        if ext_pipeline == "Fermi":
            return parse_window(settings.raven_window_subfermi)
        if ext_pipeline == "Swift":
            return parse_window(settings.raven_window_subswift)
        return None
    if ext_search in ("HEN", "Neutrino") or ext_pipeline == "IceCube":
        return parse_window(settings.raven_window_hen_cbc if gw_kind == "cbc"
                            else settings.raven_window_hen_burst)
    if ext_search in ("GRB", "MDC"):
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
    if ext_event.get("search") == "MDC":
        return "MDC"
    if ext_event.get("group") == "Test":
        return "Test"
    return "Production"


def gw_kind_of(superevent: dict[str, Any]) -> str:
    """``cbc`` or ``burst``: the kind of the superevent's preferred event."""
    from gw_ops.handlers.superevents import event_kind

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
        Trials factor of the GW search.
    far_with_trials : float or None
        The FAR compared with the threshold (Hz), trials included.
    significant_far_threshold : float or None
        Significant-alert threshold of the GW search (Hz); None when it has none.
    significant : bool
        ``far_with_trials <= significant_far_threshold``.
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
    from gw_ops.handlers.superevents import event_search, parse_alert_thresholds

    if str(superevent.get("category", "Production")) != category_of_external(ext_event):
        return None
    gw_kind = gw_kind_of(superevent)
    window = coincidence_window(settings, ext_event["pipeline"], ext_event["search"], gw_kind)
    if window is None:
        return None
    dt = float(ext_event["gpstime"]) - float(superevent["t_0"])
    if not window[0] <= dt <= window[1]:
        return None
    gw_far = float(superevent.get("far") or 0.0)
    rate = external_rate_hz(settings, ext_event["search"])
    temporal = None if rate is None else temporal_coinc_far_or_none(window, rate, gw_far)
    spatial = None if temporal is None else spacetime_coincidence_far(temporal, overlap)

    preferred = superevent.get("preferred_event_data") or {}
    gw_search = event_search(preferred) if preferred else "allsky"
    threshold = parse_alert_thresholds(tuple(settings.superevent_alert_thresholds)).get(
        (gw_kind, gw_search))
    trials = threshold.trials_factor if threshold else 1.0
    is_snews = ext_event["pipeline"] == "SNEWS"
    # SNEWS has no background rate: its coincidences are judged on the GW FAR alone.
    far = gw_far if is_snews else (spatial if spatial is not None else temporal)
    far_with_trials = None if far is None else far * trials
    limit = threshold.significant_far_hz if threshold else None
    significant = (far_with_trials is not None and limit is not None
                   and 0 <= far_with_trials <= limit)
    labels = set(ext_event.get("labels") or ())
    not_grb = NOT_GRB in labels
    is_test = ext_event.get("group") == "Test" or superevent.get("category") == "Test"
    publishable = (significant and not not_grb and ext_event["search"] != "SubGRB"
                   and not is_test and (is_snews or spatial is not None))
    return Coincidence(
        superevent_id=superevent["superevent_id"], external_id=ext_event["graceid"],
        preferred_event=superevent.get("preferred_event") or "",
        ext_pipeline=ext_event["pipeline"], ext_search=ext_event["search"], gw_kind=gw_kind,
        gw_search=gw_search, window=window, dt=dt, gw_far=gw_far, ext_rate=rate,
        temporal_coinc_far=temporal, spatiotemporal_coinc_far=spatial,
        overlap_integral=overlap, trials_factor=trials, far_with_trials=far_with_trials,
        significant_far_threshold=limit, significant=significant, not_grb=not_grb,
        publishable=publishable)


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


# --- GraceDB -------------------------------------------------------------------------

def _json(response: Any) -> Any:
    return response.json() if hasattr(response, "json") else response


def _labels(client: Any, object_id: str) -> set[str]:
    return {label["name"] if isinstance(label, dict) else str(label)
            for label in _json(client.labels(object_id)).get("labels", [])}


def _http_status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _ensure_label(client: Any, object_id: str, label: str) -> bool:
    """Apply a label unless present; True when it was applied now.

    Another writer may apply it between the check and the write (GraceDB then answers
    400); that is success too.
    """
    if label in _labels(client, object_id):
        return False
    try:
        client.write_label(object_id, label)
    except Exception as exc:
        if _http_status(exc) == 400 and label in _labels(client, object_id):
            return False
        raise
    return True


def _file_names(client: Any, object_id: str) -> list[str]:
    """Current file names of an object (versions ``name,N`` folded into ``name``)."""
    names = _json(client.files(object_id))
    return sorted({name.split(",")[0] for name in names})


def _download(client: Any, object_id: str, filename: str) -> bytes | None:
    try:
        response = client.files(object_id, filename)
    except Exception as exc:  # HTTPError 404 from the client: no such file
        if _http_status(exc) == 404:
            return None
        raise
    return response.read() if hasattr(response, "read") else response.content


def gw_skymap_filename(client: Any, superevent: dict[str, Any]) -> tuple[str, str] | None:
    """``(object id, file name)`` of the superevent's GW sky map, or None.

    The superevent's own multi-order sky map is preferred (the one the alert used),
    else the preferred event's; among several, ``bayestar`` ones first, then the
    latest name in alphabetical order.
    """
    for object_id in (superevent["superevent_id"], superevent.get("preferred_event")):
        if not object_id:
            continue
        names = [name for name in _file_names(client, object_id)
                 if name.endswith(".multiorder.fits") and "_skymap." not in name]
        if names:
            names.sort(key=lambda name: ("bayestar" in name, name))
            return object_id, names[-1]
    return None


def sky_map_overlap(client: Any, superevent: dict[str, Any],
                    ext_event: dict[str, Any]) -> float | None:
    """Overlap integral of the superevent's and the external event's sky maps, or None."""
    from gw_ops.handlers.external_triggers import skymap_filename
    from gw_ops.science import ext_skymaps

    if "EXT_SKYMAP_READY" not in set(ext_event.get("labels") or ()):
        return None
    located = gw_skymap_filename(client, superevent)
    if located is None:
        return None
    gw_bytes = _download(client, *located)
    ext_bytes = _download(client, ext_event["graceid"], skymap_filename(ext_event["pipeline"]))
    if not gw_bytes or not ext_bytes:
        return None
    return ext_skymaps.overlap_integral(ext_skymaps.read_skymap_bytes(gw_bytes),
                                        ext_skymaps.read_skymap_bytes(ext_bytes))


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


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)


def _log_comments(client: Any, object_id: str) -> list[str]:
    return [entry.get("comment", "") for entry in _json(client.logs(object_id)).get("log", [])]


def record_coincidence(client: Any, superevent: dict[str, Any], ext_event: dict[str, Any],
                       coincidence: Coincidence) -> bool:
    """Write one coincidence to GraceDB (only what is not there yet).

    Returns
    -------
    bool
        True when this coincidence is (now) the superevent's preferred one.
    """
    sid, eid = coincidence.superevent_id, coincidence.external_id
    member_of = ext_event.get("superevent")
    if member_of not in (None, "", sid):
        log.info("%s already belongs to %s; not adding it to %s", eid, member_of, sid)
        return False
    if member_of != sid:
        try:
            client.add_event_to_superevent(sid, eid)
        except Exception as exc:
            # added meanwhile by a concurrent search (GraceDB answers 400): re-check
            if _http_status(exc) != 400:
                raise
            member_of = _json(client.event(eid)).get("superevent")
            if member_of != sid:
                log.info("%s joined %s meanwhile; not adding it to %s", eid, member_of, sid)
                return False
    comment = coincidence_comment(coincidence)
    if comment not in _log_comments(client, sid):
        client.write_log(sid, comment, tag_name=["ext_coinc"])
    _ensure_label(client, sid, EM_COINC)
    _ensure_label(client, eid, EM_COINC)

    # Preferred coincidence of the superevent: the new one, unless the current one wins.
    fresh = _json(client.superevent(sid))
    current = fresh.get("em_type")
    preferred = True
    if current and current != eid:
        current_event = _json(client.event(current))
        current_coincidence = _replace_fars(coincidence, current_event,
                                            fresh.get("time_coinc_far"),
                                            fresh.get("space_coinc_far"))
        preferred = (preference_key(coincidence, ext_event.get("labels") or ()) >
                     preference_key(current_coincidence, current_event.get("labels") or ()))
    if preferred:
        unchanged = (current == eid
                     and _same(fresh.get("time_coinc_far"), coincidence.temporal_coinc_far)
                     and _same(fresh.get("space_coinc_far"),
                               coincidence.spatiotemporal_coinc_far))
        if not unchanged:
            fields = {"em_type": eid}
            if coincidence.temporal_coinc_far is not None:
                fields["time_coinc_far"] = coincidence.temporal_coinc_far
            if coincidence.spatiotemporal_coinc_far is not None:
                fields["space_coinc_far"] = coincidence.spatiotemporal_coinc_far
            client.update_superevent(sid, **fields)
        content = json.dumps(coincidence.as_json(), indent=2, sort_keys=True).encode()
        previous = _download(client, sid, COINCIDENCE_FILE) \
            if COINCIDENCE_FILE in _file_names(client, sid) else None
        if previous != content:
            client.write_log(sid, f"RAVEN: joint FAR of {sid} and {eid}",
                            filename=COINCIDENCE_FILE, filecontents=content,
                            tag_name=["ext_coinc"])
        if coincidence.publishable:
            _ensure_label(client, sid, RAVEN_ALERT)
            _ensure_label(client, eid, RAVEN_ALERT)
            if coincidence.preferred_event:
                _ensure_label(client, coincidence.preferred_event, RAVEN_ALERT)
    return preferred


def _replace_fars(template: Coincidence, ext_event: dict[str, Any], temporal: float | None,
                  spatial: float | None) -> Coincidence:
    """The superevent's current coincidence, rebuilt from its recorded FARs."""
    import dataclasses

    return dataclasses.replace(template, external_id=ext_event["graceid"],
                               ext_pipeline=ext_event.get("pipeline", ""),
                               ext_search=ext_event.get("search", ""),
                               temporal_coinc_far=temporal, spatiotemporal_coinc_far=spatial)


def _windows_span(settings: Settings) -> tuple[float, float]:
    """Widest ``(lower, upper)`` over all RAVEN windows (s)."""
    windows = [parse_window(getattr(settings, name)) for name in (
        "raven_window_grb_cbc", "raven_window_grb_burst", "raven_window_subfermi",
        "raven_window_subswift", "raven_window_hen_cbc", "raven_window_hen_burst",
        "raven_window_snews")]
    return min(w[0] for w in windows), max(w[1] for w in windows)


def _category_handled(category: str, settings: Settings) -> bool:
    return category.lower() in {c.lower() for c in settings.superevent_categories}


def search_for_external(client: Any, graceid: str,
                        settings: Settings | None = None) -> list[Coincidence]:
    """RAVEN search of the superevents coincident with one external event, recorded.

    When several superevents coincide, the external event joins the one with the lowest
    FAR (an event belongs to one superevent).

    Returns
    -------
    list of Coincidence
        The recorded coincidence (at most one).
    """
    settings = settings or get_settings()
    ext_event = _json(client.event(graceid))
    category = category_of_external(ext_event)
    if not _category_handled(category, settings):
        return []
    lower, upper = _windows_span(settings)
    t_ext = float(ext_event["gpstime"])
    # dt = t_ext - t_gw in [lower, upper]  <=>  t_gw in [t_ext - upper, t_ext - lower]
    query = f"category: {category} t_0: {t_ext - upper:.3f} .. {t_ext - lower:.3f}"
    found = []
    for superevent in client.superevents(query=query):
        coincidence = evaluate(superevent, ext_event, settings)
        if coincidence is not None:
            found.append((superevent, coincidence))
    if not found:
        return []
    superevent, _ = min(found, key=lambda pair: float(pair[0].get("far") or math.inf))
    return [_record_with_skymaps(client, superevent, ext_event, settings)]


def _record_with_skymaps(client: Any, superevent: dict[str, Any], ext_event: dict[str, Any],
                         settings: Settings) -> Coincidence:
    overlap = sky_map_overlap(client, superevent, ext_event)
    coincidence = evaluate(superevent, ext_event, settings, overlap=overlap)
    assert coincidence is not None  # evaluated as coincident just before
    record_coincidence(client, superevent, ext_event, coincidence)
    return coincidence


def search_for_superevent(client: Any, superevent: dict[str, Any],
                          settings: Settings | None = None) -> list[Coincidence]:
    """RAVEN search of the external events coincident with a superevent, recorded.

    Returns
    -------
    list of Coincidence
        Every recorded coincidence.
    """
    settings = settings or get_settings()
    category = str(superevent.get("category", "Production"))
    if not _category_handled(category, settings):
        return []
    lower, upper = _windows_span(settings)
    t_gw = float(superevent["t_0"])
    groups = ("Test",) if category == "Test" else ("External",)
    results = []
    for group in groups:
        query = f"group: {group} gpstime: {t_gw + lower:.3f} .. {t_gw + upper:.3f}"
        for ext_event in client.events(query):
            if evaluate(superevent, ext_event, settings) is None:
                continue
            member_of = ext_event.get("superevent")
            if member_of not in (None, "", superevent["superevent_id"]):
                continue  # it already pairs with another superevent
            results.append(_record_with_skymaps(client, superevent, ext_event, settings))
    sid = superevent["superevent_id"]
    marker = searched_comment(sid, superevent.get("preferred_event"))
    if marker not in _log_comments(client, sid):
        client.write_log(sid, marker, tag_name=["ext_coinc"])
    return results


def searched_comment(superevent_id: str, preferred_event: str | None) -> str:
    """Superevent log line recording a finished RAVEN search for one preferred event."""
    return f"RAVEN: searched external triggers for {superevent_id} " \
           f"(preferred event {preferred_event})"


def handle_superevent_message(message: dict[str, Any], client: Any = None,
                              settings: Settings | None = None) -> list[Coincidence]:
    """RAVEN on a superevent LVAlert: creation, preferred-event change, new sky map.

    ``update`` alerts (also caused by RAVEN's own ``em_type`` updates) search again only
    when no search has been recorded for the current preferred event, so the handler
    never feeds itself.
    """
    settings = settings or get_settings()
    alert_type = message.get("alert_type")
    data = message.get("data") or {}
    if alert_type == "label_added":
        if data.get("name") not in _SKYMAP_LABELS:
            return []
    elif alert_type not in ("new", "update"):
        return []
    sid = message.get("uid") or (message.get("object") or {}).get("superevent_id")
    if not sid:
        return []
    if client is None:
        from gw_ops.handlers.external_triggers import default_client
        client = default_client(settings)
    superevent = _json(client.superevent(sid))
    if alert_type == "update":
        marker = searched_comment(sid, superevent.get("preferred_event"))
        if marker in _log_comments(client, sid):
            return []
    return search_for_superevent(client, superevent, settings)


__all__ = ["Coincidence", "coincidence_window", "external_rate_hz", "temporal_coincidence_far",
           "spacetime_coincidence_far", "evaluate", "record_coincidence",
           "search_for_external", "search_for_superevent", "handle_superevent_message",
           "preference_key", "parse_window", "COINCIDENCE_FILE"]
