"""External triggers: GCN notices of GRBs, neutrinos and supernovae become GraceDB events.

Why one module of about 400 lines: the five steps below share one idempotency record
(the event's log) and one GraceDB session; the decisions are already out in
:mod:`gw_ops.rules.external`.

One handler, :func:`handle_notice`, takes every notice type in :data:`NOTICE_KINDS`
(Fermi GBM, Swift BAT, INTEGRAL, SNEWS, IceCube gold/bronze tracks) on the serial
``exttrig`` pool; :func:`gw_ops.handlers.kafka_notices.process_json_notice` takes a
GCN Kafka JSON notice (SVOM, IceCube, targeted Fermi/Swift) through :func:`apply_notice`.
For each notice it

1. parses the VOEvent (:func:`parse_notice`) or the JSON
   (:func:`gw_ops.rules.external_json.notice_from_json`); bad input raises
   :class:`InvalidNotice`, which the lane dead-letters; a notice GWCelery drops (a
   low-reliability Fermi sub-threshold trigger) makes no event;
2. creates the external event in GraceDB, or replaces it when an event of the same
   pipeline and trigger id exists (a later notice of the same burst), and logs the
   notice with the XML attached;
3. keeps the ``NOT_GRB`` veto label in step with the latest notice
   (:func:`not_grb_reasons`);
4. uploads a multi-order sky map made from the notice's position and error radius
   (:mod:`gw_ops.science.ext_skymaps`) and labels the event ``EXT_SKYMAP_READY``;
5. runs the RAVEN coincidence search against superevents (:mod:`gw_ops.handlers.raven`).

The decisions (notice kinds, vetoes, group and search, trigger ids) are the pure
:mod:`gw_ops.rules.external`; GraceDB is reached through :mod:`gw_ops.gracedb_client`.

Every step first checks whether it was already done (the event's log records which
notice and which sky map were applied), so a notice delivered twice changes nothing and
a run that crashed half-way is completed by the next delivery.

Notices with ``role="test"`` follow ``settings.exttrig_test_notices``: ``test`` (an
event of group ``Test``, GWCelery's rule and the default), ``mdc`` (an External event of
search ``MDC``, paired only with MDC superevents) or ``ignore``.  Rehearsal notices whose
IVORN carries ``mdc-test_event`` (gw-ops' mock GRBs) are External events of search MDC.

This module is imported when Airflow parses the DAGs, so it imports only lxml, pygcn's
notice types and gw-ops' light modules at top level.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

from gcn import NoticeType
from lxml import etree

from gw_ops import gracedb_client as gateway
from gw_ops.config import Settings, get_settings
from gw_ops.formats import xml as safe_xml
from gw_ops.formats.gpstime import utc_to_gps
from gw_ops.handlers import raven
from gw_ops.rules.external import (
    NOTICE_KINDS,
    POSITIONLESS_TYPES,
    SAME_TRIGGER_SPAN_S,
    ExternalNotice,
    InvalidNotice,
    drop_reason,
    gracedb_group_and_search,
    grb_probability,
    integral_trigger_id,
    is_same_trigger,
    may_replace,
    notice_log_comment,
    search_name_for_server,
    search_of,
    skymap_filename,
    skymap_log_comment,
    trigger_id_from_params,
    with_vetoes,
)
from gw_ops.transport import gcn_notices as gcn
from gw_ops.transport import lvalert
from gw_ops.vocabulary import EXT_SKYMAP_READY, MDC_SEARCH, NOT_GRB, SUPEREVENT_NODES, YEAR_S

log = logging.getLogger(__name__)


# --- parsing -------------------------------------------------------------------------

def parse_xml(payload: bytes) -> etree._Element:
    """Root element of a notice; unacceptable XML raises :class:`InvalidNotice`."""
    try:
        return safe_xml.parse_xml(payload, max_bytes=get_settings().gcn_max_packet_bytes)
    except safe_xml.MalformedXML as exc:
        raise InvalidNotice(f"notice is not well-formed XML: {exc.detail}") from None
    except safe_xml.XMLRejected as exc:
        raise InvalidNotice(f"notice refused: {exc}") from None


def _params(root: etree._Element) -> dict[str, str]:
    """``<Param name value>`` of the notice's What section (first of each name)."""
    params: dict[str, str] = {}
    for param in root.iter("{*}Param", "Param"):
        name = param.get("name")
        if name and name not in params and param.get("value") is not None:
            params[name] = param.get("value").strip()
    return params


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "false").strip().lower() == "true"


def _number(text: str | None, what: str) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidNotice(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidNotice(f"{what} {text!r} is not finite")
    return value


def notice_type_of(root: etree._Element, params: dict[str, str] | None = None) -> str:
    """``NoticeType`` name of a notice from its ``Packet_Type``.

    Raises
    ------
    InvalidNotice
        No packet type, or one that this module does not handle (unknown instrument).
    """
    params = params if params is not None else _params(root)
    packet = params.get("Packet_Type")
    if packet is None:
        raise InvalidNotice("notice has no Packet_Type")
    try:
        name = NoticeType(int(packet)).name
    except ValueError:
        raise InvalidNotice(f"unknown notice type (Packet_Type {packet!r})") from None
    if name not in NOTICE_KINDS:
        raise InvalidNotice(f"notice type {name} is not an instrument gw-ops handles")
    return name


def parse_event_time(text: str | None) -> tuple[str, float]:
    """ISO text and GPS time (s) of a notice's ``ISOTime``.

    Raises
    ------
    InvalidNotice
        Missing or malformed date.
    """
    if not text or not text.strip():
        raise InvalidNotice("notice has no event time (WhereWhen ISOTime)")
    iso = text.strip()
    try:
        when = dt.datetime.fromisoformat(iso.removesuffix("Z"))
    except ValueError:
        raise InvalidNotice(f"malformed event time {iso!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return iso, utc_to_gps(when.replace(tzinfo=dt.timezone.utc))

def parse_notice(payload: bytes, root: etree._Element | None = None,
                 settings: Settings | None = None) -> ExternalNotice:
    """Read one GCN notice.

    Parameters
    ----------
    payload : bytes
        VOEvent XML.
    root : lxml element, optional
        Its parsed root (parsed here with a hardened parser when not given).
    settings : Settings, optional
        For the veto thresholds.

    Returns
    -------
    ExternalNotice

    Raises
    ------
    InvalidNotice
        Malformed XML, unknown instrument, no trigger id, missing or malformed time,
        missing position, or a position outside the sky.
    """
    settings = settings or get_settings()
    if root is None:
        root = parse_xml(payload)
    params = _params(root)
    notice_type = notice_type_of(root, params)
    pipeline, search = NOTICE_KINDS[notice_type]
    ivorn = root.get("ivorn") or ""
    search = search_of(search, ivorn)
    role = (root.get("role") or "observation").strip().lower()
    trigger_id = trigger_id_from_params(notice_type, params, ivorn)
    event_time, gpstime = parse_event_time(root.findtext(".//{*}ISOTime"))

    ra = dec = error_radius = None
    position = root.find(".//{*}Position2D")
    if notice_type not in POSITIONLESS_TYPES:
        if position is None:
            raise InvalidNotice(f"{notice_type} notice has no position (Position2D)")
        ra = _number(position.findtext(".//{*}C1"), "RA")
        dec = _number(position.findtext(".//{*}C2"), "Dec")
        error_radius = _number(position.findtext(".//{*}Error2Radius"), "error radius")
        if not (0.0 <= ra <= 360.0 and -90.0 <= dec <= 90.0):
            raise InvalidNotice(f"position RA={ra:g}, Dec={dec:g} deg is outside the sky")
        if not 0.0 <= error_radius <= 180.0:
            raise InvalidNotice(f"error radius {error_radius:g} deg is outside 0..180")
        if error_radius == 0.0:
            ra = dec = error_radius = None  # e.g. the first GBM packet: no position yet

    reliability = None
    if "Reliability" in params:
        reliability = int(_number(params["Reliability"], "Reliability"))
    far_hz = None
    if notice_type.startswith("ICECUBE_") and "FAR" in params:
        far_hz = _number(params["FAR"], "FAR") / YEAR_S  # notices give per year
    notice = ExternalNotice(
        notice_type=notice_type, ivorn=ivorn, role=role, pipeline=pipeline, search=search,
        trigger_id=trigger_id, event_time=event_time, gpstime=gpstime, ra=ra, dec=dec,
        error_radius=error_radius,
        grb_probability=grb_probability(params) if pipeline == "Fermi" else None,
        reliability=reliability,
        star_tracker_lost_lock=_flag(params, "StarTrack_Lost_Lock"),
        far_hz=far_hz)
    return with_vetoes(notice, settings)


# --- GraceDB -------------------------------------------------------------------------

def server_search_name(client: Any, search: str) -> str:
    """The name of ``search`` that the client's GraceDB server accepts (the local service
    lists ``Neutrino`` rather than ``HEN``)."""
    return search_name_for_server(getattr(client, "searches", None) or (), search)


def find_external_event(client: Any, notice: ExternalNotice, group: str,
                        search: str) -> dict[str, Any] | None:
    """The existing GraceDB event of a notice's trigger, or None.

    Looks up events of the same group and pipeline within a few seconds of the trigger
    time and keeps the one of the same trigger (:func:`gw_ops.rules.external.is_same_trigger`).
    """
    query = (f"group: {group} pipeline: {notice.pipeline} "
             f"gpstime: {notice.gpstime - SAME_TRIGGER_SPAN_S:.3f} .. "
             f"{notice.gpstime + SAME_TRIGGER_SPAN_S:.3f}")
    candidates = []
    for event in gateway.search(client, "events", query):
        if (event.get("search") == MDC_SEARCH) != (search == MDC_SEARCH):
            continue  # a rehearsal never replaces a real trigger, nor the reverse
        if not may_replace(str(event.get("search", "")), search):
            continue  # e.g. a sub-threshold notice never replaces a GRB event
        if is_same_trigger(event, notice):
            candidates.append(event)
    # the oldest one is the trigger's event; later duplicates could only come from
    # another writer and are left alone
    candidates.sort(key=lambda event: event.get("created", ""))
    return candidates[0] if candidates else None

def upsert_external_event(client: Any, notice: ExternalNotice, payload: bytes,
                          group: str, search: str) -> tuple[str, bool]:
    """Create the external event of a notice, or replace it with this notice.

    Returns
    -------
    graceid : str
    changed : bool
        False when this very notice had already been applied (nothing was written).
    """
    existing = find_external_event(client, notice, group, search)
    comment = notice_log_comment(notice)
    extension = "json" if notice.payload_format == "json" else "xml"
    filename = f"{notice.notice_type.lower()}.{extension}"
    if existing is None:
        labels = [NOT_GRB] if notice.not_grb_reasons else None
        created = gateway.read_json(gateway.write(
            client.create_event, group, notice.pipeline, filename, search=search,
            filecontents=payload, labels=labels))
        graceid = created["graceid"]
        log.info("created %s for %s trigger %s", graceid, notice.pipeline, notice.trigger_id)
    else:
        graceid = existing["graceid"]
        if comment in gateway.log_comments(client, graceid):
            return graceid, False
        gateway.write(client.replace_event, graceid, filename, filecontents=payload)
        log.info("replaced %s with %s", graceid, notice.ivorn)
    gateway.write(client.write_log, graceid, comment, filename=filename, filecontents=payload,
                  tag_name=["ext_coinc"])
    return graceid, True


def sync_not_grb(client: Any, graceid: str, notice: ExternalNotice) -> None:
    """Make the ``NOT_GRB`` label follow the latest notice (add or remove it)."""
    labels = gateway.labels(client, graceid)
    if notice.not_grb_reasons and NOT_GRB not in labels:
        gateway.ensure_label(client, graceid, NOT_GRB)
        gateway.write(client.write_log, graceid,
                      "NOT_GRB: " + "; ".join(notice.not_grb_reasons), tag_name=["ext_coinc"])
    elif not notice.not_grb_reasons and NOT_GRB in labels:
        gateway.write(client.remove_label, graceid, NOT_GRB)
        gateway.write(client.write_log, graceid, f"NOT_GRB removed: {notice.ivorn} has no veto",
                      tag_name=["ext_coinc"])


def ensure_skymap(client: Any, graceid: str, notice: ExternalNotice,
                  settings: Settings) -> bool:
    """Upload the notice's sky map and label ``EXT_SKYMAP_READY`` unless already done.

    Returns
    -------
    bool
        True when a sky map was uploaded now.
    """
    from gw_ops.science import ext_skymaps

    comment = skymap_log_comment(notice)
    uploaded = False
    if comment not in gateway.log_comments(client, graceid):
        table = ext_skymaps.make_external_skymap(
            notice.ra, notice.dec, notice.error_radius, notice.pipeline,
            max_order=settings.ext_skymap_max_order)
        content = ext_skymaps.write_skymap_bytes(
            table, {"objid": graceid, "gps_time": notice.gpstime,
                    "instruments": {notice.pipeline}})
        gateway.write(client.write_log, graceid, comment,
                      filename=skymap_filename(notice.pipeline), filecontents=content,
                      tag_name=["sky_loc", "ext_coinc"])
        uploaded = True
    gateway.ensure_label(client, graceid, EXT_SKYMAP_READY)
    return uploaded


def process_notice(payload: bytes, root: etree._Element | None = None, *,
                   client: Any = None, settings: Settings | None = None,
                   run_raven: bool = True) -> str | None:
    """Everything :func:`handle_notice` does, with an injectable client and settings.

    Returns
    -------
    str or None
        GraceDB id of the external event, or None when the notice was ignored.
    """
    settings = settings or get_settings()
    notice = parse_notice(payload, root, settings)
    if notice.pipeline == "INTEGRAL" and integral_trigger_id(notice.ivorn):
        # GraceDB records the TrigID parameter: give it the id from the IVORN
        payload = with_trigger_id(payload, root, notice.trigger_id)
    return apply_notice(notice, payload, client=client, settings=settings,
                         run_raven=run_raven)


def with_trigger_id(payload: bytes, root: etree._Element | None, trigger_id: str) -> bytes:
    """The notice XML with its ``TrigID`` parameter set to ``trigger_id``."""
    root = root if root is not None else parse_xml(payload)
    for param in root.iter("{*}Param", "Param"):
        if param.get("name") == "TrigID":
            param.set("value", trigger_id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def apply_notice(notice: ExternalNotice, payload: bytes, *, client: Any, settings: Settings,
                  run_raven: bool) -> str | None:
    """Event, NOT_GRB, sky map and RAVEN search of one parsed notice (VOEvent or JSON).

    Returns
    -------
    str or None
        GraceDB id of the external event, or None when the notice is dropped or ignored.
    """
    dropped = drop_reason(notice, settings)
    if dropped:
        log.info("dropping notice %s: %s", notice.ivorn, dropped)
        return None
    placement = gracedb_group_and_search(notice, settings)
    if placement is None:
        log.info("ignoring test notice %s (exttrig_test_notices=ignore)", notice.ivorn)
        return None
    group, search = placement
    client = client if client is not None else gateway.pipeline_client(settings)
    search = server_search_name(client, search)
    graceid, _ = upsert_external_event(client, notice, payload, group, search)
    sync_not_grb(client, graceid, notice)
    if notice.has_position:
        ensure_skymap(client, graceid, notice, settings)
    if run_raven:
        raven.search_for_external(client, graceid, settings)
    return graceid


@gcn.handler(*NOTICE_KINDS, pool="exttrig")
def handle_notice(payload: bytes, root: etree._Element) -> str | None:
    """Lane handler of every external-trigger notice type (see :data:`NOTICE_KINDS`).

    Raises
    ------
    InvalidNotice
        The notice cannot be handled; the lane dead-letters it.
    """
    return process_notice(payload, root)


@lvalert.handler(*SUPEREVENT_NODES, pool="exttrig")
def handle_superevent(message: dict[str, Any]) -> None:
    """Lane handler of superevent alerts: RAVEN search for external triggers.

    Runs when a superevent is created, when its preferred event changes, and when it
    gets a sky map (``SKYMAP_READY``/``EM_READY``: the spatial FAR becomes possible).
    """
    raven.handle_superevent_message(message)


__all__ = ["InvalidNotice", "parse_notice", "parse_xml", "process_notice", "apply_notice",
           "handle_notice",
           "handle_superevent", "find_external_event", "server_search_name"]
