"""VOEvents: ``/events/{id}/voevent/`` and ``/superevents/{id}/voevents/``."""
from __future__ import annotations

from fastapi import APIRouter, Request

from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import answer, base_of, body, call, created, roles, service, user

router = APIRouter(prefix=API.rstrip("/"))


async def _create(request: Request, object_id: str):
    permissions.check_voevent(roles(request))
    data = await body(request)
    return created(await call(service(request).create_voevent, user(request), base_of(request),
                              object_id, data.flat()))


@router.get("/events/{object_id}/voevent/")
async def event_voevents(request: Request, object_id: str):
    return await answer(service(request).voevents, base_of(request), object_id)


@router.get("/events/{object_id}/voevent/{number}")
async def event_voevent(request: Request, object_id: str, number: int):
    return await answer(service(request).voevents, base_of(request), object_id, number)


@router.post("/events/{object_id}/voevent/")
async def event_create_voevent(request: Request, object_id: str):
    return await _create(request, object_id)


@router.get("/superevents/{object_id}/voevents/")
async def superevent_voevents(request: Request, object_id: str):
    return await answer(service(request).voevents, base_of(request), object_id)


@router.get("/superevents/{object_id}/voevents/{number}/")
async def superevent_voevent(request: Request, object_id: str, number: int):
    return await answer(service(request).voevents, base_of(request), object_id, number)


@router.post("/superevents/{object_id}/voevents/")
async def superevent_create_voevent(request: Request, object_id: str):
    return await _create(request, object_id)
