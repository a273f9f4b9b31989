"""Task functions of the scheduled maintenance DAGs (what Celery beat did in GWCelery)."""
from __future__ import annotations

import time
from typing import Any

from gw_ops.config import Settings, get_settings

#: Listeners whose health records the health DAG checks.
LISTENERS = ("lvalert", "gcn", "broker")
#: States of a health record that mean "working" (listeners say connected; lanes and the
#: delayed actions say ok; see gw_ops.transport.streams.drain for the lane alarms).
HEALTHY_STATES = ("connected", "ok")


def smoke(settings: Settings | None = None) -> dict[str, Any]:
    """Check that a task reaches Redis and GraceDB; return what it saw (trivial DAG of the demo)."""
    import urllib.request

    from gw_ops.transport.redis_client import get_redis

    settings = settings or get_settings()
    redis_ok = bool(get_redis(settings).ping())
    with urllib.request.urlopen(settings.gracedb_api_url, timeout=10) as response:  # noqa: S310
        gracedb_status = response.status
    return {"redis": redis_ok, "gracedb_http_status": gracedb_status}


def listener_problems(records: dict[str, dict[str, str]], now: float, down_alarm_s: float) -> list[str]:
    """Pure rule of the health DAG: which listeners are down, or silent, for too long.

    Parameters
    ----------
    records : dict
        ``{listener: health record}`` (see :func:`gw_ops.transport.redis_client.record_health`).
    now : float
        Current Unix time (s).
    down_alarm_s : float
        Longest tolerated outage (s).

    Returns
    -------
    list of str
        One line per problem; empty when all is well.
    """
    problems = []
    for name, record in records.items():
        if not record:
            problems.append(f"{name}: no health record (listener never started)")
            continue
        since = float(record.get("since", now))
        updated = float(record.get("updated", now))
        if record.get("state") == "failing":  # a handler bug: no grace period
            problems.append(f"{name}: failing since {now - since:.0f} s ({record.get('detail', '')})")
        elif name.startswith("lane:") or name == "delayed":
            # alarms, written when something happens: an old "ok" is not a silence
            if record.get("state") not in HEALTHY_STATES and now - since > down_alarm_s:
                problems.append(f"{name}: {record.get('state')} for {now - since:.0f} s "
                                f"({record.get('detail', '')})")
        elif record.get("state") not in HEALTHY_STATES and now - since > down_alarm_s:
            problems.append(f"{name}: {record.get('state')} for {now - since:.0f} s ({record.get('detail', '')})")
        elif now - updated > down_alarm_s:
            problems.append(f"{name}: no heartbeat for {now - updated:.0f} s")
    return problems


def alarm_records(client, settings: Settings) -> dict[str, dict[str, str]]:
    """Health records of the lanes (``lane:<group>``) and of the delayed actions (``delayed``).

    They are alarms: written by a drain or a run of the delayed actions, ``retrying`` (a
    transient failure waits out an outage), ``failing`` (a handler bug) or ``ok``.
    """
    from gw_ops.transport.redis_client import read_health

    prefix = settings.key("health", "")
    names = sorted(key.decode().removeprefix(prefix)
                   for key in client.scan_iter(match=prefix + "lane:*", count=1000))
    records = {name: read_health(client, settings, name) for name in [*names, "delayed"]}
    return {name: record for name, record in records.items() if record}


def check_listeners(settings: Settings | None = None) -> dict[str, dict[str, str]]:
    """Fail (raise) when a listener has been down, or a lane or the delayed actions have been
    retrying a transient failure, longer than ``listener_down_alarm_s``; or a lane fails on a bug."""
    from gw_ops.transport.redis_client import get_redis, read_health

    settings = settings or get_settings()
    client = get_redis(settings)
    kafka = (("igwn_alert",) if settings.transport == "kafka" else ()) + (
        ("gcn_kafka",) if settings.gcn_kafka_topics else ())
    records = {name: read_health(client, settings, name) for name in LISTENERS + kafka}
    records.update(alarm_records(client, settings))
    problems = listener_problems(records, time.time(), settings.listener_down_alarm_s)
    if problems:
        raise RuntimeError("listeners unhealthy: " + "; ".join(problems))
    return records


def check_dead_letters(settings: Settings | None = None) -> dict[str, int]:
    """Fail (raise) while there are dead letters no operator has acknowledged yet.

    Returns ``{source: dead letters kept}`` when none is new.  Acknowledge with
    ``gw-ops dead-letters --ack`` after reading them.
    """
    from gw_ops.transport import dead_letters
    from gw_ops.transport.redis_client import get_redis

    settings = settings or get_settings()
    entries = dead_letters.summary(get_redis(settings), settings)
    found = dead_letters.problems(entries)
    if found:
        raise RuntimeError("rejected input waits for an operator (gw-ops dead-letters): "
                           + "; ".join(found))
    return {entry.source: entry.count for entry in entries}


def mock_event(settings: Settings | None = None) -> dict[str, Any]:
    """Upload the scheduled mock event (see :mod:`gw_ops.mock.pipeline`)."""
    from gw_ops.mock.pipeline import upload_mock_event

    return upload_mock_event(settings or get_settings())


def delayed_actions(settings: Settings | None = None) -> dict[str, int]:
    """Run every delayed action that is due (see :mod:`gw_ops.transport.delayed`)."""
    from gw_ops.transport.delayed import run_due
    from gw_ops.transport.redis_client import get_redis

    settings = settings or get_settings()
    return run_due(get_redis(settings), settings)
