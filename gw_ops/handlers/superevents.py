"""Superevent manager (the I/O side): groups the pipelines' events into superevents.

Every ``new`` or ``label_added`` LVAlert message of a search pipeline's node (a *G
event*) is handled, one at a time, by :func:`handle` in the Airflow pool
``superevent`` (one slot, so superevent decisions never race).  The decisions (skip,
category, windows, preferred event, labels) are the pure rules of
:mod:`gw_ops.rules.superevents`; this module reads GraceDB through the gateway
(:mod:`gw_ops.gracedb_client`) and writes what the rules decide.

:func:`handle` is idempotent -- GraceDB's state is the truth: an event found in a
superevent is never added again, and every decision is recomputed from what GraceDB
holds, so a duplicate message changes nothing and a retry after a crash mid-way
completes the job.

Within one drained batch (:func:`batch_scope`, opened by the lane around each batch) the
superevents near the batch's events are read with one query per cluster of nearby events
instead of one per message, and kept up to date with this manager's own writes.  That copy
decides only what the superevent manager alone changes -- which superevent an event joins
or founds, and how windows widen.  Whatever also depends on what others write (the
preferred event, which the orchestrator re-selects; labels) is decided on the superevent
read afresh from GraceDB, exactly as without a batch.

This module stays light at import (the DAG processor imports it): no GraceDB client,
no astropy or healpy at module level.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gw_ops import gracedb_client as gateway
from gw_ops.config import Settings, get_settings
from gw_ops.handlers import superevent_runs
from gw_ops.rules.events import SupereventError, event_category, require, with_label
from gw_ops.rules.superevents import (
    event_window,
    place_event,
    plan_update,
    skip_reason,
    sort_key,
    wanted_labels,
)
from gw_ops.rules.thresholds import parse_alert_thresholds
from gw_ops.transport import lvalert
from gw_ops.vocabulary import G_EVENT_NODES

log = logging.getLogger(__name__)

#: LVAlert nodes handled: every search pipeline's G-event node.
NODES: tuple[str, ...] = G_EVENT_NODES


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
    return _range_query(category, gpstime - half_width, gpstime + half_width)


def _range_query(category: str, t_low: float, t_high: float) -> str:
    """GraceDB query of the superevents of a category with t_0 in [t_low, t_high] (GPS s)."""
    return f"category: {category} {t_low} .. {t_high}"


class BatchView:
    """The superevents near one drained batch's events, as this manager last saw them.

    Built by :func:`batch_scope` with one GraceDB query per cluster of events whose
    lookup ranges (t_0 +- ``superevent_query_window_s``) overlap, then kept current with
    the manager's own writes (created superevents, added events, updates, labels).  Only
    the superevent manager creates superevents, adds G events and moves windows, so the
    copy answers *where an event goes* as GraceDB would; the preferred event and labels
    may change under it (the orchestrator) and are re-read before being relied on.

    Attributes
    ----------
    ranges : list of (str, float, float)
        (category, t_low, t_high) in GPS s whose superevents (by t_0) were all read.
    superevents : dict
        Superevent id -> its latest dict, in the order GraceDB listed (then created) them.
    """

    def __init__(self) -> None:
        self.ranges: list[tuple[str, float, float]] = []
        self.superevents: dict[str, dict[str, Any]] = {}

    def covers(self, category: str, t_low: float, t_high: float) -> bool:
        """Whether every superevent of ``category`` with t_0 in [t_low, t_high] is known."""
        return any(c == category and low <= t_low and t_high <= high
                   for c, low, high in self.ranges)

    def nearby(self, category: str, t_low: float, t_high: float) -> list[dict[str, Any]]:
        """The known superevents a GraceDB query of this range would list."""
        from gw_ops.rules.superevents import superevent_category

        return [s for s in self.superevents.values() if superevent_category(s) == category
                and t_low <= float(s["t_0"]) <= t_high]

    def remember(self, superevent: Any) -> None:
        """Keep a superevent dict as GraceDB answered it (a create, update or read)."""
        if isinstance(superevent, Mapping) and superevent.get("superevent_id"):
            self.superevents[superevent["superevent_id"]] = dict(superevent)

    def add_event(self, superevent_id: str, graceid: str) -> None:
        """Record that ``graceid`` joined a superevent."""
        superevent = self.superevents[superevent_id]
        superevent["gw_events"] = [*(superevent.get("gw_events") or ()), graceid]

    def add_label(self, superevent_id: str, label: str) -> None:
        """Record a label written on a superevent."""
        superevent = self.superevents[superevent_id]
        superevent["labels"] = [*(superevent.get("labels") or ()), label]


#: The view of the batch being handled (the superevent lane is serial: one slot).
_batch_view: BatchView | None = None


def _lookup_range(message: Mapping[str, Any], settings: Settings) -> tuple[str, float, float] | None:
    """(category, t_low, t_high) a message's event would query; None when it is skipped or
    unusable (its handler call says why)."""
    raw_event = message.get("object")
    if not isinstance(raw_event, Mapping) or not raw_event.get("graceid"):
        return None
    announced = (message.get("data") or {}).get("name") if message.get(
        "alert_type") == "label_added" else None
    event = with_label(raw_event, announced)
    try:
        if skip_reason(message, event, settings):
            return None
        t_0, _ = event_window(event, settings)
        category = event_category(event)
    except Exception:  # noqa: BLE001 (malformed: handle() rejects it with the reason)
        return None
    half_width = settings.superevent_query_window_s
    return category, t_0 - half_width, t_0 + half_width


@contextlib.contextmanager
def batch_scope(messages: Iterable[Mapping[str, Any]], client: Any = None,
                settings: Settings | None = None) -> Iterator[BatchView]:
    """Read the superevents near a batch's events once; :func:`handle` calls inside use them.

    One query per cluster of overlapping lookup ranges (per category).  The lane opens it
    around each drained batch (see :func:`gw_ops.transport.streams.drain`); it changes no
    decision, only how many times GraceDB is asked.

    Parameters
    ----------
    messages : iterable of dict
        The batch's decoded LVAlert messages.
    client, settings
        As for :func:`handle`.
    """
    global _batch_view
    settings = settings or get_settings()
    ranges = sorted(r for r in (_lookup_range(m, settings) for m in messages) if r is not None)
    clusters: list[list[Any]] = []
    for category, t_low, t_high in ranges:
        if clusters and clusters[-1][0] == category and t_low <= clusters[-1][2]:
            clusters[-1][2] = max(clusters[-1][2], t_high)
        else:
            clusters.append([category, t_low, t_high])
    view = BatchView()
    if clusters:
        client = client or gateway.pipeline_client(settings)
        for category, t_low, t_high in clusters:
            for superevent in gateway.search(client, "superevents",
                                             _range_query(category, t_low, t_high)):
                view.remember(superevent)
            view.ranges.append((category, t_low, t_high))
    _batch_view = view
    try:
        yield view
    finally:
        _batch_view = None


def _forget_batch_view() -> None:
    global _batch_view
    _batch_view = None


def _needs_fresh_read(update, preferred: Mapping[str, Any], graceid: str) -> bool:
    """Whether a plan made on the batch's copy touches what others may have changed: the
    preferred event (the orchestrator re-selects it) or superevent labels."""
    return bool(update.labels or "preferred_event" in update.fields
                or preferred.get("graceid") == graceid)


@lvalert.handler(*NODES, pool="superevent", sort_key=sort_key, linger=True)
def handle(message: Mapping[str, Any], client: Any = None,
           settings: Settings | None = None, redis_client: Any = None) -> Outcome:
    """Group the event of one pipeline LVAlert message into its superevent.

    GraceDB calls: one superevent query; then one create, or one add (when the event
    joins), at most one update and one call per new label.

    Parameters
    ----------
    message : dict
        LVAlert message (``uid``, ``alert_type``, ``data``, ``object``, ``node``).
    client : ligo.gracedb.rest.GraceDb, optional
        Defaults to :func:`gw_ops.gracedb_client.pipeline_client` of the settings.
    settings : Settings, optional
        Defaults to :func:`gw_ops.config.get_settings`.
    redis_client : redis.Redis, optional
        Where the superevent's run is requested (:mod:`gw_ops.handlers.superevent_runs`);
        defaults to the process's shared client of the settings' Redis
        (:func:`gw_ops.transport.redis_client.shared_redis`).

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
        require(event, required)

    reason = skip_reason(message, event, settings)
    if reason:
        log.info("%s: skipped (%s)", graceid, reason)
        return Outcome("skipped", graceid, reason=reason)

    thresholds = parse_alert_thresholds(settings.superevent_alert_thresholds)
    category = event_category(event)
    t_0, window = event_window(event, settings)
    if client is None:
        client = gateway.pipeline_client(settings)

    view = _batch_view
    t_low, t_high = (t_0 - settings.superevent_query_window_s,
                     t_0 + settings.superevent_query_window_s)
    if view is not None and view.covers(category, t_low, t_high):
        nearby = view.nearby(category, t_low, t_high)
    else:
        view = None
        nearby = gateway.search(client, "superevents", _superevent_query(category, t_0, settings))
    try:
        return _place_and_update(client, settings, redis_client, event, category, t_0, window,
                                 thresholds, nearby, view)
    except BaseException:
        _forget_batch_view()  # a write may have happened unseen: the rest of the batch queries
        raise


def _place_and_update(client, settings: Settings, redis_client, event: Mapping[str, Any],
                      category: str, t_0: float, window, thresholds,
                      nearby: list[Mapping[str, Any]], view: BatchView | None) -> Outcome:
    """The writes of :func:`handle` once the nearby superevents are known."""
    graceid = event["graceid"]
    placement = place_event(graceid, window, category, nearby)

    if placement.action == "create":
        response = gateway.write(client.create_superevent, window.t_start, t_0, window.t_end,
                                 graceid, category=category)
        created = gateway.read_json(response)
        superevent_id = created["superevent_id"]
        labels = wanted_labels(event, thresholds)
        for label in labels:  # new superevent: none of its labels can be there yet
            gateway.write(client.write_label, superevent_id, label)
        if view is not None:
            view.remember(created)
            for label in labels:
                view.add_label(superevent_id, label)
        log.info("%s: created %s (%s)", graceid, superevent_id, ",".join(labels) or "no labels")
        _request_run(redis_client, settings, superevent_id, event, category)
        return Outcome("created", graceid, superevent_id, labels=labels)

    superevent = placement.superevent
    superevent_id = superevent["superevent_id"]
    if placement.action == "join":
        gateway.write(client.add_event_to_superevent, superevent_id, graceid)
        if view is not None:
            view.add_event(superevent_id, graceid)
    preferred = _preferred_event(client, superevent)
    update = plan_update(superevent, preferred, event, t_0, window, thresholds)
    if view is not None and _needs_fresh_read(update, preferred, graceid):
        superevent = gateway.superevent(client, superevent_id)
        view.remember(superevent)
        preferred = _preferred_event(client, superevent)
        update = plan_update(superevent, preferred, event, t_0, window, thresholds)
    if update.fields:
        response = gateway.write(client.update_superevent, superevent_id, **update.fields)
        if view is not None:
            updated = gateway.read_json(response)
            if isinstance(updated, Mapping) and updated.get("superevent_id") == superevent_id:
                view.remember(updated)
            else:  # an answer without the superevent: keep the copy right by hand
                view.superevents[superevent_id].update(update.fields)
    for label in update.labels:  # plan_update lists only labels the superevent lacks
        gateway.write(client.write_label, superevent_id, label)
        if view is not None:
            view.add_label(superevent_id, label)
    if preferred.get("graceid") == graceid or update.fields.get("preferred_event") == graceid:
        # a redelivery after a crash between creating the superevent and requesting its
        # run lands here: request it again (nothing when the run was started)
        _request_run(redis_client, settings, superevent_id,
                     event if update.fields.get("preferred_event") == graceid else preferred,
                     category)
    action = ("added" if placement.action == "join"
              else "updated" if update.fields or update.labels else "unchanged")
    log.info("%s: %s %s %s %s", graceid, action, superevent_id, update.fields,
             ",".join(update.labels))
    return Outcome(action, graceid, superevent_id, fields=update.fields, labels=update.labels)


def _preferred_event(client, superevent: Mapping[str, Any]) -> Mapping[str, Any]:
    """The superevent's preferred event: from ``preferred_event_data``, else read."""
    preferred = superevent.get("preferred_event_data")
    if not preferred or preferred.get("graceid") != superevent.get("preferred_event"):
        preferred = gateway.event(client, superevent["preferred_event"])
    return preferred


def _request_run(redis_client, settings: Settings, superevent_id: str, event: Mapping[str, Any],
                 category: str) -> None:
    """Ask for the superevent's DAG run (see :mod:`gw_ops.handlers.superevent_runs`)."""
    if redis_client is None:
        # the lane calls handle() without a client: the process's shared one spares the
        # hot path a new connection (about 8 ms) per request
        from gw_ops.transport.redis_client import shared_redis
        redis_client = shared_redis(settings)
    conf = superevent_runs.story(settings, superevent_id, event, category)
    if superevent_runs.request_run(redis_client, settings, conf):
        # recorded first (nothing lost when the start never happens), then started
        # at once in the background: the lane goes on with the next message
        superevent_runs.start_run_soon(settings, conf)


#: The lane opens this around each drained batch (see :func:`gw_ops.airflow.lanes.run_lane`).
handle.batch_scope = batch_scope

__all__ = ["NODES", "handle", "batch_scope", "BatchView", "sort_key", "SupereventError",
           "Outcome"]
