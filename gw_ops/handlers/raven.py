"""RAVEN search (the I/O side): coincidences of superevents and external triggers.

The method (windows, rates, joint FARs, significance, which coincidence a superevent
prefers) is the pure :mod:`gw_ops.rules.raven`; this module reads superevents, external
events and sky maps through the GraceDB gateway and records each coincidence (only what
is not there yet, so repeated searches are idempotent): the external event joins the
superevent; ``EM_COINC`` on both; a log line per coincidence; for the superevent's
preferred coincidence ``update_superevent(em_type, time_coinc_far, space_coinc_far)``
and a ``coincidence_far.json`` file; when publishable, ``RAVEN_ALERT`` and ``HIGH_PROFILE``
on the superevent, ``RAVEN_ALERT`` on the external event and last on the preferred G
event (:func:`gw_ops.rules.raven.raven_alert_labels`).

Used by :mod:`gw_ops.handlers.external_triggers` (one way: this module imports no
handler).
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any

from gw_ops import gracedb_client as gateway
from gw_ops.config import Settings, get_settings
from gw_ops.rules.external import skymap_filename
from gw_ops.rules.raven import (
    COINCIDENCE_FILE,
    SKYMAP_LABELS,
    Coincidence,
    category_handled,
    category_of_external,
    choose_gw_skymap,
    coincidence_comment,
    evaluate,
    external_groups,
    preference_key,
    raven_alert_labels,
    replace_fars,
    same_far,
    searched_comment,
    windows_span,
)
from gw_ops.rules.raven_publish import TARGETED_SEARCH
from gw_ops.vocabulary import CATEGORY_NAME, EM_COINC, EXT_SKYMAP_READY, RAVEN_ALERT

log = logging.getLogger(__name__)


def gw_skymap_filename(client: Any, superevent: dict[str, Any]) -> tuple[str, str] | None:
    """``(object id, file name)`` of the superevent's GW sky map, or None.

    The superevent's own multi-order sky map is preferred (the one the alert used),
    else the preferred event's (:func:`gw_ops.rules.raven.choose_gw_skymap` picks among
    several).
    """
    for object_id in (superevent["superevent_id"], superevent.get("preferred_event")):
        if not object_id:
            continue
        name = choose_gw_skymap(gateway.file_names(client, object_id))
        if name:
            return object_id, name
    return None


def sky_map_overlap(client: Any, superevent: dict[str, Any],
                    ext_event: dict[str, Any]) -> float | None:
    """Overlap integral of the superevent's and the external event's sky maps, or None."""
    from gw_ops.science import ext_skymaps  # heavy: healpy/astropy

    if EXT_SKYMAP_READY not in set(ext_event.get("labels") or ()):
        return None
    located = gw_skymap_filename(client, superevent)
    if located is None:
        return None
    gw_bytes = gateway.read_file(client, *located, missing_ok=True)
    ext_bytes = gateway.read_file(client, ext_event["graceid"],
                                  skymap_filename(ext_event["pipeline"]), missing_ok=True)
    if not gw_bytes or not ext_bytes:
        return None
    return ext_skymaps.overlap_integral(ext_skymaps.read_skymap_bytes(gw_bytes),
                                        ext_skymaps.read_skymap_bytes(ext_bytes))


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
            gateway.write(client.add_event_to_superevent, sid, eid)
        except Exception as exc:
            # added meanwhile by a concurrent search (GraceDB answers 400): re-check
            if gateway.http_status(exc) != 400:
                raise
            member_of = gateway.event(client, eid).get("superevent")
            if member_of != sid:
                log.info("%s joined %s meanwhile; not adding it to %s", eid, member_of, sid)
                return False
    comment = coincidence_comment(coincidence)
    if comment not in gateway.log_comments(client, sid):
        gateway.write(client.write_log, sid, comment, tag_name=["ext_coinc"])
    if not (coincidence.ext_search == TARGETED_SEARCH and coincidence.not_grb):
        # GWCelery marks no coincidence with a vetoed targeted sub-threshold trigger
        gateway.ensure_label(client, sid, EM_COINC)
        gateway.ensure_label(client, eid, EM_COINC)

    # Preferred coincidence of the superevent: the new one, unless the current one wins.
    # A coincidence about to be published counts as carrying RAVEN_ALERT (GWCelery
    # labels first, then re-chooses), so the alert describes the published trigger.
    fresh = gateway.superevent(client, sid)
    current = fresh.get("em_type")
    preferred = True
    ext_labels = set(ext_event.get("labels") or ())
    if coincidence.publishable:
        ext_labels.add(RAVEN_ALERT)
    if current and current != eid:
        current_event = gateway.event(client, current)
        current_coincidence = replace_fars(coincidence, current_event,
                                            fresh.get("time_coinc_far"),
                                            fresh.get("space_coinc_far"))
        preferred = (preference_key(coincidence, ext_labels) >
                     preference_key(current_coincidence, current_event.get("labels") or ()))
    if preferred:
        unchanged = (current == eid
                     and same_far(fresh.get("time_coinc_far"), coincidence.temporal_coinc_far)
                     and same_far(fresh.get("space_coinc_far"),
                               coincidence.spatiotemporal_coinc_far))
        if not unchanged:
            fields = {"em_type": eid}
            if coincidence.temporal_coinc_far is not None:
                fields["time_coinc_far"] = coincidence.temporal_coinc_far
            if coincidence.spatiotemporal_coinc_far is not None:
                fields["space_coinc_far"] = coincidence.spatiotemporal_coinc_far
            gateway.write(client.update_superevent, sid, **fields)
        content = json.dumps(coincidence.as_json(), indent=2, sort_keys=True).encode()
        previous = gateway.read_file(client, sid, COINCIDENCE_FILE, missing_ok=True) \
            if COINCIDENCE_FILE in gateway.file_names(client, sid) else None
        if previous != content:
            gateway.write(client.write_log, sid, f"RAVEN: joint FAR of {sid} and {eid}",
                          filename=COINCIDENCE_FILE, filecontents=content,
                          tag_name=["ext_coinc"])
    # Publishing (labels in GWCelery's order, the preferred G event last).  A trigger that
    # already carries RAVEN_ALERT is not published again; when the superevent carries it
    # too, an earlier run published it and may have stopped before the last label, so the
    # labels are completed (each write is idempotent).
    finishing = (coincidence.previous_raven_alert_of(ext_event)
                 and RAVEN_ALERT in set(fresh.get("labels") or ()))
    if coincidence.publishable or finishing:
        for label, object_id in raven_alert_labels(sid, eid, coincidence.preferred_event):
            gateway.ensure_label(client, object_id, label)
    return preferred


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
    ext_event = gateway.event(client, graceid)
    category = category_of_external(ext_event)
    if not category_handled(category, settings):
        return []
    lower, upper = windows_span(settings)
    t_ext = float(ext_event["gpstime"])
    # dt = t_ext - t_gw in [lower, upper]  <=>  t_gw in [t_ext - upper, t_ext - lower]
    query = f"category: {category} t_0: {t_ext - upper:.3f} .. {t_ext - lower:.3f}"
    found = []
    for superevent in gateway.search(client, "superevents", query):
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
    category = str(superevent.get("category", CATEGORY_NAME["production"]))
    if not category_handled(category, settings):
        return []
    lower, upper = windows_span(settings)
    t_gw = float(superevent["t_0"])
    results = []
    for group in external_groups(category):
        query = f"group: {group} gpstime: {t_gw + lower:.3f} .. {t_gw + upper:.3f}"
        for ext_event in gateway.search(client, "events", query):
            if evaluate(superevent, ext_event, settings) is None:
                continue
            member_of = ext_event.get("superevent")
            if member_of not in (None, "", superevent["superevent_id"]):
                continue  # it already pairs with another superevent
            results.append(_record_with_skymaps(client, superevent, ext_event, settings))
    sid = superevent["superevent_id"]
    marker = searched_comment(sid, superevent.get("preferred_event"))
    if marker not in gateway.log_comments(client, sid):
        gateway.write(client.write_log, sid, marker, tag_name=["ext_coinc"])
    return results


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
        if data.get("name") not in SKYMAP_LABELS:
            return []
    elif alert_type not in ("new", "update"):
        return []
    sid = message.get("uid") or (message.get("object") or {}).get("superevent_id")
    if not sid:
        return []
    if client is None:
        client = gateway.pipeline_client(settings)
    superevent = gateway.superevent(client, sid)
    if alert_type == "update":
        marker = searched_comment(sid, superevent.get("preferred_event"))
        if marker in gateway.log_comments(client, sid):
            return []
    return search_for_superevent(client, superevent, settings)


__all__ = ["record_coincidence", "search_for_external", "search_for_superevent",
           "handle_superevent_message", "sky_map_overlap", "gw_skymap_filename"]
