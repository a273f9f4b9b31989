"""LVAlert: GraceDB's change notifications, and the ``@lvalert.handler`` decorator.

Usage
-----
>>> from gw_ops import lvalert
>>> @lvalert.handler("cbc_gstlal", "cbc_pycbc", pool="superevent")
... def handle(message):
...     ...

``message`` is the LVAlert JSON (``uid``, ``alert_type``, ``data``, ``object``) plus
``node``, the node it arrived on.  Delivery is at-least-once: handlers must be
idempotent.
"""
from __future__ import annotations

from typing import Any, Callable

from gw_ops.registry import register


def handler(*nodes: str, **task_kwargs: Any) -> Callable:
    """Register a function as the handler of the given LVAlert nodes.

    Parameters
    ----------
    *nodes : str
        GraceDB node names, e.g. ``"cbc_gstlal"``, ``"superevent"``.
    **task_kwargs
        Airflow settings of the handler's lane: ``pool``, ``queue``, ``priority_weight``,
        ``retries``, ``execution_timeout``, ``sort_key``.
    """
    return register("lvalert", tuple(nodes), task_kwargs)
