"""RAVEN's publishing rule: when a coincidence becomes a public alert (``RAVEN_ALERT``).

GWCelery 2.5.0's ``trigger_raven_alert``, written for gw-ops (see
:mod:`gw_ops.rules.raven` for the windows and joint FARs it judges): with ``t`` the
significant trials factor of the GW search, the joint FAR (space-time if the sky maps
gave one, else temporal) x ``t (t - 1)`` must be <= the GW search's significant-alert
threshold; a SNEWS trigger is judged on the GW FAR x ``t`` against
``raven_snews_gw_far_threshold_hz`` (1/day).  Also here: the targeted sub-threshold
search's joint FAR (ligo-raven's formula, GWCelery's thresholds) and the order of the
labels a publication writes.

Units: false alarm rates in Hz, times in s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gw_ops.config import Settings
from gw_ops.rules.thresholds import AlertThreshold
from gw_ops.vocabulary import CATEGORY_NAME, HIGH_PROFILE, NOT_GRB, RAVEN_ALERT, TEST_GROUP

#: Largest FAR (Hz) of a targeted sub-threshold GRB of each instrument (GWCelery's
#: ``raven_targeted_far_thresholds['GRB']``); above it the trigger gets NOT_GRB.
TARGETED_GRB_FAR_THRESHOLD_HZ: dict[str, float] = {"Fermi": 1e-4, "Swift": 1e-3}
#: Search of targeted sub-threshold GRBs (GCN Kafka ``fermi_targeted``/``swift_targeted``).
TARGETED_SEARCH = "SubGRBTargeted"
#: GW searches a SNEWS trigger is paired with (burst superevents only).
SNEWS_GW_SEARCHES = frozenset({"allsky", "mdc"})



def targeted_coincidence_far(window: tuple[float, float], grb_far_hz: float, gw_far_hz: float,
                             grb_threshold_hz: float, gw_threshold_hz: float) -> float | None:
    """Joint temporal FAR (Hz) of a targeted sub-threshold GRB (ligo-raven's method).

    ``z (1 - ln(z / z_max))`` with ``z = width x FAR_grb x FAR_gw`` and ``z_max = width x
    GRB threshold x GW threshold`` (width in s, FARs in Hz); None when a FAR is not
    positive (the logarithm is undefined).
    """
    width = window[1] - window[0]
    z = width * grb_far_hz * gw_far_hz
    z_max = width * grb_threshold_hz * gw_threshold_hz
    if not (z > 0 and z_max > 0):
        return None
    return z * (1 - math.log(z / z_max))




def targeted_far(window: tuple[float, float], ext_event: dict[str, Any], gw_far: float,
                 thresholds: dict[tuple[str, str], AlertThreshold]) -> float | None:
    """:func:`targeted_coincidence_far` of a ``SubGRBTargeted`` external event; None for an
    instrument without a targeted threshold or without FARs."""
    grb_threshold = TARGETED_GRB_FAR_THRESHOLD_HZ.get(ext_event.get("pipeline", ""))
    cbc_allsky = thresholds.get(("cbc", "allsky"))
    gw_threshold = cbc_allsky.less_significant_far_hz if cbc_allsky else None
    grb_far = ext_event.get("far")
    if grb_threshold is None or gw_threshold is None or grb_far is None:
        return None
    return targeted_coincidence_far(window, float(grb_far), gw_far, grb_threshold,
                                    gw_threshold)


@dataclass(frozen=True)
class PublishDecision:
    """Whether a coincidence is published (``RAVEN_ALERT``), with each condition.

    Attributes
    ----------
    far_type : str
        ``joint`` (the coincidence FAR) or ``gw`` (SNEWS: the GW FAR).
    far_with_trials : float or None
        The value compared (Hz): joint FAR x t x (t - 1), or GW FAR x t for SNEWS.
    threshold : float or None
        What it is compared with (Hz); None when the GW search sends no significant alert.
    trials_factor : float
        Significant trials factor ``t`` of the GW search (1 when unlisted).
    passes_far, ext_subthreshold, not_grb, missing_skymap, test_event,
    previous_raven_alert, negative_far : bool
        The conditions; ``publish`` needs the first and none of the others.
    publish : bool
    """

    far_type: str
    far_with_trials: float | None
    threshold: float | None
    trials_factor: float
    passes_far: bool
    ext_subthreshold: bool
    not_grb: bool
    missing_skymap: bool
    test_event: bool
    previous_raven_alert: bool
    negative_far: bool
    publish: bool


def publish_decision(*, gw_kind: str, gw_search: str, gw_far: float, gw_group: str,
                     gw_category: str, ext_event: dict[str, Any], temporal: float | None,
                     spatial: float | None, thresholds: dict[tuple[str, str], AlertThreshold],
                     settings: Settings) -> PublishDecision:
    """GWCelery 2.5.0's RAVEN publishing rule (see the module docstring).

    Parameters
    ----------
    gw_kind, gw_search : str
        ``cbc``/``burst`` and the search of the superevent's preferred event (lowercase).
    gw_far : float
        Superevent FAR (Hz).
    gw_group, gw_category : str
        Preferred event's GraceDB group and the superevent's category (Test events never
        publish).
    ext_event : dict
        External event (``pipeline``, ``search``, ``group``, ``labels`` read now).
    temporal, spatial : float or None
        Joint temporal and space-time FARs (Hz).
    thresholds : dict
        :func:`gw_ops.rules.thresholds.parse_alert_thresholds` of the settings.
    settings : Settings
    """
    threshold = thresholds.get((gw_kind.lower(), gw_search.lower()))
    trials = threshold.significant_trials if threshold else 1.0
    labels = set(ext_event.get("labels") or ())
    if ext_event.get("pipeline") == "SNEWS":
        far_type, limit = "gw", settings.raven_snews_gw_far_threshold_hz
        value = gw_far * trials
        passes = value < limit
        negative, subthreshold, missing_skymap = gw_far < 0, False, False
    else:
        far_type = "joint"
        limit = threshold.significant_far_hz if threshold else None
        subthreshold = ext_event.get("search") == "SubGRB"
        missing_skymap = spatial is None
        far = temporal if missing_skymap else spatial
        value = None if far is None else far * trials * (trials - 1)
        passes = value is not None and limit is not None and value <= limit
        negative = value is not None and value < 0
    test_event = (gw_group == TEST_GROUP or ext_event.get("group") == TEST_GROUP
                  or gw_category == CATEGORY_NAME["test"])
    not_grb, previous = NOT_GRB in labels, RAVEN_ALERT in labels
    publish = (passes and not subthreshold and not not_grb and not missing_skymap
               and not test_event and not previous and not negative)
    return PublishDecision(
        far_type=far_type, far_with_trials=value, threshold=limit, trials_factor=trials,
        passes_far=passes, ext_subthreshold=subthreshold, not_grb=not_grb,
        missing_skymap=missing_skymap, test_event=test_event, previous_raven_alert=previous,
        negative_far=negative, publish=publish)


def raven_alert_labels(superevent_id: str, external_id: str,
                       preferred_event: str | None) -> list[tuple[str, str]]:
    """``(label, object id)`` pairs a published coincidence writes, in GWCelery's order.

    The preferred G event's ``RAVEN_ALERT`` comes last: it is what makes the superevent
    manager raise the candidate, and by then the superevent already says why.
    """
    labels = [(RAVEN_ALERT, superevent_id), (HIGH_PROFILE, superevent_id),
              (RAVEN_ALERT, external_id)]
    if preferred_event:
        labels.append((RAVEN_ALERT, preferred_event))
    return labels


__all__ = ["TARGETED_GRB_FAR_THRESHOLD_HZ", "TARGETED_SEARCH", "SNEWS_GW_SEARCHES",
           "targeted_coincidence_far", "targeted_far", "PublishDecision", "publish_decision",
           "raven_alert_labels"]
