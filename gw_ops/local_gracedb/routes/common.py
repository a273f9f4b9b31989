"""What every route module uses: the service of the app, the caller, the thread pool."""
from __future__ import annotations

from typing import Any, Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gw_ops.config import Settings
from gw_ops.local_gracedb.request_body import RequestData, base_of, read_body
from gw_ops.local_gracedb.service import GraceDbService

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "anonymous", "answer", "base_of", "body", "call", "created",
           "page_bounds", "roles", "service", "user"]

#: Page size of listings when the client gives no ``count``.
DEFAULT_PAGE = 100
#: Largest page a listing serves, whatever ``count`` asks: one request stays bounded.
MAX_PAGE = 1000


def page_bounds(start: int, count: int) -> tuple[int, int]:
    """Clamp a listing's ``start`` (>= 0) and ``count`` (1 to :data:`MAX_PAGE`)."""
    return max(start, 0), min(max(count, 1), MAX_PAGE)


def service(request: Request) -> GraceDbService:
    """The app's :class:`GraceDbService`."""
    return request.app.state.service


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def user(request: Request) -> str | None:
    """Login of the caller (``None`` when anonymous)."""
    return request.state.user


def anonymous(request: Request) -> bool:
    """Whether the caller gave no credentials (and so sees public data only)."""
    return request.state.user is None


def roles(request: Request) -> frozenset[str]:
    """Roles of the caller's account (see :mod:`gw_ops.local_gracedb.permissions`)."""
    return request.app.state.authenticator.roles(request.state.user)


async def body(request: Request) -> RequestData:
    """The parsed request body."""
    return await read_body(request, settings_of(request))


async def call(function: Callable, *args: Any) -> Any:
    """Run a blocking service method in the thread pool, so the event loop keeps serving."""
    return await run_in_threadpool(function, *args)


async def answer(function: Callable, *args: Any) -> Any:
    """:func:`call`, its dict or list result rendered into a :class:`JSONResponse` at once.

    FastAPI would otherwise walk the answer with ``jsonable_encoder`` first (about 1 ms
    per superevent listed), although the service's answers are plain JSON already.  An
    answer that is not (a ``TypeError`` while rendering) is left to FastAPI's encoder.
    """
    result = await call(function, *args)
    if isinstance(result, (dict, list)):
        try:
            return JSONResponse(result)
        except TypeError:
            return result
    return result


def created(result: Any, **kwargs: Any) -> JSONResponse:
    """A 201 answer."""
    return JSONResponse(result, status_code=201, **kwargs)
