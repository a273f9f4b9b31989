"""confluent-kafka configuration of gw-ops' Kafka clients, with credentials from outside the code.

Credentials come, per broker host, from

1. an Airflow connection named in the setting ``kafka_airflow_connections``
   (``host=conn_id``): ``login`` and ``password``; ``extra`` may give ``protocol``
   (``SASL_SSL`` or ``SASL_PLAINTEXT``), ``mechanism`` (``SCRAM-SHA-512``,
   ``SCRAM-SHA-256``, ``OAUTHBEARER``), ``token_endpoint`` (OIDC) and ``ssl_ca_location``;
2. else hop's ``auth.toml`` named by the setting ``kafka_auth_file`` (the file the
   ``hop auth add`` command writes; mode 0600, as hop itself demands), the entry whose
   ``hostname`` matches the broker, or the only entry without a hostname;
3. else none: a plaintext connection (the local tansu broker).

The SASL settings are the ones hop-client 0.13 / adc-streaming 2.7 derive from the same
auth.toml entry (SCRAM over SASL_SSL for SCIMMA, OIDC client credentials for GCN Kafka),
so a deployment that works with ``hop`` works here without hop-client installed.
"""
from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from gw_ops.config import Settings


class KafkaAuthError(RuntimeError):
    """The credentials for a broker are missing, ambiguous or unsafe."""


#: Consumer settings of every gw-ops listener: offsets are committed by hand, after the
#: record is durable in Redis; a new group starts at the oldest record, so nothing sent
#: while gw-ops was down is skipped.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "max.poll.interval.ms": 300_000,
    "fetch.wait.max.ms": 10,  # latency over batching (librdkafka's default is 500 ms)
    "partition.assignment.strategy": "cooperative-sticky",
}

#: Producer settings of alerts out (what GWCelery's hop stream uses: 8 MiB, zstd), with
#: acks from all replicas and the idempotent producer (no duplicates from its own retries).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "zstd",
    "message.max.bytes": 8 * 1024 * 1024,
}


def load_hop_auth(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Entries of hop's auth file (``[[auth]]`` tables, or one ``[auth]`` table).

    Raises
    ------
    KafkaAuthError
        The file is missing, readable by group or others, or has no ``auth`` table.
    """
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KafkaAuthError(f"Kafka auth file {path}: {exc}") from exc
    if mode & 0o077:
        raise KafkaAuthError(f"Kafka auth file {path} has unsafe permissions "
                             f"{stat.filemode(mode)}; run chmod 600 on it")
    try:
        data = tomllib.loads(path.read_text())["auth"]
    except (KeyError, tomllib.TOMLDecodeError) as exc:
        raise KafkaAuthError(f"Kafka auth file {path} has no valid [auth] table: {exc}") from exc
    return [data] if isinstance(data, dict) else list(data)


def select_auth(entries: list[dict[str, Any]], server: str) -> dict[str, Any]:
    """The entry for a broker ``host[:port]``: hostname match first, else the one without.

    Raises
    ------
    KafkaAuthError
        None or several entries match.
    """
    host = server.split(":")[0]
    exact = [e for e in entries if e.get("hostname") and str(e["hostname"]).split(":")[0] == host]
    chosen = exact or [e for e in entries if not e.get("hostname")]
    if len(chosen) != 1:
        raise KafkaAuthError(f"{len(chosen)} credentials in the Kafka auth file match {server!r}; "
                             "give each entry a hostname")
    return chosen[0]


def sasl_config(entry: dict[str, Any]) -> dict[str, Any]:
    """librdkafka SASL settings of one credential entry (hop auth.toml keys).

    Parameters
    ----------
    entry : dict
        ``username``, ``password``, optional ``protocol``, ``mechanism``,
        ``token_endpoint``, ``ssl_ca_location``.
    """
    protocol = str(entry.get("protocol") or "SASL_SSL").upper()
    token_endpoint = entry.get("token_endpoint")
    mechanism = str(entry.get("mechanism") or ("OAUTHBEARER" if token_endpoint else "SCRAM-SHA-512"))
    mechanism = mechanism.upper().replace("_", "-")
    if protocol not in ("SASL_SSL", "SASL_PLAINTEXT"):
        raise KafkaAuthError(f"unsupported Kafka security protocol {protocol!r}")
    if "username" not in entry or "password" not in entry:
        raise KafkaAuthError("Kafka credential without username and password")
    conf: dict[str, Any] = {"security.protocol": protocol, "sasl.mechanism": mechanism}
    if protocol == "SASL_SSL":
        ca = entry.get("ssl_ca_location")
        if not ca:
            try:
                import certifi  # what hop/adc use: a CA bundle independent of the OS
                ca = certifi.where()
            except ImportError:
                ca = None
        if ca:
            conf["ssl.ca.location"] = ca
    if mechanism == "OAUTHBEARER":
        if not token_endpoint:
            raise KafkaAuthError("OAUTHBEARER credential without token_endpoint")
        conf.update({"sasl.oauthbearer.method": "oidc",
                     "sasl.oauthbearer.client.id": entry["username"],
                     "sasl.oauthbearer.client.secret": entry["password"],
                     "sasl.oauthbearer.token.endpoint.url": token_endpoint})
    elif mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        conf.update({"sasl.username": entry["username"], "sasl.password": entry["password"]})
    else:
        raise KafkaAuthError(f"unsupported SASL mechanism {mechanism!r}")
    return conf


def _airflow_entry(conn_id: str) -> dict[str, Any]:
    """A credential entry from an Airflow connection (read when the client is built)."""
    from airflow.sdk import BaseHook  # only where a connection is configured

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
    return {"username": conn.login, "password": conn.password, **extra}


def auth_config(settings: Settings, server: str) -> dict[str, Any]:
    """Security settings for one broker (``host:port``), from the configured source."""
    host = server.split(",")[0].split(":")[0]
    for pair in settings.kafka_airflow_connections:
        name, _, conn_id = pair.partition("=")
        if name.strip() == host and conn_id.strip():
            return sasl_config(_airflow_entry(conn_id.strip()))
    if settings.kafka_auth_file:
        entries = load_hop_auth(settings.kafka_auth_file)
        return sasl_config(select_auth(entries, server.split(",")[0]))
    return {}


def consumer_config(settings: Settings, server: str, group_id: str) -> dict[str, Any]:
    """Config of a listener's consumer (manual commits, fixed group id)."""
    return {"bootstrap.servers": server, "group.id": group_id, **CONSUMER_DEFAULTS,
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
            "fetch.message.max.bytes": max(settings.kafka_max_record_bytes, 1024 * 1024),
            **auth_config(settings, server)}


def producer_config(settings: Settings, server: str) -> dict[str, Any]:
    """Config of a producer (alerts out, the local GraceDB's LVAlerts)."""
    return {"bootstrap.servers": server, **PRODUCER_DEFAULTS,
            "message.timeout.ms": int(settings.kafka_alert_timeout_s * 1000),
            **auth_config(settings, server)}
