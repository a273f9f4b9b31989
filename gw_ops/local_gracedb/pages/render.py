"""Rendering of the web pages: one Jinja2 environment with autoescape, and the headers
every page carries.

Every value a template prints is escaped (``autoescape=True``: names, comments and file
names come from uploads and people).  Pages load nothing from other sites (the machines
that run gw-ops may have no internet), run no script, and may not be framed; the
Content-Security-Policy below says so to the browser too.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi.responses import HTMLResponse

from gw_ops.vocabulary import YEAR_S

#: Templates of the pages (packaged with gw_ops, see setup.cfg).
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: The pages' stylesheet and other static files, served at ``/static/``.
STATIC_DIR = TEMPLATES_DIR / "static"

#: Headers of every page: no foreign content, no scripts, no framing, no caching of
#: pages that may show non-public data.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: Challenge of a 401 page: the login form, not the browser's Basic prompt (the API
#: keeps its Basic challenge; a page answered with it would pop up a dialog).
LOGIN_CHALLENGE = {"WWW-Authenticate": 'Form realm="gw-ops GraceDB", login="/login/"'}


def format_far(far: float | None) -> str:
    """A false-alarm rate (Hz) as people read it: ``1.2e-10 Hz (1 per 264 yr)``."""
    if far is None:
        return "—"
    if far <= 0 or not math.isfinite(far):
        return f"{far:.3g} Hz"
    per_year = far * YEAR_S
    if per_year >= 1:
        return f"{far:.3g} Hz ({per_year:.3g} per yr)"
    return f"{far:.3g} Hz (1 per {1 / per_year:.3g} yr)"


def format_number(value: Any, digits: int = 6) -> str:
    """A number with ``digits`` significant digits; ``—`` when missing."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e15 else f"{value:.{digits}e}"
    return str(value)


def path_quote(value: str) -> str:
    """``value`` as one URL path segment (ids come from the database, but quote anyway)."""
    return quote(str(value), safe="")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(far=format_far, num=format_number, q=path_quote)
    return env


ENVIRONMENT = _environment()


def render(name: str, context: dict[str, Any], status: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """The page ``name`` rendered with ``context`` (every template gets ``viewer``)."""
    context.setdefault("viewer", None)
    html = ENVIRONMENT.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def error_page(status: int, detail: str, path: str, viewer: Any = None) -> HTMLResponse:
    """An error as a page, with a login link back to ``path`` for anonymous readers."""
    extra = LOGIN_CHALLENGE if status == 401 else None
    return render("error.html", {"status": status, "detail": detail, "next": path,
                                 "viewer": viewer}, status=status, headers=extra)
