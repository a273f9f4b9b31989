"""The LVK GCN Notice as VOEvent 2.0: the one builder, and reading and checking VOEvents.

:func:`build_voevent` writes the notice of an :class:`~gw_ops.formats.alert_content.AlertContent`
(IVORN ``ivo://gwnet/LVC#<superevent_id>-<serial>-<AlertType>``).  Both the pipeline's
public alerts and the local GraceDB's ``createVOEvent`` endpoint
(:mod:`gw_ops.local_gracedb.voevent` maps its form fields onto an ``AlertContent``) write
their notices with it.

:func:`validate_voevent` checks a VOEvent (well-formed, no DTD, a VOEvent root with an
IVORN, and by default the VOEvent 2.0 schema shipped in ``gw_ops/data/schema``; nothing
is fetched from the network) and returns its IVORN; the VOEvent broker uses it without
the schema, as it relays other authors' notices too.

This module imports only the standard library, lxml and gw_ops.formats (the DAG processor
imports it through the handlers).

Examples
--------
>>> from gw_ops.formats.alert_content import AlertContent
>>> content = AlertContent(superevent_id="MS230101a", alert_type="Preliminary",
...                        serial_number=1, time_created="2023-01-01T00:01:00Z",
...                        event_time_gps=1356566418.5, far=1e-9, significant=True,
...                        group="CBC", pipeline="gstlal", search="MDC",
...                        instruments=("H1", "L1"))
>>> validate_voevent(build_voevent(content))
'ivo://gwnet/LVC#MS230101a-1-Preliminary'
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from gw_ops.config import Settings
from gw_ops.formats import xml as safe_xml
from gw_ops.formats.alert_content import (
    CLASSIFICATION_KEYS,
    EARLY_WARNING,
    PROPERTY_KEYS,
    RETRACTION,
    AlertContent,
    ExternalCoinc,
)

VOEVENT_NAMESPACE = "http://www.ivoa.net/xml/VOEvent/v2.0"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
VOEVENT_SCHEMA_LOCATION = (f"{VOEVENT_NAMESPACE} "
                           "http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd")
VOEVENT_XSD_PATH = Path(__file__).resolve().parents[1] / "data" / "schema" / "VOEvent-v2.0.xsd"
#: Namespaces of the VOEvent versions read (2.0, and 1.1 that some brokers still send).
VOEVENT_NAMESPACES = (VOEVENT_NAMESPACE, "http://www.ivoa.net/xml/VOEvent/v1.1")
#: Root elements of those versions.
VOEVENT_TAGS = frozenset(f"{{{namespace}}}VOEvent" for namespace in VOEVENT_NAMESPACES)
#: Largest VOEvent read when the caller names no limit (bytes): the default
#: ``gcn_max_packet_bytes``, the most one VTP packet may carry.
DEFAULT_MAX_VOEVENT_BYTES: int = Settings.__dataclass_fields__["gcn_max_packet_bytes"].default

AUTHOR = "LIGO Scientific Collaboration, Virgo Collaboration, and KAGRA Collaboration"

_INSTRUMENT_NAMES = {
    "H1": "LIGO Hanford 4 km gravitational wave detector",
    "L1": "LIGO Livingston 4 km gravitational wave detector",
    "V1": "Virgo 3 km gravitational wave detector",
    "K1": "KAGRA 3 km gravitational wave detector",
}

_CLASSIFICATION_DOC = {
    "BNS": "Probability that the source is a binary neutron star merger (both objects lighter "
           "than 3 solar masses)",
    "NSBH": "Probability that the source is a neutron star-black hole merger (primary heavier "
            "than 5 solar masses, secondary lighter than 3 solar masses)",
    "BBH": "Probability that the source is a binary black hole merger (both objects heavier than "
           "5 solar masses)",
    "Terrestrial": "Probability that the source is terrestrial (i.e., a background noise "
                   "fluctuation or a glitch)",
}
_PROPERTY_DOC = {
    "HasNS": "Probability that at least one object in the binary has a mass that is less than "
             "3 solar masses",
    "HasRemnant": "Probability that a nonzero mass was ejected outside the central remnant object",
    "HasMassGap": "Probability that the source has at least one object between 3 and 5 solar "
                  "masses",
}

# --- VOEvent --------------------------------------------------------------------------


def _param(parent: etree._Element, name: str, value: Any, data_type: str, description: str,
           ucd: str | None = None, unit: str | None = None) -> etree._Element:
    """Append ``<Param name value [ucd] [unit] dataType><Description/></Param>``."""
    if data_type == "float":
        text = repr(float(value))
    elif data_type == "int":
        text = str(int(value))
    else:
        text = str(value)
    attributes = {"name": name, "value": text}
    if ucd:
        attributes["ucd"] = ucd
    if unit:
        attributes["unit"] = unit
    attributes["dataType"] = data_type
    param = etree.SubElement(parent, "Param", attributes)
    etree.SubElement(param, "Description").text = description
    return param


def _skymap_group_name(filename: str) -> str:
    """Group name of a sky map: its file name without extensions (``bayestar``)."""
    return filename.split(",")[0].split(".")[0]


def build_voevent(content: AlertContent) -> bytes:
    """The LVK GCN Notice of an alert, as VOEvent 2.0 XML.

    Parameters
    ----------
    content : AlertContent

    Returns
    -------
    bytes
        UTF-8 XML with declaration.  A retraction carries only the identification
        params; other types also carry FAR, significance, pipeline, sky map,
        classification and properties (the last two for CBC only) and, when there is
        one, the external coincidence.
    """
    root = etree.Element(f"{{{VOEVENT_NAMESPACE}}}VOEvent",
                         nsmap={"voe": VOEVENT_NAMESPACE, "xsi": XSI_NAMESPACE})
    root.set(f"{{{XSI_NAMESPACE}}}schemaLocation", VOEVENT_SCHEMA_LOCATION)
    root.set("version", "2.0")
    root.set("role", content.role)
    root.set("ivorn", content.ivorn)

    who = etree.SubElement(root, "Who")
    etree.SubElement(who, "Date").text = content.time_created
    etree.SubElement(etree.SubElement(who, "Author"), "contactName").text = AUTHOR

    what = etree.SubElement(root, "What")
    notice_name = "LVC_" + {EARLY_WARNING: "EARLY_WARNING"}.get(content.alert_type,
                                                                 content.alert_type.upper())
    _param(what, "Packet_Type", content.packet_type, "int",
           f"The Notice Type number is assigned/used within GCN, eg type={content.packet_type} "
           f"is an {notice_name} notice")
    _param(what, "internal", int(content.internal), "int",
           "Indicates whether this event should be distributed to LSC/Virgo/KAGRA members only")
    _param(what, "Pkt_Ser_Num", str(int(content.serial_number)), "string",  # as LVK VOEvents
           "A number that increments by 1 each time a new revision is issued for this event")
    _param(what, "GraceID", content.superevent_id, "string", "Identifier in GraceDB",
           ucd="meta.id")
    _param(what, "AlertType", content.alert_type, "string", "VOEvent alert type",
           ucd="meta.version")
    _param(what, "HardwareInj", int(content.hardware_injection), "int",
           "Indicates that this event is a hardware injection if 1, no if 0", ucd="meta.number")
    _param(what, "OpenAlert", int(content.open_alert), "int",
           "Indicates that this event is an open alert if 1, no if 0", ucd="meta.number")
    _param(what, "EventPage", content.event_page, "string",
           "Web page for evolving status of this GW candidate", ucd="meta.ref.url")

    if content.alert_type != RETRACTION:
        _param(what, "Instruments", ",".join(content.instruments), "string",
               "List of instruments used in analysis to identify this event", ucd="meta.code")
        if content.far is not None:
            _param(what, "FAR", content.far, "float",
                   "False alarm rate for GW candidates with this strength or greater",
                   ucd="arith.rate;stat.falsealarm", unit="Hz")
        _param(what, "Significant", int(content.significant), "int",
               "Indicates that this event is significant if 1, no if 0", ucd="meta.number")
        _param(what, "Group", content.group, "string", "Data analysis working group",
               ucd="meta.code")
        _param(what, "Pipeline", content.pipeline, "string",
               "Low-latency data analysis pipeline", ucd="meta.code")
        _param(what, "Search", content.search, "string", "Specific low-latency search",
               ucd="meta.code")
        if content.group == "Burst":
            if content.duration is not None:
                _param(what, "duration", content.duration, "float",
                       "Measured duration of GW burst signal", ucd="time.duration", unit="s")
            if content.central_frequency is not None:
                _param(what, "central_freq", content.central_frequency, "float",
                       "Central frequency of GW burst signal", ucd="gw.frequency", unit="Hz")
        if content.skymap_url:
            skymap = etree.SubElement(what, "Group", type="GW_SKYMAP",
                                      name=content.skymap_name or _skymap_group_name(
                                          content.skymap_filename
                                          or content.skymap_url.rsplit("/", 1)[-1]))
            _param(skymap, "skymap_fits", content.skymap_url, "string", "Sky Map FITS",
                   ucd="meta.ref.url")
        if content.group == "CBC" and content.classification:
            group = etree.SubElement(what, "Group", type="Classification")
            for key in CLASSIFICATION_KEYS:
                if key in content.classification:
                    _param(group, key, content.classification[key], "float",
                           _CLASSIFICATION_DOC[key], ucd="stat.probability")
            etree.SubElement(group, "Description").text = (
                "Source classification: binary neutron star (BNS), neutron star-black hole "
                "(NSBH), binary black hole (BBH), or terrestrial (noise)")
        if content.group == "CBC" and content.properties:
            group = etree.SubElement(what, "Group", type="Properties")
            for key in PROPERTY_KEYS:
                if key in content.properties:
                    _param(group, key, content.properties[key], "float", _PROPERTY_DOC[key],
                           ucd="stat.probability")
            etree.SubElement(group, "Description").text = (
                "Qualitative properties of the source, conditioned on the assumption that the "
                "signal is an astrophysical compact binary merger")
        if content.external_coinc is not None:
            _external_group(what, content.external_coinc)
        if content.coinc_comment is not None:
            group = etree.SubElement(what, "Group", type="External Coincidence")
            _param(group, "CoincComment", content.coinc_comment, "string",
                   "Comment on the coincidence with a non-GW trigger")

    where_when = etree.SubElement(root, "WhereWhen")
    location = etree.SubElement(where_when, "ObsDataLocation")
    etree.SubElement(location, "ObservatoryLocation", id="LIGO Virgo")
    observation = etree.SubElement(location, "ObservationLocation")
    etree.SubElement(observation, "AstroCoordSystem", id="UTC-FK5-GEO")
    coords = etree.SubElement(observation, "AstroCoords", coord_system_id="UTC-FK5-GEO")
    instant = etree.SubElement(etree.SubElement(coords, "Time", unit="s"), "TimeInstant")
    etree.SubElement(instant, "ISOTime").text = content.event_time_iso

    how = etree.SubElement(root, "How")
    etree.SubElement(how, "Description").text = (
        "Candidate gravitational wave event identified by low-latency analysis")
    for instrument in content.instruments:
        if instrument in _INSTRUMENT_NAMES:
            etree.SubElement(how, "Description").text = (
                f"{instrument}: {_INSTRUMENT_NAMES[instrument]}")

    if content.alert_type != RETRACTION:
        why = etree.SubElement(root, "Why", importance="1.0" if content.significant else "0.5")
        etree.SubElement(why, "Concept").text = "Gravitational wave candidate"
        etree.SubElement(why, "Description").text = (
            f"{content.group} candidate from the {content.pipeline} pipeline")

    if content.cited_ivorns:
        citations = etree.SubElement(root, "Citations")
        cite = "retraction" if content.alert_type == RETRACTION else "supersedes"
        for cited in content.cited_ivorns:
            etree.SubElement(citations, "EventIVORN", cite=cite).text = cited
        etree.SubElement(citations, "Description").text = (
            "Determined to not be a viable GW event candidate"
            if content.alert_type == RETRACTION else
            f"{content.alert_type} alert superseding the earlier notices")

    etree.SubElement(root, "Description").text = "Report of a candidate gravitational wave event"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _external_group(what: etree._Element, coinc: ExternalCoinc) -> None:
    """Append the ``External Coinc`` group of a coincidence with a non-GW trigger."""
    group = etree.SubElement(what, "Group", type="External Coinc", name="External Coinc")
    _param(group, "External_GCN_Notice_Id", coinc.gcn_notice_id, "int",
           "External GCN trigger number", ucd="meta.id")
    _param(group, "External_Ivorn", coinc.ivorn, "string", "IVORN of external notice",
           ucd="meta.id")
    _param(group, "External_Observatory", coinc.observatory, "string",
           "Observatory of the external trigger", ucd="meta.code")
    _param(group, "External_Search", coinc.search, "string",
           "Search of the external trigger", ucd="meta.code")
    _param(group, "Time_Difference", coinc.time_difference, "float",
           "Time of the external trigger minus time of the GW candidate", ucd="meta.code",
           unit="s")
    _param(group, "Time_Coincidence_FAR", coinc.time_coincidence_far, "float",
           "Estimated coincidence false alarm rate in Hz using timing", ucd="arith.rate;"
           "stat.falsealarm", unit="Hz")
    if coinc.time_sky_position_coincidence_far is not None:
        _param(group, "Time_Sky_Position_Coincidence_FAR",
               coinc.time_sky_position_coincidence_far, "float",
               "Estimated coincidence false alarm rate in Hz using timing and sky position",
               ucd="arith.rate;stat.falsealarm", unit="Hz")
    if coinc.combined_skymap_url:
        skymap = etree.SubElement(group, "Param", name="joint_skymap_fits",
                                  value=coinc.combined_skymap_url, ucd="meta.ref.url",
                                  dataType="string")
        etree.SubElement(skymap, "Description").text = "Combined GW-External Sky Map FITS"
    etree.SubElement(group, "Description").text = (
        "Properties of the coincidence with a non-GW trigger")


class InvalidVOEvent(ValueError):
    """The document is well-formed XML but not an acceptable VOEvent; the message says why."""


@lru_cache(maxsize=1)
def _voevent_schema() -> etree.XMLSchema:
    """The VOEvent 2.0 schema from ``gw_ops/data/schema`` (parsed once, offline)."""
    return etree.XMLSchema(etree.parse(str(VOEVENT_XSD_PATH), safe_xml.hardened_parser()))


def parse_voevent(xml_bytes: bytes, *,
                  max_bytes: int = DEFAULT_MAX_VOEVENT_BYTES) -> etree._Element:
    """Parse VOEvent XML with :func:`gw_ops.formats.xml.parse_xml` (no DTD, no entities).

    Parameters
    ----------
    xml_bytes : bytes
    max_bytes : int, optional
        Largest document accepted (bytes).

    Raises
    ------
    gw_ops.formats.xml.XMLRejected
        Too large, not well-formed, or carrying a DOCTYPE.
    """
    return safe_xml.parse_xml(xml_bytes, max_bytes=max_bytes)


def validate_voevent(xml_bytes: bytes, *, against_schema: bool = True,
                     max_bytes: int = DEFAULT_MAX_VOEVENT_BYTES) -> str:
    """Check a VOEvent and return its IVORN.

    Parameters
    ----------
    xml_bytes : bytes
    against_schema : bool, optional
        Also check it against the VOEvent 2.0 schema (default).  Without, only the
        root element (a VOEvent 2.0 or 1.1) and the IVORN are checked.
    max_bytes : int, optional
        Largest document accepted (bytes).

    Returns
    -------
    str
        The ``ivorn`` attribute.

    Raises
    ------
    InvalidVOEvent
        Not a VOEvent, no IVORN, or (with ``against_schema``) not a valid VOEvent 2.0; the
        message carries the schema's first complaints.
    gw_ops.formats.xml.XMLRejected
        Too large, not well-formed XML, or carrying a DOCTYPE.
    """
    root = parse_voevent(xml_bytes, max_bytes=max_bytes)
    if root.tag not in VOEVENT_TAGS:
        raise InvalidVOEvent(f"unknown root element {root.tag!r}: not a VOEvent")
    if against_schema:
        schema = _voevent_schema()
        if not schema.validate(root):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5])
            raise InvalidVOEvent(f"not a valid VOEvent 2.0: {errors}")
    ivorn = (root.get("ivorn") or "").strip()
    if not ivorn:
        raise InvalidVOEvent("VOEvent without an ivorn attribute")
    return ivorn


def what_param(root: etree._Element, name: str) -> str | None:
    """Value of the VOEvent's ``What`` param ``name``, stripped (None when absent).

    A param directly under ``What`` wins; some authors nest it in a ``Group``.
    """
    param = root.find(f"./What/Param[@name='{name}']")
    if param is None:
        param = root.find(f"./What//Param[@name='{name}']")
    return None if param is None else (param.get("value") or "").strip()


def voevent_params(xml_bytes: bytes) -> dict[str, str]:
    """The ``What`` params of a VOEvent by name (grouped ones included), values as text."""
    root = parse_voevent(xml_bytes)
    return {param.get("name"): param.get("value") for param in root.iterfind("./What//Param")}
