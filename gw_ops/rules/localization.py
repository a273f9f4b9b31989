"""Localization order: which G events BAYESTAR localizes first (pure).

On this 2-core machine one BAYESTAR run takes 23-90 s, so the order of the ``openmp``
pool decides the alert time: the event that counts (a superevent's preferred event) goes
first.  :mod:`gw_ops.handlers.localization` does the I/O.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _graceid(candidate: Any) -> str:
    if isinstance(candidate, str):
        return candidate
    return candidate.get("graceid") or candidate.get("uid") or ""


def _superevent_of(candidate: Any) -> str | None:
    if isinstance(candidate, str):
        return None
    obj = candidate.get("object") if isinstance(candidate.get("object"), Mapping) else candidate
    return obj.get("superevent")


def localization_order(candidates: Sequence[Any], preferred_by_superevent: Mapping[str, str],
                       *, skip_superseded: bool = False) -> list:
    """Order G events for localization so the ones that count come first.

    Parameters
    ----------
    candidates : sequence
        G events waiting for localization: graceid strings, event dicts (``graceid``,
        ``superevent``) or LVAlert messages (``uid``, ``object.superevent``), in arrival
        order.
    preferred_by_superevent : mapping of str to str
        Current preferred event of each superevent.
    skip_superseded : bool
        Drop events whose superevent prefers another event instead of moving them back.

    Returns
    -------
    list
        The candidates (each graceid once): first the current preferred events, then
        events not (yet) in a superevent, then events that are no longer preferred; the
        arrival order is kept within each group.
    """
    preferred_ids = set(preferred_by_superevent.values())
    groups: tuple[list, list, list] = ([], [], [])
    seen: set[str] = set()
    for candidate in candidates:
        graceid = _graceid(candidate)
        if graceid in seen:
            continue
        seen.add(graceid)
        superevent_id = _superevent_of(candidate)
        if graceid in preferred_ids:
            groups[0].append(candidate)
        elif superevent_id is None or superevent_id not in preferred_by_superevent:
            groups[1].append(candidate)
        elif not skip_superseded:
            groups[2].append(candidate)
    return groups[0] + groups[1] + groups[2]
