"""Who may do what in the local GraceDB: roles as GraceDB has them.

=================  ==========================================================================
caller             may
=================  ==========================================================================
anonymous          read public data only: the API root, superevents a robot exposed
                   (``modify_permissions(sid, 'expose')``) with their labels, VOEvents,
                   member list, and the log messages and files tagged ``public``; the
                   web pages of those superevents, the home page (exposed superevents
                   only), the login page and the API docs.
                   Everything else answers 404, as if it did not exist.
any account        read everything; write log comments (no file, no tags, no label).
``pipeline``       upload and replace events (with labels other than ADVOK/ADVNO); log
                   messages with files and tags on events.
``robot``          what GWCelery's account does: superevents (create, update, members,
                   confirm as GW, expose/hide), labels (add and remove, all but
                   ADVOK/ADVNO), log messages with files and tags, VOEvents, and the
                   External events it makes from GCN notices.
``advocate``       signoffs (ADV and OP) and the ADVOK/ADVNO labels (the superevent page
                   shows them a signoff form).
=================  ==========================================================================

Web pages accept the session cookie of the login page as well as the API's credentials;
the JSON API accepts that cookie for reads only, so that no other site can make a
logged-in browser change anything through the API (page forms carry a signed token).

A role missing answers 403 with the role needed.  The service account holds
``pipeline``, ``robot`` and ``advocate`` (see :data:`gw_ops.local_gracedb.auth.SERVICE_ROLES`).
"""
from __future__ import annotations

import re

from gw_ops.local_gracedb.errors import ApiError

PIPELINE, ROBOT, ADVOCATE = "pipeline", "robot", "advocate"
#: Labels only advocates apply or remove (a signoff applies them too).
ADVOCATE_LABELS = frozenset({"ADVOK", "ADVNO"})
#: Tag that makes a log message (and its file) of an exposed superevent public.
PUBLIC_TAG = "public"

_PUBLIC_ROOT = re.compile(r"^/api/(user-info/)?$")
_PUBLIC_SUPEREVENT_LIST = re.compile(r"^/api/superevents/$")
#: Sub-resources of an exposed superevent an anonymous caller may read.
_PUBLIC_SUPEREVENT_PART = re.compile(
    r"^/api/superevents/(?P<sid>[^/]+)/(?:|labels/(?:[^/]+/)?|voevents/(?:\d+/)?|events/|"
    r"logs/(?:\d+/)?|files/(?:[^/]+)?)$")
_EVENT_LIST = re.compile(r"^/api/events/$")
#: Web pages anyone may open: the home page (it lists exposed superevents only to
#: anonymous readers), the login page, the API docs and the static files they use.
_PUBLIC_PAGE = re.compile(r"^/(?:|login/|static/[\w.\-]+|api/docs|api/docs/static/[\w.\-]+|"
                          r"api/openapi\.json)$")
#: The page of a superevent: public once the superevent is exposed.
_SUPEREVENT_PAGE = re.compile(r"^/superevents/(?P<sid>[^/]+)/view/$")
#: Changes anonymous callers may send: the login form (it checks its own token).
_ANONYMOUS_POSTS = frozenset({"/login/"})


def anonymous_read(path: str) -> str | None:
    """How an anonymous ``GET`` of ``path`` is answered.

    Returns
    -------
    str or None
        ``""`` when it may be read as is (the API root, the lists, which filter
        themselves), a superevent id when it may be read if that superevent is
        exposed, ``None`` when it is not public.
    """
    if (_PUBLIC_ROOT.match(path) or _PUBLIC_SUPEREVENT_LIST.match(path) or _EVENT_LIST.match(path)
            or _PUBLIC_PAGE.match(path)):
        return ""
    match = _PUBLIC_SUPEREVENT_PART.match(path) or _SUPEREVENT_PAGE.match(path)
    return match.group("sid") if match else None


def anonymous_post(path: str) -> bool:
    """Whether an anonymous ``POST`` of ``path`` may reach its route (the login form only)."""
    return path in _ANONYMOUS_POSTS


def is_page(path: str) -> bool:
    """Whether ``path`` is a web page for people (HTML answers) rather than the JSON API."""
    return not path.startswith("/api/")


def require(roles: frozenset[str], *allowed: str, action: str) -> None:
    """403 unless ``roles`` holds one of ``allowed``."""
    if not roles & set(allowed):
        raise ApiError(403, f"You do not have permission to {action} "
                            f"(needs the {' or '.join(allowed)} role).")


def check_create_event(roles: frozenset[str], group: str, labels: list[str]) -> None:
    """Pipelines upload events; the robot uploads External ones (from GCN notices)."""
    if group == "External" and ROBOT in roles:
        pass
    else:
        require(roles, PIPELINE, action=f"upload {group} events")
    for name in labels:
        if name in ADVOCATE_LABELS:
            check_label_change(roles, name)


def check_replace_event(roles: frozenset[str]) -> None:
    require(roles, PIPELINE, ROBOT, action="replace events")


def check_label_change(roles: frozenset[str], name: str) -> None:
    """ADVOK/ADVNO: advocates; every other label: the robot."""
    if name in ADVOCATE_LABELS:
        require(roles, ADVOCATE, action=f"apply or remove {name}")
    else:
        require(roles, ROBOT, action="apply or remove labels")


def check_log(roles: frozenset[str], is_event: bool, with_file_or_tags: bool) -> None:
    """Comments: any account.  Files and tags: the robot, or a pipeline on events."""
    if with_file_or_tags:
        if is_event:
            require(roles, ROBOT, PIPELINE, action="attach files or tags to event logs")
        else:
            require(roles, ROBOT, action="attach files or tags to superevent logs")


def check_superevent_change(roles: frozenset[str]) -> None:
    require(roles, ROBOT, action="create or change superevents")


def check_voevent(roles: frozenset[str]) -> None:
    require(roles, ROBOT, action="write VOEvents")


def check_signoff(roles: frozenset[str]) -> None:
    require(roles, ADVOCATE, action="sign off")
