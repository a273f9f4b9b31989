"""Error classes and the rule that decides whether retrying can help.

Handlers raise :class:`PermanentError` (or a subclass, e.g. an invalid notice) for input
that will never succeed: the lane dead-letters it at once.  Anything that looks like a
passing outage (a dropped connection, a timeout, an HTTP 5xx from GraceDB, Redis
unavailable) is *transient*: the lane retries it for as long as the outage lasts, never
dead-letters it, and raises an alarm.  Every other exception is a bug: the lane's task
fails and the message stays pending (see :func:`gw_ops.transport.streams.drain`).
"""
from __future__ import annotations


class PermanentError(Exception):
    """Input that will never be handled successfully (malformed, unknown, out of range)."""


class TransientError(Exception):
    """A failure that retrying later can fix (a service is down or overloaded)."""


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return int(status) if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc``'s operation later can help.

    True for :class:`TransientError`, connection and timeout errors (``OSError``,
    ``requests`` connection errors, ``redis`` connection errors) and HTTP responses with a
    5xx status (or 429); False otherwise.
    """
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, (TransientError, TimeoutError, ConnectionError)):
        return True
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    try:
        import requests
        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        import redis
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
