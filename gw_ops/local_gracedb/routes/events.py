"""``/api/events/``: upload, replace, read and list events."""
from __future__ import annotations

from fastapi import APIRouter, Request

from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb import permissions
from gw_ops.local_gracedb.errors import ApiError, check_label, parse_bool, safe_filename
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

router = APIRouter(prefix=API + "events")


@router.get("/")
async def events(request: Request, query: str | None = None, start: int = 0,
                 count: int = DEFAULT_PAGE, sort: str | None = None):
    return await answer(service(request).list_events, base_of(request), query,
                        *page_bounds(start, count), sort, anonymous(request))


@router.post("/")
async def create_event(request: Request):
    data = await body(request)
    group, pipeline = data.get("group", ""), data.get("pipeline", "")
    search = data.get("search") or None
    if group not in C.GROUPS:
        raise ApiError(400, f"group: \"{group}\" is not a valid choice.")
    if pipeline not in C.PIPELINES:
        raise ApiError(400, f"pipeline: \"{pipeline}\" is not a valid choice.")
    if search is not None and search not in C.SEARCHES:
        raise ApiError(400, f"search: \"{search}\" is not a valid choice.")
    labels = data.getlist("labels")
    for name in labels:
        check_label(name)
    permissions.check_create_event(roles(request), group, labels)
    if "eventFile" not in data.files:
        raise ApiError(400, "eventFile: No file was submitted.")
    filename, content = data.files["eventFile"]
    result = await call(service(request).create_event, user(request), base_of(request), group,
                        pipeline, search, parse_bool(data.get("offline", False)), labels,
                        safe_filename(filename), content)
    return created(result, headers={"Location": result["links"]["self"]})


@router.get("/{graceid}")
async def event(request: Request, graceid: str):
    return await answer(service(request).event, base_of(request), graceid)


@router.put("/{graceid}")
async def replace_event(request: Request, graceid: str):
    permissions.check_replace_event(roles(request))
    data = await body(request)
    if "eventFile" not in data.files:
        raise ApiError(400, "eventFile: No file was submitted.")
    filename, content = data.files["eventFile"]
    return await answer(service(request).replace_event, user(request), base_of(request), graceid,
                        safe_filename(filename), content)
