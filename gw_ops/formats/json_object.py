"""The one reading of untrusted JSON that must be an object (GCN Kafka notices, their
external events in the local GraceDB): bounded in size, parsed once, a dict or refused."""
from __future__ import annotations

import json
from typing import Any


class JSONRejected(ValueError):
    """The payload is too large, does not parse, or is not a JSON object."""


def parse_json_object(payload: bytes | str, what: str, max_bytes: int | None = None) -> dict[str, Any]:
    """``payload`` parsed as a JSON object.

    Parameters
    ----------
    payload : bytes or str
        The untrusted text.
    what : str
        What the payload is, for the error message (``"GCN JSON notice"``).
    max_bytes : int, optional
        Largest accepted size (bytes); checked before parsing, so the work is bounded.

    Raises
    ------
    JSONRejected
        With a message that names ``what`` and the reason.
    """
    if max_bytes is not None and len(payload) > max_bytes:
        raise JSONRejected(f"{what} of {len(payload)} bytes exceeds {max_bytes}")
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JSONRejected(f"{what} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise JSONRejected(f"{what} is not a JSON object")
    return document
