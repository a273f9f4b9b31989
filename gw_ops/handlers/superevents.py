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

This module stays light at import (the DAG processor imports it): no GraceDB client,
no astropy or healpy at module level.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
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
    return f"category: {category} {gpstime - half_width} .. {gpstime + half_width}"


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
        defaults to the settings' Redis.

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

    nearby = gateway.search(client, "superevents", _superevent_query(category, t_0, settings))
    placement = place_event(graceid, window, category, nearby)

    if placement.action == "create":
        response = gateway.write(client.create_superevent, window.t_start, t_0, window.t_end,
                                 graceid, category=category)
        superevent_id = gateway.read_json(response)["superevent_id"]
        labels = wanted_labels(event, thresholds)
        for label in labels:  # new superevent: none of its labels can be there yet
            gateway.write(client.write_label, superevent_id, label)
        log.info("%s: created %s (%s)", graceid, superevent_id, ",".join(labels) or "no labels")
        _request_run(redis_client, settings, superevent_id, event, category)
        return Outcome("created", graceid, superevent_id, labels=labels)

    superevent = placement.superevent
    superevent_id = superevent["superevent_id"]
    if placement.action == "join":
        gateway.write(client.add_event_to_superevent, superevent_id, graceid)
    preferred = superevent.get("preferred_event_data")
    if not preferred or preferred.get("graceid") != superevent.get("preferred_event"):
        preferred = gateway.event(client, superevent["preferred_event"])
    update = plan_update(superevent, preferred, event, t_0, window, thresholds)
    if update.fields:
        gateway.write(client.update_superevent, superevent_id, **update.fields)
    for label in update.labels:  # plan_update lists only labels the superevent lacks
        gateway.write(client.write_label, superevent_id, label)
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


def _request_run(redis_client, settings: Settings, superevent_id: str, event: Mapping[str, Any],
                 category: str) -> None:
    """Ask for the superevent's DAG run (see :mod:`gw_ops.handlers.superevent_runs`)."""
    own = redis_client is None
    if own:
        from gw_ops.transport.redis_client import get_redis
        redis_client = get_redis(settings)
    try:
        conf = superevent_runs.story(settings, superevent_id, event, category)
        if superevent_runs.request_run(redis_client, settings, conf):
            # recorded first (nothing lost when the start never happens), then started
            # at once in the background: the lane goes on with the next message
            superevent_runs.start_run_soon(settings, conf)
    finally:
        if own:
            redis_client.close()


__all__ = ["NODES", "handle", "sort_key", "SupereventError", "Outcome"]
