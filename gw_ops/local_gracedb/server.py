"""The local GraceDB service: a FastAPI app the unmodified ``ligo-gracedb`` client talks to.

``GET /api/`` (the API root, anonymous; the stack's health check) publishes the
links, URL templates and vocabularies the client builds every request from.
Changes need credentials (see :mod:`gw_ops.local_gracedb.auth`) and, once committed,
are announced as LVAlert messages on Redis streams (see :mod:`gw_ops.local_gracedb.outbox`).

Status codes follow GraceDB: 201 for created objects, 400 with a JSON reason for
bad input, 401 for missing/wrong credentials, 404 for unknown objects or files,
413 for uploads over ``settings.gracedb_max_upload_bytes``.  Error bodies are
``{"detail": "..."}``.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from gw_ops.config import Settings
from gw_ops.formats.gpstime import gps_to_utc, gracedb_timestamp, utc_to_gps
from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.auth import Authenticator, AuthError, ensure_service_credentials
from gw_ops.local_gracedb.db import Event, Label, Log, Signoff, Superevent, Tag, VOEvent, utcnow
from gw_ops.local_gracedb.outbox import PublishError
from gw_ops.local_gracedb.parsing import EventFileError, parse_event_file
from gw_ops.local_gracedb.query import QueryError, event_filters, superevent_filters
from gw_ops.local_gracedb.store import Store, Transaction
from gw_ops.local_gracedb.voevent import build_voevent, ivorn_for

log = logging.getLogger(__name__)

API = "/api/"
#: Page size of event and superevent listings when the client gives no ``count``.
DEFAULT_PAGE = 100
#: Tries of a superevent creation that lost an id race to another process.
SUPEREVENT_ID_ATTEMPTS = 10
_EVENT_ID = re.compile(r"^[GTMEH]\d+$")


class ApiError(Exception):
    """An error answer: HTTP ``status`` with ``{"detail": detail}``."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return gracedb_timestamp(value)


def _float(form: dict, key: str, required: bool = True) -> float | None:
    value = form.get(key)
    if value in (None, ""):
        if required:
            raise ApiError(400, f"{key}: This field is required.")
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{key}: A valid number is required.") from None


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def event_nodes(event: Event) -> list[str]:
    """LVAlert nodes of an event: ``group_pipeline`` and ``group_pipeline_search``
    (lower case), as GraceDB publishes both."""
    base = f"{event.group}_{event.pipeline}".lower()
    return [base] + ([f"{base}_{event.search}".lower()] if event.search else [])


def superevent_node(superevent: Superevent) -> str:
    """LVAlert node of a superevent's category."""
    return C.SUPEREVENT_NODE[superevent.category]


class GraceDbService:
    """Request handling on top of a :class:`Store`; ``base`` is the API root URL."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store

    # --- serialisation ------------------------------------------------------------
    def labels_of(self, session, object_id: str) -> list[Label]:
        return session.execute(select(Label).where(Label.object_id == object_id)
                               .order_by(Label.id)).scalars().all()

    def event_dict(self, session, event: Event, base: str) -> dict[str, Any]:
        url = f"{base}events/{event.graceid}"
        return {
            "submitter": event.submitter, "created": _timestamp(event.created),
            "group": event.group, "graceid": event.graceid, "pipeline": event.pipeline,
            "search": event.search, "gpstime": event.gpstime,
            "reporting_latency": (utc_to_gps(event.created.replace(tzinfo=dt.timezone.utc)
                                             if event.created.tzinfo is None else event.created)
                                  - event.gpstime) if event.gpstime is not None else None,
            "instruments": event.instruments, "nevents": event.nevents, "offline": event.offline,
            "far": event.far, "far_is_upper_limit": False, "likelihood": event.likelihood,
            "labels": [label.name for label in self.labels_of(session, event.graceid)],
            "extra_attributes": event.extra_attributes or {},
            "superevent": event.superevent_id, "superevent_neighbours": {},
            "links": {"neighbors": f"{url}/neighbors/", "log": f"{url}/log/",
                      "emobservations": f"{url}/emobservation/", "files": f"{url}/files/",
                      "labels": f"{url}/labels/", "self": url, "tags": f"{url}/tag/"},
        }

    def superevent_dict(self, session, superevent: Superevent, base: str) -> dict[str, Any]:
        sid = superevent.superevent_id
        url = f"{base}superevents/{sid}/"
        members = session.execute(select(Event).where(Event.superevent_id == sid)
                                  .order_by(Event.id)).scalars().all()
        preferred = next((e for e in members if e.graceid == superevent.preferred_event), None)
        if preferred is None:
            preferred = session.execute(select(Event).where(
                Event.graceid == superevent.preferred_event)).scalar_one_or_none()
        preferred_data = self.event_dict(session, preferred, base) if preferred else None
        return {
            "superevent_id": sid, "gw_id": superevent.gw_id,
            "category": C.SUPEREVENT_CATEGORIES[superevent.category],
            "created": _timestamp(superevent.created), "submitter": superevent.submitter,
            "em_type": superevent.em_type, "t_start": superevent.t_start, "t_0": superevent.t_0,
            "t_end": superevent.t_end, "far": preferred.far if preferred else None,
            "time_coinc_far": superevent.time_coinc_far,
            "space_coinc_far": superevent.space_coinc_far,
            "labels": [label.name for label in self.labels_of(session, sid)],
            "preferred_event": superevent.preferred_event,
            "preferred_event_data": preferred_data,
            "pipeline_preferred_events": {},
            "gw_events": [e.graceid for e in members if e.group != "External"],
            "em_events": [e.graceid for e in members if e.group == "External"],
            "links": {"events": f"{url}events/", "labels": f"{url}labels/",
                      "logs": f"{url}logs/", "files": f"{url}files/", "self": url,
                      "voevents": f"{url}voevents/", "emobservations": f"{url}emobservations/"},
        }

    def _object_url(self, object_id: str, base: str) -> str:
        """URL of an object without trailing slash."""
        if _EVENT_ID.match(object_id):
            return f"{base}events/{object_id}"
        return f"{base}superevents/{object_id}"

    def file_url(self, object_id: str, filename: str, base: str) -> str:
        if _EVENT_ID.match(object_id):
            return f"{base}events/{object_id}/files/{filename}"
        return f"{base}superevents/{object_id}/files/{filename}"

    def log_dict(self, session, entry: Log, base: str) -> dict[str, Any]:
        is_event = bool(_EVENT_ID.match(entry.object_id))
        url = (f"{base}events/{entry.object_id}/log/{entry.number}" if is_event
               else f"{base}superevents/{entry.object_id}/logs/{entry.number}/")
        tags = session.execute(select(Tag.name).where(Tag.log_id == entry.id)
                               .order_by(Tag.id)).scalars().all()
        return {
            "self": url, "N": entry.number, "comment": entry.comment,
            "created": _timestamp(entry.created), "issuer": entry.issuer,
            "filename": entry.filename, "file_version": entry.file_version,
            "file": (self.file_url(entry.object_id, f"{entry.filename},{entry.file_version}", base)
                     if entry.filename else ""),
            "tag_names": list(tags),
            "links": {"self": url, "tags": url.rstrip("/") + ("/tag/" if is_event else "/tags/")},
        }

    def label_dict(self, label: Label, base: str) -> dict[str, Any]:
        url = self._object_url(label.object_id, base) + ("/labels/" if _EVENT_ID.match(
            label.object_id) else "/labels/")
        suffix = "" if _EVENT_ID.match(label.object_id) else "/"
        return {"name": label.name, "creator": label.creator, "created": _timestamp(label.created),
                "self": f"{url}{label.name}{suffix}"}

    def voevent_dict(self, entry: VOEvent, base: str) -> dict[str, Any]:
        return {"self": f"{self._object_url(entry.object_id, base)}/voevents/{entry.number}/",
                "N": entry.number, "ivorn": entry.ivorn, "voevent_type": entry.voevent_type,
                "filename": entry.filename, "file_version": entry.file_version,
                "file": self.file_url(entry.object_id, f"{entry.filename},{entry.file_version}", base),
                "created": _timestamp(entry.created), "issuer": entry.issuer,
                **entry.attributes}

    @staticmethod
    def signoff_dict(signoff: Signoff, base: str) -> dict[str, Any]:
        return {"self": f"{base}superevents/{signoff.object_id}/signoffs/"
                        f"{signoff.signoff_type}{signoff.instrument}/",
                "submitter": signoff.submitter, "created": _timestamp(signoff.created),
                "instrument": signoff.instrument, "status": signoff.status,
                "comment": signoff.comment, "signoff_type": signoff.signoff_type}

    # --- lookups -------------------------------------------------------------------
    @staticmethod
    def get_event(session, graceid: str) -> Event:
        event = session.execute(select(Event).where(Event.graceid == graceid)).scalar_one_or_none()
        if event is None:
            raise ApiError(404, f"Event {graceid} does not exist")
        return event

    @staticmethod
    def get_superevent(session, superevent_id: str) -> Superevent:
        superevent = session.execute(select(Superevent).where(
            (Superevent.superevent_id == superevent_id) | (Superevent.gw_id == superevent_id))
        ).scalar_one_or_none()
        if superevent is None:
            raise ApiError(404, f"Superevent {superevent_id} does not exist")
        return superevent

    def get_object(self, session, object_id: str) -> Event | Superevent:
        if _EVENT_ID.match(object_id):
            return self.get_event(session, object_id)
        return self.get_superevent(session, object_id)

    def object_alert(self, tx: Transaction, obj, base: str, alert_type: str, data: Any) -> None:
        """Queue an alert about ``obj`` (event or superevent) on its nodes."""
        if isinstance(obj, Event):
            tx.session.flush()
            tx.alert(event_nodes(obj), obj.graceid, alert_type, data,
                     self.event_dict(tx.session, obj, base))
        else:
            tx.session.flush()
            tx.alert([superevent_node(obj)], obj.superevent_id, alert_type, data,
                     self.superevent_dict(tx.session, obj, base))

    @staticmethod
    def object_id_of(obj) -> str:
        return obj.graceid if isinstance(obj, Event) else obj.superevent_id

    def add_log(self, tx: Transaction, obj, issuer: str, comment: str, filename: str = "",
                file_version: int | None = None) -> Log:
        """Append log message ``N`` (1, 2, ...) to an object."""
        obj.log_count = (obj.log_count or 0) + 1
        entry = Log(object_id=self.object_id_of(obj), number=obj.log_count, comment=comment,
                    issuer=issuer, filename=filename, file_version=file_version, created=utcnow())
        tx.session.add(entry)
        tx.session.flush()
        return entry

    # --- events --------------------------------------------------------------------
    def create_event(self, user: str, base: str, group: str, pipeline: str, search: str | None,
                     offline: bool, labels: list[str], filename: str, content: bytes) -> dict:
        data = parse_event_file(group, pipeline, content)
        staged = self.store.stage(content)
        try:
            with self.store.write() as tx:
                event = Event(graceid=f"~{staged.name[:24]}", group=group, pipeline=pipeline,
                              search=search, submitter=user, created=utcnow(),
                              gpstime=data.gpstime, far=data.far, instruments=data.instruments,
                              nevents=data.nevents, likelihood=data.likelihood, offline=offline,
                              extra_attributes=data.extra_attributes, filename=filename)
                tx.session.add(event)
                tx.session.flush()
                event.graceid = f"{C.event_id_prefix(group, search)}{event.id}"
                version = tx.place_file(staged, event.graceid, filename)
                self.add_log(tx, event, user, "Original Data", filename, version)
                for name in labels:
                    tx.session.add(Label(object_id=event.graceid, name=name, creator=user,
                                         created=utcnow()))
                tx.session.flush()
                result = self.event_dict(tx.session, event, base)
                tx.alert(event_nodes(event), event.graceid, "new", result, result)
            return result
        finally:
            staged.unlink(missing_ok=True)

    def replace_event(self, user: str, base: str, graceid: str, filename: str,
                      content: bytes) -> dict:
        with self.store.read() as session:
            current = self.get_event(session, graceid)
        data = parse_event_file(current.group, current.pipeline, content)
        staged = self.store.stage(content)
        try:
            with self.store.write() as tx:
                event = self.get_event(tx.session, graceid)
                event.gpstime, event.far, event.instruments = data.gpstime, data.far, data.instruments
                event.nevents, event.likelihood = data.nevents, data.likelihood
                event.extra_attributes, event.filename = data.extra_attributes, filename
                version = tx.place_file(staged, graceid, filename)
                self.add_log(tx, event, user, "Replaced event data", filename, version)
                tx.session.flush()
                result = self.event_dict(tx.session, event, base)
                tx.alert(event_nodes(event), graceid, "update", result, result)
            return result
        finally:
            staged.unlink(missing_ok=True)

    def list_events(self, base: str, query: str | None, start: int, count: int,
                    sort: str | None) -> dict:
        try:
            clauses = event_filters(query)
        except QueryError as exc:
            raise ApiError(400, f"Invalid query: {exc}") from None
        order = {"gpstime": Event.gpstime, "-gpstime": Event.gpstime.desc(),
                 "created": Event.id, "-created": Event.id.desc(), "far": Event.far,
                 "-far": Event.far.desc(), None: Event.id}.get(sort)
        if order is None:
            raise ApiError(400, f"Invalid sort {sort!r}")
        with self.store.read() as session:
            total = session.execute(select(func.count(Event.id)).where(*clauses)).scalar()
            rows = session.execute(select(Event).where(*clauses).order_by(order)
                                   .offset(start).limit(count)).scalars().all()
            events = [self.event_dict(session, e, base) for e in rows]
        return {"numRows": total, "events": events,
                "links": self._page_links(f"{base}events/", query, sort, start, count, total)}

    @staticmethod
    def _page_links(url: str, query, sort, start: int, count: int, total: int) -> dict:
        def page(offset: int) -> str:
            params = {k: v for k, v in (("query", query), ("sort", sort)) if v}
            params.update(start=offset, count=count)
            return f"{url}?{urlencode(params)}"
        return {"self": page(start),
                "next": page(start + count) if start + count < total else None,
                "previous": page(max(0, start - count)) if start > 0 else None,
                "first": page(0), "last": page(max(0, (total - 1) // count * count))}

    # --- logs, files, tags ------------------------------------------------------------
    def write_log(self, user: str, base: str, object_id: str, comment: str, tags: list[str],
                  display_names: list[str], label: str | None, upload: tuple[str, bytes] | None) -> dict:
        staged = self.store.stage(upload[1]) if upload else None
        try:
            with self.store.write() as tx:
                obj = self.get_object(tx.session, object_id)
                filename, version = "", None
                if upload:
                    filename = upload[0]
                    version = tx.place_file(staged, object_id, filename)
                entry = self.add_log(tx, obj, user, comment, filename, version)
                for index, name in enumerate(tags):
                    display = display_names[index] if index < len(display_names) else name
                    tx.session.add(Tag(log_id=entry.id, name=name, display_name=display))
                tx.session.flush()
                result = self.log_dict(tx.session, entry, base)
                self.object_alert(tx, obj, base, "log", result)
                if label:
                    self._apply_label(tx, obj, base, label, user, strict=False)
            return result
        finally:
            if staged:
                staged.unlink(missing_ok=True)

    def logs(self, base: str, object_id: str, number: int | None = None) -> dict:
        with self.store.read() as session:
            self.get_object(session, object_id)
            statement = select(Log).where(Log.object_id == object_id).order_by(Log.number)
            if number is not None:
                entry = session.execute(statement.where(Log.number == number)).scalar_one_or_none()
                if entry is None:
                    raise ApiError(404, f"Log message {number} of {object_id} does not exist")
                return self.log_dict(session, entry, base)
            entries = [self.log_dict(session, e, base) for e in session.execute(statement).scalars()]
        return {"numRows": len(entries), "log": entries,
                "links": {"self": f"{self._object_url(object_id, base)}/log/"}}

    def files(self, base: str, object_id: str) -> dict:
        with self.store.read() as session:
            self.get_object(session, object_id)
            rows = session.execute(select(Log.filename, Log.file_version).where(
                Log.object_id == object_id, Log.filename != "").order_by(Log.id)).all()
        listing: dict[str, str] = {}
        for filename, version in rows:
            listing[f"{filename},{version}"] = self.file_url(object_id, f"{filename},{version}", base)
            listing[filename] = self.file_url(object_id, filename, base)
        return listing

    def file_response(self, object_id: str, name: str) -> FileResponse:
        with self.store.read() as session:
            self.get_object(session, object_id)
            filename, version = name, None
            match = re.match(r"^(.*),(\d+)$", name)
            if match:
                filename, version = match.group(1), int(match.group(2))
            if version is None:
                version = session.execute(select(func.max(Log.file_version)).where(
                    Log.object_id == object_id, Log.filename == filename)).scalar()
            known = version is not None and session.execute(select(Log.id).where(
                Log.object_id == object_id, Log.filename == filename,
                Log.file_version == version)).first() is not None
        path = self.store.file_path(object_id, filename, version) if known else None
        if path is None or not path.exists():
            raise ApiError(404, f"File {name} of {object_id} does not exist")
        return FileResponse(path, filename=filename, media_type=_media_type(filename))

    def _get_log(self, session, object_id: str, number: int) -> Log:
        entry = session.execute(select(Log).where(Log.object_id == object_id,
                                                  Log.number == number)).scalar_one_or_none()
        if entry is None:
            raise ApiError(404, f"Log message {number} of {object_id} does not exist")
        return entry

    def tags(self, base: str, object_id: str, number: int) -> dict:
        with self.store.read() as session:
            self.get_object(session, object_id)
            entry = self._get_log(session, object_id, number)
            rows = session.execute(select(Tag).where(Tag.log_id == entry.id).order_by(Tag.id)).scalars()
            return {"tags": [{"name": t.name, "displayName": t.display_name} for t in rows]}

    def add_tag(self, user: str, base: str, object_id: str, number: int, name: str,
                display_name: str | None) -> dict:
        if not name or not re.fullmatch(r"[\w.\-]+", name):
            raise ApiError(400, f"name: invalid tag name {name!r}")
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            entry = self._get_log(tx.session, object_id, number)
            if tx.session.execute(select(Tag.id).where(Tag.log_id == entry.id,
                                                       Tag.name == name)).first():
                raise ApiError(400, f"Tag {name} is already applied to log message {number}")
            tx.session.add(Tag(log_id=entry.id, name=name, display_name=display_name or name))
            tx.session.flush()
            result = self.log_dict(tx.session, entry, base)
            self.object_alert(tx, obj, base, "log", result)
        return {"name": name, "displayName": display_name or name}

    def remove_tag(self, user: str, base: str, object_id: str, number: int, name: str) -> None:
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            entry = self._get_log(tx.session, object_id, number)
            removed = tx.session.execute(delete(Tag).where(Tag.log_id == entry.id, Tag.name == name))
            if not removed.rowcount:
                raise ApiError(404, f"Tag {name} is not applied to log message {number}")
            result = self.log_dict(tx.session, entry, base)
            self.object_alert(tx, obj, base, "log", result)

    # --- labels ----------------------------------------------------------------------
    def _apply_label(self, tx: Transaction, obj, base: str, name: str, user: str,
                     strict: bool = True) -> Label | None:
        object_id = self.object_id_of(obj)
        if tx.session.execute(select(Label.id).where(Label.object_id == object_id,
                                                     Label.name == name)).first():
            if strict:
                raise ApiError(400, f"The label {name} is already applied to {object_id}")
            return None
        label = Label(object_id=object_id, name=name, creator=user, created=utcnow())
        tx.session.add(label)
        self.add_log(tx, obj, user, f"Added label: {name}")
        tx.session.flush()
        self.object_alert(tx, obj, base, "label_added", self.label_dict(label, base))
        return label

    def _drop_label(self, tx: Transaction, obj, base: str, name: str, strict: bool = True) -> bool:
        object_id = self.object_id_of(obj)
        label = tx.session.execute(select(Label).where(Label.object_id == object_id,
                                                       Label.name == name)).scalar_one_or_none()
        if label is None:
            if strict:
                raise ApiError(404, f"Label {name} is not applied to {object_id}")
            return False
        data = self.label_dict(label, base)
        tx.session.delete(label)
        self.add_log(tx, obj, label.creator, f"Removed label: {name}")
        tx.session.flush()
        self.object_alert(tx, obj, base, "label_removed", data)
        return True

    def write_label(self, user: str, base: str, object_id: str, name: str) -> dict:
        check_label(name)
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            label = self._apply_label(tx, obj, base, name, user)
            return self.label_dict(label, base)

    def remove_label(self, user: str, base: str, object_id: str, name: str) -> None:
        check_label(name)
        with self.store.write() as tx:
            self._drop_label(tx, self.get_object(tx.session, object_id), base, name)

    def labels(self, base: str, object_id: str, name: str | None = None) -> dict:
        with self.store.read() as session:
            self.get_object(session, object_id)
            labels = self.labels_of(session, object_id)
        if name:
            check_label(name)
            match = [label for label in labels if label.name == name]
            if not match:
                raise ApiError(404, f"Label {name} is not applied to {object_id}")
            return self.label_dict(match[0], base)
        return {"labels": [self.label_dict(label, base) for label in labels],
                "links": {"self": f"{self._object_url(object_id, base)}/labels/"}}

    # --- superevents -----------------------------------------------------------------
    def _check_member(self, session, graceid: str, category: str,
                      superevent_id: str | None) -> Event:
        try:
            event = self.get_event(session, graceid)
        except ApiError:
            raise ApiError(400, f"Event {graceid} does not exist") from None
        if event.superevent_id and event.superevent_id != superevent_id:
            raise ApiError(400, f"Event {graceid} is already part of superevent "
                                f"{event.superevent_id}")
        wanted = {"P": ("G", "E"), "M": ("M", "E"), "T": ("T", "E")}[category]
        if graceid[0] not in wanted:
            raise ApiError(400, f"Event {graceid} cannot belong to a "
                                f"{C.SUPEREVENT_CATEGORIES[category]} superevent")
        return event

    def create_superevent(self, user: str, base: str, form: dict, events: list[str],
                          labels: list[str]) -> dict:
        t_start, t_0, t_end = (_float(form, key) for key in ("t_start", "t_0", "t_end"))
        if not t_start <= t_0 <= t_end:
            raise ApiError(400, "t_start <= t_0 <= t_end is required")
        preferred = form.get("preferred_event") or ""
        category = category_code(form.get("category") or "P")
        for name in labels:
            check_label(name)
        date = gps_to_utc(t_0).strftime("%y%m%d")
        for attempt in range(SUPEREVENT_ID_ATTEMPTS):
            try:
                with self.store.write() as tx:
                    session = tx.session
                    members = [self._check_member(session, g, category, None)
                               for g in dict.fromkeys([preferred, *events])]
                    if members[0].group == "External":
                        raise ApiError(400, "preferred_event: an external event cannot be preferred")
                    number = (session.execute(select(func.max(Superevent.number)).where(
                        Superevent.category == category, Superevent.date == date)).scalar() or 0) + 1
                    superevent = Superevent(
                        superevent_id=f"{C.SUPEREVENT_PREFIX[category]}{date}{C.suffix_letters(number)}",
                        category=category, date=date, number=number, submitter=user,
                        created=utcnow(), t_start=t_start, t_0=t_0, t_end=t_end,
                        preferred_event=preferred)
                    session.add(superevent)
                    session.flush()  # the unique constraint fires here on an id race
                    for event in members:
                        event.superevent_id = superevent.superevent_id
                    self.add_log(tx, superevent, user, "Superevent created with t_start="
                                 f"{t_start}, t_0={t_0}, t_end={t_end}, preferred_event={preferred}")
                    for name in labels:
                        session.add(Label(object_id=superevent.superevent_id, name=name,
                                          creator=user, created=utcnow()))
                    session.flush()
                    result = self.superevent_dict(session, superevent, base)
                    tx.alert([superevent_node(superevent)], superevent.superevent_id, "new",
                             result, result)
                return result
            except IntegrityError:
                # another process took this id between our read and insert: next number
                log.info("superevent id race on %s (attempt %d), retrying", date, attempt + 1)
        raise ApiError(503, "could not allocate a superevent id; try again")

    def update_superevent(self, user: str, base: str, superevent_id: str, form: dict) -> dict:
        changes = {key: _float(form, key, required=False)
                   for key in ("t_start", "t_0", "t_end", "time_coinc_far", "space_coinc_far")}
        changes = {key: value for key, value in changes.items() if value is not None}
        if form.get("em_type"):
            changes["em_type"] = form["em_type"]
        preferred = form.get("preferred_event")
        if not changes and not preferred:
            raise ApiError(400, "Provide at least one of t_start, t_0, t_end, preferred_event, "
                                "em_type, time_coinc_far, space_coinc_far")
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            if preferred and preferred != superevent.preferred_event:
                event = self._check_member(tx.session, preferred, superevent.category,
                                           superevent.superevent_id)
                if event.group == "External":
                    raise ApiError(400, "preferred_event: an external event cannot be preferred")
                event.superevent_id = superevent.superevent_id
                changes["preferred_event"] = preferred
            if "em_type" in changes:
                self._check_member(tx.session, changes["em_type"], superevent.category,
                                   superevent.superevent_id)
            old = {key: getattr(superevent, key) for key in changes}
            for key, value in changes.items():
                setattr(superevent, key, value)
            if not superevent.t_start <= superevent.t_0 <= superevent.t_end:
                raise ApiError(400, "t_start <= t_0 <= t_end is required")
            self.add_log(tx, superevent, user, "Updated superevent parameters: " + ", ".join(
                f"{key}: {old[key]} -> {value}" for key, value in changes.items()))
            tx.session.flush()
            result = self.superevent_dict(tx.session, superevent, base)
            tx.alert([superevent_node(superevent)], superevent.superevent_id, "update", result, result)
        return result

    def add_event(self, user: str, base: str, superevent_id: str, graceid: str) -> dict:
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            event = self._check_member(tx.session, graceid, superevent.category,
                                       superevent.superevent_id)
            if event.superevent_id == superevent.superevent_id:
                raise ApiError(400, f"Event {graceid} is already part of superevent "
                                    f"{superevent.superevent_id}")
            event.superevent_id = superevent.superevent_id
            self.add_log(tx, superevent, user, f"Added event: {graceid}")
            tx.session.flush()
            data = self.event_dict(tx.session, event, base)
            self.object_alert(tx, superevent, base, "event_added", data)
            return {"graceid": graceid, "self": f"{base}superevents/{superevent.superevent_id}"
                                                f"/events/{graceid}/"}

    def remove_event(self, user: str, base: str, superevent_id: str, graceid: str) -> None:
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            event = self.get_event(tx.session, graceid)
            if event.superevent_id != superevent.superevent_id:
                raise ApiError(404, f"Event {graceid} is not part of superevent {superevent_id}")
            if graceid == superevent.preferred_event:
                raise ApiError(400, f"Event {graceid} is the preferred event of "
                                    f"{superevent_id} and cannot be removed")
            event.superevent_id = None
            self.add_log(tx, superevent, user, f"Removed event: {graceid}")
            tx.session.flush()
            data = self.event_dict(tx.session, event, base)
            self.object_alert(tx, superevent, base, "event_removed", data)

    def superevent_events(self, base: str, superevent_id: str) -> dict:
        with self.store.read() as session:
            superevent = self.get_superevent(session, superevent_id)
            ids = session.execute(select(Event.graceid).where(
                Event.superevent_id == superevent.superevent_id).order_by(Event.id)).scalars().all()
        return {"events": [{"graceid": g, "self": f"{base}superevents/{superevent_id}/events/{g}/"}
                           for g in ids], "numRows": len(ids)}

    def list_superevents(self, base: str, query: str | None, start: int, count: int,
                         sort: str | None) -> dict:
        try:
            clauses = superevent_filters(query)
        except QueryError as exc:
            raise ApiError(400, f"Invalid query: {exc}") from None
        orders = {None: [Superevent.id], "created": [Superevent.id],
                  "-created": [Superevent.id.desc()], "t_0": [Superevent.t_0],
                  "-t_0": [Superevent.t_0.desc()], "superevent_id": [Superevent.superevent_id],
                  "-superevent_id": [Superevent.superevent_id.desc()]}
        order: list = []
        for part in (sort.split(",") if sort else [None]):
            if part not in orders:
                raise ApiError(400, f"Invalid sort {part!r}")
            order += orders[part]
        with self.store.read() as session:
            total = session.execute(select(func.count(Superevent.id)).where(*clauses)).scalar()
            rows = session.execute(select(Superevent).where(*clauses).order_by(*order)
                                   .offset(start).limit(count)).scalars().all()
            items = [self.superevent_dict(session, s, base) for s in rows]
        return {"numRows": total, "superevents": items,
                "links": self._page_links(f"{base}superevents/", query, sort, start, count, total)}

    def confirm_as_gw(self, user: str, base: str, superevent_id: str, gw_id: str | None) -> dict:
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            if superevent.is_gw:
                raise ApiError(400, f"Superevent {superevent_id} is already confirmed as a GW")
            prefix = {"P": "", "M": "M", "T": "T"}[superevent.category]
            when = gps_to_utc(superevent.t_0)
            superevent.gw_id = gw_id or f"{prefix}GW{when:%y%m%d_%H%M%S}"
            superevent.is_gw = True
            self.add_log(tx, superevent, user, f"Confirmed as GW: {superevent.gw_id}")
            tx.session.flush()
            result = self.superevent_dict(tx.session, superevent, base)
            tx.alert([superevent_node(superevent)], superevent.superevent_id, "confirmed_as_gw",
                     result, result)
        return result

    # --- VOEvents ----------------------------------------------------------------------
    def create_voevent(self, user: str, base: str, object_id: str, form: dict) -> dict:
        voevent_type = form.get("voevent_type") or ""
        if voevent_type not in C.VOEVENT_TYPES:
            raise ApiError(400, f"voevent_type: \"{voevent_type}\" is not a valid choice.")
        skymap = form.get("skymap_filename")
        if voevent_type == "IN" and not skymap:
            raise ApiError(400, "skymap_filename is required for initial VOEvents")
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            if skymap and tx.session.execute(select(Log.id).where(
                    Log.object_id == object_id, Log.filename == skymap.split(",")[0])).first() is None:
                raise ApiError(400, f"Skymap file {skymap} does not exist for {object_id}")
            if isinstance(obj, Superevent):
                preferred = self.get_event(tx.session, obj.preferred_event)
                t_0, role = obj.t_0, "observation" if obj.category == "P" else "test"
            else:
                preferred, t_0, role = obj, obj.gpstime or 0.0, "test" if obj.group == "Test" else "observation"
            obj.voevent_count = (obj.voevent_count or 0) + 1
            number = obj.voevent_count
            kind = C.VOEVENT_TYPES[voevent_type].capitalize()
            filename = f"{object_id}-{number}-{kind}.xml"
            options = {key: form.get(key) for key in (
                "internal", "open_alert", "hardware_inj", "CoincComment", "raven_coinc",
                "skymap_type", "ProbHasNS", "ProbHasRemnant", "BNS", "NSBH", "BBH",
                "Terrestrial", "HasMassGap") if form.get(key) is not None}
            xml = build_voevent(
                object_id=object_id, number=number, voevent_type=voevent_type, t_0=t_0,
                event_page=f"{base.rsplit('/api/', 1)[0]}/superevents/{object_id}/view/",
                far=preferred.far, instruments=preferred.instruments, group=preferred.group,
                pipeline=preferred.pipeline, search=preferred.search or "",
                options=options,
                skymap_url=self.file_url(object_id, skymap, base) if skymap else None,
                created_iso=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                role=role)
            version = tx.place_file(self.store.stage(xml), object_id, filename)
            self.add_log(tx, obj, user, f"New VOEvent: {filename}", filename, version)
            entry = VOEvent(object_id=object_id, number=number, voevent_type=voevent_type,
                            ivorn=ivorn_for(object_id, number, voevent_type), filename=filename,
                            file_version=version, issuer=user, created=utcnow(),
                            attributes={"skymap_type": form.get("skymap_type"),
                                        "skymap_filename": skymap,
                                        "internal": _bool(form.get("internal", True)),
                                        "open_alert": _bool(form.get("open_alert", False)),
                                        "hardware_inj": _bool(form.get("hardware_inj", False)),
                                        "coinc_comment": _bool(form.get("CoincComment", False)),
                                        "prob_has_ns": _float(form, "ProbHasNS", False),
                                        "prob_has_remnant": _float(form, "ProbHasRemnant", False),
                                        "prob_bns": _float(form, "BNS", False),
                                        "prob_nsbh": _float(form, "NSBH", False),
                                        "prob_bbh": _float(form, "BBH", False),
                                        "prob_terrestrial": _float(form, "Terrestrial", False),
                                        "prob_has_mass_gap": _float(form, "HasMassGap", False)})
            tx.session.add(entry)
            tx.session.flush()
            result = self.voevent_dict(entry, base)
            self.object_alert(tx, obj, base, "voevent", result)
        return result

    def voevents(self, base: str, object_id: str, number: int | None = None) -> dict:
        with self.store.read() as session:
            self.get_object(session, object_id)
            statement = select(VOEvent).where(VOEvent.object_id == object_id).order_by(VOEvent.number)
            entries = session.execute(statement).scalars().all()
        if number is not None:
            match = [e for e in entries if e.number == number]
            if not match:
                raise ApiError(404, f"VOEvent {number} of {object_id} does not exist")
            return self.voevent_dict(match[0], base)
        return {"voevents": [self.voevent_dict(e, base) for e in entries], "numRows": len(entries)}

    # --- signoffs ------------------------------------------------------------------------
    def create_signoff(self, user: str, base: str, superevent_id: str, form: dict) -> dict:
        signoff_type = form.get("signoff_type") or ""
        instrument = form.get("instrument") or ""
        status = form.get("status") or ""
        if signoff_type not in C.SIGNOFF_TYPES:
            raise ApiError(400, f"signoff_type: \"{signoff_type}\" is not a valid choice.")
        if status not in C.SIGNOFF_STATUSES:
            raise ApiError(400, f"status: \"{status}\" is not a valid choice.")
        if signoff_type == "OP" and instrument not in C.INSTRUMENTS:
            raise ApiError(400, "instrument: operator signoffs require a valid instrument")
        if signoff_type == "ADV":
            instrument = ""
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            if tx.session.execute(select(Signoff.id).where(
                    Signoff.object_id == superevent.superevent_id,
                    Signoff.signoff_type == signoff_type,
                    Signoff.instrument == instrument)).first():
                raise ApiError(400, f"A {C.SIGNOFF_TYPES[signoff_type]} signoff {instrument} "
                                    f"already exists for {superevent_id}")
            signoff = Signoff(object_id=superevent.superevent_id, signoff_type=signoff_type,
                              instrument=instrument, status=status,
                              comment=form.get("comment") or "", submitter=user, created=utcnow())
            tx.session.add(signoff)
            self.add_log(tx, superevent, user, f"Signoff {signoff_type}{instrument} created: "
                         f"{C.SIGNOFF_STATUSES[status]}: {signoff.comment}")
            tx.session.flush()
            result = self.signoff_dict(signoff, base)
            self.object_alert(tx, superevent, base, "signoff_created", result)
            # the signoff's outcome replaces the request label, as GraceDB does
            prefix = "ADV" if signoff_type == "ADV" else instrument
            request_label = "ADVREQ" if signoff_type == "ADV" else f"{instrument}OPS"
            self._drop_label(tx, superevent, base, request_label, strict=False)
            self._apply_label(tx, superevent, base, f"{prefix}{status}", user, strict=False)
        return result

    def signoffs(self, base: str, superevent_id: str, typeinst: str | None = None) -> dict:
        with self.store.read() as session:
            superevent = self.get_superevent(session, superevent_id)
            rows = session.execute(select(Signoff).where(
                Signoff.object_id == superevent.superevent_id).order_by(Signoff.id)).scalars().all()
        if typeinst:
            match = [s for s in rows if s.signoff_type + s.instrument == typeinst]
            if not match:
                raise ApiError(404, f"Signoff {typeinst} of {superevent_id} does not exist")
            return self.signoff_dict(match[0], base)
        return {"signoffs": [self.signoff_dict(s, base) for s in rows]}


def _media_type(filename: str) -> str:
    import mimetypes
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def check_label(name: str) -> None:
    """Raise a 400 like GraceDB's for a label name it does not know."""
    if name not in C.LABELS:
        raise ApiError(400, f"Label '{name}' does not exist in the database")


def category_code(value: str) -> str:
    """Superevent category code (P, T, M) from a code or display name."""
    for code, name in C.SUPEREVENT_CATEGORIES.items():
        if value.lower() in (code.lower(), name.lower()):
            return code
    raise ApiError(400, f"category: \"{value}\" is not a valid choice.")


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


# --- HTTP layer -----------------------------------------------------------------------------

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


def _safe_filename(name: str) -> str:
    """Keep the base name; refuse names that could escape the object's folder."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not name or name in (".", "..") or "," in name or name.startswith("."):
        raise ApiError(400, f"Invalid file name {name!r}")
    return name


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The GraceDB FastAPI application for ``settings``.

    Parameters
    ----------
    settings : Settings
        Database URL (``gracedb_sql_url``), files folder (``gracedb_files_path``),
        Redis and key prefix for LVAlert streams, upload limit.
    store : Store, optional
        Storage to use (built from ``settings`` when omitted).
    """
    store = store or Store(settings)
    service = GraceDbService(settings, store)
    authenticator = Authenticator(settings)
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        """Keep retrying LVAlerts that a Redis outage left in the outbox."""
        async def retry_forever():
            while True:
                await asyncio.sleep(1.0)
                try:
                    await run_in_threadpool(store.drain_outbox)
                except Exception as exc:  # Redis still down: try again next second
                    log.warning("LVAlert outbox retry failed: %s", exc)
        task = asyncio.get_running_loop().create_task(retry_forever())
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(title="gw-ops local GraceDB", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store
    app.state.service = service

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/") + API

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": 'Basic realm="gw-ops GraceDB"'} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(EventFileError)
    async def _event_file_error(_request: Request, exc: EventFileError):
        return JSONResponse({"detail": f"Problem reading the event file: {exc}"}, status_code=400)

    @app.exception_handler(PublishError)
    async def _publish_error(_request: Request, exc: PublishError):
        log.error("%s", exc)
        return JSONResponse({"detail": f"The change was saved but its LVAlert could not be "
                                       f"published yet (it will be retried): {exc}"},
                            status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected_error(_request: Request, exc: Exception):
        log.exception("unexpected error: %s", exc)
        return JSONResponse({"detail": f"Internal server error: {type(exc).__name__}: {exc}"},
                            status_code=500)

    @app.middleware("http")
    async def _authenticate(request: Request, call_next):
        """Writes need an account; wrong credentials are refused even on reads."""
        try:
            user = authenticator.authenticate(request.headers.get("authorization"))
        except AuthError as exc:
            return await _api_error(request, ApiError(401, str(exc)))
        if request.method not in ("GET", "HEAD", "OPTIONS") and user is None:
            return await _api_error(request, ApiError(401, "Authentication credentials were not provided."))
        length = request.headers.get("content-length")
        # refuse an oversize upload before reading it (multipart overhead allowed)
        if length and length.isdigit() and int(length) > settings.gracedb_max_upload_bytes + 65536:
            return await _api_error(request, ApiError(
                413, f"Request body larger than the {settings.gracedb_max_upload_bytes} bytes allowed"))
        request.state.user = user
        return await call_next(request)

    async def call(function, *args):
        return await run_in_threadpool(function, *args)

    # --- root and accounts ---------------------------------------------------------
    @app.get(API)
    async def root(request: Request):
        return api_root(base_of(request))

    @app.get(API + "user-info/")
    async def user_info(request: Request):
        return {"username": request.state.user or "AnonymousUser"}

    @app.post(API + "token/")
    async def token(request: Request):
        return JSONResponse(authenticator.issue_token(request.state.user), status_code=201)

    # --- events --------------------------------------------------------------------
    @app.get(API + "events/")
    async def events(request: Request, query: str | None = None, start: int = 0,
                     count: int = DEFAULT_PAGE, sort: str | None = None):
        return await call(service.list_events, base_of(request), query, max(start, 0),
                          min(max(count, 1), 1000), sort)

    @app.post(API + "events/")
    async def create_event(request: Request):
        body = await read_body(request, settings)
        group, pipeline = body.get("group", ""), body.get("pipeline", "")
        search = body.get("search") or None
        if group not in C.GROUPS:
            raise ApiError(400, f"group: \"{group}\" is not a valid choice.")
        if pipeline not in C.PIPELINES:
            raise ApiError(400, f"pipeline: \"{pipeline}\" is not a valid choice.")
        if search is not None and search not in C.SEARCHES:
            raise ApiError(400, f"search: \"{search}\" is not a valid choice.")
        labels = body.getlist("labels")
        for name in labels:
            check_label(name)
        if "eventFile" not in body.files:
            raise ApiError(400, "eventFile: No file was submitted.")
        filename, content = body.files["eventFile"]
        result = await call(service.create_event, request.state.user, base_of(request), group,
                            pipeline, search, _bool(body.get("offline", False)), labels,
                            _safe_filename(filename), content)
        return JSONResponse(result, status_code=201,
                            headers={"Location": result["links"]["self"]})

    @app.get(API + "events/{graceid}")
    async def event(request: Request, graceid: str):
        def read():
            with store.read() as session:
                return service.event_dict(session, service.get_event(session, graceid),
                                          base_of(request))
        return await call(read)

    @app.put(API + "events/{graceid}")
    async def replace_event(request: Request, graceid: str):
        body = await read_body(request, settings)
        if "eventFile" not in body.files:
            raise ApiError(400, "eventFile: No file was submitted.")
        filename, content = body.files["eventFile"]
        return await call(service.replace_event, request.state.user, base_of(request), graceid,
                          _safe_filename(filename), content)

    # --- logs, files, tags, labels, VOEvents of events and superevents ----------------
    for prefix, log_part, tag_part, voevent_part, key in (
            (API + "events/{object_id}", "log", "tag", "voevent", "graceid"),
            (API + "superevents/{object_id}/", "logs", "tags", "voevents", "superevent")):
        slash = "/" if key == "superevent" else ""
        sep = "" if key == "superevent" else "/"

        @app.get(f"{prefix}{sep}{log_part}/")
        async def logs(request: Request, object_id: str):
            return await call(service.logs, base_of(request), object_id)

        @app.get(f"{prefix}{sep}{log_part}/{{number}}{slash}")
        async def log_detail(request: Request, object_id: str, number: int):
            return await call(service.logs, base_of(request), object_id, number)

        @app.post(f"{prefix}{sep}{log_part}/")
        async def write_log(request: Request, object_id: str):
            body = await read_body(request, settings)
            upload = body.files.get("upload")
            if upload:
                upload = (_safe_filename(upload[0]), upload[1])
            label = body.get("label") or None
            if label:
                check_label(label)
            tags = [t for t in body.getlist("tagname") if t]
            result = await call(service.write_log, request.state.user, base_of(request), object_id,
                                body.get("comment", ""), tags, body.getlist("displayName"),
                                label, upload)
            return JSONResponse(result, status_code=201)

        @app.get(f"{prefix}{sep}files/")
        async def files(request: Request, object_id: str):
            return await call(service.files, base_of(request), object_id)

        @app.get(f"{prefix}{sep}files/{{filename}}")
        async def file_detail(request: Request, object_id: str, filename: str):
            return await call(service.file_response, object_id, filename)

        @app.get(f"{prefix}{sep}{log_part}/{{number}}/{tag_part}/")
        async def tags(request: Request, object_id: str, number: int):
            return await call(service.tags, base_of(request), object_id, number)

        @app.get(f"{prefix}{sep}{voevent_part}/")
        async def voevents(request: Request, object_id: str):
            return await call(service.voevents, base_of(request), object_id)

        @app.get(f"{prefix}{sep}{voevent_part}/{{number}}{slash}")
        async def voevent_detail(request: Request, object_id: str, number: int):
            return await call(service.voevents, base_of(request), object_id, number)

        @app.post(f"{prefix}{sep}{voevent_part}/")
        async def create_voevent(request: Request, object_id: str):
            body = await read_body(request, settings)
            result = await call(service.create_voevent, request.state.user, base_of(request),
                                object_id, body.flat())
            return JSONResponse(result, status_code=201)

    # event tags and labels (PUT/DELETE on the detail URL)
    @app.put(API + "events/{object_id}/log/{number}/tag/{tag_name}")
    async def event_add_tag(request: Request, object_id: str, number: int, tag_name: str):
        body = await read_body(request, settings)
        result = await call(service.add_tag, request.state.user, base_of(request), object_id,
                            number, tag_name, body.get("displayName"))
        return JSONResponse(result, status_code=201)

    @app.delete(API + "events/{object_id}/log/{number}/tag/{tag_name}")
    async def event_remove_tag(request: Request, object_id: str, number: int, tag_name: str):
        await call(service.remove_tag, request.state.user, base_of(request), object_id, number,
                   tag_name)
        return Response(status_code=204)

    @app.get(API + "events/{object_id}/labels/")
    async def event_labels(request: Request, object_id: str):
        return await call(service.labels, base_of(request), object_id)

    @app.get(API + "events/{object_id}/labels/{label}")
    async def event_label(request: Request, object_id: str, label: str):
        return await call(service.labels, base_of(request), object_id, label)

    @app.put(API + "events/{object_id}/labels/{label}")
    async def event_write_label(request: Request, object_id: str, label: str):
        result = await call(service.write_label, request.state.user, base_of(request), object_id,
                            label)
        return JSONResponse(result, status_code=201)

    @app.delete(API + "events/{object_id}/labels/{label}")
    async def event_remove_label(request: Request, object_id: str, label: str):
        await call(service.remove_label, request.state.user, base_of(request), object_id, label)
        return Response(status_code=204)

    # --- superevents ------------------------------------------------------------------------
    @app.get(API + "superevents/")
    async def superevents(request: Request, query: str | None = None, start: int = 0,
                          count: int = DEFAULT_PAGE, sort: str | None = None):
        return await call(service.list_superevents, base_of(request), query, max(start, 0),
                          min(max(count, 1), 1000), sort)

    @app.post(API + "superevents/")
    async def create_superevent(request: Request):
        body = await read_body(request, settings)
        result = await call(service.create_superevent, request.state.user, base_of(request),
                            body.flat(), body.getlist("events"), body.getlist("labels"))
        return JSONResponse(result, status_code=201)

    @app.get(API + "superevents/{superevent_id}/")
    async def superevent(request: Request, superevent_id: str):
        def read():
            with store.read() as session:
                return service.superevent_dict(
                    session, service.get_superevent(session, superevent_id), base_of(request))
        return await call(read)

    @app.patch(API + "superevents/{superevent_id}/")
    async def update_superevent(request: Request, superevent_id: str):
        body = await read_body(request, settings)
        return await call(service.update_superevent, request.state.user, base_of(request),
                          superevent_id, body.flat())

    @app.get(API + "superevents/{superevent_id}/events/")
    async def superevent_events(request: Request, superevent_id: str):
        return await call(service.superevent_events, base_of(request), superevent_id)

    @app.post(API + "superevents/{superevent_id}/events/")
    async def add_event(request: Request, superevent_id: str):
        body = await read_body(request, settings)
        result = await call(service.add_event, request.state.user, base_of(request),
                            superevent_id, body.get("event", ""))
        return JSONResponse(result, status_code=201)

    @app.delete(API + "superevents/{superevent_id}/events/{graceid}/")
    async def remove_event(request: Request, superevent_id: str, graceid: str):
        await call(service.remove_event, request.state.user, base_of(request), superevent_id,
                   graceid)
        return Response(status_code=204)

    @app.get(API + "superevents/{superevent_id}/labels/")
    async def superevent_labels(request: Request, superevent_id: str):
        return await call(service.labels, base_of(request), superevent_id)

    @app.get(API + "superevents/{superevent_id}/labels/{label}/")
    async def superevent_label(request: Request, superevent_id: str, label: str):
        return await call(service.labels, base_of(request), superevent_id, label)

    @app.post(API + "superevents/{superevent_id}/labels/")
    async def superevent_write_label(request: Request, superevent_id: str):
        body = await read_body(request, settings)
        result = await call(service.write_label, request.state.user, base_of(request),
                            superevent_id, body.get("name", ""))
        return JSONResponse(result, status_code=201)

    @app.delete(API + "superevents/{superevent_id}/labels/{label}/")
    async def superevent_remove_label(request: Request, superevent_id: str, label: str):
        await call(service.remove_label, request.state.user, base_of(request), superevent_id, label)
        return Response(status_code=204)

    @app.post(API + "superevents/{superevent_id}/logs/{number}/tags/")
    async def superevent_add_tag(request: Request, superevent_id: str, number: int):
        body = await read_body(request, settings)
        result = await call(service.add_tag, request.state.user, base_of(request), superevent_id,
                            number, body.get("name", ""), body.get("displayName"))
        return JSONResponse(result, status_code=201)

    @app.delete(API + "superevents/{superevent_id}/logs/{number}/tags/{tag_name}/")
    async def superevent_remove_tag(request: Request, superevent_id: str, number: int,
                                    tag_name: str):
        await call(service.remove_tag, request.state.user, base_of(request), superevent_id,
                   number, tag_name)
        return Response(status_code=204)

    @app.post(API + "superevents/{superevent_id}/confirm-as-gw/")
    async def confirm_as_gw(request: Request, superevent_id: str):
        body = await read_body(request, settings)
        return await call(service.confirm_as_gw, request.state.user, base_of(request),
                          superevent_id, body.get("gw_id") or None)

    @app.get(API + "superevents/{superevent_id}/signoffs/")
    async def signoffs(request: Request, superevent_id: str):
        return await call(service.signoffs, base_of(request), superevent_id)

    @app.get(API + "superevents/{superevent_id}/signoffs/{typeinst}/")
    async def signoff_detail(request: Request, superevent_id: str, typeinst: str):
        return await call(service.signoffs, base_of(request), superevent_id, typeinst)

    @app.post(API + "superevents/{superevent_id}/signoffs/")
    async def create_signoff(request: Request, superevent_id: str):
        body = await read_body(request, settings)
        result = await call(service.create_signoff, request.state.user, base_of(request),
                            superevent_id, body.flat())
        return JSONResponse(result, status_code=201)

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": reasons}, status_code=400)

    return app


def serve(settings: Settings) -> None:
    """Run the service on ``settings.host:settings.gracedb_port`` until stopped (blocking).

    Creates the pipeline's service account on first start, so that
    ``<state>/netrc`` exists for the clients of the stack.
    """
    import uvicorn
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_service_credentials(settings)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.gracedb_port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=5)
