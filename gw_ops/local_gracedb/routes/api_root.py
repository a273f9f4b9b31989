"""``/api/``: the API root document, ``user-info/`` and ``token/``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import base_of, created, user

router = APIRouter(prefix=API.rstrip("/"))


def api_root(base: str) -> dict[str, Any]:
    """The API root document: links, URL templates and vocabularies."""
    e = f"{base}events/{{graceid}}"
    s = f"{base}superevents/{{superevent_id}}/"
    templates = {
        "event-detail-template": e,
        "event-log-template": f"{e}/log/",
        "event-log-detail-template": f"{e}/log/{{N}}",
        "event-label-template": f"{e}/labels/{{label}}",
        "files-template": f"{e}/files/{{filename}}",
        "taglist-template": f"{e}/log/{{N}}/tag/",
        "tag-template": f"{e}/log/{{N}}/tag/{{tag_name}}",
        "voevent-list-template": f"{e}/voevent/",
        "voevent-detail-template": f"{e}/voevent/{{N}}",
        "emobservation-list-template": f"{e}/emobservation/",
        "emobservation-detail-template": f"{e}/emobservation/{{N}}",
        "superevent-detail-template": s,
        "superevent-event-list-template": f"{s}events/",
        "superevent-event-detail-template": f"{s}events/{{graceid}}/",
        "superevent-label-list-template": f"{s}labels/",
        "superevent-label-detail-template": f"{s}labels/{{label_name}}/",
        "superevent-log-list-template": f"{s}logs/",
        "superevent-log-detail-template": f"{s}logs/{{N}}/",
        "superevent-log-tag-list-template": f"{s}logs/{{N}}/tags/",
        "superevent-log-tag-detail-template": f"{s}logs/{{N}}/tags/{{tag_name}}/",
        "superevent-file-list-template": f"{s}files/",
        "superevent-file-detail-template": f"{s}files/{{file_name}}",
        "superevent-voevent-list-template": f"{s}voevents/",
        "superevent-voevent-detail-template": f"{s}voevents/{{N}}/",
        "superevent-signoff-list-template": f"{s}signoffs/",
        "superevent-signoff-detail-template": f"{s}signoffs/{{typeinst}}/",
        "superevent-confirm-as-gw-template": f"{s}confirm-as-gw/",
        "superevent-permission-list-template": f"{s}permissions/",
        "superevent-permission-modify-template": f"{s}permissions/modify/",
        "superevent-emobservation-list-template": f"{s}emobservations/",
        "superevent-emobservation-detail-template": f"{s}emobservations/{{N}}/",
    }
    return {
        "links": {"events": f"{base}events/", "self": base, "superevents": f"{base}superevents/",
                  "user-info": f"{base}user-info/", "token": f"{base}token/"},
        "templates": templates,
        "groups": C.GROUPS, "pipelines": C.PIPELINES, "searches": C.SEARCHES,
        "labels": C.LABELS, "em-groups": C.EM_GROUPS,
        "voevent-types": C.VOEVENT_TYPES, "superevent-categories": C.SUPEREVENT_CATEGORIES,
        "instruments": C.INSTRUMENTS, "signoff-types": C.SIGNOFF_TYPES,
        "signoff-statuses": C.SIGNOFF_STATUSES,
        "api-versions": ["v1"], "API_VERSIONS": ["v1"], "server-version": C.SERVER_VERSION,
    }


@router.get("/")
async def root(request: Request):
    return api_root(base_of(request))


@router.get("/user-info/")
async def user_info(request: Request):
    return {"username": user(request) or "AnonymousUser"}


@router.post("/token/")
async def token(request: Request):
    return created(request.app.state.authenticator.issue_token(user(request)))
