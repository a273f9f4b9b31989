"""The local GraceDB service: a FastAPI app the unmodified ``ligo-gracedb`` client talks to.

``GET /api/`` (the API root, anonymous; the stack's health check) publishes the
links, URL templates and vocabularies the client builds every request from.
Changes need credentials (see :mod:`gw_ops.local_gracedb.auth`) and, once committed,
are announced as LVAlert messages on Redis streams (see :mod:`gw_ops.local_gracedb.outbox`).

Layout: this module builds the app (middleware, error handlers, the outbox retry)
and :func:`serve` runs it; :mod:`gw_ops.local_gracedb.routes` holds one router per
resource and :mod:`gw_ops.local_gracedb.service` the request handling.  Status codes
are listed in :mod:`gw_ops.local_gracedb.errors`.  :mod:`gw_ops.local_gracedb.pages`
holds the web pages for people (home ``/``, ``/superevents/<id>/view/``, ...) and
``/api/docs``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gw_ops.config import Settings
from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.auth import Authenticator, ensure_service_credentials
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.middleware import RequestGate, error_response
from gw_ops.local_gracedb.pages import docs as page_docs
from gw_ops.local_gracedb.pages import views as page_views
from gw_ops.local_gracedb.pages.render import error_page
from gw_ops.local_gracedb.parsing import EventFileError
from gw_ops.local_gracedb.routes import ROUTERS
from gw_ops.local_gracedb.service import GraceDbService
from gw_ops.local_gracedb.store import Store

log = logging.getLogger(__name__)

#: Pause (s) between retries of LVAlert messages a Redis outage left in the outbox.
OUTBOX_RETRY_S = 1.0


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        if permissions.is_page(request.url.path):
            return error_page(exc.status, exc.detail, request.url.path, page_views.viewer(request))
        return error_response(exc)

    @app.exception_handler(EventFileError)
    async def _event_file_error(_request: Request, exc: EventFileError):
        return JSONResponse({"detail": f"Problem reading the event file: {exc}"}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": reasons}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected_error(_request: Request, exc: Exception):
        log.exception("unexpected error: %s", exc)
        return JSONResponse({"detail": f"Internal server error: {type(exc).__name__}: {exc}"},
                            status_code=500)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The GraceDB FastAPI application for ``settings``.

    Parameters
    ----------
    settings : Settings
        Database URL (``gracedb_sql_url``), files folder (``gracedb_files_path``),
        Redis and key prefix for LVAlert streams, upload limit.
    store : Store, optional
        Storage to use (built from ``settings`` when omitted).
    """
    store = store or Store(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        """Keep retrying LVAlerts that a Redis outage left in the outbox."""
        async def retry_forever():
            while True:
                await asyncio.sleep(OUTBOX_RETRY_S)
                try:
                    await run_in_threadpool(store.drain_outbox)
                except Exception as exc:  # Redis still down: try again next time
                    try:
                        waiting = str((await run_in_threadpool(store.outbox_counts))["pending"])
                    except Exception:  # the database too: the retry itself must go on
                        waiting = "unknown"
                    log.error("LVAlert outbox retry failed (%s message(s) waiting): %s",
                              waiting, exc)
        task = asyncio.get_running_loop().create_task(retry_forever())
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(title="gw-ops local GraceDB", docs_url=None, redoc_url=None,
                  openapi_url=page_docs.OPENAPI_URL, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.service = GraceDbService(settings, store)
    app.state.authenticator = Authenticator(settings)
    _add_error_handlers(app)
    app.add_middleware(RequestGate, settings=settings, authenticator=app.state.authenticator,
                       service=app.state.service)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(page_docs.router)
    app.include_router(page_views.router)
    page_docs.mount_static(app)
    return app


def serve(settings: Settings) -> None:
    """Run the service on ``settings.host:settings.gracedb_port`` until stopped (blocking).

    Creates the pipeline's service account on first start, so that
    ``<state>/netrc`` exists for the clients of the stack.
    """
    import uvicorn
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_service_credentials(settings)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.gracedb_port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=5)
