"""GCN Kafka JSON notices (SVOM, IceCube, targeted Fermi/Swift) become external events.

The entry point :func:`process_json_notice` takes one JSON notice as received (bytes) or
decoded (dict), reads it with :func:`gw_ops.rules.external_json.notice_from_json` (the
rules of GWCelery 3.0.0's ``handle_kafka_alert``), and hands the notice to the shared
external-trigger path (:func:`gw_ops.handlers.external_triggers.apply_notice`: event,
``NOT_GRB``, sky map, RAVEN).  The GraceDB event file is the JSON notice itself, as
GWCelery uploads it.

The lane :func:`handle_json_notice` feeds it: the GCN Kafka listener
(:mod:`gw_ops.transport.kafka`) stores each JSON notice in ``gcn:incoming`` as notice
type :data:`~gw_ops.transport.gcn_notices.JSON_NOTICE`.  The lane runs in the serial
``exttrig`` pool, like the VOEvent lane, so external events are never made concurrently;
it exists only while the setting ``gcn_kafka_topics`` names topics.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gw_ops.config import Settings, get_settings
from gw_ops.formats.json_object import JSONRejected, parse_json_object
from gw_ops.handlers.external_triggers import apply_notice
from gw_ops.rules.external import InvalidNotice
from gw_ops.rules.external_json import MAX_JSON_NOTICE_BYTES, gracedb_payload, notice_from_json
from gw_ops.transport import gcn_notices as gcn


def decode_json_notice(payload: bytes) -> dict[str, Any]:
    """One JSON notice as received: bounded in size, parsed (linear time).

    Raises
    ------
    InvalidNotice
        Too large, not UTF-8 JSON, or not an object.
    """
    try:
        return parse_json_object(payload, "JSON notice", MAX_JSON_NOTICE_BYTES)
    except JSONRejected as exc:
        raise InvalidNotice(str(exc)) from None


def process_json_notice(alert: Mapping[str, Any] | bytes, *, client: Any = None,
                        settings: Settings | None = None, run_raven: bool = True) -> str | None:
    """A GCN Kafka JSON notice becomes an external event (created, or replaced for a
    later notice of the same trigger), as :func:`~gw_ops.handlers.external_triggers.
    process_notice` does for a VOEvent.

    Parameters
    ----------
    alert : dict or bytes
        The notice, decoded or as received.
    client : ligo.gracedb.rest.GraceDb, optional
    settings : Settings, optional
    run_raven : bool
        Run the RAVEN search for the event (default).

    Returns
    -------
    str or None
        GraceDB id of the external event, or None when the notice was ignored.

    Raises
    ------
    InvalidNotice
        Bad input (the lane that feeds it dead-letters it).
    """
    settings = settings or get_settings()
    if isinstance(alert, (bytes, bytearray)):
        alert = decode_json_notice(bytes(alert))
    notice = notice_from_json(alert, settings)
    payload = json.dumps(gracedb_payload(alert, notice), sort_keys=True).encode()
    return apply_notice(notice, payload, client=client, settings=settings, run_raven=run_raven)


@gcn.handler(gcn.JSON_NOTICE, pool="exttrig", enabled_setting="gcn_kafka_topics")
def handle_json_notice(payload: bytes, notice: dict[str, Any]) -> str | None:
    """Lane handler of GCN Kafka JSON notices (IceCube, SVOM, Swift/BAT-GUANO, CHIME,
    Fermi targeted): each becomes an external event.

    Raises
    ------
    InvalidNotice
        The notice cannot be handled; the lane dead-letters it.
    """
    return process_json_notice(notice)


__all__ = ["process_json_notice", "decode_json_notice", "handle_json_notice"]
