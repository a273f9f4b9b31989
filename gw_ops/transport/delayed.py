"""Delayed actions: "do this in N seconds", durable in Redis, waited for in the triggerer.

GWCelery used Celery's ``countdown=`` for the second preliminary alert (270 s after the
first) and for the mock events' vetting signoff (600 s).  In gw-ops a handler calls
:func:`schedule`; the action is kept in a Redis sorted set scored by its due time.  The
``gw_ops_delayed_actions`` DAG is woken by a :class:`~gw_ops.airflow.triggers.DueActionTrigger`
(a deferrable wait in the triggerer: no worker slot is held while waiting) and runs
every due action with :func:`run_due`.

Actions are named functions from :data:`ACTIONS` (no arbitrary imports from Redis
data).  Scheduling is idempotent: the same action with the same arguments is kept once.
An action is removed only after it ran.  A transient failure (GraceDB or Redis down) is
retried with backoff, capped at :data:`RETRY_CAP_S`, for as long as the outage lasts and
never gives up; the health record ``delayed`` is the alarm meanwhile.  Any other failure
(an unknown action, wrong arguments) is dead-lettered with its reason at once.
"""
from __future__ import annotations

import importlib
import json
import logging
import time
from typing import Any

import redis

from gw_ops.config import Settings
from gw_ops.errors import is_transient

log = logging.getLogger(__name__)

#: Action name -> dotted path of the function, called as ``func(**args)``.
ACTIONS: dict[str, str] = {
    "second_preliminary": "gw_ops.handlers.orchestrator.second_preliminary",
    "mock_signoff": "gw_ops.mock.pipeline.mock_signoff",
}
#: Wait (s) before retrying a failed action, doubled per attempt.
RETRY_BASE_S = 10.0
#: Longest wait (s) between retries of an action that fails transiently.
RETRY_CAP_S = 300.0


def queue_key(settings: Settings) -> str:
    """Sorted set of pending actions (member: JSON, score: due Unix time)."""
    return settings.key("delayed", "queue")


def _member(action: str, args: dict[str, Any]) -> str:
    return json.dumps({"action": action, "args": args}, sort_keys=True, separators=(",", ":"))


def schedule(client: redis.Redis, settings: Settings, action: str, args: dict[str, Any],
             due_unix: float) -> bool:
    """Schedule ``action(**args)`` at ``due_unix`` (Unix time, s).

    Returns True when newly scheduled, False when the same action was already pending
    (its due time is kept: redelivered messages must not postpone it).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown delayed action {action!r}")
    return bool(client.zadd(queue_key(settings), {_member(action, args): due_unix}, nx=True))


def next_due(client: redis.Redis, settings: Settings) -> float | None:
    """Due time (Unix s) of the earliest pending action, or None."""
    first = client.zrange(queue_key(settings), 0, 0, withscores=True)
    return first[0][1] if first else None


def run_due(client: redis.Redis, settings: Settings, now: float | None = None) -> dict[str, int]:
    """Run every action due by ``now``; returns counts of done, retried and dead-lettered."""
    from gw_ops.transport.redis_client import dead_letter

    now = time.time() if now is None else now
    counts = {"done": 0, "retried": 0, "dead_lettered": 0}
    transient_reason = ""
    for raw, _ in client.zrangebyscore(queue_key(settings), "-inf", now, withscores=True):
        member = raw.decode()
        entry = json.loads(member)
        transient_key = settings.key("delayed", "transient", member)
        try:
            module, _, name = ACTIONS[entry["action"]].rpartition(".")
            getattr(importlib.import_module(module), name)(**entry["args"])
        except Exception as exc:  # noqa: BLE001 (classified below)
            if is_transient(exc):
                # an outage: retry with capped backoff as long as it lasts, never give up
                failures = client.incr(transient_key)
                client.expire(transient_key, 7 * 24 * 3600)
                wait = min(RETRY_BASE_S * 2 ** min(failures - 1, 20), RETRY_CAP_S)
                log.warning("delayed action %s failed transiently (%s); retrying in %.0f s", member, exc, wait)
                client.zadd(queue_key(settings), {member: now + wait})
                counts["retried"] += 1
                transient_reason = f"{member}: {type(exc).__name__}: {exc}"[:500]
                continue
            log.error("delayed action %s failed for good: %s", member, exc, exc_info=True)
            dead_letter(client, settings, "delayed", f"{type(exc).__name__}: {exc}", member)
            counts["dead_lettered"] += 1
        else:
            counts["done"] += 1
            log.info("delayed action %s done", member)
        client.zrem(queue_key(settings), member)
        client.delete(transient_key)
    _alarm(client, settings, transient_reason)
    return counts


def _alarm(client: redis.Redis, settings: Settings, transient_reason: str) -> None:
    """Health record ``delayed``: ``retrying`` with the reason during an outage, else ``ok``."""
    from gw_ops.transport.redis_client import read_health, record_health

    if transient_reason:
        record_health(client, settings, "delayed", "retrying", transient_reason)
    elif read_health(client, settings, "delayed").get("state") not in (None, "ok"):
        record_health(client, settings, "delayed", "ok", "no action waits out a failure")
