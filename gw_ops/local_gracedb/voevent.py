"""VOEvent 2.0 documents in the layout of the LVK GCN notices GraceDB generates."""
from __future__ import annotations

from typing import Any

from lxml import etree

from gw_ops.formats.gpstime import gps_to_utc
from gw_ops.local_gracedb.constants import VOEVENT_PACKET_TYPE, VOEVENT_TYPES

VOEVENT_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


def ivorn_for(object_id: str, number: int, voevent_type: str) -> str:
    """IVORN of the ``number``-th VOEvent of an object, e.g. ``ivo://gwnet/LVC#S1-1-Preliminary``."""
    return f"ivo://gwnet/LVC#{object_id}-{number}-{VOEVENT_TYPES[voevent_type].capitalize()}"


def build_voevent(*, object_id: str, number: int, voevent_type: str, t_0: float,
                  event_page: str, far: float | None, instruments: str, group: str,
                  pipeline: str, search: str, options: dict[str, Any], skymap_url: str | None,
                  created_iso: str, role: str) -> bytes:
    """VOEvent XML (UTF-8 bytes) for one notice.

    Parameters
    ----------
    object_id : str
        Superevent (or event) id.
    number : int
        Serial number of this VOEvent for the object.
    voevent_type : str
        Type code: PR, IN, UP, RE or EW.
    t_0 : float
        Event time (GPS s).
    options : dict
        Client fields: internal, open_alert, hardware_inj, CoincComment,
        raven_coinc, skymap_type, ProbHasNS, ProbHasRemnant, BNS, NSBH, BBH,
        Terrestrial, HasMassGap.
    role : str
        ``observation`` or ``test``.
    """
    root = etree.Element(f"{{{VOEVENT_NS}}}VOEvent", nsmap={"voe": VOEVENT_NS, "xsi": XSI_NS},
                         ivorn=ivorn_for(object_id, number, voevent_type), role=role,
                         version="2.0")
    who = etree.SubElement(root, "Who")
    etree.SubElement(who, "AuthorIVORN").text = "ivo://gwnet/LVC"
    etree.SubElement(who, "Date").text = created_iso
    author = etree.SubElement(who, "Author")
    etree.SubElement(author, "contactName").text = "LIGO Scientific Collaboration and Virgo Collaboration"
    what = etree.SubElement(root, "What")

    def param(parent, name, value, **attributes):
        element = etree.SubElement(parent, "Param", name=name,
                                   value="" if value is None else str(value), **attributes)
        return element

    def flag(name):
        return 1 if str(options.get(name, "")).lower() in ("1", "true", "yes") else 0

    param(what, "Packet_Type", VOEVENT_PACKET_TYPE[voevent_type], dataType="int")
    param(what, "internal", flag("internal"), dataType="int")
    param(what, "Pkt_Ser_Num", number, dataType="int")
    param(what, "GraceID", object_id, dataType="string", ucd="meta.id")
    param(what, "AlertType", VOEVENT_TYPES[voevent_type].capitalize(), dataType="string")
    param(what, "HardwareInj", flag("hardware_inj"), dataType="int")
    param(what, "OpenAlert", flag("open_alert"), dataType="int")
    param(what, "EventPage", event_page, dataType="string", ucd="meta.ref.url")
    if voevent_type != "RE":
        param(what, "Instruments", instruments, dataType="string")
        param(what, "FAR", far, dataType="float", unit="Hz", ucd="arith.rate;stat.falsealarm")
        param(what, "Group", group, dataType="string")
        param(what, "Pipeline", pipeline, dataType="string")
        param(what, "Search", search, dataType="string")
        if skymap_url:
            skymap = etree.SubElement(what, "Group", type="GW_SKYMAP",
                                      name=options.get("skymap_type") or "skymap")
            param(skymap, "skymap_fits", skymap_url, dataType="string", ucd="meta.ref.url")
        classification = etree.SubElement(what, "Group", type="Classification")
        for name in ("BNS", "NSBH", "BBH", "Terrestrial"):
            if options.get(name) is not None:
                param(classification, name, options[name], dataType="float", ucd="stat.probability")
        properties = etree.SubElement(what, "Group", type="Properties")
        for name in ("HasNS", "HasRemnant", "HasMassGap"):
            key = {"HasNS": "ProbHasNS", "HasRemnant": "ProbHasRemnant"}.get(name, name)
            if options.get(key) is not None:
                param(properties, name, options[key], dataType="float", ucd="stat.probability")
        if flag("raven_coinc"):
            external = etree.SubElement(what, "Group", type="External Coincidence")
            param(external, "CoincComment", options.get("CoincComment", ""), dataType="string")
    when = etree.SubElement(root, "WhereWhen")
    location = etree.SubElement(etree.SubElement(when, "ObsDataLocation"), "ObservationLocation")
    etree.SubElement(location, "AstroCoordSystem", id="UTC-FK5-GEO")
    coords = etree.SubElement(location, "AstroCoords", coord_system_id="UTC-FK5-GEO")
    instant = etree.SubElement(etree.SubElement(coords, "Time", unit="s"), "TimeInstant")
    etree.SubElement(instant, "ISOTime").text = gps_to_utc(t_0).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4]
    etree.SubElement(root, "Description").text = "Report of a candidate gravitational wave event"
    how = etree.SubElement(root, "How")
    etree.SubElement(how, "Description").text = "Candidate gravitational wave event identified by low-latency analysis"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
