"""What one public alert says: :class:`AlertContent`, the alert types, IVORNs and file names.

The builders of the three products read an :class:`AlertContent`:
:func:`gw_ops.formats.voevent.build_voevent` (the GCN Notice, VOEvent 2.0),
:func:`gw_ops.formats.json_alert.build_json_alert` (igwn-gwalert-schema v1) and
:func:`gw_ops.formats.circular.build_circular` (a GCN Circular draft).

This module imports only the standard library and :mod:`gw_ops.formats.gpstime` (the DAG
processor imports it through the handlers).

Examples
--------
>>> content = AlertContent(superevent_id="MS230101a", alert_type=PRELIMINARY,
...                        serial_number=1, time_created="2023-01-01T00:01:00Z",
...                        event_time_gps=1356566418.5, far=1e-9, significant=True,
...                        group="CBC", pipeline="gstlal", search="MDC",
...                        instruments=("H1", "L1"))
>>> content.ivorn, content.role, content.packet_type
('ivo://gwnet/LVC#MS230101a-1-Preliminary', 'test', 150)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from gw_ops.formats.gpstime import gps_to_utc_iso

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

#: IVORN stream of LVK notices.
IVORN_PREFIX = "ivo://gwnet/LVC#"
#: Probabilities of the source classification (sum to 1), keys in notice order.
CLASSIFICATION_KEYS = ("BNS", "NSBH", "BBH", "Terrestrial")
#: Source properties (each a probability), keys in notice order.
PROPERTY_KEYS = ("HasNS", "HasRemnant", "HasMassGap")


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
    far : float or None
        False alarm rate (Hz); None when unknown (the notice then carries no FAR).
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
    skymap_name : str
        Name of the notice's ``GW_SKYMAP`` group (GraceDB's ``skymap_type``, e.g.
        ``bayestar``); empty: the sky map file name without its extensions.
    skymap_bytes : bytes or None
        The multi-order FITS file itself, embedded (base64) in the JSON alert.
    classification : mapping of str to float
        Source classification probabilities, keys from :data:`CLASSIFICATION_KEYS` (CBC only).
    properties : mapping of str to float
        Source property probabilities, keys from :data:`PROPERTY_KEYS` (CBC only).
    external_coinc : ExternalCoinc or None
    coinc_comment : str or None
        Free-text comment on a coincidence with an external trigger, for a notice whose
        coincidence is flagged without its numbers (GraceDB's ``raven_coinc`` and
        ``CoincComment`` form fields); None: no such comment.
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
    far: float | None
    significant: bool
    group: str
    pipeline: str
    search: str
    instruments: tuple[str, ...]
    skymap_filename: str | None = None
    skymap_url: str | None = None
    skymap_bytes: bytes | None = field(default=None, repr=False)
    skymap_name: str = ""
    classification: Mapping[str, float] = field(default_factory=dict)
    properties: Mapping[str, float] = field(default_factory=dict)
    external_coinc: ExternalCoinc | None = None
    coinc_comment: str | None = None
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
