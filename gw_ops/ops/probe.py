"""Latency probe handlers: measure message → handler time through the real lanes.

Loaded only when ``GW_OPS_EXTRA_HANDLER_MODULES`` names this module (tests and
benchmarks do).  Each probe handler records every call in a Redis list
``<prefix>probe:<kind>`` as JSON ``{"uid", "sent", "handled", "pid"}``, where ``sent``
is the Unix time (s) the sender put in the message and ``handled`` the time the handler ran.

Send probes with :func:`send_lvalert_probe` (an LVAlert on node ``gw_ops_probe``) or as a
GCN notice of type ``TEST_COORDS`` (GCN's own test packet type, 2) carrying a ``probe_sent``
Param, made by :func:`make_probe_notice`.
"""
from __future__ import annotations

import json
import os
import time

from gw_ops.transport import gcn_notices as gcn
from gw_ops.transport import lvalert

PROBE_NODE = "gw_ops_probe"
PROBE_NOTICE_TYPE = "TEST_COORDS"


def _record(kind: str, uid: str, sent: float | None) -> None:
    from gw_ops.config import get_settings
    from gw_ops.transport.redis_client import get_redis

    settings = get_settings()
    entry = {"uid": uid, "sent": sent, "handled": time.time(), "pid": os.getpid()}
    get_redis(settings).rpush(settings.key("probe", kind), json.dumps(entry))


@lvalert.handler(PROBE_NODE)
def lvalert_probe(message: dict) -> None:
    """Record that an LVAlert probe message reached its handler (latency probe)."""
    _record("lvalert", message["uid"], (message.get("data") or {}).get("sent"))


@gcn.handler(PROBE_NOTICE_TYPE)
def gcn_probe(payload: bytes, root) -> None:
    """Record that a GCN probe notice reached its handler (latency probe)."""
    params = {p.get("name"): p.get("value") for p in root.iter("Param")}
    sent = params.get("probe_sent")
    _record("gcn", root.get("ivorn", ""), float(sent) if sent else None)


def send_lvalert_probe(client, settings, uid: str) -> str:
    """Append one probe message to the probe node's stream; returns its stream id."""
    from gw_ops.transport.redis_client import dumps, lvalert_stream

    payload = dumps({"uid": uid, "alert_type": "new", "data": {"sent": time.time()}, "object": {}})
    return client.xadd(lvalert_stream(settings, PROBE_NODE), {"payload": payload}).decode()


def read_probe_records(client, settings, kind: str) -> list[dict]:
    """Every probe call recorded so far for ``kind`` (``lvalert`` or ``gcn``)."""
    return [json.loads(raw) for raw in client.lrange(settings.key("probe", kind), 0, -1)]


def make_probe_notice(ivorn_suffix: str) -> bytes:
    """A minimal VOEvent of the probe's notice type (GCN's TEST_COORDS) carrying the time it was sent."""
    from gcn import NoticeType

    packet_type = NoticeType[PROBE_NOTICE_TYPE].value
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" role="test"
  ivorn="ivo://gw-ops/probe#{ivorn_suffix}">
  <Who><AuthorIVORN>ivo://gw-ops/probe</AuthorIVORN><Date>2026-11-28T00:00:00</Date></Who>
  <What>
    <Param name="Packet_Type" value="{packet_type}"/>
    <Param name="probe_sent" value="{time.time()!r}"/>
  </What>
</voe:VOEvent>
""".encode()
