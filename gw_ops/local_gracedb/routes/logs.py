"""Log messages and their tags: ``/events/{id}/log/`` and ``/superevents/{id}/logs/``.

Event URLs have no trailing slash on details and say ``log``/``tag``; superevent
URLs end in ``/`` and say ``logs``/``tags`` (as GraceDB's API root templates do).
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.errors import check_label, safe_filename
from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import (
    anonymous,
    answer,
    base_of,
    body,
    call,
    created,
    roles,
    service,
    user,
)

router = APIRouter(prefix=API.rstrip("/"))


async def _write_log(request: Request, object_id: str, is_event: bool):
    data = await body(request)
    upload = data.files.get("upload")
    if upload:
        upload = (safe_filename(upload[0]), upload[1])
    label = data.get("label") or None
    if label:
        check_label(label)
        permissions.check_label_change(roles(request), label)
    tags = [t for t in data.getlist("tagname") if t]
    permissions.check_log(roles(request), is_event, bool(upload or tags))
    result = await call(service(request).write_log, user(request), base_of(request), object_id,
                        data.get("comment", ""), tags, data.getlist("displayName"), label, upload)
    return created(result)


# --- reading: one function per endpoint, both spellings --------------------------------------

# GraceDB spells the same log endpoints two ways: ``events/<id>/log/<n>/tag/`` and
# ``superevents/<id>/logs/<n>/tags/``; one function serves both spellings.
@router.get("/events/{object_id}/log/")
@router.get("/superevents/{object_id}/logs/")
async def logs(request: Request, object_id: str):
    return await answer(service(request).logs, base_of(request), object_id, None, anonymous(request))


@router.get("/events/{object_id}/log/{number}")
@router.get("/superevents/{object_id}/logs/{number}/")
async def log_entry(request: Request, object_id: str, number: int):
    return await answer(service(request).logs, base_of(request), object_id, number,
                        anonymous(request))


# --- events: writing --------------------------------------------------------------------------

@router.post("/events/{object_id}/log/")
async def event_write_log(request: Request, object_id: str):
    return await _write_log(request, object_id, is_event=True)


@router.get("/events/{object_id}/log/{number}/tag/")
@router.get("/superevents/{object_id}/logs/{number}/tags/")
async def log_tags(request: Request, object_id: str, number: int):
    return await answer(service(request).tags, base_of(request), object_id, number)


@router.put("/events/{object_id}/log/{number}/tag/{tag_name}")
async def event_add_tag(request: Request, object_id: str, number: int, tag_name: str):
    permissions.check_log(roles(request), True, True)
    data = await body(request)
    return created(await call(service(request).add_tag, user(request), base_of(request),
                              object_id, number, tag_name, data.get("displayName")))


@router.delete("/events/{object_id}/log/{number}/tag/{tag_name}")
async def event_remove_tag(request: Request, object_id: str, number: int, tag_name: str):
    permissions.check_log(roles(request), True, True)
    await call(service(request).remove_tag, user(request), base_of(request), object_id, number,
               tag_name)
    return Response(status_code=204)


# --- superevents: writing ------------------------------------------------------------------------


@router.post("/superevents/{object_id}/logs/")
async def superevent_write_log(request: Request, object_id: str):
    return await _write_log(request, object_id, is_event=False)


@router.post("/superevents/{object_id}/logs/{number}/tags/")
async def superevent_add_tag(request: Request, object_id: str, number: int):
    permissions.check_log(roles(request), False, True)
    data = await body(request)
    return created(await call(service(request).add_tag, user(request), base_of(request),
                              object_id, number, data.get("name", ""), data.get("displayName")))


@router.delete("/superevents/{object_id}/logs/{number}/tags/{tag_name}/")
async def superevent_remove_tag(request: Request, object_id: str, number: int, tag_name: str):
    permissions.check_log(roles(request), False, True)
    await call(service(request).remove_tag, user(request), base_of(request), object_id, number,
               tag_name)
    return Response(status_code=204)
