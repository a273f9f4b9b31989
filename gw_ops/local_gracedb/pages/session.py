"""Who is looking at a web page: the login session cookie and the tokens of page forms.

* Logging in (``POST /login/``) sets :data:`SESSION_COOKIE`, a token signed with the
  service's key (:meth:`~gw_ops.local_gracedb.auth.Authenticator.sign`) naming the
  account, valid :data:`SESSION_LIFETIME_S`; ``HttpOnly``, ``SameSite=Lax``.
* The request gate accepts it on every page and on API *reads*, never on API changes:
  a browser sends cookies with requests other sites make, so a change made with a
  cookie must prove it came from our own page.  Page forms do that with a hidden
  :func:`form_token`, signed for the logged-in account and the form's purpose.
* The login form itself has no account yet: it carries a random nonce that must equal
  the one in the :data:`LOGIN_NONCE_COOKIE` cookie set with the form (double submit).
"""
from __future__ import annotations

import hmac
import secrets
from http.cookies import CookieError, SimpleCookie

from gw_ops.local_gracedb.auth import Authenticator

#: Cookie of a logged-in browser.
SESSION_COOKIE = "gracedb_session"
#: Cookie holding the nonce of the login form shown to this browser.
LOGIN_NONCE_COOKIE = "gracedb_login_nonce"
#: How long a login lasts (s).
SESSION_LIFETIME_S = 12 * 3600
#: How long a form stays valid after the page was shown (s).
FORM_TOKEN_LIFETIME_S = 3600
SESSION_AUDIENCE = "gw-ops-gracedb-session"
FORM_AUDIENCE = "gw-ops-gracedb-form"
#: Longest cookie header read (bytes); browsers send at most a few kB.
MAX_COOKIE_HEADER = 8192


def cookie_value(cookie_header: str, name: str) -> str | None:
    """Value of cookie ``name`` in a ``Cookie`` header (``None`` when absent or unreadable)."""
    if not cookie_header or len(cookie_header) > MAX_COOKIE_HEADER:
        return None
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def issue_session(authenticator: Authenticator, user: str) -> str:
    """Value of the session cookie of ``user``."""
    return authenticator.sign({"sub": user}, SESSION_AUDIENCE, SESSION_LIFETIME_S)


def session_user(authenticator: Authenticator, cookie_header: str) -> str | None:
    """Account of a valid session cookie in ``cookie_header``; ``None`` otherwise (a stale
    or forged cookie makes the browser anonymous rather than locked out)."""
    token = cookie_value(cookie_header, SESSION_COOKIE)
    claims = authenticator.verify(token, SESSION_AUDIENCE) if token else None
    return str(claims["sub"]) if claims else None


def form_token(authenticator: Authenticator, user: str, purpose: str) -> str:
    """Hidden field of a form that ``user`` may submit for ``purpose`` (e.g. ``signoff:S1``)."""
    return authenticator.sign({"sub": user, "purpose": purpose}, FORM_AUDIENCE,
                              FORM_TOKEN_LIFETIME_S)


def check_form_token(authenticator: Authenticator, token: str, user: str, purpose: str) -> bool:
    """Whether ``token`` is a form token of ``user`` for ``purpose`` that has not expired."""
    claims = authenticator.verify(token, FORM_AUDIENCE) if token else None
    return bool(claims) and claims.get("sub") == user and claims.get("purpose") == purpose


def new_login_nonce() -> str:
    """Random nonce of one login form (sent as a cookie and as a hidden field)."""
    return secrets.token_urlsafe(24)


def login_nonce_matches(cookie_header: str, submitted: str) -> bool:
    """Whether the submitted nonce is the one of this browser's login cookie."""
    expected = cookie_value(cookie_header, LOGIN_NONCE_COOKIE)
    return bool(expected and submitted) and hmac.compare_digest(expected, submitted)
