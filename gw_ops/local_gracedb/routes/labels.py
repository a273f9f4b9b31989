"""Labels: ``PUT/DELETE /events/{id}/labels/{name}``, ``POST /superevents/{id}/labels/``
and ``DELETE /superevents/{id}/labels/{name}/``."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import answer, base_of, body, call, created, roles, service, user

router = APIRouter(prefix=API.rstrip("/"))


@router.get("/events/{object_id}/labels/")
async def event_labels(request: Request, object_id: str):
    return await answer(service(request).labels, base_of(request), object_id)


@router.get("/events/{object_id}/labels/{label}")
async def event_label(request: Request, object_id: str, label: str):
    return await answer(service(request).labels, base_of(request), object_id, label)


@router.put("/events/{object_id}/labels/{label}")
async def event_write_label(request: Request, object_id: str, label: str):
    permissions.check_label_change(roles(request), label)
    return created(await call(service(request).write_label, user(request), base_of(request),
                              object_id, label))


@router.delete("/events/{object_id}/labels/{label}")
async def event_remove_label(request: Request, object_id: str, label: str):
    permissions.check_label_change(roles(request), label)
    await call(service(request).remove_label, user(request), base_of(request), object_id, label)
    return Response(status_code=204)


@router.get("/superevents/{superevent_id}/labels/")
async def superevent_labels(request: Request, superevent_id: str):
    return await answer(service(request).labels, base_of(request), superevent_id)


@router.get("/superevents/{superevent_id}/labels/{label}/")
async def superevent_label(request: Request, superevent_id: str, label: str):
    return await answer(service(request).labels, base_of(request), superevent_id, label)


@router.post("/superevents/{superevent_id}/labels/")
async def superevent_write_label(request: Request, superevent_id: str):
    data = await body(request)
    permissions.check_label_change(roles(request), data.get("name", ""))
    return created(await call(service(request).write_label, user(request), base_of(request),
                              superevent_id, data.get("name", "")))


@router.delete("/superevents/{superevent_id}/labels/{label}/")
async def superevent_remove_label(request: Request, superevent_id: str, label: str):
    permissions.check_label_change(roles(request), label)
    await call(service(request).remove_label, user(request), base_of(request), superevent_id,
               label)
    return Response(status_code=204)
