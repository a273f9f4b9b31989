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

from gw_ops.transport.registry import register


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


#: Keys every LVAlert message must carry.
REQUIRED_KEYS = ("uid", "alert_type")


def node_of_stream(stream: str) -> str:
    """LVAlert node name of a stream key (``<prefix>lvalert:<node>``)."""
    return stream.rsplit("lvalert:", 1)[-1]


def decode_message(payload: bytes | str, node: str) -> dict[str, Any]:
    """Parse one LVAlert message and add the ``node`` it arrived on.

    Raises
    ------
    gw_ops.errors.PermanentError
        When the payload is not JSON, not an object, or lacks ``uid``/``alert_type``.
    """
    from gw_ops.errors import PermanentError
    from gw_ops.formats.json_object import JSONRejected, parse_json_object

    try:
        message = parse_json_object(payload, f"LVAlert message on {node}")
    except JSONRejected as exc:
        raise PermanentError(str(exc)) from None
    missing = [key for key in REQUIRED_KEYS if key not in message]
    if missing:
        raise PermanentError(f"LVAlert message on {node} lacks {', '.join(missing)}")
    message["node"] = node
    return message


def message_matches(message: dict[str, Any], match: dict[str, str]) -> bool:
    """Whether an LVAlert message meets ``match`` (keys ``uid``, ``alert_type``, ``label``).

    ``label`` is the name of the label a ``label_added`` message carries in ``data``.
    """
    if "uid" in match and message.get("uid") != match["uid"]:
        return False
    if "alert_type" in match and message.get("alert_type") != match["alert_type"]:
        return False
    if "label" in match:
        data = message.get("data") or {}
        if message.get("alert_type") != "label_added" or data.get("name") != match["label"]:
            return False
    return True
