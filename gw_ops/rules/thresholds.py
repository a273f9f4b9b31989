"""Public-alert thresholds of each search, shared by the superevent manager and RAVEN.

Units: false alarm rates in Hz.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from gw_ops.rules.events import event_kind, event_labels, event_search, require
from gw_ops.vocabulary import INJ


@dataclass(frozen=True)
class AlertThreshold:
    """Public-alert thresholds of one search.

    Attributes
    ----------
    trials_factor : float
        The event's FAR is multiplied by this (number of searches that could have
        produced it) before comparing.
    significant_far_hz : float
        Largest trials-weighted FAR (Hz) of a significant event.
    less_significant_far_hz : float or None
        Largest trials-weighted FAR (Hz) of a less-significant alert; None when the
        search sends no less-significant alerts.
    """

    trials_factor: float
    significant_far_hz: float
    less_significant_far_hz: float | None


def _rate(text: str) -> float:
    """A rate written as a number or a fraction, e.g. ``1/2592000``."""
    return float(Fraction(text.strip()))


@lru_cache(maxsize=8)
def parse_alert_thresholds(entries: tuple[str, ...]) -> dict[tuple[str, str], AlertThreshold]:
    """Read ``settings.superevent_alert_thresholds``.

    Parameters
    ----------
    entries : tuple of str
        ``"<kind>:<search>:<trials factor>:<significant FAR>:<less-significant FAR|off>"``
        with FARs in Hz (fractions allowed).

    Returns
    -------
    dict
        ``{(kind, search): AlertThreshold}`` with kind and search in lowercase.
    """
    table = {}
    for entry in entries:
        parts = entry.split(":")
        if len(parts) != 5:
            raise ValueError(f"superevent_alert_thresholds entry {entry!r} is not "
                             "kind:search:trials:significant_far:less_significant_far")
        kind, search, trials, significant, less_significant = (p.strip() for p in parts)
        try:
            table[kind.lower(), search.lower()] = AlertThreshold(
                trials_factor=float(trials), significant_far_hz=_rate(significant),
                less_significant_far_hz=(None if less_significant.lower() == "off"
                                         else _rate(less_significant)))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"superevent_alert_thresholds entry {entry!r}: {exc}") from None
    return table


def is_publishable(event: Mapping[str, Any]) -> bool:
    """An event may become a public alert: online and not a hardware injection."""
    return not event.get("offline", False) and INJ not in event_labels(event)


def passes_thresholds(event: Mapping[str, Any],
                      thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple[bool, bool]:
    """Whether a publishable event passes its search's (significant, less-significant) threshold.

    Searches without thresholds never pass.
    """
    threshold = thresholds.get((event_kind(event), event_search(event)))
    if threshold is None or not is_publishable(event):
        return False, False
    weighted_far = float(require(event, "far")) * threshold.trials_factor
    significant = weighted_far <= threshold.significant_far_hz
    less_significant = (threshold.less_significant_far_hz is not None
                        and weighted_far <= threshold.less_significant_far_hz)
    return significant, less_significant
