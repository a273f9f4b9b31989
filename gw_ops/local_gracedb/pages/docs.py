"""``/api/docs``: Swagger UI of the API, served from this machine.

The machines that run gw-ops may reach no CDN, so FastAPI's default docs page (which
loads Swagger UI from one) would stay blank.  The Swagger UI files come from the PyPI
package ``fastapi-offline`` (MIT; it bundles Swagger UI, Apache-2.0), pinned in
requirements.txt; only its ``static/`` folder is used.  The OpenAPI document is at
``/api/openapi.json``.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

from gw_ops.local_gracedb.pages.render import STATIC_DIR

#: URL of the OpenAPI document (FastAPI serves it).
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
#: Where the Swagger UI files are served.
DOCS_STATIC_URL = "/api/docs/static"

router = APIRouter(include_in_schema=False)


def swagger_ui_dir() -> Path:
    """Folder of ``swagger-ui-bundle.js`` and ``swagger-ui.css`` in the installed package."""
    spec = find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the package fastapi-offline (Swagger UI files) is not installed; "
                           "install requirements.txt")
    return Path(spec.origin).parent / "static"


@router.get(DOCS_URL)
async def docs():
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="gw-ops local GraceDB API",
                               swagger_js_url=f"{DOCS_STATIC_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{DOCS_STATIC_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{DOCS_STATIC_URL}/favicon.png")


def mount_static(app: FastAPI) -> None:
    """Serve the pages' stylesheet at ``/static`` and Swagger UI's files under the docs."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="pages-static")
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=swagger_ui_dir()), name="docs-static")
