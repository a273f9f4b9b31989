"""Signoffs: ``/superevents/{id}/signoffs/``."""
from __future__ import annotations

from fastapi import APIRouter, Request

from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import answer, base_of, body, call, created, roles, service, user

router = APIRouter(prefix=API + "superevents/{superevent_id}/signoffs")


@router.get("/")
async def signoffs(request: Request, superevent_id: str):
    return await answer(service(request).signoffs, base_of(request), superevent_id)


@router.get("/{typeinst}/")
async def signoff(request: Request, superevent_id: str, typeinst: str):
    return await answer(service(request).signoffs, base_of(request), superevent_id, typeinst)


@router.post("/")
async def create_signoff(request: Request, superevent_id: str):
    permissions.check_signoff(roles(request))
    data = await body(request)
    return created(await call(service(request).create_signoff, user(request), base_of(request),
                              superevent_id, data.flat()))
