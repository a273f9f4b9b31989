"""The GraceDB gateway: authenticated clients and every GraceDB access of the handlers.

The module keeps its name (not ``gateway.py``): the name says what it wraps, and the test
fixtures, benchmarks, mock uploads and the local service's docs import
:func:`gracedb_client` from here.

Clients are the unmodified ``ligo-gracedb`` :class:`~ligo.gracedb.rest.GraceDb`.  The
helpers below take such a client (or, in tests, anything with the same methods) and give
each GraceDB access one meaning:

=====================  ================================================================
:func:`read_json`      body of a response (a dict or list passes through)
:func:`labels`         label names of an object, as a set (string or dict entries)
:func:`logs`           log entries (dicts) of an object
:func:`log_comments`   their comments
:func:`file_names`     current file names (``name,N`` versions folded into ``name``)
:func:`read_file`      bytes of a file (``missing_ok``: None for a 404)
:func:`ensure_label`   add a label unless present; already present is success
:func:`write`          one write that may take effect on the server: tried once
=====================  ================================================================

Retry policy (one, for every helper)
------------------------------------
Retried: HTTP 408, 409, 429, 500, 502, 503, 504 (GWCelery's list) and connection errors
and timeouts.  :data:`RETRY` tries 5 times, waiting 0.5, 1, 2 and 4 s between tries
(doubling, capped at 8 s): about 7.5 s of waiting, short next to a lane's own retry and
long enough for a restarting service.  Reads and idempotent writes (:func:`ensure_label`)
are retried here.  A write that may have taken effect although its answer was lost
(create, add to a superevent, update, log upload) is tried once: the lane redelivers the
message and the handler, idempotent, checks GraceDB's state before writing again.

When retrying cannot help any more, the error leaves as *transient*
(:func:`gw_ops.errors.is_transient` true; a :class:`~gw_ops.errors.TransientError` for
codes that are not transient by themselves, 408 and 409), so the lane retries the message
later instead of dead-lettering it.  Other errors (400, 403, 404 ...) are raised as they
are.  The pipeline's clients (:func:`pipeline_client`) are built with the client's own
urllib3 retries off, so this is the only policy on the handler path.
"""
from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from gw_ops.config import Settings, get_settings
from gw_ops.errors import TransientError, is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses after which the same request may succeed later (GWCelery's list).
RETRY_STATUSES: frozenset[int] = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff.

    Attributes
    ----------
    tries : int
        Attempts in all (1 = no retry).
    first_wait_s : float
        Wait before the second attempt (s).
    factor : float
        Each wait is this times the previous one.
    max_wait_s : float
        Cap of one wait (s).
    """

    tries: int = 5
    first_wait_s: float = 0.5
    factor: float = 2.0
    max_wait_s: float = 8.0

    def waits(self) -> list[float]:
        """The waits (s) between the tries, in order."""
        return [min(self.first_wait_s * self.factor ** n, self.max_wait_s)
                for n in range(self.tries - 1)]


#: The policy of every GraceDB access of the pipeline: waits 0.5, 1, 2, 4 s.
RETRY = RetryPolicy()
#: A write that may have taken effect: one try (see the module docstring).
ONCE = RetryPolicy(tries=1)


def http_status(exc: BaseException) -> int | None:
    """HTTP status of a failed GraceDB request, or None for other errors."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status", None)
    return int(status) if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Whether repeating the request may succeed: a status of :data:`RETRY_STATUSES`, a
    connection error or a timeout."""
    status = http_status(exc)
    if status is not None:
        return status in RETRY_STATUSES
    import requests  # light; installed with ligo-gracedb

    return isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError,
                            TimeoutError))


def call(operation: Callable[..., T], *args: Any, policy: RetryPolicy | None = None,
         sleep: Callable[[float], None] = time.sleep, what: str | None = None,
         **kwargs: Any) -> T:
    """``operation(*args, **kwargs)`` under a retry policy (``what`` names it in logs).

    ``policy`` defaults to :data:`RETRY`, read at each call (not at import), so a test of a
    long outage may shorten the ladder of the module for its duration.

    Raises
    ------
    Exception
        The last error when it is transient (:func:`gw_ops.errors.is_transient`), else a
        :class:`~gw_ops.errors.TransientError` from it when it was retryable (408, 409),
        else the first non-retryable error as it is.
    """
    policy = policy or RETRY
    waits = policy.waits()
    what = what or getattr(operation, "__name__", "request")
    for attempt in range(policy.tries):
        try:
            return operation(*args, **kwargs)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if attempt < len(waits):
                log.warning("GraceDB %s failed (%s); retrying in %.1f s", what, exc,
                            waits[attempt])
                sleep(waits[attempt])
                continue
            if is_transient(exc):
                raise
            raise TransientError(f"GraceDB {what}: {exc}") from exc
    raise AssertionError("unreachable: a policy has at least one try")  # pragma: no cover


def write(operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A write that may take effect although its answer is lost: tried once; a retryable
    failure leaves as transient so the lane redelivers the message."""
    return call(operation, *args, policy=ONCE, **kwargs)


# --- reads ------------------------------------------------------------------------------

def read_json(response: Any) -> Any:
    """Body of a GraceDB response (a ``requests`` response; a dict or list passes through)."""
    return response if isinstance(response, (Mapping, list)) else response.json()


def get(client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """JSON body of ``client.<method>(*args, **kwargs)``, retried (e.g. ``event``,
    ``superevent``)."""
    return call(lambda: read_json(getattr(client, method)(*args, **kwargs)), what=method)


def event(client: Any, graceid: str) -> dict[str, Any]:
    """The event's JSON."""
    return get(client, "event", graceid)


def superevent(client: Any, superevent_id: str) -> dict[str, Any]:
    """The superevent's JSON."""
    return get(client, "superevent", superevent_id)


def search(client: Any, method: str, query: str) -> list[dict[str, Any]]:
    """Every result of ``client.events(query)`` or ``client.superevents(query=...)``
    (the client pages through them), retried as a whole."""
    if method == "superevents":
        return call(lambda: list(client.superevents(query=query)), what=method)
    return call(lambda: list(getattr(client, method)(query)), what=method)


def label_names(entries: Iterable[Any]) -> set[str]:
    """Names of labels listed as strings or as dicts with a ``name``."""
    return {entry["name"] if isinstance(entry, Mapping) else str(entry) for entry in entries}


def labels(client: Any, object_id: str) -> set[str]:
    """Label names of an event or superevent."""
    body = get(client, "labels", object_id)
    return label_names(body.get("labels", []) if isinstance(body, Mapping) else body)


def logs(client: Any, object_id: str) -> list[dict[str, Any]]:
    """Log entries of an event or superevent, oldest first."""
    body = get(client, "logs", object_id)
    return list(body.get("log", []) if isinstance(body, Mapping) else body)


def log_comments(client: Any, object_id: str) -> list[str]:
    """Comments of an object's log entries, oldest first."""
    return [entry.get("comment", "") for entry in logs(client, object_id)]


def file_names(client: Any, object_id: str) -> set[str]:
    """Names of an object's files (versions ``name,N`` folded into ``name``)."""
    return {name.split(",")[0] for name in get(client, "files", object_id)}


def read_file(client: Any, object_id: str, filename: str, *,
              missing_ok: bool = False) -> bytes | None:
    """Contents of a file (its newest version unless ``filename`` names one).

    Returns None when ``missing_ok`` and GraceDB answers 404.
    """
    def download() -> bytes:
        response = client.files(object_id, filename)
        return response.read() if hasattr(response, "read") else response.content
    try:
        return call(download, what=f"files {filename}")
    except Exception as exc:
        if missing_ok and http_status(exc) == 404:
            return None
        raise


# --- idempotent writes ------------------------------------------------------------------

def ensure_label(client: Any, object_id: str, label: str) -> bool:
    """Add a label unless present.  True when it was added now.

    Already present (also when a concurrent writer added it between the check and the
    write, and GraceDB refuses the duplicate) is success.  Transient errors are retried
    and then raised as transient; other errors raise.
    """
    if label in labels(client, object_id):
        return False
    try:
        call(client.write_label, object_id, label)
    except Exception as exc:
        if http_status(exc) is not None and not is_retryable(exc) \
                and label in labels(client, object_id):
            return False
        raise
    return True


# --- clients ----------------------------------------------------------------------------

def is_local_service(settings: Settings) -> bool:
    """Whether the settings point at a gw-ops GraceDB service rather than one of LIGO's
    (``*.ligo.org``, which use SciTokens/X.509)."""
    from urllib.parse import urlparse
    host = urlparse(settings.gracedb_api_url).hostname or ""
    return not (host == "ligo.org" or host.endswith(".ligo.org"))


def gracedb_client(settings: Settings | None = None, **client_kwargs) -> Any:
    """Client for ``settings.gracedb_api_url`` that can write.

    For the local service the client carries HTTP Basic credentials of the
    pipeline's service account (created on first use, see
    :func:`gw_ops.local_gracedb.auth.ensure_service_credentials`).  It is built with
    ``force_noauth=True`` so the client does not go looking for SciTokens or
    X.509 certificates meant for the real GraceDB, and the ``Authorization``
    header is set on the session, so no process-wide ``NETRC`` variable is needed.
    For playground/production the client's own discovery (SciToken, then X.509)
    is used unchanged.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`gw_ops.config.get_settings`.
    **client_kwargs
        Passed to :class:`ligo.gracedb.rest.GraceDb` (e.g. ``retries``).
    """
    from ligo.gracedb.rest import GraceDb  # heavy; not at import (DAG processor)

    settings = settings or get_settings()
    if not is_local_service(settings):
        return _with_default_timeout(GraceDb(settings.gracedb_api_url, **client_kwargs), settings)
    from gw_ops.local_gracedb.auth import ensure_service_credentials
    login, password = ensure_service_credentials(settings)
    client = _with_default_timeout(GraceDb(settings.gracedb_api_url, force_noauth=True, **client_kwargs),
                                   settings)
    # no proxies or netrc from the environment for the local service: looking them up
    # cost each request about 1.5 ms of the client's CPU (requests' merge_environment_settings)
    client.trust_env = False
    client.headers["Authorization"] = "Basic " + base64.b64encode(
        f"{login}:{password}".encode()).decode()
    return client


def _with_default_timeout(client: Any, settings: Settings) -> Any:
    """``client`` with every transport adapter wrapped so that a request without a timeout
    gets ``(gracedb_connect_timeout_s, gracedb_read_timeout_s)``.

    ligo-gracedb passes no timeout, so a GraceDB that accepts the connection but never
    answers (hung, or paused) would hold the calling lane for ever, with no retry and no
    alarm.  The client's own adapters (its retries, its credential reloading) still do
    the sending: the wrapper only fills in the timeout.
    """
    timeout = (settings.gracedb_connect_timeout_s, settings.gracedb_read_timeout_s)
    for prefix, adapter in list(client.adapters.items()):
        client.mount(prefix, _DefaultTimeoutAdapter(adapter, timeout))
    return client


class _DefaultTimeoutAdapter:
    """A requests transport adapter that delegates to ``inner`` and supplies ``timeout``
    (connect s, read s) when the request came without one."""

    def __init__(self, inner: Any, timeout: tuple[float, float]):
        self.inner, self.timeout = inner, timeout

    def send(self, request: Any, timeout: Any = None, **kwargs: Any) -> Any:
        return self.inner.send(request, timeout=self.timeout if timeout is None else timeout, **kwargs)

    def close(self) -> None:
        self.inner.close()


@lru_cache(maxsize=4)
def pipeline_client(settings: Settings) -> Any:
    """The handlers' client of these settings, kept between the messages of one worker
    process (its HTTP connection and the API root it reads once are reused).  The
    client's own retries are off: :data:`RETRY` is the one policy."""
    return gracedb_client(settings, retries=0)


def anonymous_client(settings: Settings | None = None, **client_kwargs) -> Any:
    """Read-only client without credentials."""
    from ligo.gracedb.rest import GraceDb

    settings = settings or get_settings()
    return GraceDb(settings.gracedb_api_url, force_noauth=True, **client_kwargs)
