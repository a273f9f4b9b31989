"""External triggers: GCN notices of GRBs, neutrinos and supernovae become GraceDB events.

One handler, :func:`handle_notice`, takes every notice type in :data:`NOTICE_KINDS`
(Fermi GBM, Swift BAT, INTEGRAL, SNEWS, IceCube gold/bronze tracks) on the serial
``exttrig`` pool.  For each notice it

1. parses the VOEvent (:func:`parse_notice`); bad input raises :class:`InvalidNotice`,
   which the lane dead-letters;
2. creates the external event in GraceDB, or replaces it when an event of the same
   pipeline and trigger id exists (a later notice of the same burst), and logs the
   notice with the XML attached;
3. keeps the ``NOT_GRB`` veto label in step with the latest notice
   (:func:`not_grb_reasons`);
4. uploads a multi-order sky map made from the notice's position and error radius
   (:mod:`gw_ops.science.ext_skymaps`) and labels the event ``EXT_SKYMAP_READY``;
5. runs the RAVEN coincidence search against superevents (:mod:`gw_ops.handlers.raven`).

Every step first checks whether it was already done (the event's log records which
notice and which sky map were applied), so a notice delivered twice changes nothing and
a run that crashed half-way is completed by the next delivery.

Notices with ``role="test"`` follow ``settings.exttrig_test_notices``: ``mdc`` (an
External event of search ``MDC``, paired only with MDC superevents), ``test`` (an event
of group ``Test``) or ``ignore``.

:func:`make_mock_grb_notice` writes a Fermi GBM-style notice for mock events.

This module is imported when Airflow parses the DAGs, so it imports only lxml, pygcn's
notice types and gw-ops' light modules at top level.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gcn import NoticeType
from lxml import etree

from gw_ops.config import Settings, get_settings
from gw_ops.errors import PermanentError
from gw_ops.transport import gcn_notices as gcn
from gw_ops.transport import lvalert

log = logging.getLogger(__name__)

NOT_GRB = "NOT_GRB"
EXT_SKYMAP_READY = "EXT_SKYMAP_READY"

#: GBM source-classification index of a GRB (GCN's Fermi notice documentation:
#: 4 = GRB; the others are particles, solar flares, known sources, TGFs ...).
FERMI_GRB_CLASS_INDEX = 4

#: (pipeline, search) of each handled notice type.
NOTICE_KINDS: dict[str, tuple[str, str]] = {
    "FERMI_GBM_ALERT": ("Fermi", "GRB"),
    "FERMI_GBM_FLT_POS": ("Fermi", "GRB"),
    "FERMI_GBM_GND_POS": ("Fermi", "GRB"),
    "FERMI_GBM_FIN_POS": ("Fermi", "GRB"),
    "FERMI_GBM_SUBTHRESH": ("Fermi", "SubGRB"),
    "SWIFT_BAT_GRB_POS_ACK": ("Swift", "GRB"),
    "INTEGRAL_WAKEUP": ("INTEGRAL", "GRB"),
    "INTEGRAL_REFINED": ("INTEGRAL", "GRB"),
    "INTEGRAL_OFFLINE": ("INTEGRAL", "GRB"),
    "SNEWS": ("SNEWS", "Supernova"),
    "ICECUBE_ASTROTRACK_GOLD": ("IceCube", "HEN"),
    "ICECUBE_ASTROTRACK_BRONZE": ("IceCube", "HEN"),
}

#: Notice types that carry no usable position (all-sky): no sky map is made.
_POSITIONLESS_TYPES = frozenset({"SNEWS"})

#: Seconds per Julian year, to turn per-year rates into Hz.
YEAR_S = 365.25 * 86400

#: Two notices of one trigger lie this close in time (s); the GraceDB look-up for an
#: existing event of the trigger searches this far around the notice's time.
_SAME_TRIGGER_SPAN_S = 5.0


class InvalidNotice(PermanentError, ValueError):
    """A notice that cannot be handled; the lane dead-letters it at once (no retries).

    Parameters
    ----------
    reason : str
        One line saying what is wrong (kept as ``.reason``).
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ExternalNotice:
    """What gw-ops uses of one GCN notice.

    Attributes
    ----------
    notice_type : str
        ``gcn.NoticeType`` name, e.g. ``FERMI_GBM_FLT_POS``.
    ivorn : str
        The notice's IVORN (unique per notice, shared by nothing else).
    role : str
        VOEvent role: ``observation``, ``test`` or ``utility``.
    pipeline, search : str
        GraceDB pipeline (``Fermi``, ``Swift``, ``INTEGRAL``, ``SNEWS``, ``IceCube``)
        and search (``GRB``, ``SubGRB``, ``HEN``, ``Supernova``).
    trigger_id : str
        The instrument's id of the trigger, shared by all notices of one burst.
    event_time : str
        Trigger time, ISO 8601 UTC as in the notice.
    gpstime : float
        Trigger time (GPS s).
    ra, dec, error_radius : float or None
        Position and error radius (deg); None when the notice has no localisation
        (SNEWS, or the first Fermi alert packet whose radius is 0).
    grb_probability : float or None
        Fermi GBM classification probability (%) that the trigger is a GRB.
    reliability : int or None
        Fermi subthreshold reliability (1 to 10).
    star_tracker_lost_lock : bool
        Swift: the star tracker had lost lock, so the position is unreliable.
    far_hz : float or None
        False alarm rate given by the notice (IceCube, Hz).
    not_grb_reasons : tuple of str
        Why the trigger is vetoed as not a GRB; empty when it is not.
    """

    notice_type: str
    ivorn: str
    role: str
    pipeline: str
    search: str
    trigger_id: str
    event_time: str
    gpstime: float
    ra: float | None = None
    dec: float | None = None
    error_radius: float | None = None
    grb_probability: float | None = None
    reliability: int | None = None
    star_tracker_lost_lock: bool = False
    far_hz: float | None = None
    not_grb_reasons: tuple[str, ...] = field(default=())

    @property
    def is_test(self) -> bool:
        """The notice is not an observation (GCN test or utility notice)."""
        return self.role != "observation"

    @property
    def has_position(self) -> bool:
        """The notice localises the trigger (a sky map can be made)."""
        return self.error_radius is not None and self.error_radius > 0


# --- parsing -------------------------------------------------------------------------

def safe_parser() -> etree.XMLParser:
    """lxml parser that resolves no entities and fetches nothing from the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True)


def parse_xml(payload: bytes) -> etree._Element:
    """Root element of a notice; malformed XML raises :class:`InvalidNotice`."""
    try:
        return etree.fromstring(payload, parser=safe_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise InvalidNotice(f"notice is not well-formed XML: {exc}") from None


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
    from astropy.time import Time  # inside: astropy is heavy for the DAG processor

    return iso, float(Time(when, scale="utc").gps)


def _trigger_id(notice_type: str, params: dict[str, str]) -> str:
    """The instrument's trigger id (shared by every notice of one trigger)."""
    if notice_type == "FERMI_GBM_SUBTHRESH":
        value = params.get("Trans_Num")
    elif notice_type.startswith("ICECUBE_"):
        run, event = params.get("run_id"), params.get("event_id")
        value = f"{int(run)}_{int(event)}" if run and event and run.isdigit() and \
            event.isdigit() else params.get("AMON_ID")
    else:
        value = params.get("TrigID")
    if not value:
        raise InvalidNotice(f"{notice_type} notice has no trigger id")
    return value


def _grb_probability(params: dict[str, str]) -> float | None:
    """Fermi GBM classification probability (%) that the trigger is a GRB."""
    if "Most_Likely_Index" not in params:
        return None  # ground and final positions carry no classification
    for index, probability in (("Most_Likely_Index", "Most_Likely_Prob"),
                               ("Sec_Most_Likely_Index", "Sec_Most_Likely_Prob")):
        try:
            if int(params.get(index, "-1")) == FERMI_GRB_CLASS_INDEX:
                return float(params.get(probability, "0"))
        except ValueError:
            raise InvalidNotice(f"Fermi classification {index} is not a number") from None
    return 0.0


def not_grb_reasons(notice: ExternalNotice, settings: Settings) -> tuple[str, ...]:
    """Why a notice's trigger is vetoed with ``NOT_GRB`` (empty: not vetoed).

    Rules: the first Fermi alert packet (not classified yet); a Fermi classification
    below ``settings.exttrig_fermi_min_grb_percent``; a Fermi subthreshold reliability
    below ``settings.exttrig_subthreshold_min_reliability``; a Swift position taken
    while the star tracker had lost lock.
    """
    reasons = []
    if notice.notice_type == "FERMI_GBM_ALERT":
        reasons.append("first Fermi GBM alert packet: not classified yet")
    if notice.grb_probability is not None and \
            notice.grb_probability < settings.exttrig_fermi_min_grb_percent:
        reasons.append(f"Fermi GBM classifies it as a GRB at {notice.grb_probability:g} % "
                       f"(< {settings.exttrig_fermi_min_grb_percent:g} %)")
    if notice.reliability is not None and \
            notice.reliability < settings.exttrig_subthreshold_min_reliability:
        reasons.append(f"Fermi subthreshold reliability {notice.reliability} "
                       f"(< {settings.exttrig_subthreshold_min_reliability})")
    if notice.star_tracker_lost_lock:
        reasons.append("Swift star tracker had lost lock")
    return tuple(reasons)


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
    role = (root.get("role") or "observation").strip().lower()
    trigger_id = _trigger_id(notice_type, params)
    event_time, gpstime = parse_event_time(root.findtext(".//{*}ISOTime"))

    ra = dec = error_radius = None
    position = root.find(".//{*}Position2D")
    if notice_type not in _POSITIONLESS_TYPES:
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
        grb_probability=_grb_probability(params) if pipeline == "Fermi" else None,
        reliability=reliability,
        star_tracker_lost_lock=_flag(params, "StarTrack_Lost_Lock"),
        far_hz=far_hz)
    return _with_vetoes(notice, settings)


def _with_vetoes(notice: ExternalNotice, settings: Settings) -> ExternalNotice:
    import dataclasses

    return dataclasses.replace(notice, not_grb_reasons=not_grb_reasons(notice, settings))


# --- GraceDB -------------------------------------------------------------------------

def gracedb_group_and_search(notice: ExternalNotice, settings: Settings) -> tuple[str, str] | None:
    """GraceDB (group, search) of a notice, or None when test notices are ignored."""
    if not notice.is_test:
        return "External", notice.search
    policy = settings.exttrig_test_notices.strip().lower()
    if policy == "ignore":
        return None
    if policy == "test":
        return "Test", notice.search
    if policy == "mdc":
        return "External", "MDC"
    raise ValueError(f"exttrig_test_notices must be mdc, test or ignore, not {policy!r}")


@lru_cache(maxsize=4)
def default_client(settings: Settings) -> Any:
    """GraceDB client of these settings, kept between the messages of one worker process
    (its HTTP connection and the API root it reads once are reused)."""
    from gw_ops.gracedb_client import gracedb_client  # heavy; only when handling

    return gracedb_client(settings)


#: Other names of a search on GraceDB servers that lack the first one (the local service
#: lists ``Neutrino`` rather than ``HEN``).
SEARCH_ALIASES: dict[str, tuple[str, ...]] = {"HEN": ("Neutrino",)}


def server_search_name(client: Any, search: str) -> str:
    """The name of ``search`` that the client's GraceDB server accepts."""
    known = getattr(client, "searches", None) or ()
    if not known or search in known:
        return search
    return next((alias for alias in SEARCH_ALIASES.get(search, ()) if alias in known), search)


def _json(response: Any) -> Any:
    return response.json() if hasattr(response, "json") else response


def event_trigger_id(event: dict[str, Any]) -> str | None:
    """Trigger id GraceDB recorded for an external event (``extra_attributes.GRB``)."""
    grb = (event.get("extra_attributes") or {}).get("GRB") or {}
    value = grb.get("trigger_id")
    return None if value in (None, "") else str(value)


#: Trigger ids inside the IVORNs of notices whose id GraceDB does not record:
#: subthreshold GBM ``..._<Trans_Num>_<n>-<n>`` and IceCube ``..._<stream>_<run>_<event>_<rev>``.
_IVORN_TRIGGER_ID = {
    "SubGRB": re.compile(r"_(\d+)_\d+-\d+$"),
    "IceCube": re.compile(r"_\d+_(\d+)_(\d+)_\d+$"),
}


def trigger_id_from_ivorn(pipeline: str, search: str, ivorn: str | None) -> str | None:
    """Trigger id read from a notice IVORN where the notice's id parameter is not
    ``TrigID`` (Fermi subthreshold, IceCube), in :func:`parse_notice`'s form; else None."""
    if not ivorn:
        return None
    pattern = _IVORN_TRIGGER_ID.get("IceCube" if pipeline == "IceCube" else search)
    match = pattern.search(ivorn) if pattern else None
    if match is None:
        return None
    return "_".join(str(int(part)) for part in match.groups())


def find_external_event(client: Any, notice: ExternalNotice, group: str,
                        search: str) -> dict[str, Any] | None:
    """The existing GraceDB event of a notice's trigger, or None.

    Looks up events of the same group and pipeline within a few seconds of the trigger
    time and keeps the one with the same trigger id.  GraceDB records the ``TrigID``
    parameter only; for notices whose id lives elsewhere (Fermi subthreshold
    ``Trans_Num``, IceCube run and event) the id is read from the IVORN GraceDB kept,
    and failing that an event of the same trigger time (within 10 ms) is the same one.
    """
    query = (f"group: {group} pipeline: {notice.pipeline} "
             f"gpstime: {notice.gpstime - _SAME_TRIGGER_SPAN_S:.3f} .. "
             f"{notice.gpstime + _SAME_TRIGGER_SPAN_S:.3f}")
    candidates = []
    for event in client.events(query):
        if (event.get("search") == "MDC") != (search == "MDC"):
            continue  # a rehearsal never replaces a real trigger, nor the reverse
        recorded = event_trigger_id(event)
        if recorded is None:
            grb = (event.get("extra_attributes") or {}).get("GRB") or {}
            recorded = trigger_id_from_ivorn(notice.pipeline, notice.search, grb.get("ivorn"))
        if recorded == notice.trigger_id:
            candidates.append(event)
        elif recorded is None and abs(float(event["gpstime"]) - notice.gpstime) < 0.01:
            candidates.append(event)
    # the oldest one is the trigger's event; later duplicates could only come from
    # another writer and are left alone
    candidates.sort(key=lambda event: event.get("created", ""))
    return candidates[0] if candidates else None


def _log_comments(client: Any, graceid: str) -> list[str]:
    return [entry.get("comment", "") for entry in _json(client.logs(graceid)).get("log", [])]


def notice_log_comment(notice: ExternalNotice) -> str:
    """Log comment that records a notice as applied to its event (also the idempotency key)."""
    return f"GCN notice {notice.notice_type} {notice.ivorn} (trigger {notice.trigger_id})"


def skymap_filename(pipeline: str) -> str:
    """Name of an external event's sky map file, e.g. ``fermi_skymap.multiorder.fits``."""
    return f"{pipeline.lower()}_skymap.multiorder.fits"


def skymap_log_comment(notice: ExternalNotice) -> str:
    """Log comment of the sky map made from one notice (also the idempotency key)."""
    return (f"Sky map from {notice.ivorn}: RA {notice.ra:.4f} deg, Dec {notice.dec:.4f} deg, "
            f"error {notice.error_radius:.4f} deg")


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
    filename = f"{notice.notice_type.lower()}.xml"
    if existing is None:
        labels = [NOT_GRB] if notice.not_grb_reasons else None
        created = _json(client.create_event(group, notice.pipeline, filename, search=search,
                                           filecontents=payload, labels=labels))
        graceid = created["graceid"]
        log.info("created %s for %s trigger %s", graceid, notice.pipeline, notice.trigger_id)
    else:
        graceid = existing["graceid"]
        if comment in _log_comments(client, graceid):
            return graceid, False
        client.replace_event(graceid, filename, filecontents=payload)
        log.info("replaced %s with %s", graceid, notice.ivorn)
    client.write_log(graceid, comment, filename=filename, filecontents=payload,
                    tag_name=["ext_coinc"])
    return graceid, True


def sync_not_grb(client: Any, graceid: str, notice: ExternalNotice) -> None:
    """Make the ``NOT_GRB`` label follow the latest notice (add or remove it)."""
    labels = {label["name"] if isinstance(label, dict) else str(label)
              for label in _json(client.labels(graceid)).get("labels", [])}
    if notice.not_grb_reasons and NOT_GRB not in labels:
        client.write_label(graceid, NOT_GRB)
        client.write_log(graceid, "NOT_GRB: " + "; ".join(notice.not_grb_reasons),
                        tag_name=["ext_coinc"])
    elif not notice.not_grb_reasons and NOT_GRB in labels:
        client.remove_label(graceid, NOT_GRB)
        client.write_log(graceid, f"NOT_GRB removed: {notice.ivorn} has no veto",
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
    if comment not in _log_comments(client, graceid):
        table = ext_skymaps.make_external_skymap(
            notice.ra, notice.dec, notice.error_radius, notice.pipeline,
            max_order=settings.ext_skymap_max_order)
        content = ext_skymaps.write_skymap_bytes(
            table, {"objid": graceid, "gps_time": notice.gpstime,
                    "instruments": {notice.pipeline}})
        client.write_log(graceid, comment, filename=skymap_filename(notice.pipeline),
                        filecontents=content, tag_name=["sky_loc", "ext_coinc"])
        uploaded = True
    labels = {label["name"] for label in _json(client.labels(graceid)).get("labels", [])}
    if EXT_SKYMAP_READY not in labels:
        client.write_label(graceid, EXT_SKYMAP_READY)
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
    placement = gracedb_group_and_search(notice, settings)
    if placement is None:
        log.info("ignoring test notice %s (exttrig_test_notices=ignore)", notice.ivorn)
        return None
    group, search = placement
    client = client if client is not None else default_client(settings)
    search = server_search_name(client, search)
    graceid, _ = upsert_external_event(client, notice, payload, group, search)
    sync_not_grb(client, graceid, notice)
    if notice.has_position:
        ensure_skymap(client, graceid, notice, settings)
    if run_raven:
        from gw_ops.handlers import raven
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


#: LVAlert nodes of superevents (GraceDB's node per superevent category).
SUPEREVENT_NODES: tuple[str, ...] = ("superevent", "mdc_superevent", "test_superevent")


@lvalert.handler(*SUPEREVENT_NODES, pool="exttrig")
def handle_superevent(message: dict[str, Any]) -> None:
    """Lane handler of superevent alerts: RAVEN search for external triggers.

    Runs when a superevent is created, when its preferred event changes, and when it
    gets a sky map (``SKYMAP_READY``/``EM_READY``: the spatial FAR becomes possible).
    """
    from gw_ops.handlers import raven

    raven.handle_superevent_message(message)


# --- mock notices ----------------------------------------------------------------------

_MOCK_TEMPLATE = """<?xml version='1.0' encoding='UTF-8'?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    ivorn="ivo://nasa.gsfc.gcn/Fermi#GBM_Gnd_Pos_{iso}_{trigger_id}_0-000"
    role="{role}" version="2.0"
    xsi:schemaLocation="http://www.ivoa.net/xml/VOEvent/v2.0 http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd">
  <Who>
    <AuthorIVORN>ivo://gw-ops/mock</AuthorIVORN>
    <Author><shortName>gw-ops mock Fermi GBM</shortName></Author>
    <Date>{iso}</Date>
  </Who>
  <What>
    <Param name="Packet_Type" value="112"/>
    <Param name="Pkt_Ser_Num" value="1"/>
    <Param name="TrigID" value="{trigger_id}" ucd="meta.id"/>
    <Param name="Sequence_Num" value="0" ucd="meta.id.part"/>
    <Param name="Most_Likely_Index" value="4" unit="dn"/>
    <Param name="Most_Likely_Prob" value="100"/>
    <Param name="Sec_Most_Likely_Index" value="0" unit="dn"/>
    <Param name="Sec_Most_Likely_Prob" value="0"/>
    <Group name="Trigger_ID">
      <Param name="Def_NOT_a_GRB" value="false"/>
      <Param name="Test_Submission" value="{test_flag}"/>
    </Group>
    <Description>Mock Fermi-GBM ground position made by gw-ops.</Description>
  </What>
  <WhereWhen>
    <ObsDataLocation>
      <ObservatoryLocation id="GEOLUN"/>
      <ObservationLocation>
        <AstroCoordSystem id="UTC-FK5-GEO"/>
        <AstroCoords coord_system_id="UTC-FK5-GEO">
          <Time unit="s"><TimeInstant><ISOTime>{iso}Z</ISOTime></TimeInstant></Time>
          <Position2D unit="deg">
            <Name1>RA</Name1><Name2>Dec</Name2>
            <Value2><C1>{ra:.4f}</C1><C2>{dec:.4f}</C2></Value2>
            <Error2Radius>{error:.4f}</Error2Radius>
          </Position2D>
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>
  </WhereWhen>
  <How><Description>Fermi Satellite, GBM Instrument (mock)</Description></How>
  <Why importance="0.95">
    <Inference probability="1.0"><Concept>process.variation.burst;em.gamma</Concept></Inference>
  </Why>
</voe:VOEvent>
"""


def make_mock_grb_notice(trigger_id: str | int, gps_time: float, ra: float, dec: float,
                         error_deg: float, role: str = "test") -> bytes:
    """A Fermi GBM ground-position VOEvent (type 112) for mock coincidences.

    Parameters
    ----------
    trigger_id : str or int
        Trigger id (``TrigID``); digits and letters only.
    gps_time : float
        Trigger time (GPS s).
    ra, dec : float
        Position (deg).
    error_deg : float
        Statistical error radius (deg), positive.
    role : str
        VOEvent role; ``test`` (default) keeps mock triggers apart from real ones.

    Returns
    -------
    bytes
        The VOEvent XML, accepted by :func:`parse_notice`.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(trigger_id)):
        raise ValueError(f"trigger id {trigger_id!r} must be letters, digits, _ or -")
    if not (0 <= ra <= 360 and -90 <= dec <= 90 and 0 < error_deg <= 180):
        raise ValueError("position or error radius outside the sky")
    if role not in ("test", "observation", "utility"):
        raise ValueError(f"role must be test, observation or utility, not {role!r}")
    from astropy.time import Time  # inside: heavy

    iso = Time(gps_time, format="gps", scale="utc").utc.isot  # millisecond precision
    return _MOCK_TEMPLATE.format(iso=iso, trigger_id=trigger_id, role=role,
                                 test_flag="true" if role == "test" else "false",
                                 ra=ra, dec=dec, error=error_deg).encode()


__all__ = ["InvalidNotice", "ExternalNotice", "NOTICE_KINDS", "SUPEREVENT_NODES",
           "parse_notice", "not_grb_reasons", "process_notice", "handle_notice",
           "handle_superevent", "make_mock_grb_notice", "find_external_event",
           "skymap_filename"]
