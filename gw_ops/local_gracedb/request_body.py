"""Request bodies of the local GraceDB: form, multipart or JSON, into one :class:`RequestData`.

Bounded work: the body's size is capped by :mod:`gw_ops.local_gracedb.middleware`;
JSON nesting is checked in one linear pass before parsing (at most
:data:`MAX_JSON_DEPTH`) and parsed in the thread pool; text fields are capped at
``settings.gracedb_max_form_bytes`` and may not hold NUL characters.
"""
from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from gw_ops.config import Settings
from gw_ops.local_gracedb.errors import ApiError

#: Path of the API root.
API = "/api/"
#: Deepest JSON nesting accepted (GraceDB's bodies are flat: an object of values or lists).
MAX_JSON_DEPTH = 32
#: JSON strings and brackets; the two string alternatives never overlap, so matching is linear.
_JSON_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


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


def json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a JSON text, in one pass; stops counting past ``limit``."""
    depth = deepest = 0
    for match in _JSON_STRUCTURE.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_json_object(raw: bytes) -> dict:
    """The JSON object of a body; 400 for bad JSON, deep nesting or another type."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"JSON parse error - nesting deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"JSON parse error - {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "JSON body must be an object")
    return document


def _check_field(key: str, value: str) -> str:
    if "\x00" in key or "\x00" in value:
        raise ApiError(400, f"{key!r}: NUL characters are not allowed")
    return value


async def read_body(request: Request, settings: Settings) -> RequestData:
    """Parse the request body; oversize uploads give 413, malformed bodies 400."""
    content_type = request.headers.get("content-type", "")
    fields: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if content_type.startswith("application/json"):
        document = await run_in_threadpool(parse_json_object, await request.body())
        for key, value in document.items():
            values = value if isinstance(value, list) else [value]
            fields[key] = [_check_field(key, "" if v is None else str(v)) for v in values]
        return RequestData(fields, files)
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        if await request.body():
            raise ApiError(415, f"Unsupported media type \"{content_type}\" in request.")
        return RequestData(fields, files)
    try:
        form = await request.form(max_files=16, max_fields=1000,
                                  max_part_size=settings.gracedb_max_form_bytes)
    except ApiError:
        raise
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
                fields.setdefault(key, []).append(_check_field(key, value))
    finally:
        await form.close()
    return RequestData(fields, files)
