"""The words gw-ops shares with GraceDB: labels, LVAlert nodes, categories, id prefixes.

One place for the names that the superevent manager, the orchestrator, RAVEN, the
external-trigger handler, the sensors and the local GraceDB all use, so that they can
never disagree.  Declarations only (plus two lookups of a superevent id); no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping

# --- labels (as defined on gracedb.ligo.org) -------------------------------------------

#: Event label: the BAYESTAR (or burst) sky map is uploaded.
SKYMAP_READY = "SKYMAP_READY"
#: Event label: ``p_astro.json`` is uploaded.
PASTRO_READY = "PASTRO_READY"
#: Event label: ``em_bright.json`` is uploaded.
EMBRIGHT_READY = "EMBRIGHT_READY"
#: Superevent label: the preferred event has all data products needed for annotations.
EM_READY = "EM_READY"
#: Superevent label: a significant candidate awaits an advocate.
ADVREQ = "ADVREQ"
#: Superevent label: the advocate vetted the candidate as viable (Initial alert).
ADVOK = "ADVOK"
#: Superevent label: the advocate vetted the candidate as not viable (Retraction).
ADVNO = "ADVNO"
#: Superevent label: data-quality veto; blocks every alert except a Retraction.
DQV = "DQV"
#: Superevent label: significant and complete; the preferred event is frozen.
SIGNIF_LOCKED = "SIGNIF_LOCKED"
#: Superevent label: passes the less-significant threshold and complete; frozen.
LOW_SIGNIF_LOCKED = "LOW_SIGNIF_LOCKED"
#: Superevent label: a significant, complete early-warning event.  It comes with
#: LOW_SIGNIF_LOCKED (GWCelery 2.5), which freezes the preferred event; a later
#: significant full-bandwidth event still takes over through its own SIGNIF_LOCKED (the
#: orchestrator re-selects the preferred event, ignoring the lock).
EARLY_WARNING = "EARLY_WARNING"
#: Superevent label: a Preliminary alert went out.
GCN_PRELIM_SENT = "GCN_PRELIM_SENT"
#: Event label of hardware injections.
INJ = "INJ"
#: Superevent and external-event label: RAVEN found a coincidence.
EM_COINC = "EM_COINC"
#: Label of a publishable RAVEN coincidence (superevent, preferred and external event).
RAVEN_ALERT = "RAVEN_ALERT"
#: Superevent label of a candidate of special interest (RAVEN adds it with RAVEN_ALERT).
HIGH_PROFILE = "HIGH_PROFILE"
#: External-event label: the trigger is vetoed as not a GRB.
NOT_GRB = "NOT_GRB"
#: External-event label: a sky map made from the notice's position is uploaded.
EXT_SKYMAP_READY = "EXT_SKYMAP_READY"

# --- pipelines and LVAlert nodes --------------------------------------------------------

#: Pipelines whose events are compact-binary coalescence (CBC) candidates, lowercase as in
#: GraceDB's node names.  GraceDB knows MBTA under its current name and its O3 name.
CBC_PIPELINES: tuple[str, ...] = ("gstlal", "pycbc", "spiir", "mbta", "mbtaonline")
#: Pipelines whose events are unmodelled burst candidates (MLy: GWCelery 2.5's node
#: ``burst_mly``).
BURST_PIPELINES: tuple[str, ...] = ("cwb", "olib", "mly")

#: Nodes of CBC G events: GraceDB publishes an event on ``<group>_<pipeline>``
#: (lowercase).  MDC-search events belong to the CBC group, so they arrive on the
#: production nodes; the ``Test`` group has nodes of its own.
CBC_EVENT_NODES: tuple[str, ...] = (*(f"cbc_{p}" for p in CBC_PIPELINES),
                                    *(f"test_{p}" for p in CBC_PIPELINES))
#: Nodes of every G event a search pipeline uploads (CBC and burst, all groups).
G_EVENT_NODES: tuple[str, ...] = (
    *(f"cbc_{p}" for p in CBC_PIPELINES),
    *(f"burst_{p}" for p in BURST_PIPELINES),
    *(f"test_{p}" for p in CBC_PIPELINES + BURST_PIPELINES),
)

# --- superevent categories ------------------------------------------------------------

#: Superevent categories in gw-ops' lowercase spelling (settings, rules).
CATEGORIES: tuple[str, ...] = ("production", "mdc", "test")
#: GraceDB's spelling of each category (superevent ``category`` field, queries).
CATEGORY_NAME: Mapping[str, str] = {"production": "Production", "mdc": "MDC", "test": "Test"}
#: Superevent-id prefix of each category (GraceDB assigns the ids).
CATEGORY_PREFIX: Mapping[str, str] = {"production": "S", "mdc": "MS", "test": "TS"}
#: LVAlert node of the superevents of each category.
SUPEREVENT_NODE: Mapping[str, str] = {"production": "superevent", "mdc": "mdc_superevent",
                                      "test": "test_superevent"}
#: Every superevent node.
SUPEREVENT_NODES: tuple[str, ...] = tuple(SUPEREVENT_NODE.values())

# --- GraceDB groups and searches shared by several modules ------------------------------

#: Group of external (non-GW) triggers.
EXTERNAL_GROUP = "External"
#: Group of test uploads (``T`` event ids, ``TS`` superevents).
TEST_GROUP = "Test"
#: Search of mock data challenge uploads (``M`` event ids, ``MS`` superevents).
MDC_SEARCH = "MDC"

#: Seconds per year used to turn per-year rates into Hz: 365 days, as GWCelery's
#: ``raven_ext_rates`` and ligo-raven count a year.
YEAR_S = 365 * 86400


def category_of_superevent_id(superevent_id: str) -> str:
    """Category of a superevent *id*: ``mdc`` for ``MS...``, ``test`` for ``TS...``, else
    ``production``.  (:func:`gw_ops.rules.superevents.superevent_category` reads a
    superevent *dict* instead.)"""
    for category in ("mdc", "test"):
        if superevent_id.startswith(CATEGORY_PREFIX[category]):
            return category
    return "production"


def superevent_node(superevent_id: str) -> str:
    """LVAlert node of a superevent id (``S...``, ``MS...``, ``TS...``).

    Raises
    ------
    ValueError
        The id is not a superevent id (e.g. a G event's).
    """
    if not superevent_id.startswith(tuple(CATEGORY_PREFIX.values())):
        raise ValueError(f"{superevent_id!r} is not a superevent id (S..., MS..., TS...)")
    return SUPEREVENT_NODE[category_of_superevent_id(superevent_id)]

# --- GraceDB file names of the alert path ---------------------------------------------

#: BAYESTAR multi-order sky map of a G event, copied to the superevent for its alerts.
SKYMAP_FILENAME = "bayestar.multiorder.fits"
#: Source classification (p_astro) of a CBC event.
PASTRO_FILENAME = "p_astro.json"
#: Source properties (em_bright) of a CBC event.
EMBRIGHT_FILENAME = "em_bright.json"
#: Files of the preferred event copied to the superevent before a Preliminary alert.
PRODUCT_FILENAMES: tuple[str, ...] = (SKYMAP_FILENAME, PASTRO_FILENAME, EMBRIGHT_FILENAME)
#: Images of the preferred event: the sky map and the two classification charts.
SKYMAP_IMAGE_FILENAME = "bayestar.png"
PASTRO_IMAGE_FILENAME = "p_astro.png"
EMBRIGHT_IMAGE_FILENAME = "em_bright.png"
#: Images copied to the superevent once its Preliminary alert is out.
IMAGE_FILENAMES: tuple[str, ...] = (SKYMAP_IMAGE_FILENAME, PASTRO_IMAGE_FILENAME,
                                    EMBRIGHT_IMAGE_FILENAME)
