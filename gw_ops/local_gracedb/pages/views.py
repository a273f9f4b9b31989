"""Web pages of the local GraceDB for people: home, superevent, event, login, signoff.

=======================================  ======================================================
``GET /``                                newest superevents (``?start=`` pages) and external
                                         events
``GET /superevents/{id}/view/``          the ``EventPage`` of every VOEvent: labels, log with
                                         images inline, files, VOEvents, signoffs, and the
                                         signoff form for advocates
``POST /superevents/{id}/view/signoff/`` an advocate's ADV OK/NO signoff with a comment
``GET /events/{graceid}/view/``          an event (logged-in readers only)
``GET|POST /login/``, ``POST /logout/``  the session cookie
=======================================  ======================================================

Who sees what is the API's rule (:mod:`gw_ops.local_gracedb.permissions`); forms that
change something carry a signed token (:mod:`gw_ops.local_gracedb.pages.session`).
"""
from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.pages import session
from gw_ops.local_gracedb.pages.data import PageData
from gw_ops.local_gracedb.pages.render import LOGIN_CHALLENGE, error_page, path_quote, render
from gw_ops.local_gracedb.routes.common import base_of, body, call, roles, service, user

router = APIRouter(include_in_schema=False)

#: Where a login may send the browser back to: a path of this site, nothing else
#: (``//host`` and ``/\\host`` would leave it).
_LOCAL_PATH = re.compile(r"^/(?:[A-Za-z0-9._~!$&'()*+,;=:@%-][A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$")
#: Longest ``next`` path kept (characters).
MAX_NEXT_CHARS = 512
#: Longest signoff comment accepted (characters).
MAX_COMMENT_CHARS = 4000
#: Signoff choices of the form: label -> signoff status.
SIGNOFF_CHOICES = {"ADVOK": "OK", "ADVNO": "NO"}


def pages(request: Request) -> PageData:
    return PageData(service(request))


def viewer(request: Request) -> dict[str, Any] | None:
    """Who is looking (``None``: anonymous), with the token of the logout form."""
    name = user(request)
    if name is None:
        return None
    held = roles(request)
    return {"name": name, "roles": sorted(held), "is_advocate": permissions.ADVOCATE in held,
            "logout_token": session.form_token(request.app.state.authenticator, name, "logout")}


def safe_next(value: str | None) -> str:
    """A local path to return to after logging in (``/`` when ``value`` is not one)."""
    if value and len(value) <= MAX_NEXT_CHARS and _LOCAL_PATH.match(value):
        return value
    return "/"


def superevent_page_path(superevent_id: str) -> str:
    return f"/superevents/{path_quote(superevent_id)}/view/"


# --- home, superevent, event ---------------------------------------------------------------

@router.get("/")
async def home(request: Request, start: int = 0):
    context = await call(pages(request).home, base_of(request), max(start, 0), user(request) is None)
    return render("home.html", {**context, "viewer": viewer(request)})


async def _superevent_page(request: Request, superevent_id: str, status: int = 200,
                           form_error: str = "", comment: str = "") -> Response:
    looking = viewer(request)
    context = await call(pages(request).superevent, base_of(request), superevent_id, looking is None)
    sid = context["superevent"]["superevent_id"]
    signed = any(s["signoff_type"] == "ADV" for s in context["signoffs"])
    signoff_token = (session.form_token(request.app.state.authenticator, looking["name"],
                                        f"signoff:{sid}")
                     if looking and looking["is_advocate"] and not signed else None)
    return render("superevent.html", {**context, "viewer": looking, "signoff_token": signoff_token,
                                      "signoff_choices": list(SIGNOFF_CHOICES),
                                      "form_error": form_error, "comment": comment},
                  status=status)


@router.get("/superevents/{superevent_id}/view/")
async def superevent_page(request: Request, superevent_id: str):
    return await _superevent_page(request, superevent_id)


@router.post("/superevents/{superevent_id}/view/signoff/")
async def superevent_signoff(request: Request, superevent_id: str):
    """An advocate's signoff from the page's form: ADVOK or ADVNO with a comment."""
    name = user(request)  # the gate let no anonymous change through
    permissions.check_signoff(roles(request))
    data = await body(request)
    authenticator = request.app.state.authenticator
    # the token names the superevent as the page showed it; the canonical id is checked below
    context = await call(pages(request).superevent, base_of(request), superevent_id, False)
    sid = context["superevent"]["superevent_id"]
    if not session.check_form_token(authenticator, data.get("token", ""), name, f"signoff:{sid}"):
        raise ApiError(403, "The signoff form expired or did not come from this site; "
                            "reload the page and sign off again.")
    choice, comment = data.get("decision", ""), data.get("comment", "")
    if choice not in SIGNOFF_CHOICES:
        return await _superevent_page(request, sid, 400, "Choose ADVOK or ADVNO.", comment)
    if len(comment) > MAX_COMMENT_CHARS:
        return await _superevent_page(request, sid, 400, f"The comment is longer than "
                                      f"{MAX_COMMENT_CHARS} characters.", comment[:MAX_COMMENT_CHARS])
    try:
        await call(service(request).create_signoff, name, base_of(request), sid,
                   {"signoff_type": "ADV", "status": SIGNOFF_CHOICES[choice], "comment": comment})
    except ApiError as exc:
        if exc.status != 400:
            raise
        return await _superevent_page(request, sid, 400, exc.detail, comment)
    return RedirectResponse(superevent_page_path(sid), status_code=303)


@router.get("/events/{graceid}/view/")
async def event_page(request: Request, graceid: str):
    context = await call(pages(request).event, base_of(request), graceid)
    return render("event.html", {**context, "viewer": viewer(request)})


# --- login and logout ----------------------------------------------------------------------

def _login_form(next_path: str, status: int = 200, error: str = "", username: str = "") -> Response:
    nonce = session.new_login_nonce()
    response = render("login.html", {"next": next_path, "nonce": nonce, "error": error,
                                     "username": username}, status=status,
                      headers=LOGIN_CHALLENGE if status == 401 else None)
    response.set_cookie(session.LOGIN_NONCE_COOKIE, nonce, max_age=session.FORM_TOKEN_LIFETIME_S,
                        httponly=True, samesite="strict", path="/login/")
    return response


@router.get("/login/")
async def login_form(request: Request, next: str | None = None):  # noqa: A002 (the query name)
    return _login_form(safe_next(next))


@router.post("/login/")
async def login(request: Request):
    data = await body(request)
    next_path = safe_next(data.get("next"))
    if not session.login_nonce_matches(request.headers.get("cookie", ""), data.get("nonce", "")):
        return _login_form(next_path, 400, "The login form expired or did not come from this "
                                           "site; please log in again.")
    name, password = data.get("username", ""), data.get("password", "")
    authenticator = request.app.state.authenticator
    if not name or not await call(authenticator.check_password, name, password):
        return _login_form(next_path, 401, "Invalid username or password.", name)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(session.SESSION_COOKIE, session.issue_session(authenticator, name),
                        max_age=session.SESSION_LIFETIME_S, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https")
    response.delete_cookie(session.LOGIN_NONCE_COOKIE, path="/login/")
    return response


@router.post("/logout/")
async def logout(request: Request):
    name = user(request)
    data = await body(request)
    if not session.check_form_token(request.app.state.authenticator, data.get("token", ""), name,
                                    "logout"):
        return error_page(403, "The logout form expired or did not come from this site.", "/",
                          viewer(request))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(session.SESSION_COOKIE, path="/")
    return response
