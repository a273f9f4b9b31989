"""Redis connections and the key names gw-ops writes.

Every key is built with :meth:`gw_ops.config.Settings.key`, so one Redis server can
hold several deployments (and test sessions) side by side.

Key layout (``P`` is ``settings.key_prefix``):

``P lvalert:<node>``
    Stream of LVAlert messages of one GraceDB node; field ``payload`` holds the JSON
    text ``{"uid", "alert_type", "data", "object"}``.
``P gcn:incoming``
    Stream of received GCN notices; fields ``xml``, ``notice_type``, ``ivorn``,
    ``received`` (Unix time, s).
``P voevent:outgoing``
    Stream of VOEvents the broker sends; fields ``xml``, ``ivorn``.
``P deadletter:<source>``
    Stream of rejected input; fields ``source``, ``reason``, ``payload``, ``time``.
``P health:<component>``
    Hash with ``state``, ``since``, ``last_message``, ``detail`` of a listener.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import redis

from gw_ops.config import Settings, get_settings


def get_redis(settings: Settings | None = None, **kwargs: Any) -> redis.Redis:
    """Synchronous client for ``settings.redis_url`` (bytes responses)."""
    settings = settings or get_settings()
    return redis.Redis.from_url(settings.redis_url, **kwargs)


#: ``{redis_url: (pid, client)}`` of :func:`shared_redis`, and the lock that guards it.
_shared: dict[str, tuple[int, redis.Redis]] = {}
_shared_lock = threading.Lock()


def shared_redis(settings: Settings | None = None) -> redis.Redis:
    """This process's synchronous client for ``settings.redis_url``, made on first use.

    For hot paths that would otherwise open and close a connection per call (about 8 ms
    each, e.g. the superevent lane's run requests): the client's pool keeps its
    connections for the next call, so its number stays at the number of threads using
    it at once.  Callers must not close it.  redis-py's pool is thread-safe, and replaces
    a connection that Redis closed (a restart) when it next hands it out.  A forked
    child gets a client of its own (the parent's sockets are never used by two
    processes).

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`gw_ops.config.get_settings`.

    Returns
    -------
    redis.Redis
        Bytes responses, like :func:`get_redis`.
    """
    settings = settings or get_settings()
    pid = os.getpid()
    with _shared_lock:
        entry = _shared.get(settings.redis_url)
        if entry is None or entry[0] != pid:
            entry = _shared[settings.redis_url] = (pid, get_redis(settings))
        return entry[1]


def get_async_redis(settings: Settings | None = None, **kwargs: Any):
    """``redis.asyncio`` client for ``settings.redis_url`` (for triggers and services)."""
    import redis.asyncio as aioredis

    settings = settings or get_settings()
    return aioredis.Redis.from_url(settings.redis_url, **kwargs)


def lvalert_stream(settings: Settings, node: str) -> str:
    """Stream key of one LVAlert node."""
    return settings.key("lvalert", node)


def gcn_incoming_stream(settings: Settings) -> str:
    """Stream key of received GCN notices."""
    return settings.key("gcn", "incoming")


def voevent_outgoing_stream(settings: Settings) -> str:
    """Stream key of the VOEvents the broker sends."""
    return settings.key("voevent", "outgoing")


def deadletter_stream(settings: Settings, source: str) -> str:
    """Stream key of rejected input from one source (``lvalert``, ``gcn``, ...)."""
    return settings.key("deadletter", source)


def health_key(settings: Settings, component: str) -> str:
    """Hash key of one listener's health record."""
    return settings.key("health", component)


def dead_letter(client: redis.Redis, settings: Settings, source: str, reason: str,
                payload: bytes | str, maxlen: int = 10_000) -> bytes:
    """Keep rejected input for inspection and return its stream id.

    Parameters
    ----------
    client : redis.Redis
    settings : Settings
    source : str
        Where it came from, e.g. ``"gcn"`` or ``"lvalert:cbc_gstlal"``.
    reason : str
        Why it was rejected, one line.
    payload : bytes or str
        The raw input as received.
    maxlen : int
        Approximate length the dead-letter stream is trimmed to.
    """
    fields = {"source": source, "reason": reason, "payload": payload, "time": repr(time.time())}
    return client.xadd(deadletter_stream(settings, source.split(":")[0]), fields,
                       maxlen=maxlen, approximate=True)


def record_health(client: redis.Redis, settings: Settings, component: str, state: str,
                  detail: str = "", message_seen: bool = False) -> None:
    """Record a listener's connection state (``connected``/``disconnected``).

    ``since`` changes only when the state changes; ``last_message`` is stamped when
    ``message_seen`` is true.  Times are Unix seconds.
    """
    key = health_key(settings, component)
    now = repr(time.time())
    previous = client.hget(key, "state")
    mapping = {"state": state, "detail": detail, "updated": now}
    if previous is None or previous.decode() != state:
        mapping["since"] = now
    if message_seen:
        mapping["last_message"] = now
    client.hset(key, mapping=mapping)


def read_health(client: redis.Redis, settings: Settings, component: str) -> dict[str, Any]:
    """A listener's health record as a dict of str (empty when never recorded)."""
    raw = client.hgetall(health_key(settings, component))
    return {k.decode(): v.decode() for k, v in raw.items()}


def persistence(client: redis.Redis, rdb_max_window_s: float) -> tuple[bool, str]:
    """Whether a Redis server keeps every write over a restart, read with ``CONFIG GET``.

    Durable means AOF on (``appendonly yes``), or RDB snapshots with a ``save <s> 1``
    rule where ``s <= rdb_max_window_s``: every single write is then on disk within ``s``
    seconds.  Rules that need more changes (``save 300 100``) leave a lone write unsaved
    for ever and do not count.

    Parameters
    ----------
    client : redis.Redis
    rdb_max_window_s : float
        Longest time (s) a write may stay unsaved with RDB only.

    Returns
    -------
    durable : bool
    detail : str
        What was found, e.g. ``"appendonly yes (appendfsync everysec)"`` or
        ``"appendonly no, save ''"``.

    Raises
    ------
    redis.RedisError
        When the server does not answer or refuses ``CONFIG GET`` (some managed Redis
        services rename it).
    """
    def config_get(name: str) -> str:
        value = client.config_get(name).get(name, "")
        return value.decode() if isinstance(value, bytes) else str(value)

    appendonly, save = config_get("appendonly"), config_get("save").strip()
    if appendonly == "yes":
        return True, f"appendonly yes (appendfsync {config_get('appendfsync')})"
    numbers = [int(part) for part in save.split()] if save else []
    windows = [seconds for seconds, changes in zip(numbers[::2], numbers[1::2], strict=False)
               if changes <= 1]
    detail = f"appendonly {appendonly or '?'}, save {save!r}"
    if windows and min(windows) <= rdb_max_window_s:
        return True, f"{detail}: every write saved within {min(windows)} s"
    return False, detail


def dumps(obj: Any) -> str:
    """Compact JSON used for every stream payload."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)
