"""``/api/superevents/``: create, update, members, read, list, confirm as GW."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import (
    DEFAULT_PAGE,
    anonymous,
    answer,
    base_of,
    body,
    call,
    created,
    page_bounds,
    roles,
    service,
    user,
)

router = APIRouter(prefix=API + "superevents")


@router.get("/")
async def superevents(request: Request, query: str | None = None, start: int = 0,
                      count: int = DEFAULT_PAGE, sort: str | None = None):
    return await answer(service(request).list_superevents, base_of(request), query,
                        *page_bounds(start, count), sort, anonymous(request))


@router.post("/")
async def create_superevent(request: Request):
    permissions.check_superevent_change(roles(request))
    data = await body(request)
    return created(await call(service(request).create_superevent, user(request), base_of(request),
                              data.flat(), data.getlist("events"), data.getlist("labels")))


@router.get("/{superevent_id}/")
async def superevent(request: Request, superevent_id: str):
    return await answer(service(request).superevent, base_of(request), superevent_id)


@router.patch("/{superevent_id}/")
async def update_superevent(request: Request, superevent_id: str):
    permissions.check_superevent_change(roles(request))
    data = await body(request)
    return await answer(service(request).update_superevent, user(request), base_of(request),
                        superevent_id, data.flat())


@router.get("/{superevent_id}/events/")
async def superevent_events(request: Request, superevent_id: str):
    return await answer(service(request).superevent_events, base_of(request), superevent_id)


@router.post("/{superevent_id}/events/")
async def add_event(request: Request, superevent_id: str):
    permissions.check_superevent_change(roles(request))
    data = await body(request)
    return created(await call(service(request).add_event, user(request), base_of(request),
                              superevent_id, data.get("event", "")))


@router.delete("/{superevent_id}/events/{graceid}/")
async def remove_event(request: Request, superevent_id: str, graceid: str):
    permissions.check_superevent_change(roles(request))
    await call(service(request).remove_event, user(request), base_of(request), superevent_id,
               graceid)
    return Response(status_code=204)


@router.post("/{superevent_id}/confirm-as-gw/")
async def confirm_as_gw(request: Request, superevent_id: str):
    permissions.check_superevent_change(roles(request))
    data = await body(request)
    return await answer(service(request).confirm_as_gw, user(request), base_of(request),
                        superevent_id, data.get("gw_id") or None)


@router.get("/{superevent_id}/permissions/")
async def superevent_permissions(request: Request, superevent_id: str):
    return await answer(service(request).permissions, base_of(request), superevent_id)


@router.post("/{superevent_id}/permissions/modify/")
async def modify_permissions(request: Request, superevent_id: str):
    permissions.check_superevent_change(roles(request))
    data = await body(request)
    return created(await call(service(request).modify_permissions, user(request),
                              base_of(request), superevent_id, data.get("action", "")))
