"""GCN notices: the ``@gcn.handler`` decorator and notice-type helpers.

Usage
-----
>>> from gcn import NoticeType
>>> from gw_ops import gcn
>>> @gcn.handler(NoticeType.FERMI_GBM_GND_POS, NoticeType.SWIFT_BAT_GRB_POS_ACK, pool="exttrig")
... def handle_grb(payload, root):
...     ...

``payload`` is the VOEvent XML (bytes) and ``root`` its parsed lxml root element.
Delivery is at-least-once: handlers must be idempotent.

GCN's Kafka JSON notices (IceCube, SVOM, Swift/BAT-GUANO, CHIME, Fermi targeted) have no
``NoticeType``; they share the pseudo type :data:`JSON_NOTICE`, and a handler registered
for it is called as ``func(payload, notice)`` with the decoded JSON object.
"""
from __future__ import annotations

from typing import Any, Callable

from gcn import NoticeType  # pygcn: an IntEnum of GCN notice types, a light import

from gw_ops.transport.registry import register

#: Notice type of every GCN Kafka JSON notice (stream entries with a ``json`` field).
JSON_NOTICE = "GCN_KAFKA_JSON"


def notice_type_name(notice_type: NoticeType | int | str) -> str:
    """Canonical name of a notice type (``NoticeType`` member, its number, its name, or
    :data:`JSON_NOTICE`)."""
    if notice_type == JSON_NOTICE:
        return JSON_NOTICE
    if isinstance(notice_type, str):
        return NoticeType[notice_type].name
    return NoticeType(int(notice_type)).name


def handler(*notice_types: NoticeType | int | str, **task_kwargs: Any) -> Callable:
    """Register a function as the handler of the given GCN notice types.

    Parameters
    ----------
    *notice_types : gcn.NoticeType, int or str
        Notice types, e.g. ``NoticeType.FERMI_GBM_FLT_POS``.
    **task_kwargs
        Airflow settings of the handler's lane: ``pool``, ``queue``, ``priority_weight``,
        ``retries``, ``execution_timeout``, ``sort_key``.
    """
    return register("gcn", tuple(notice_type_name(t) for t in notice_types), task_kwargs)


def decode_notice(fields: dict[str, bytes]) -> tuple[str, bytes, Any]:
    """Notice type name, payload and parsed form of a ``gcn:incoming`` stream entry.

    A VOEvent entry (field ``xml``) gives its ``NoticeType`` name, the XML and its lxml
    root; a GCN Kafka JSON notice (field ``json``) gives :data:`JSON_NOTICE`, the JSON
    and the decoded object.

    Raises
    ------
    gw_ops.errors.PermanentError
        When the entry has neither, the XML does not parse (safely), the JSON is not an
        object, or the type is unknown.
    """

    from gw_ops.config import get_settings
    from gw_ops.errors import PermanentError
    from gw_ops.formats import xml as safe_xml
    from gw_ops.formats.json_object import JSONRejected, parse_json_object

    if fields.get("json") and not fields.get("xml"):
        payload = fields["json"]
        try:
            document = parse_json_object(payload, "GCN JSON notice")
        except JSONRejected as exc:
            raise PermanentError(str(exc)) from None
        return JSON_NOTICE, payload, document
    payload = fields.get("xml")
    if not payload:
        raise PermanentError("GCN stream entry without xml or json")
    try:
        root = safe_xml.parse_xml(payload, max_bytes=get_settings().gcn_max_packet_bytes)
    except safe_xml.XMLRejected as exc:  # malformed, too large or carrying a DTD: bad input
        raise PermanentError(f"GCN notice does not parse: {exc}") from exc
    raw_type = fields.get("notice_type", b"").decode()
    try:
        name = notice_type_name(int(raw_type)) if raw_type.isdigit() else notice_type_name(raw_type)
    except (KeyError, ValueError) as exc:
        raise PermanentError(f"unknown GCN notice type {raw_type!r}") from exc
    return name, payload, root
