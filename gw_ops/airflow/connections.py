"""The Airflow connections of gw-ops: ``redis_default`` and ``gracedb_default``.

``gw-ops up`` (through :mod:`gw_ops.airflow.setup_db`) writes both into Airflow's metadata
database from the stack's settings, so the web UI lists them and an operator can change
the Redis or GraceDB that tasks use without editing variables.  Inside Airflow tasks and
triggers :func:`gw_ops.config.get_settings` then takes ``redis_url`` and ``gracedb_url``
from them; a ``GW_OPS_REDIS_URL`` or ``GW_OPS_GRACEDB_URL`` variable in an Airflow process's
environment still wins (the order is written in :mod:`gw_ops.config`).  Outside Airflow
nothing here is used.

Importing this module installs the reader (:func:`read_connection_settings`) into
:mod:`gw_ops.config`; it reads connections only while a task executes or in the
triggerer's trigger runner, never while a DAG file is parsed (no I/O at parse time), and
keeps what it read for :data:`CACHE_S`.

Connection fields:

``redis_default`` (type ``redis``, read through the Redis provider's ``RedisHook``)
    host, port, login, password; extra ``{"db": N}`` and ``{"ssl": true}`` for ``rediss://``.
``gracedb_default`` (type ``http``)
    schema = URL scheme (``http``/``https``), host, port; extra ``{"path": "/api/"}``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gw_ops import config
from gw_ops.config import CONNECTION_SETTINGS, Settings

REDIS_CONN_ID = CONNECTION_SETTINGS["redis_url"]
GRACEDB_CONN_ID = CONNECTION_SETTINGS["gracedb_url"]
#: Seconds a process keeps the connection values it read (a long-running triggerer picks up
#: a connection edited in the UI after at most this long).
CACHE_S = 30.0


# --------------------------------------------------------------------------- settings -> fields
def connection_fields(settings: Settings) -> dict[str, dict[str, Any]]:
    """The two connections as Airflow ``Connection`` keyword arguments, from ``settings``."""
    redis_url = urlsplit(settings.redis_url)
    db = (redis_url.path or "/0").strip("/") or "0"
    redis_extra: dict[str, Any] = {"db": int(db)}
    if redis_url.scheme == "rediss":
        redis_extra["ssl"] = True
    gracedb_url = urlsplit(settings.gracedb_api_url)
    return {
        REDIS_CONN_ID: dict(
            conn_type="redis", host=redis_url.hostname, port=redis_url.port or 6379,
            login=unquote(redis_url.username) if redis_url.username else None,
            password=unquote(redis_url.password) if redis_url.password else None,
            extra=json.dumps(redis_extra),
            description="Redis of gw-ops: LVAlert streams, outgoing VOEvents, health records "
                        "(written by gw-ops up)."),
        GRACEDB_CONN_ID: dict(
            conn_type="http", host=gracedb_url.hostname, schema=gracedb_url.scheme,
            port=gracedb_url.port, extra=json.dumps({"path": gracedb_url.path or "/"}),
            description="GraceDB API the pipeline talks to; credentials stay in the netrc "
                        "file (written by gw-ops up)."),
    }


def ensure_connections(settings: Settings) -> list[str]:
    """Create or update both connections in the metadata database; returns their ids.

    Runs in a process with the stack's Airflow environment (``gw-ops up``'s setup step).
    """
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for conn_id, fields in connection_fields(settings).items():
            existing = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
            if existing is None:
                session.add(Connection(conn_id=conn_id, **fields))
                continue
            for name, value in fields.items():
                if name == "extra":
                    existing.set_extra(value)
                elif name == "password":
                    existing.set_password(value)
                else:
                    setattr(existing, name, value)
    return list(connection_fields(settings))


# --------------------------------------------------------------------------- fields -> settings
def _redis_url(kwargs: dict[str, Any]) -> str:
    """``redis://`` URL of redis-py connection arguments (host, port, username, password, db, ssl)."""
    scheme = "rediss" if kwargs.get("ssl") or "ssl_cert_reqs" in kwargs else "redis"
    auth = ""
    if kwargs.get("username") or kwargs.get("password"):
        auth = f"{quote(kwargs.get('username') or '', safe='')}:{quote(kwargs.get('password') or '', safe='')}@"
    return f"{scheme}://{auth}{kwargs.get('host') or 'localhost'}:{kwargs.get('port') or 6379}/{kwargs.get('db') or 0}"


def redis_url_from_hook(hook) -> str:
    """``redis://`` URL of what a ``RedisHook`` connects to (its own reading of the connection)."""
    return _redis_url(hook.get_conn().connection_pool.connection_kwargs)


def _extra(fields: dict[str, Any]) -> dict[str, Any]:
    extra = fields.get("extra") or {}
    return json.loads(extra) if isinstance(extra, str) else dict(extra)


def redis_url_from_fields(fields: dict[str, Any]) -> str:
    """``redis://`` URL of a ``redis_default`` connection given as plain fields (REST API),
    read as ``RedisHook`` reads them."""
    extra = _extra(fields)
    return _redis_url({"host": fields.get("host"), "port": fields.get("port"), "username": fields.get("login"),
                       "password": fields.get("password"), "db": extra.get("db"), "ssl": extra.get("ssl")})


def gracedb_url_from_fields(fields: dict[str, Any]) -> str:
    """GraceDB API root of a ``gracedb_default`` connection given as plain fields."""
    path = _extra(fields).get("path") or "/api/"
    host = fields.get("host") or "127.0.0.1"
    if "://" in host:  # a host entered as a whole URL in the UI
        return host if host.endswith("/") else host + "/"
    port = f":{fields['port']}" if fields.get("port") else ""
    return f"{fields.get('schema') or 'https'}://{host}{port}{path}"


def in_airflow_runtime() -> bool:
    """Whether this process runs a task's code or the triggerer's triggers right now.

    Both talk to Airflow through ``SUPERVISOR_COMMS``; a task has its ``AIRFLOW_CTX_*``
    variables set just before it executes; the trigger runner's channel is a
    ``TriggerCommsDecoder``.  The DAG processor also has the channel but neither mark, so
    parsing a DAG file never reads a connection.
    """
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None) if task_runner else None
    if comms is None:
        return False
    if os.environ.get("AIRFLOW_CTX_DAG_ID"):
        return True
    triggerer = sys.modules.get("airflow.jobs.triggerer_job_runner")
    return triggerer is not None and isinstance(comms, triggerer.TriggerCommsDecoder)


def fetch_connection_settings() -> dict[str, Any]:
    """Read both connections through Airflow now; a connection that is not defined is skipped."""
    from airflow.providers.redis.hooks.redis import RedisHook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    values: dict[str, Any] = {}
    try:
        values["redis_url"] = redis_url_from_hook(RedisHook(redis_conn_id=REDIS_CONN_ID))
    except AirflowNotFoundException:
        pass
    try:
        conn = BaseHook.get_connection(GRACEDB_CONN_ID)
        values["gracedb_url"] = gracedb_url_from_fields(
            {"host": conn.host, "port": conn.port, "schema": conn.schema, "extra": conn.extra_dejson})
    except AirflowNotFoundException:
        pass
    return values


# No lock: in the triggerer a sync connection lookup yields to the event loop (greenback),
# and another trigger waiting on a thread lock there would block that loop for good.  Two
# concurrent first reads only read twice.
_cache: dict[str, Any] = {"at": None, "values": {}}


def read_connection_settings() -> dict[str, Any]:
    """Connection-backed settings inside Airflow tasks and triggers, ``{}`` elsewhere (cached)."""
    if not in_airflow_runtime():
        return {}
    now = time.monotonic()
    if _cache["at"] is None or now - _cache["at"] > CACHE_S:
        _cache["values"], _cache["at"] = fetch_connection_settings(), now
    return dict(_cache["values"])


config.set_connection_reader(read_connection_settings)
