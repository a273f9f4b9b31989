"""Files of events and superevents: listings and downloads (``name`` or ``name,version``)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from gw_ops.local_gracedb.request_body import API
from gw_ops.local_gracedb.routes.common import anonymous, answer, base_of, service

router = APIRouter(prefix=API.rstrip("/"))


@router.get("/events/{object_id}/files/")
async def event_files(request: Request, object_id: str):
    return await answer(service(request).files, base_of(request), object_id, anonymous(request))


@router.get("/events/{object_id}/files/{filename}")
async def event_file(request: Request, object_id: str, filename: str):
    return await answer(service(request).file_response, object_id, filename, anonymous(request))


@router.get("/superevents/{object_id}/files/")
async def superevent_files(request: Request, object_id: str):
    return await answer(service(request).files, base_of(request), object_id, anonymous(request))


@router.get("/superevents/{object_id}/files/{filename}")
async def superevent_file(request: Request, object_id: str, filename: str):
    return await answer(service(request).file_response, object_id, filename, anonymous(request))
