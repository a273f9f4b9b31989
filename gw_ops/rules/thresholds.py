"""Public-alert thresholds of each search, shared by the superevent manager and RAVEN.

The rule is GWCelery 2.5.0's (``should_publish``), written for gw-ops:

* an event is *publishable* when it is online and not a hardware injection (``INJ``);
* it is *significant* when FAR x significant trials factor <= significant threshold;
* it is *less-significant* when FAR x less-significant trials factor <= less-significant
  threshold -- except that an event whose trials-weighted FAR is below the significant
  threshold is judged on the significant pair for both (a significant event is always
  less-significant too, even in searches that send no less-significant alerts);
* ``RAVEN_ALERT`` on the event (a publishable RAVEN coincidence) makes it pass both.

GWCelery writes the less-significant threshold as 2/day x the less-significant trials
factor, so the effective less-significant rule is FAR <= 2/day whatever the factor.

Units: false alarm rates in Hz.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from gw_ops.rules.events import event_kind, event_labels, event_search, require
from gw_ops.vocabulary import INJ, RAVEN_ALERT


@dataclass(frozen=True)
class AlertThreshold:
    """Public-alert thresholds of one search.

    Attributes
    ----------
    significant_trials : float
        The FAR is multiplied by this before the significant comparison.
    significant_far_hz : float or None
        Largest trials-weighted FAR (Hz) of a significant event; None when the search
        sends no significant alerts (GWCelery's ``-inf``).
    less_significant_trials : float
        The FAR is multiplied by this before the less-significant comparison.
    less_significant_far_hz : float or None
        Largest trials-weighted FAR (Hz) of a less-significant alert; None when the
        search sends no less-significant alerts.
    """

    significant_trials: float
    significant_far_hz: float | None
    less_significant_trials: float
    less_significant_far_hz: float | None


def _rate(text: str) -> float | None:
    """A rate written as a number or a fraction (``1/2592000``); ``off`` gives None."""
    text = text.strip()
    if text.lower() == "off":
        return None
    return float(Fraction(text))


@lru_cache(maxsize=8)
def parse_alert_thresholds(entries: tuple[str, ...]) -> dict[tuple[str, str], AlertThreshold]:
    """Read ``settings.superevent_alert_thresholds``.

    Parameters
    ----------
    entries : tuple of str
        ``"<kind>:<search>:<significant trials>:<significant FAR|off>:<less-significant
        trials>:<less-significant FAR|off>"`` with FARs in Hz (fractions allowed).

    Returns
    -------
    dict
        ``{(kind, search): AlertThreshold}`` with kind and search in lowercase.

    Raises
    ------
    ValueError
        An entry that is not six fields, or whose numbers do not parse.
    """
    table = {}
    for entry in entries:
        parts = entry.split(":")
        if len(parts) != 6:
            raise ValueError(
                f"superevent_alert_thresholds entry {entry!r} is not kind:search:"
                "significant_trials:significant_far:less_significant_trials:"
                "less_significant_far")
        kind, search, sig_trials, sig_far, low_trials, low_far = (p.strip() for p in parts)
        try:
            table[kind.lower(), search.lower()] = AlertThreshold(
                significant_trials=float(sig_trials), significant_far_hz=_rate(sig_far),
                less_significant_trials=float(low_trials), less_significant_far_hz=_rate(low_far))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"superevent_alert_thresholds entry {entry!r}: {exc}") from None
    return table


def is_publishable(event: Mapping[str, Any]) -> bool:
    """An event may become a public alert: online and not a hardware injection."""
    return not event.get("offline", False) and INJ not in event_labels(event)


@dataclass(frozen=True)
class ThresholdFlags:
    """The three parts of the public-alert test of one event.

    Attributes
    ----------
    publishable : bool
        Online and not an injection.
    significant, less_significant : bool
        The FAR test passes, or the event carries ``RAVEN_ALERT`` (publishability not
        included: the preferred-event ranking uses them separately).
    """

    publishable: bool
    significant: bool
    less_significant: bool


def threshold_flags(event: Mapping[str, Any],
                    thresholds: Mapping[tuple[str, str], AlertThreshold]) -> ThresholdFlags:
    """Publishability and the two FAR tests of an event (see the module docstring).

    A search without thresholds never passes; neither does a FAR test whose threshold
    is off, unless ``RAVEN_ALERT`` is on the event.
    """
    publishable = is_publishable(event)
    threshold = thresholds.get((event_kind(event), event_search(event)))
    if threshold is None:
        return ThresholdFlags(publishable, False, False)
    raven = RAVEN_ALERT in event_labels(event)
    far = float(require(event, "far"))
    significant_far = far * threshold.significant_trials
    significant_limit = threshold.significant_far_hz
    significant = significant_limit is not None and significant_far <= significant_limit
    if significant_limit is not None and significant_far < significant_limit:
        less_significant = significant
    else:
        low_limit = threshold.less_significant_far_hz
        less_significant = (low_limit is not None
                            and far * threshold.less_significant_trials <= low_limit)
    return ThresholdFlags(publishable, significant or raven, less_significant or raven)


def passes_thresholds(event: Mapping[str, Any],
                      thresholds: Mapping[tuple[str, str], AlertThreshold]) -> tuple[bool, bool]:
    """Whether an event may send a (significant, less-significant) alert.

    GWCelery's ``should_publish(event, True)`` and ``should_publish(event, False)``:
    publishable and (FAR test passed or ``RAVEN_ALERT``).
    """
    flags = threshold_flags(event, thresholds)
    return (flags.publishable and flags.significant,
            flags.publishable and flags.less_significant)
