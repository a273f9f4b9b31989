"""An authenticated ``ligo-gracedb`` client for the GraceDB the settings name."""
from __future__ import annotations

import base64

from ligo.gracedb.rest import GraceDb

from gw_ops.config import Settings, get_settings


def is_local_service(settings: Settings) -> bool:
    """Whether the settings point at a gw-ops GraceDB service rather than one of LIGO's
    (``*.ligo.org``, which use SciTokens/X.509)."""
    from urllib.parse import urlparse
    host = urlparse(settings.gracedb_api_url).hostname or ""
    return not (host == "ligo.org" or host.endswith(".ligo.org"))


def gracedb_client(settings: Settings | None = None, **client_kwargs) -> GraceDb:
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
    settings = settings or get_settings()
    if not is_local_service(settings):
        return GraceDb(settings.gracedb_api_url, **client_kwargs)
    from gw_ops.local_gracedb.auth import ensure_service_credentials
    login, password = ensure_service_credentials(settings)
    client = GraceDb(settings.gracedb_api_url, force_noauth=True, **client_kwargs)
    client.headers["Authorization"] = "Basic " + base64.b64encode(
        f"{login}:{password}".encode()).decode()
    return client


def anonymous_client(settings: Settings | None = None, **client_kwargs) -> GraceDb:
    """Read-only client without credentials."""
    settings = settings or get_settings()
    return GraceDb(settings.gracedb_api_url, force_noauth=True, **client_kwargs)
