"""The error answer of the local GraceDB and the input checks every resource shares.

Status codes follow GraceDB: 400 with a JSON reason for bad input, 401 for
missing/wrong credentials, 403 for an account without the needed role, 404 for
unknown objects or files, 413 for bodies over the limits, 414 for over-long URLs.
Error bodies are ``{"detail": "..."}``.
"""
from __future__ import annotations

import math
from typing import Any

from gw_ops.local_gracedb import constants as C

#: Times accepted for events and superevents (GPS s): from the GPS epoch (1980-01-06) to
#: 1e11 s (year 5148).  The upper bound is where every time conversion of the pipeline
#: still works with margin (Python's datetime ends at year 9999, GPS ~2.5e11 s); the
#: test suite's synthetic events reach 1.1e10 s.  An end_time of 1e15 made the
#: superevent lane fail on every try.
GPS_MIN_S = 0.0
GPS_MAX_S = 1e11


class ApiError(Exception):
    """An error answer: HTTP ``status`` with ``{"detail": detail}``."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def parse_float(form: dict, key: str, required: bool = True) -> float | None:
    """Number in form field ``key``; 400 when missing (if ``required``) or not a number."""
    value = form.get(key)
    if value in (None, ""):
        if required:
            raise ApiError(400, f"{key}: This field is required.")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{key}: A valid number is required.") from None
    if not math.isfinite(number):
        raise ApiError(400, f"{key}: A finite number is required.")
    return number


def check_gps(key: str, value: float | None) -> float | None:
    """``value`` if it is a GPS time within [:data:`GPS_MIN_S`, :data:`GPS_MAX_S`]; 400 otherwise."""
    if value is not None and not (math.isfinite(value) and GPS_MIN_S <= value <= GPS_MAX_S):
        raise ApiError(400, f"{key}: {value} is not a GPS time between {GPS_MIN_S:.0f} and "
                            f"{GPS_MAX_S:.0f} s")
    return value


def check_rate(key: str, value: float | None) -> float | None:
    """``value`` if it is a finite, non-negative rate (Hz) or absent; 400 otherwise."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ApiError(400, f"{key}: {value} is not a finite, non-negative rate")
    return value


def parse_bool(value: Any) -> bool:
    """Form truth value (``1``, ``true``, ``yes``, ``on``)."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def check_label(name: str) -> None:
    """Raise a 400 like GraceDB's for a label name it does not know."""
    if name not in C.LABELS:
        raise ApiError(400, f"Label '{name}' does not exist in the database")


def category_code(value: str) -> str:
    """Superevent category code (P, T, M) from a code or display name."""
    for code, name in C.SUPEREVENT_CATEGORIES.items():
        if value.lower() in (code.lower(), name.lower()):
            return code
    raise ApiError(400, f"category: \"{value}\" is not a valid choice.")


#: Longest file name stored (bytes of UTF-8; what most file systems allow).
MAX_FILENAME_BYTES = 255


def safe_filename(name: str) -> str:
    """Keep the base name; refuse names that could escape the object's folder, control
    characters (NUL among them) and names over :data:`MAX_FILENAME_BYTES`."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not name or name in (".", "..") or "," in name or name.startswith(".") \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ApiError(400, f"Invalid file name {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        raise ApiError(400, f"File name longer than {MAX_FILENAME_BYTES} bytes")
    return name
