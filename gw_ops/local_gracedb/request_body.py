"""Request bodies of the local GraceDB: form, multipart or JSON, into one :class:`RequestData`."""
from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from gw_ops.config import Settings
from gw_ops.local_gracedb.errors import ApiError

#: Path of the API root.
API = "/api/"


def base_of(request: Request) -> str:
    """API root URL as the client reached it (links in answers are built from it)."""
    return str(request.base_url).rstrip("/") + API


class RequestData:
    """Fields and files of a request body (form, multipart or JSON)."""

    def __init__(self, fields: dict[str, list[str]], files: dict[str, tuple[str, bytes]]):
        self.fields = fields
        self.files = files

    def get(self, key: str, default: Any = None) -> Any:
        values = self.fields.get(key)
        return values[-1] if values else default

    def getlist(self, key: str) -> list[str]:
        return list(self.fields.get(key, []))

    def flat(self) -> dict[str, Any]:
        return {key: values[-1] for key, values in self.fields.items() if values}


async def read_body(request: Request, settings: Settings) -> RequestData:
    """Parse the request body; oversize uploads give 413, malformed bodies 400."""
    content_type = request.headers.get("content-type", "")
    fields: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if content_type.startswith("application/json"):
        raw = await request.body()
        try:
            document = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"JSON parse error - {exc}") from None
        if not isinstance(document, dict):
            raise ApiError(400, "JSON body must be an object")
        for key, value in document.items():
            values = value if isinstance(value, list) else [value]
            fields[key] = ["" if v is None else str(v) for v in values]
        return RequestData(fields, files)
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        if await request.body():
            raise ApiError(415, f"Unsupported media type \"{content_type}\" in request.")
        return RequestData(fields, files)
    try:
        form = await request.form(max_files=16, max_fields=1000,
                                  max_part_size=settings.gracedb_max_upload_bytes)
    except Exception as exc:  # malformed multipart bodies raise parser-specific errors
        raise ApiError(400, f"Malformed request body: {exc}") from None
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read(settings.gracedb_max_upload_bytes + 1)
                if len(content) > settings.gracedb_max_upload_bytes:
                    raise ApiError(413, f"File {value.filename} is larger than the "
                                        f"{settings.gracedb_max_upload_bytes} bytes allowed")
                files[key] = (value.filename or key, content)
            else:
                fields.setdefault(key, []).append(value)
    finally:
        await form.close()
    return RequestData(fields, files)
