"""Read the event files pipelines upload: CBC ``coinc.xml`` (LIGO-LW), cWB text, external VOEvents.

Each parser returns an :class:`EventData` (the searchable attributes GraceDB keeps
for an event) or raises :class:`EventFileError` with a one-line reason, which the
service turns into HTTP 400.

XML is parsed with lxml with entity resolution, DTD loading and network access
off, so an upload cannot make the service read local files or fetch URLs.  The
LIGO-LW tables are read straight from the element tree rather than through
``igwn_ligolw``: the service only needs a few tables, and skipping the PSD arrays
that make a gstlal ``coinc.xml`` several hundred kB keeps createEvent fast.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from gw_ops.config import Settings
from gw_ops.formats import xml as safe_xml
from gw_ops.formats.gpstime import utc_to_gps


class EventFileError(ValueError):
    """The uploaded event file cannot be read; the message says why."""


@dataclass
class EventData:
    """Searchable attributes of an event, as GraceDB extracts them from its file.

    Attributes
    ----------
    gpstime : float or None
        Event time (GPS s).
    far : float or None
        False alarm rate (Hz).
    instruments : str
        Comma-separated detector names, e.g. ``"H1,L1"``.
    nevents : int or None
        Number of single-detector triggers.
    likelihood : float or None
        Ranking statistic of the pipeline.
    extra_attributes : dict
        ``CoincInspiral``/``SingleInspiral`` (CBC), ``MultiBurst`` (burst) or
        ``GRB`` (external) attributes.
    """

    gpstime: float | None = None
    far: float | None = None
    instruments: str = ""
    nevents: int | None = None
    likelihood: float | None = None
    extra_attributes: dict[str, Any] = field(default_factory=dict)


#: Largest event file parsed when the caller names no limit (bytes): the default
#: ``gracedb_max_upload_bytes``; the service refuses larger uploads before parsing.
DEFAULT_MAX_XML_BYTES: int = Settings.__dataclass_fields__["gracedb_max_upload_bytes"].default


def parse_xml(content: bytes, *, max_bytes: int = DEFAULT_MAX_XML_BYTES) -> etree._Element:
    """Parse an uploaded XML file safely (:func:`gw_ops.formats.xml.parse_xml`).

    A DOCTYPE is accepted (LIGO-LW files name an external DTD, never loaded); entity
    declarations and references (billion laughs, XXE) are refused.

    Raises
    ------
    EventFileError
        Too large, malformed, or declaring or using entities.
    """
    try:
        return safe_xml.parse_xml(content, max_bytes=max_bytes, allow_doctype=True)
    except safe_xml.MalformedXML as exc:
        raise EventFileError(f"malformed XML: {exc.detail}") from None
    except safe_xml.XMLRejected as exc:
        raise EventFileError(str(exc)) from None


# --- LIGO-LW -------------------------------------------------------------------------------

_INT_TYPES = {"int_2s", "int_2u", "int_4s", "int_4u", "int_8s", "int_8u", "int"}
_FLOAT_TYPES = {"real_4", "real_8", "float", "double"}
#: A quoted LIGO-LW cell; its two alternatives never overlap, so matching is linear.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_SPACE = re.compile(r"\s*")


def _local(tag: Any) -> str:
    """Tag name without namespace."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _strip_name(name: str, suffix: str = "") -> str:
    """LIGO-LW names come as ``table:column`` or ``column`` (and ``name:table``)."""
    if suffix and name.endswith(":" + suffix):
        name = name[: -len(suffix) - 1]
    return name.rsplit(":", 1)[-1]


def _tokens(text: str, delimiter: str) -> list[str | None]:
    """Split a LIGO-LW stream into cell texts (``None`` for empty cells), in linear time.

    A cell is a quoted string (backslash escapes) or the text up to the next
    delimiter, blanks around it dropped.  The scan moves forward only (``str.find``
    and anchored patterns that cannot backtrack), so a cell of many blanks costs
    what its length costs; the earlier single pattern (a lazy cell followed by
    ``\\s*``) took 13 s on a cell of 20,000 blanks.
    """
    if not delimiter:
        raise EventFileError("LIGO-LW stream with an empty delimiter")
    cells: list[str | None] = []
    text = text.strip()
    position, end = 0, len(text)
    while position < end:
        position = _SPACE.match(text, position).end()
        if text.startswith('"', position):
            quoted = _QUOTED.match(text, position)
            if quoted is None:
                raise EventFileError("malformed LIGO-LW stream: unterminated string")
            cells.append(re.sub(r"\\(.)", r"\1", quoted.group()[1:-1], flags=re.S))
            position = quoted.end()
            if not text.startswith(delimiter, position):  # blanks may be the delimiter itself
                position = _SPACE.match(text, position).end()
            if position < end and not text.startswith(delimiter, position):
                raise EventFileError("malformed LIGO-LW stream: text after a quoted cell")
        else:
            stop = text.find(delimiter, position)
            stop = end if stop < 0 else stop
            cell = text[position:stop].strip()
            if '"' in cell:
                raise EventFileError("malformed LIGO-LW stream: quote inside an unquoted cell")
            cells.append(cell if cell != "" else None)
            position = stop
        position += len(delimiter) if position < end else 0
    return cells


def _convert_cell(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    try:
        if kind in _INT_TYPES:
            return int(value)
        if kind in _FLOAT_TYPES:
            return float(value)
    except ValueError:
        raise EventFileError(f"bad {kind} value {value!r}") from None
    return value


def read_ligolw_tables(root: etree._Element, wanted: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows of the ``wanted`` LIGO-LW tables as lists of dicts."""
    if _local(root.tag) != "LIGO_LW":
        raise EventFileError("not a LIGO-LW document (root element is not LIGO_LW)")
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in root.iter("{*}Table", "Table"):
        name = _strip_name(table.get("Name", ""), "table")
        if name not in wanted:
            continue
        columns = [(_strip_name(col.get("Name", "")), col.get("Type", "lstring"))
                   for col in table if _local(col.tag) == "Column"]
        stream = next((child for child in table if _local(child.tag) == "Stream"), None)
        rows: list[dict[str, Any]] = []
        if stream is not None and columns:
            delimiter = stream.get("Delimiter", ",")
            cells = _tokens(stream.text or "", delimiter)
            # A stream that ends with the delimiter is ambiguous: a trailing delimiter
            # after the last row, or an empty last cell.  The column count decides.
            if len(cells) % len(columns) == len(columns) - 1 and \
                    (stream.text or "").strip().endswith(delimiter):
                cells.append(None)
            if len(cells) % len(columns):
                raise EventFileError(f"table {name}: {len(cells)} cells do not fill "
                                     f"rows of {len(columns)} columns")
            for start in range(0, len(cells), len(columns)):
                rows.append({col: _convert_cell(cell, kind) for (col, kind), cell
                             in zip(columns, cells[start:start + len(columns)])})
        tables.setdefault(name, []).extend(rows)
    return tables


def parse_coinc(content: bytes) -> EventData:
    """Attributes of a CBC event from its LIGO-LW ``coinc.xml``.

    ``gpstime`` is the coinc_inspiral end time, ``far`` its ``combined_far``,
    ``instruments`` the coinc_event instruments (or the coinc_inspiral ifos).
    """
    root = parse_xml(content)
    tables = read_ligolw_tables(root, {"coinc_inspiral", "sngl_inspiral", "coinc_event"})
    coinc_rows = tables.get("coinc_inspiral") or []
    if len(coinc_rows) != 1:
        raise EventFileError(f"expected one coinc_inspiral row, found {len(coinc_rows)}")
    coinc = coinc_rows[0]
    if coinc.get("end_time") is None:
        raise EventFileError("coinc_inspiral row has no end_time")
    gpstime = coinc["end_time"] + (coinc.get("end_time_ns") or 0) * 1e-9
    coinc_event = (tables.get("coinc_event") or [{}])[0]
    singles = tables.get("sngl_inspiral") or []
    instruments = coinc_event.get("instruments") or coinc.get("ifos") or ",".join(
        sorted({row.get("ifo") for row in singles if row.get("ifo")}))
    coinc_attributes = {key: coinc.get(key) for key in (
        "ifos", "end_time", "end_time_ns", "mass", "mchirp", "minimum_duration", "snr",
        "false_alarm_rate", "combined_far")}
    single_attributes = [
        {key: value for key, value in row.items()
         if value is not None and not key.endswith("_id")}
        for row in singles]
    return EventData(
        gpstime=gpstime,
        far=coinc.get("combined_far"),
        instruments=instruments,
        nevents=coinc_event.get("nevents") or len(singles) or None,
        likelihood=coinc_event.get("likelihood"),
        extra_attributes={"CoincInspiral": coinc_attributes,
                          "SingleInspiral": single_attributes})


def parse_cwb(content: bytes) -> EventData:
    """Attributes of a cWB burst event from its ``key: values`` text file."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise EventFileError("cWB event file is not UTF-8 text") from None
    record: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith("#") and " " not in key.strip():
            record.setdefault(key.strip(), value.split())
    if not record.get("time") or not record.get("ifo"):
        raise EventFileError("cWB event file lacks the 'time' or 'ifo' line")

    def first(key: str, index: int = 0) -> float | None:
        try:
            return float(record[key][index])
        except (KeyError, IndexError, ValueError):
            return None

    gpstime = first("time")
    if gpstime is None:
        raise EventFileError("cWB 'time' is not a number")
    instruments = ",".join(record["ifo"])
    far = first("far")
    burst = {
        "ifos": instruments, "start_time": first("start"), "peak_time": gpstime,
        "duration": first("duration"), "central_freq": first("frequency"),
        "bandwidth": first("bandwidth"), "snr": first("snr"), "amplitude": first("rho"),
        "confidence": first("netCC"), "likelihood": first("likelihood"),
        "hrss": first("hrss"), "ligo_axis_ra": first("phi", 2), "ligo_axis_dec": first("theta", 2),
        "false_alarm_rate": far,
    }
    return EventData(gpstime=gpstime, far=far, instruments=instruments,
                     nevents=len(record["ifo"]), likelihood=first("likelihood"),
                     extra_attributes={"MultiBurst": burst})


def parse_external_voevent(content: bytes) -> EventData:
    """Attributes of an external (GRB, neutrino, ...) event from its VOEvent XML."""
    root = parse_xml(content)
    if _local(root.tag) != "VOEvent":
        raise EventFileError("external event file is not a VOEvent")
    iso = root.findtext(".//{*}ISOTime")
    if not iso:
        raise EventFileError("VOEvent has no WhereWhen ISOTime")
    try:
        when = dt.datetime.fromisoformat(iso.strip().rstrip("Z")).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise EventFileError(f"bad ISOTime {iso!r}") from None
    params = {p.get("name"): p.get("value") for p in root.iter("{*}Param", "Param")}

    def number(text: str | None) -> float | None:
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    position = root.find(".//{*}Position2D")
    ra = dec = error_radius = None
    if position is not None:
        ra = number(position.findtext(".//{*}C1"))
        dec = number(position.findtext(".//{*}C2"))
        error_radius = number(position.findtext(".//{*}Error2Radius"))
    # GraceDB records TrigID, or Trans_Num for Fermi sub-threshold notices (which have no
    # TrigID), so a later notice of the trigger finds its event by trigger id
    grb = {"ivorn": root.get("ivorn"),
           "trigger_id": params.get("TrigID") or params.get("Trans_Num"),
           "ra": ra, "dec": dec, "error_radius": error_radius,
           "trigger_duration": number(params.get("Trig_Dur")),
           "t90": number(params.get("T90"))}
    return EventData(gpstime=utc_to_gps(when), far=number(params.get("FAR")),
                     instruments="", extra_attributes={"GRB": grb})


def parse_external_json(content: bytes) -> EventData:
    """Attributes of an external event from a GCN Kafka JSON notice (GraceDB's reading:
    trigger id = the ``id`` list joined with ``_``, time = ``trigger_time``)."""
    from gw_ops.formats.json_object import JSONRejected, parse_json_object

    try:
        alert = parse_json_object(content, "external JSON notice")
    except JSONRejected as exc:
        raise EventFileError(str(exc)) from None
    ids = alert.get("id")
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    iso = alert.get("trigger_time")
    if not isinstance(iso, str) or not iso.strip():
        raise EventFileError("JSON notice has no trigger_time")
    try:
        when = dt.datetime.fromisoformat(iso.strip().rstrip("Z")).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise EventFileError(f"bad trigger_time {iso!r}") from None

    def number(key: str) -> float | None:
        value = alert.get(key)
        return float(value) if isinstance(value, (int, float)) and \
            not isinstance(value, bool) else None

    grb = {"ivorn": None, "trigger_id": "_".join(str(part) for part in ids) or None,
           "ra": number("ra"), "dec": number("dec"), "error_radius": number("ra_dec_error"),
           "trigger_duration": None, "t90": None}
    return EventData(gpstime=utc_to_gps(when), far=number("far"), instruments="",
                     extra_attributes={"GRB": grb})


#: Pipelines whose event files are GCN VOEvents, whatever their group.
EXTERNAL_PIPELINES = ("Fermi", "Swift", "SNEWS", "INTEGRAL", "AGILE", "CHIME", "IceCube", "SVOM",
                      "EinsteinProbe")


def parse_event_file(group: str, pipeline: str, content: bytes) -> EventData:
    """Dispatch on group and pipeline as GraceDB does."""
    if not content.strip():
        raise EventFileError("the event file is empty")
    if group == "External" or pipeline in EXTERNAL_PIPELINES:
        # Test-group uploads of external pipelines are VOEvents (or JSON notices) too
        if content.lstrip().startswith(b"{"):
            return parse_external_json(content)
        return parse_external_voevent(content)
    if pipeline.lower() == "cwb":
        return parse_cwb(content)
    if group in ("CBC", "Test") or pipeline in ("gstlal", "pycbc", "MBTA", "MBTAOnline", "spiir"):
        return parse_coinc(content)
    if group == "Burst" and content.lstrip().startswith(b"<"):
        return parse_coinc(content)
    raise EventFileError(f"no parser for group {group!r} and pipeline {pipeline!r}")
