"""Public alert contents: the LVK GCN Notice (VOEvent 2.0), the JSON alert and a Circular draft.

One :class:`AlertContent` holds everything an alert says; three pure builders turn it into
the three products:

* :func:`build_voevent` -- the VOEvent 2.0 XML of an LVK notice (IVORN
  ``ivo://gwnet/LVC#<superevent_id>-<serial>-<AlertType>``), checked with
  :func:`validate_voevent` against the VOEvent 2.0 schema shipped in
  ``gw_ops/data/schema`` (validation never touches the network);
* :func:`build_json_alert` -- the same content in the shape of igwn-gwalert-schema v1
  (sky map as base64 of the multi-order FITS file);
* :func:`build_circular` -- a plain-text GCN Circular draft for a human to edit.

This module imports only the standard library and lxml (the DAG processor imports it
through :mod:`gw_ops.handlers.orchestrator`).

Examples
--------
>>> content = AlertContent(superevent_id="MS230101a", alert_type="Preliminary",
...                        serial_number=1, time_created="2023-01-01T00:01:00Z",
...                        event_time_gps=1356566418.5, far=1e-9, significant=True,
...                        group="CBC", pipeline="gstlal", search="MDC",
...                        instruments=("H1", "L1"))
>>> validate_voevent(build_voevent(content))
>>> build_json_alert(content)["alert_type"]
'PRELIMINARY'
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from lxml import etree

#: The alert types, in the spelling of the VOEvent ``AlertType`` param and the IVORN.
EARLY_WARNING = "EarlyWarning"
PRELIMINARY = "Preliminary"
INITIAL = "Initial"
UPDATE = "Update"
RETRACTION = "Retraction"
ALERT_TYPES = (EARLY_WARNING, PRELIMINARY, INITIAL, UPDATE, RETRACTION)

#: GCN notice type number (``gcn.NoticeType``) of each alert type: the ``Packet_Type`` param.
PACKET_TYPES: dict[str, int] = {
    EARLY_WARNING: 163,  # LVC_EARLY_WARNING
    PRELIMINARY: 150,    # LVC_PRELIMINARY
    INITIAL: 151,        # LVC_INITIAL
    UPDATE: 152,         # LVC_UPDATE
    RETRACTION: 164,     # LVC_RETRACTION
}

#: ``alert_type`` of the JSON alert (igwn-gwalert-schema v1 enumeration symbols).
JSON_ALERT_TYPES: dict[str, str] = {
    EARLY_WARNING: "EARLYWARNING",  # the schema's enum spelling (GWCelery: 'earlywarning'.upper())
    PRELIMINARY: "PRELIMINARY",
    INITIAL: "INITIAL",
    UPDATE: "UPDATE",
    RETRACTION: "RETRACTION",
}

VOEVENT_NAMESPACE = "http://www.ivoa.net/xml/VOEvent/v2.0"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
VOEVENT_SCHEMA_LOCATION = (f"{VOEVENT_NAMESPACE} "
                           "http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd")
VOEVENT_XSD_PATH = Path(__file__).resolve().parents[1] / "data" / "schema" / "VOEvent-v2.0.xsd"

#: IVORN stream of LVK notices.
IVORN_PREFIX = "ivo://gwnet/LVC#"
AUTHOR = "LIGO Scientific Collaboration, Virgo Collaboration, and KAGRA Collaboration"

#: Probabilities of the source classification (sum to 1), keys in notice order.
CLASSIFICATION_KEYS = ("BNS", "NSBH", "BBH", "Terrestrial")
#: Source properties (each a probability), keys in notice order.
PROPERTY_KEYS = ("HasNS", "HasRemnant", "HasMassGap")

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

# GPS-UTC offsets: (first GPS second at which the offset applies, offset in s).  GPS time
# has no leap seconds; UTC had 18 of them between the GPS epoch and 2017, and none since
# (IERS Bulletin C announced none through 2026).  A table keeps this module free of astropy;
# tests check it against astropy.
_GPS_EPOCH = datetime.datetime(1980, 1, 6, tzinfo=datetime.timezone.utc)
_LEAP_DATES = ("1981-07-01", "1982-07-01", "1983-07-01", "1985-07-01", "1988-01-01",
               "1990-01-01", "1991-01-01", "1992-07-01", "1993-07-01", "1994-07-01",
               "1996-01-01", "1997-07-01", "1999-01-01", "2006-01-01", "2009-01-01",
               "2012-07-01", "2015-07-01", "2017-01-01")
_LEAP_STEPS = tuple(
    ((datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.timezone.utc)
      - _GPS_EPOCH).total_seconds() + number, number)
    for number, day in enumerate(_LEAP_DATES, start=1))


def gps_to_utc_iso(gps_time: float) -> str:
    """UTC time in ISO 8601 with microseconds and ``Z`` of a GPS time.

    Parameters
    ----------
    gps_time : float
        GPS time (s since 1980-01-06T00:00:00 UTC, without leap seconds).

    Returns
    -------
    str
        e.g. ``'2017-08-17T12:41:04.400000Z'`` for GPS 1187008882.4.
    """
    offset = 0
    for first_gps_second, steps in _LEAP_STEPS:
        if gps_time >= first_gps_second:
            offset = steps
    utc = _GPS_EPOCH + datetime.timedelta(seconds=gps_time - offset)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now_iso() -> str:
    """The current UTC time to the second, ISO 8601 with ``Z`` (VOEvent ``Who/Date``)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def role_for_superevent(superevent_id: str) -> str:
    """VOEvent role of a superevent: ``test`` for MDC (``MS``) and test (``TS``) ones."""
    return "test" if superevent_id[:2] in ("MS", "TS") else "observation"


def ivorn(superevent_id: str, serial_number: int, alert_type: str) -> str:
    """IVORN of one notice, e.g. ``ivo://gwnet/LVC#S190425z-1-Preliminary``."""
    return f"{IVORN_PREFIX}{superevent_id}-{serial_number}-{alert_type}"


def voevent_filename(superevent_id: str, serial_number: int, alert_type: str) -> str:
    """File name of a notice in GraceDB, e.g. ``S190425z-1-Preliminary.xml``."""
    return f"{superevent_id}-{serial_number}-{alert_type}.xml"


@dataclass(frozen=True)
class ExternalCoinc:
    """A coincidence of the GW candidate with a non-GW trigger (e.g. a GRB).

    Attributes
    ----------
    gcn_notice_id : int
        Trigger number of the external notice.
    ivorn : str
        IVORN of the external notice.
    observatory : str
        e.g. ``Fermi``, ``Swift``.
    search : str
        External search, e.g. ``GRB``, ``SubGRB``.
    time_difference : float
        External trigger time minus GW time (s).
    time_coincidence_far : float
        Temporal coincidence false alarm rate (Hz).
    time_sky_position_coincidence_far : float or None
        Space-time coincidence false alarm rate (Hz), when a sky map allowed it.
    combined_skymap_url : str or None
        URL of the combined GW-external sky map, if any.
    """

    gcn_notice_id: int
    ivorn: str
    observatory: str
    search: str
    time_difference: float
    time_coincidence_far: float
    time_sky_position_coincidence_far: float | None = None
    combined_skymap_url: str | None = None


@dataclass(frozen=True)
class AlertContent:
    """Everything one public alert says about one superevent.

    Attributes
    ----------
    superevent_id : str
        GraceDB superevent id, e.g. ``S230518h``.
    alert_type : str
        One of :data:`ALERT_TYPES`.
    serial_number : int
        ``Pkt_Ser_Num``: 1 for the first notice of the superevent, then +1 for each.
    time_created : str
        Creation time of the notice, UTC ISO 8601 with ``Z``.
    event_time_gps : float
        Merger (CBC) or central (Burst) time of the candidate (GPS s).
    far : float
        False alarm rate (Hz).
    significant : bool
        True when the candidate passes the significant-alert threshold.
    group : str
        ``CBC`` or ``Burst``.
    pipeline : str
        e.g. ``gstlal``, ``pycbc``, ``cwb``.
    search : str
        e.g. ``AllSky``, ``EarlyWarning``, ``MDC``.
    instruments : tuple of str
        Detectors that contributed, e.g. ``("H1", "L1")``.
    skymap_filename : str or None
        GraceDB file name of the sky map, e.g. ``bayestar.multiorder.fits``.
    skymap_url : str or None
        URL of the sky map file (with its GraceDB version, e.g. ``...,0``).
    skymap_bytes : bytes or None
        The multi-order FITS file itself, embedded (base64) in the JSON alert.
    classification : mapping of str to float
        Source classification probabilities, keys from :data:`CLASSIFICATION_KEYS` (CBC only).
    properties : mapping of str to float
        Source property probabilities, keys from :data:`PROPERTY_KEYS` (CBC only).
    external_coinc : ExternalCoinc or None
    role : str
        VOEvent role: ``observation``, or ``test`` for MDC/test superevents.
    event_page : str
        Web page of the superevent.
    cited_ivorns : tuple of str
        IVORNs of earlier notices of this superevent: superseded (cited with
        ``supersedes``) or, for a retraction, retracted.
    hardware_injection : bool
    open_alert : bool
        True when the alert goes to the public.
    internal : bool
        True when the notice is for LVK members only.
    duration : float or None
        Burst duration (s), Burst group only.
    central_frequency : float or None
        Burst central frequency (Hz), Burst group only.
    """

    superevent_id: str
    alert_type: str
    serial_number: int
    time_created: str
    event_time_gps: float
    far: float
    significant: bool
    group: str
    pipeline: str
    search: str
    instruments: tuple[str, ...]
    skymap_filename: str | None = None
    skymap_url: str | None = None
    skymap_bytes: bytes | None = field(default=None, repr=False)
    classification: Mapping[str, float] = field(default_factory=dict)
    properties: Mapping[str, float] = field(default_factory=dict)
    external_coinc: ExternalCoinc | None = None
    role: str = ""
    event_page: str = ""
    cited_ivorns: tuple[str, ...] = ()
    hardware_injection: bool = False
    open_alert: bool = True
    internal: bool = False
    duration: float | None = None
    central_frequency: float | None = None

    def __post_init__(self):
        if self.alert_type not in ALERT_TYPES:
            raise ValueError(f"alert_type {self.alert_type!r} is not one of {ALERT_TYPES}")
        if self.serial_number < 1:
            raise ValueError("serial_number starts at 1")
        if not self.role:
            object.__setattr__(self, "role", role_for_superevent(self.superevent_id))

    @property
    def event_time_iso(self) -> str:
        """Event time, UTC ISO 8601 with microseconds and ``Z``."""
        return gps_to_utc_iso(self.event_time_gps)

    @property
    def ivorn(self) -> str:
        """IVORN of this notice."""
        return ivorn(self.superevent_id, self.serial_number, self.alert_type)

    @property
    def voevent_filename(self) -> str:
        """GraceDB file name of this notice's VOEvent."""
        return voevent_filename(self.superevent_id, self.serial_number, self.alert_type)

    @property
    def packet_type(self) -> int:
        """GCN notice type number."""
        return PACKET_TYPES[self.alert_type]

    def replace(self, **changes: Any) -> AlertContent:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


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
                                      name=_skymap_group_name(content.skymap_filename
                                                              or content.skymap_url
                                                              .rsplit("/", 1)[-1]))
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


@lru_cache(maxsize=1)
def _voevent_schema() -> etree.XMLSchema:
    """The VOEvent 2.0 schema from ``gw_ops/data/schema`` (parsed once, offline)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(VOEVENT_XSD_PATH), parser))


def parse_voevent(xml_bytes: bytes) -> etree._Element:
    """Parse VOEvent XML with entity resolution and network access switched off.

    Raises
    ------
    lxml.etree.XMLSyntaxError
        When the text is not well-formed XML.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True)
    return etree.fromstring(xml_bytes, parser)


def validate_voevent(xml_bytes: bytes) -> None:
    """Check VOEvent XML against the VOEvent 2.0 schema.

    Parameters
    ----------
    xml_bytes : bytes

    Raises
    ------
    ValueError
        With the schema's first complaints, when the XML is not a valid VOEvent 2.0.
    lxml.etree.XMLSyntaxError
        When it is not well-formed XML.
    """
    schema = _voevent_schema()
    root = parse_voevent(xml_bytes)
    if not schema.validate(root):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5])
        raise ValueError(f"not a valid VOEvent 2.0: {errors}")


def voevent_params(xml_bytes: bytes) -> dict[str, str]:
    """The ``What`` params of a VOEvent by name (grouped ones included), values as text."""
    root = parse_voevent(xml_bytes)
    return {param.get("name"): param.get("value") for param in root.iterfind("./What//Param")}


# --- JSON alert -----------------------------------------------------------------------


def build_json_alert(content: AlertContent) -> dict[str, Any]:
    """The alert as a JSON-ready dict in the shape of igwn-gwalert-schema v1.

    Parameters
    ----------
    content : AlertContent

    Returns
    -------
    dict
        ``superevent_id``, ``alert_type`` (``EARLY_WARNING``, ``PRELIMINARY``, ...),
        ``time_created``, ``event`` (None for a retraction; otherwise time, far [Hz],
        significant, instruments, group, pipeline, search, properties,
        classification, duration [s], central_frequency [Hz], skymap: base64 text of
        the multi-order FITS file or None), ``external_coinc`` (None or a dict) and
        ``urls`` (``gracedb``: the event page; ``skymap``: the sky map URL, an
        addition of gw-ops for consumers that prefer fetching the file).
    """
    urls = {"gracedb": content.event_page}
    if content.skymap_url:
        urls["skymap"] = content.skymap_url
    event = None
    if content.alert_type != RETRACTION:
        event = {
            "time": content.event_time_iso,
            "far": float(content.far),
            "significant": bool(content.significant),
            "instruments": list(content.instruments),
            "group": content.group,
            "pipeline": content.pipeline,
            "search": content.search,
            "properties": {k: float(v) for k, v in content.properties.items()},
            "classification": {k: float(v) for k, v in content.classification.items()},
            "duration": content.duration,
            "central_frequency": content.central_frequency,
            "skymap": (base64.b64encode(content.skymap_bytes).decode("ascii")
                       if content.skymap_bytes else None),
        }
    external = None
    if content.external_coinc is not None and content.alert_type != RETRACTION:
        coinc = content.external_coinc
        external = {
            "gcn_notice_id": int(coinc.gcn_notice_id),
            "ivorn": coinc.ivorn,
            "observatory": coinc.observatory,
            "search": coinc.search,
            "time_difference": float(coinc.time_difference),
            "time_coincidence_far": float(coinc.time_coincidence_far),
            "time_sky_position_coincidence_far": coinc.time_sky_position_coincidence_far,
            "combined_skymap": None,
        }
    return {
        "superevent_id": content.superevent_id,
        "alert_type": JSON_ALERT_TYPES[content.alert_type],
        "time_created": content.time_created,
        "event": event,
        "external_coinc": external,
        "urls": urls,
    }


# --- GCN Circular draft ---------------------------------------------------------------


def _far_text(far_hz: float) -> str:
    """A FAR in Hz as the Circulars write it: ``1 per 12.3 years`` or ``2.1e-05 Hz``."""
    if far_hz <= 0:
        return "0 Hz"
    per_year = far_hz * 365.25 * 86400
    if per_year < 1:
        return f"{far_hz:.3g} Hz, or about one in {1 / per_year:.4g} years"
    return f"{far_hz:.3g} Hz, or about {per_year:.4g} per year"


def build_circular(content: AlertContent) -> str:
    """A plain-text GCN Circular draft of the alert (for a human to complete and send).

    Parameters
    ----------
    content : AlertContent

    Returns
    -------
    str
        Subject line, blank line, body.
    """
    sid = content.superevent_id
    if content.alert_type == RETRACTION:
        subject = f"LIGO/Virgo/KAGRA {sid}: Retraction"
        body = (f"The LIGO Scientific Collaboration, the Virgo Collaboration, and the KAGRA "
                f"Collaboration report:\n\n"
                f"We are retracting the candidate {sid} (GCN notices "
                f"{', '.join(content.cited_ivorns) or 'issued earlier'}).\n\n"
                f"Further investigation shows that it is not a viable gravitational-wave "
                f"candidate. The event page is {content.event_page}\n")
        return f"SUBJECT: {subject}\n\n{body}"

    kind = {"CBC": "compact binary merger candidate", "Burst": "unmodeled burst candidate"}.get(
        content.group, "candidate")
    subject = f"LIGO/Virgo/KAGRA {sid}: Identification of a GW {kind}"
    lines = [
        "The LIGO Scientific Collaboration, the Virgo Collaboration, and the KAGRA "
        "Collaboration report:",
        "",
        f"We identified the {kind} {sid} during real-time processing of data from "
        f"{', '.join(content.instruments)} at {content.event_time_iso} (GPS time: "
        f"{content.event_time_gps:.3f}). The candidate was found by the {content.pipeline} "
        f"analysis pipeline ({content.search} search) with a false alarm rate of "
        f"{_far_text(content.far)}. It is {'' if content.significant else 'not '}"
        f"a significant candidate.",
        "",
        f"The event page is {content.event_page}",
    ]
    if content.skymap_url:
        lines += ["", f"The sky localization ({content.skymap_filename or 'sky map'}) is "
                      f"available at {content.skymap_url}"]
    if content.group == "CBC" and content.classification:
        lines += ["", "The classification of the source, assuming it is astrophysical or "
                      "terrestrial, is:"]
        lines += [f"  {key} ({content.classification[key]:.0%})"
                  for key in sorted(content.classification,
                                    key=lambda k: -content.classification[k])]
    if content.group == "CBC" and content.properties:
        lines += ["", "Assuming the candidate is astrophysical:"]
        lines += [f"  {key}: {content.properties[key]:.0%}" for key in PROPERTY_KEYS
                  if key in content.properties]
    if content.external_coinc is not None:
        coinc = content.external_coinc
        lines += ["", f"The candidate is coincident with {coinc.observatory} trigger "
                      f"{coinc.gcn_notice_id} ({coinc.search}), {coinc.time_difference:+.2f} s "
                      f"from the GW time (coincidence FAR {coinc.time_coincidence_far:.3g} Hz)."]
    lines += ["", f"This Circular accompanies the {content.alert_type} GCN notice "
                  f"{content.ivorn}."]
    return f"SUBJECT: {subject}\n\n" + "\n".join(lines) + "\n"
