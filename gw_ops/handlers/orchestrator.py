"""Orchestrator: the alert a superevent's new label or new file calls for.

The decisions are the pure alert policy of :mod:`gw_ops.rules.alert_policy` (its table
says which label sends which alert); sending and recording an alert is
:mod:`gw_ops.handlers.alert_sender`; the openmp localization lane is
:mod:`gw_ops.handlers.localization`.  This module holds the lane handlers of the
superevent nodes and the second Preliminary alert (a delayed action).

The lane handlers of the localization lane are registered here, not in
:mod:`gw_ops.handlers.localization`, because a handler's DAG id (and Redis consumer
group) is ``lvalert_<module last name>_<function>``: they keep
``lvalert_orchestrator_localize_preferred`` and
``lvalert_orchestrator_plot_volume_after_alert``.

This module is imported by the DAG processor: only light imports at module level.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from gw_ops import gracedb_client as gateway
from gw_ops.config import Settings, get_settings
from gw_ops.formats import alert_content
from gw_ops.handlers import localization, superevent_runs
from gw_ops.handlers.alert_sender import complete_unrecorded_alerts, default_clients, send_alert, sent_keys
from gw_ops.rules.alert_policy import (
    LESS_SIGNIFICANT_PRELIMINARY_KEY,
    decide_on_file,
    decide_on_label,
    decide_second_preliminary,
    is_update_trigger_file,
)
from gw_ops.rules.events import SupereventError
from gw_ops.rules.superevents import select_preferred
from gw_ops.rules.thresholds import parse_alert_thresholds
from gw_ops.transport import lvalert
from gw_ops.vocabulary import (
    ADVNO,
    ADVOK,
    CBC_EVENT_NODES,
    EARLY_WARNING,
    GCN_PRELIM_SENT,
    LOW_SIGNIF_LOCKED,
    SIGNIF_LOCKED,
    SUPEREVENT_NODES,
    category_of_superevent_id,
)

log = logging.getLogger(__name__)


@lvalert.handler(*SUPEREVENT_NODES, priority_weight=50, linger=True)
def handle_superevent(message: Mapping[str, Any], *, settings: Settings | None = None,
                      client=None, redis_client=None) -> dict[str, Any] | None:
    """Send the alert a superevent's new label or new file calls for.

    Parameters
    ----------
    message : dict
        LVAlert message (``uid``, ``alert_type``, ``data``, ``object``, ``node``).
    settings, client, redis_client : optional
        Injected in tests; built from the settings otherwise.

    Returns
    -------
    dict or None
        What :func:`send_alert` returned, or None when no alert was due.
    """
    settings = settings or get_settings()
    superevent_id = message.get("uid") or (message.get("object") or {}).get("superevent_id")
    if not superevent_id or category_of_superevent_id(superevent_id) not in \
            settings.superevent_categories:
        return None
    kind = message.get("alert_type")
    data = message.get("data") or {}
    if kind not in ("label_added", "log"):
        return None
    if kind == "log" and not is_update_trigger_file(data.get("filename")):
        return None
    client, redis_client = default_clients(settings, client, redis_client)
    with superevent_lock(redis_client, settings, superevent_id):
        result = _handle_superevent_locked(superevent_id, kind, data, settings=settings,
                                           client=client, redis_client=redis_client)
    started = superevent_runs.run_started(redis_client, settings, superevent_id)
    answer = None
    if kind == "label_added" and data.get("name") in (ADVOK, ADVNO) and started:
        # the signoff came through GraceDB: answer the run's Required Action too
        answer = superevent_runs.answer_signoff(settings, superevent_id, data["name"], log)
        log.info("%s: %s through GraceDB; superevent run signoff: %s", superevent_id,
                 data["name"], answer)
    if result is not None and started:
        # an alert the superevent run has no task for gets a run of its own, so an
        # operator finds it among the superevent's runs; the alert is out whatever
        # happens here, and a redelivery would not record it again (nothing left to
        # send), so a failure is logged, not raised
        try:
            superevent_runs.record_alert_run(settings, superevent_id, result,
                                             outside_run=answer == "disagrees")
        except Exception:  # noqa: BLE001
            log.exception("%s: the run recording alert %s was not created", superevent_id,
                          result.get("key"))
    return result


def alert_for_label(superevent_id: str, label: str, *, settings: Settings | None = None,
                    client=None, redis_client=None) -> dict[str, Any] | None:
    """Put ``label`` on the superevent (idempotent) and send the alert it calls for.

    What the superevent run's ``initial`` / ``retraction`` tasks do after the advocate's
    answer; the orchestrator lane, woken by the same label, then finds the alert sent.

    Returns
    -------
    dict or None
        What :func:`send_alert` returned, or None when no alert is due.
    """
    settings = settings or get_settings()
    client, redis_client = default_clients(settings, client, redis_client)
    gateway.ensure_label(client, superevent_id, label)
    with superevent_lock(redis_client, settings, superevent_id):
        return _handle_superevent_locked(superevent_id, "label_added", {"name": label},
                                         settings=settings, client=client,
                                         redis_client=redis_client)


def superevent_lock(redis_client, settings: Settings, superevent_id: str):
    """Lock that serializes the orchestrator's work on one superevent across lane runs.

    Two runs of the orchestrator DAG may handle messages of the same superevent at once;
    alert sending is safe on its own (an atomic Redis script), but copying the preferred
    event's files and finishing the bookkeeping are not.  Held at most
    ``localization_lock_ttl_s`` (a dead holder cannot block forever).
    """
    return redis_client.lock(settings.key("orchestrator", "lock", superevent_id),
                             timeout=settings.localization_lock_ttl_s,
                             blocking_timeout=settings.localization_lock_ttl_s)


def _handle_superevent_locked(superevent_id: str, kind: str, data: Mapping[str, Any], *,
                              settings: Settings, client, redis_client) -> dict[str, Any] | None:
    completed = complete_unrecorded_alerts(superevent_id, settings=settings, client=client,
                                           redis_client=redis_client)
    labels = gateway.labels(client, superevent_id)  # fresh: the message's copy may be stale
    sent = sent_keys(client, settings, redis_client, superevent_id)
    if kind == "label_added":
        decision = decide_on_label(data.get("name", ""), labels, sent)
    else:
        decision = decide_on_file(data.get("filename"), data.get("file_version"), labels, sent)
    result = completed[-1] if completed else None
    if decision is not None and kind == "label_added" and \
            data.get("name") in (SIGNIF_LOCKED, EARLY_WARNING):
        lock_and_reselect(superevent_id, labels, settings=settings, client=client)
    if decision is not None:
        result = send_alert(decision, superevent_id, settings=settings, client=client,
                            redis_client=redis_client)
        sent = sent_keys(client, settings, redis_client, superevent_id)
        labels = gateway.labels(client, superevent_id)
    # every delivery finishes the bookkeeping of what was sent, so a redelivery after a
    # crash between sending and recording repairs it
    finish_bookkeeping(superevent_id, sent, labels, settings=settings, client=client,
                       redis_client=redis_client)
    return result


def lock_and_reselect(superevent_id: str, labels: set[str], *, settings: Settings,
                      client) -> str | None:
    """Before a significant Preliminary or an EarlyWarning (GWCelery 2.5's orchestrator):
    freeze the preferred event (``LOW_SIGNIF_LOCKED``) and re-select it among all of the
    superevent's G events, ignoring the lock -- a significant event that arrived after a
    less-significant one locked the superevent, or an event raised by ``RAVEN_ALERT``,
    becomes preferred.

    Returns
    -------
    str or None
        The new preferred event, or None when it did not change.
    """
    if LOW_SIGNIF_LOCKED not in labels:
        gateway.ensure_label(client, superevent_id, LOW_SIGNIF_LOCKED)
    superevent = gateway.superevent(client, superevent_id)
    current = superevent.get("preferred_event")
    ids = [current] + [g for g in superevent.get("gw_events") or () if g != current]
    candidates = [gateway.event(client, graceid) for graceid in ids if graceid]
    thresholds = parse_alert_thresholds(settings.superevent_alert_thresholds)
    try:
        best = select_preferred(candidates, thresholds)
    except (SupereventError, ValueError) as exc:
        # an event the rules cannot rank: keep the current preferred event, send anyway
        log.warning("%s: preferred event not re-selected (%s)", superevent_id, exc)
        return None
    if best["graceid"] == current:
        return None
    gateway.write(client.update_superevent, superevent_id, preferred_event=best["graceid"],
                  t_0=float(best["gpstime"]))
    log.info("%s: preferred event re-selected: %s -> %s", superevent_id, current,
             best["graceid"])
    return best["graceid"]


def finish_bookkeeping(superevent_id: str, sent: set[str], labels: set[str], *, settings: Settings,
                       client, redis_client) -> None:
    """Record the consequences of sent alerts (idempotent).

    ``GCN_PRELIM_SENT`` once a Preliminary is out, and the second Preliminary scheduled
    ``preliminary_cleanup_timeout_s`` after the first while it has not been sent (the
    schedule keeps the earliest due time, so redeliveries do not postpone it).
    """
    if any(key.startswith(alert_content.PRELIMINARY) for key in sent) and GCN_PRELIM_SENT not in labels:
        gateway.ensure_label(client, superevent_id, GCN_PRELIM_SENT)
    # the significant and the less-significant second Preliminary are scheduled apart
    # (distinct arguments), each after its own first one
    for follows, arguments in ((None, {"superevent_id": superevent_id}),
                               (LESS_SIGNIFICANT_PRELIMINARY_KEY,
                                {"superevent_id": superevent_id,
                                 "follows": LESS_SIGNIFICANT_PRELIMINARY_KEY})):
        if decide_second_preliminary(labels, sent, follows) is not None:
            from gw_ops.transport.delayed import schedule
            schedule(redis_client, settings, "second_preliminary", arguments,
                     time.time() + settings.preliminary_cleanup_timeout_s)


def second_preliminary(superevent_id: str, *, settings: Settings | None = None, client=None,
                       redis_client=None, follows: str | None = None) -> dict[str, Any] | None:
    """Send the second Preliminary alert, due ``settings.preliminary_cleanup_timeout_s``
    after the first (``follows``: the first one's key, default the significant
    ``Preliminary-1``); the preferred event is re-read from GraceDB, and its files copied
    again when they changed.  Idempotent: the lead's DAG may call it more than once.

    Returns
    -------
    dict or None
        What :func:`send_alert` returned, or None when it is not due.
    """
    settings = settings or get_settings()
    client, redis_client = default_clients(settings, client, redis_client)
    with superevent_lock(redis_client, settings, superevent_id):
        complete_unrecorded_alerts(superevent_id, settings=settings, client=client,
                                   redis_client=redis_client)
        decision = decide_second_preliminary(
            gateway.labels(client, superevent_id),
            sent_keys(client, settings, redis_client, superevent_id), follows)
        if decision is None:
            return None
        return send_alert(decision, superevent_id, settings=settings, client=client,
                          redis_client=redis_client)


def wait_seconds_until_second_preliminary(first_sent_unix: float,
                                          settings: Settings | None = None,
                                          now: float | None = None) -> float:
    """Seconds left before :func:`second_preliminary` is due (0 when due)."""
    settings = settings or get_settings()
    now = time.time() if now is None else now
    return max(0.0, first_sent_unix + settings.preliminary_cleanup_timeout_s - now)


# --- the openmp lane (work in gw_ops.handlers.localization) ---------------------------


# concurrent: one drain per openmp slot (workers on several hosts localize at once); the
# Redis lock per event in handle_cbc_event keeps two drains off the same event
@lvalert.handler(*CBC_EVENT_NODES, *SUPEREVENT_NODES, pool="openmp", priority_weight=100, concurrent=True)
def localize_preferred(message: Mapping[str, Any], *, settings: Settings | None = None,
                       client=None) -> list[str]:
    """Lane handler: :func:`gw_ops.handlers.localization.localize_preferred`."""
    return localization.localize_preferred(message, settings=settings, client=client)


@lvalert.handler(*SUPEREVENT_NODES, pool="openmp", priority_weight=1, enabled_setting="plot_volume")
def plot_volume_after_alert(message: Mapping[str, Any], *, settings: Settings | None = None,
                            client=None) -> str | None:
    """Lane handler: :func:`gw_ops.handlers.localization.plot_volume_after_alert`."""
    return localization.plot_volume_after_alert(message, settings=settings, client=client)
