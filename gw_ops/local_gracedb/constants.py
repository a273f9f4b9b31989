"""Vocabulary of the local GraceDB: groups, pipelines, searches, labels, codes.

The names follow the public GraceDB server (gracedb.ligo.org) so that the
unmodified ``ligo-gracedb`` client, which validates its arguments against the
lists published at the API root, accepts the same values it would send to the
real service.
"""
from __future__ import annotations

from gw_ops import vocabulary

#: Analysis groups.  ``Test`` events get ``T`` ids, ``External`` ones ``E``.
GROUPS = ["CBC", "Burst", "External", "Test", "Detchar"]

#: Pipelines that may submit events.
PIPELINES = [
    "gstlal", "pycbc", "MBTA", "MBTAOnline", "spiir", "aframe", "GWAK",
    "CWB", "cwb", "oLIB", "MLy", "LIB", "X", "Q", "Omega", "Ringdown",
    "Fermi", "Swift", "SNEWS", "INTEGRAL", "AGILE", "CHIME", "IceCube",
    "SVOM", "EinsteinProbe", "GRB", "HardwareInjection",
]

#: Searches.  The ``MDC`` search gets ``M`` event ids.
SEARCHES = [
    "AllSky", "LowMass", "HighMass", "BBH", "IMBH", "EarlyWarning", "SSM",
    "MDC", "GRB", "SubGRB", "SubGRBTargeted", "Supernova", "FRB",
    "FastRadioBurst", "MOU", "Neutrino", "HEN", "LowLatency",
]

#: Labels known to the service (as defined on gracedb.ligo.org).
LABELS = [
    "ADVNO", "ADVOK", "ADVREQ",
    "COMBINEDSKYMAP_READY", "DQOK", "DQR_REQUEST", "DQV",
    "EARLY_WARNING", "EMBRIGHT_READY", "EM_COINC", "EM_READY", "EM_SENT",
    "EM_Selected", "EM_Superseded", "EM_Throttled", "EXT_SKYMAP_READY",
    "GCN_PRELIM_SENT", "GRB_OFFLINE", "HIGH_PASTRO", "HIGH_PROFILE",
    "H1NO", "H1OK", "H1OPS", "L1NO", "L1OK", "L1OPS",
    "V1NO", "V1OK", "V1OPS", "K1NO", "K1OK", "K1OPS",
    "HWINJNO", "HWINJOK", "HWINJREQ", "INJ",
    "LOW_SIGNIF_LOCKED", "LOW_SIGNIF_PRELIM_SENT", "LUMIN_GO", "LUMIN_NO",
    "NOT_GRB", "PASTRO_READY", "PE_READY", "RAVEN_ALERT",
    "SIGNIF_LOCKED", "SKYMAP_READY", "SNR_OPTIMIZED", "SWIFT_GO", "SWIFT_NO",
]

#: Category code the client sends -> gw-ops' category name (:mod:`gw_ops.vocabulary`).
_CATEGORY_OF_CODE = {"P": "production", "T": "test", "M": "mdc"}

#: Superevent categories: code sent by the client -> display name stored.
SUPEREVENT_CATEGORIES = {code: vocabulary.CATEGORY_NAME[c] for code, c in _CATEGORY_OF_CODE.items()}

#: Superevent id prefix per category code.
SUPEREVENT_PREFIX = {code: vocabulary.CATEGORY_PREFIX[c] for code, c in _CATEGORY_OF_CODE.items()}

#: LVAlert node of the superevents of each category code.
SUPEREVENT_NODE = {code: vocabulary.SUPEREVENT_NODE[c] for code, c in _CATEGORY_OF_CODE.items()}

#: VOEvent types: code -> name.
VOEVENT_TYPES = {"PR": "preliminary", "IN": "initial", "UP": "update",
                 "RE": "retraction", "EW": "earlywarning"}

#: GCN packet type of each VOEvent type (LVK notices).
VOEVENT_PACKET_TYPE = {"PR": 150, "IN": 151, "UP": 152, "RE": 164, "EW": 163}

#: Signoff types, statuses and the instruments operators sign off for.
SIGNOFF_TYPES = {"OP": "operator", "ADV": "advocate"}
SIGNOFF_STATUSES = {"OK": "OKAY", "NO": "NOT OKAY"}
INSTRUMENTS = {"H1": "LHO", "L1": "LLO", "V1": "Virgo", "K1": "KAGRA"}

#: EM groups (kept for old clients that read them at the API root).
EM_GROUPS = ["Fermi GBM", "Swift", "ZTF", "GOTO", "DECam", "MASTER"]

#: Version this service reports as ``server-version``.
SERVER_VERSION = "gw-ops-local-1"


def event_id_prefix(group: str, search: str | None) -> str:
    """Letter of an event id: ``M`` for the MDC search, ``T`` for the Test group,
    ``E`` for External, otherwise ``G`` (GraceDB's rule)."""
    if search == "MDC":
        return "M"
    if group == "Test":
        return "T"
    if group == "External":
        return "E"
    return "G"


def suffix_letters(number: int) -> str:
    """Letter suffix of the ``number``-th superevent of a day: 1 -> a, 26 -> z,
    27 -> aa, 28 -> ab, ... (bijective base 26)."""
    if number < 1:
        raise ValueError("superevent numbers start at 1")
    letters = ""
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("a") + remainder) + letters
    return letters
