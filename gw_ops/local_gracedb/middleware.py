"""The gate every request passes before a route: size limits, credentials, public reads.

One pure ASGI middleware (not ``BaseHTTPMiddleware``, so that it can count the bytes
of a chunked body as they arrive):

1. URL over ``settings.gracedb_max_url_bytes`` -> 414; a NUL byte in the path or
   query -> 400 (PostgreSQL cannot store one, SQLite would store it silently).
2. Credentials (PBKDF2 takes ~50 ms, so it runs in the thread pool): wrong ones
   -> 401, even on reads; a change without credentials -> 401 (but the login form).
   Without an ``Authorization`` header, the login session cookie names the caller on
   web pages and on API reads (see :mod:`gw_ops.local_gracedb.pages.session`).
3. Anonymous reads: only public data (:func:`~gw_ops.local_gracedb.permissions.anonymous_read`);
   anything else -> 404, as if it did not exist.  Web pages get these errors as HTML.
4. Body limit: multipart bodies (file uploads) up to ``gracedb_max_upload_bytes``
   plus 64 kB of form overhead, other bodies up to ``gracedb_max_form_bytes``.  A
   declared ``Content-Length`` over the limit -> 413 before reading; bodies without
   one (chunked) are counted as they stream in and cut off with 413 at the limit.
"""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gw_ops.config import Settings
from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.auth import Authenticator, AuthError
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.pages.render import error_page
from gw_ops.local_gracedb.pages.session import session_user

#: Room for multipart boundaries and form fields around an uploaded file (bytes).
MULTIPART_OVERHEAD = 65536


def error_response(exc: ApiError) -> JSONResponse:
    """``{"detail": ...}`` with the error's status (and the Basic challenge on 401)."""
    headers = {"WWW-Authenticate": 'Basic realm="gw-ops GraceDB"'} if exc.status == 401 else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


def body_limit(settings: Settings, content_type: str) -> int:
    """Largest body (bytes) accepted with this content type."""
    if content_type.startswith("multipart/form-data"):
        return settings.gracedb_max_upload_bytes + MULTIPART_OVERHEAD
    return settings.gracedb_max_form_bytes


class RequestGate:
    """ASGI middleware applying the checks listed in the module docstring."""

    def __init__(self, app, settings: Settings, authenticator: Authenticator, service: Any):
        self.app = app
        self.settings = settings
        self.authenticator = authenticator
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            user = await self._admit(scope)
        except ApiError as exc:
            if permissions.is_page(scope["path"]):
                response = error_page(exc.status, exc.detail, scope["path"])
            else:
                response = error_response(exc)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        headers = dict(scope.get("headers") or [])
        limit = body_limit(self.settings, headers.get(b"content-type", b"").decode("latin-1"))
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(413, f"Request body larger than the {limit} bytes allowed")
            return message
        await self.app(scope, counted_receive, send)

    async def _admit(self, scope) -> str | None:
        """The caller's login (``None``: anonymous) or an :class:`ApiError`."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        if len(raw_path) + len(query) + 1 > self.settings.gracedb_max_url_bytes:
            raise ApiError(414, f"Request URL longer than the {self.settings.gracedb_max_url_bytes} "
                                "bytes allowed")
        if "\x00" in scope["path"] or b"%00" in raw_path.lower() or b"%00" in query.lower():
            raise ApiError(400, "NUL characters are not allowed in URLs")
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            user = await run_in_threadpool(self.authenticator.authenticate, authorization)
        except AuthError as exc:
            raise ApiError(401, str(exc)) from None
        method = scope["method"]
        path = scope["path"]
        if user is None and authorization is None and (
                method in ("GET", "HEAD") or permissions.is_page(path)):
            # cookies ride along with requests other sites make: API changes never take
            # them, page forms check a signed token of their own
            user = session_user(self.authenticator, headers.get(b"cookie", b"").decode("latin-1"))
        if method not in ("GET", "HEAD", "OPTIONS") and user is None \
                and not permissions.anonymous_post(path):
            raise ApiError(401, "Authentication credentials were not provided.")
        if user is None and method in ("GET", "HEAD"):
            await self._check_public(path)
        length = headers.get(b"content-length", b"")
        limit = body_limit(self.settings, headers.get(b"content-type", b"").decode("latin-1"))
        if length.isdigit() and int(length) > limit:
            raise ApiError(413, f"Request body larger than the {limit} bytes allowed")
        return user

    async def _check_public(self, path: str) -> None:
        readable = permissions.anonymous_read(path)
        if readable is None or (readable and not await run_in_threadpool(
                self.service.readable_anonymously, readable)):
            raise ApiError(404, "Not found.")
