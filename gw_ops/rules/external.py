"""External-trigger rules: notice kinds, vetoes, GraceDB group and search, trigger ids.

Pure decisions about GCN notices of GRBs, neutrinos and supernovae, as GWCelery 2.5.0
makes them (GCN Kafka JSON notices of SVOM and IceCube as GWCelery 3.0.0:
:mod:`gw_ops.rules.external_json`); the parsing of the notice XML and every GraceDB
access are in :mod:`gw_ops.handlers.external_triggers`.

* Group: ``role="test"`` gives group ``Test`` (``exttrig_test_notices``), else
  ``External``; search ``MDC`` when the IVORN carries GWCelery's ``mdc-test_event``
  marker (rehearsal notices).
* Trigger id: ``TrigID``, else ``Trans_Num`` (Fermi sub-threshold); INTEGRAL takes it
  from the IVORN fragment (``#Wakeup_Pos_123456-0-640`` gives ``123456``).
* Dropped: Fermi sub-threshold notices with ``Reliability`` below
  ``exttrig_subthreshold_min_reliability`` (<= 4), and INTEGRAL test notices on the
  production GraceDB.
* ``NOT_GRB``: the first GBM alert packet, a GBM classification whose most likely class
  is not a GRB at >= 50 %, a Swift position taken while the star tracker lost lock.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gw_ops.config import Settings
from gw_ops.errors import PermanentError
from gw_ops.vocabulary import EXTERNAL_GROUP, MDC_SEARCH, TEST_GROUP

#: Marker of rehearsal (MDC) notices in the IVORN (GWCelery's rule: search MDC).
MDC_IVORN_MARKER = "mdc-test_event"
#: IVORN fragments of INTEGRAL notices whose ``TrigID`` is kept (replays, MDC tests).
INTEGRAL_KEEP_TRIGID_MARKERS = ("O3-replay", "MDC-test")
#: Host of the production GraceDB, where INTEGRAL test notices are dropped.
PRODUCTION_GRACEDB_HOST = "gracedb.ligo.org"

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
POSITIONLESS_TYPES = frozenset({"SNEWS"})

#: Two notices of one trigger lie this close in time (s); the GraceDB look-up for an
#: existing event of the trigger searches this far around the notice's time.
SAME_TRIGGER_SPAN_S = 5.0


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
    payload_format : str
        ``voevent`` (XML) or ``json`` (GCN Kafka JSON): the form of the file uploaded
        to GraceDB.
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
    payload_format: str = "voevent"

    @property
    def is_test(self) -> bool:
        """The notice is not an observation (GCN test or utility notice)."""
        return self.role != "observation"

    @property
    def has_position(self) -> bool:
        """The notice localises the trigger (a sky map can be made)."""
        return self.error_radius is not None and self.error_radius > 0


def integral_trigger_id(ivorn: str) -> str | None:
    """INTEGRAL's trigger id from the IVORN fragment (its ``TrigID`` is 0): the fragment's
    last ``_``-separated part up to the first ``-``; None for replays and MDC tests,
    which keep their ``TrigID``."""
    fragment = ivorn.partition("#")[2]
    if not fragment or any(marker in fragment for marker in INTEGRAL_KEEP_TRIGID_MARKERS):
        return None
    return fragment.split("_")[-1].split("-")[0] or None


def trigger_id_from_params(notice_type: str, params: dict[str, str], ivorn: str = "") -> str:
    """The instrument's trigger id (shared by every notice of one trigger)."""
    if notice_type.startswith("INTEGRAL_") and integral_trigger_id(ivorn):
        return integral_trigger_id(ivorn)  # type: ignore[return-value]
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


def grb_probability(params: dict[str, str]) -> float | None:
    """Fermi GBM classification probability (%) that the trigger is a GRB: the most likely
    class's probability when that class is a GRB, else 0 (GWCelery looks at the most
    likely class only); None without a classification."""
    if "Most_Likely_Index" not in params:
        return None  # ground and final positions carry no classification
    try:
        if int(params["Most_Likely_Index"]) == FERMI_GRB_CLASS_INDEX:
            return float(params.get("Most_Likely_Prob", "0"))
    except ValueError:
        raise InvalidNotice("Fermi classification Most_Likely_Index or Most_Likely_Prob "
                            "is not a number") from None
    return 0.0


def not_grb_reasons(notice: ExternalNotice, settings: Settings) -> tuple[str, ...]:
    """Why a notice's trigger is vetoed with ``NOT_GRB`` (empty: not vetoed).

    Rules: the first Fermi alert packet (not classified yet); a Fermi classification
    below ``settings.exttrig_fermi_min_grb_percent``; a Swift position taken while the
    star tracker had lost lock.  (A low Fermi sub-threshold reliability drops the notice
    instead: :func:`drop_reason`.)
    """
    reasons = []
    if notice.notice_type == "FERMI_GBM_ALERT":
        reasons.append("first Fermi GBM alert packet: not classified yet")
    if notice.grb_probability is not None and \
            notice.grb_probability < settings.exttrig_fermi_min_grb_percent:
        reasons.append(f"Fermi GBM classifies it as a GRB at {notice.grb_probability:g} % "
                       f"(< {settings.exttrig_fermi_min_grb_percent:g} %)")
    if notice.star_tracker_lost_lock:
        reasons.append("Swift star tracker had lost lock")
    return tuple(reasons)

def drop_reason(notice: ExternalNotice, settings: Settings) -> str | None:
    """Why a notice makes no GraceDB event at all (GWCelery drops it), or None.

    A Fermi sub-threshold notice of low reliability (below
    ``settings.exttrig_subthreshold_min_reliability``), and an INTEGRAL test notice when
    gw-ops writes to the production GraceDB.
    """
    if notice.reliability is not None and \
            notice.reliability < settings.exttrig_subthreshold_min_reliability:
        return (f"Fermi subthreshold reliability {notice.reliability} "
                f"(< {settings.exttrig_subthreshold_min_reliability})")
    if notice.pipeline == "INTEGRAL" and notice.is_test:
        from urllib.parse import urlparse
        if urlparse(settings.gracedb_api_url).hostname == PRODUCTION_GRACEDB_HOST:
            return "INTEGRAL test notice: not uploaded to the production GraceDB"
    return None


def search_of(notice_search: str, ivorn: str) -> str:
    """GraceDB search of a notice: ``MDC`` when its IVORN carries the rehearsal marker."""
    return MDC_SEARCH if MDC_IVORN_MARKER in ivorn else notice_search


def may_replace(existing_search: str, new_search: str) -> bool:
    """Whether a notice replaces the existing event of its trigger (GWCelery): a GRB
    notice replaces any; otherwise only an event of the same search (a sub-threshold
    notice never replaces a GRB)."""
    return new_search == "GRB" or new_search == existing_search


def with_vetoes(notice: ExternalNotice, settings: Settings) -> ExternalNotice:
    """The notice with its :attr:`~ExternalNotice.not_grb_reasons` filled in."""
    return dataclasses.replace(notice, not_grb_reasons=not_grb_reasons(notice, settings))


def gracedb_group_and_search(notice: ExternalNotice, settings: Settings) -> tuple[str, str] | None:
    """GraceDB (group, search) of a notice, or None when test notices are ignored.

    ``settings.exttrig_test_notices`` ``test`` (the default, GWCelery's rule) puts test
    notices in group ``Test`` with their own search."""
    if not notice.is_test:
        return EXTERNAL_GROUP, notice.search
    policy = settings.exttrig_test_notices.strip().lower()
    if policy == "ignore":
        return None
    if policy == "test":
        return TEST_GROUP, notice.search
    if policy == "mdc":
        return EXTERNAL_GROUP, MDC_SEARCH
    raise ValueError(f"exttrig_test_notices must be mdc, test or ignore, not {policy!r}")


#: Other names of a search on GraceDB servers that lack the first one (the local service
#: lists ``Neutrino`` rather than ``HEN``).
SEARCH_ALIASES: dict[str, tuple[str, ...]] = {"HEN": ("Neutrino",)}

def search_name_for_server(known_searches: Iterable[str], search: str) -> str:
    """The name of ``search`` that a GraceDB server listing ``known_searches`` accepts."""
    known = tuple(known_searches or ())
    if not known or search in known:
        return search
    return next((alias for alias in SEARCH_ALIASES.get(search, ()) if alias in known), search)


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


def is_same_trigger(event: dict[str, Any], notice: ExternalNotice) -> bool:
    """Whether a GraceDB external event (of the notice's group and pipeline, near its
    time) is the notice's trigger.

    GraceDB records the ``TrigID`` parameter only; for notices whose id lives elsewhere
    (Fermi subthreshold ``Trans_Num``, IceCube run and event) the id is read from the
    IVORN GraceDB kept, and failing that an event of the same trigger time (within 10 ms)
    is the same one.
    """
    recorded = event_trigger_id(event)
    if recorded is None:
        grb = (event.get("extra_attributes") or {}).get("GRB") or {}
        recorded = trigger_id_from_ivorn(notice.pipeline, notice.search, grb.get("ivorn"))
    if recorded is not None:
        return recorded == notice.trigger_id
    return abs(float(event["gpstime"]) - notice.gpstime) < 0.01


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
