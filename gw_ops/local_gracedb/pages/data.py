"""What the web pages show, read in one transaction per page, every list bounded.

Anonymous readers get what the API gives them (see
:mod:`gw_ops.local_gracedb.permissions`): exposed superevents with their labels,
VOEvents and ``public`` log messages and files; no events, no signoffs.  The request
gate already answers 404 for a hidden superevent's page; the checks here hold on their
own as well, so that a page never shows what the API would hide.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from gw_ops.formats.alert_content import ivorn
from gw_ops.local_gracedb.db import Event, Log, Signoff, VOEvent
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.service import GraceDbService
from gw_ops.local_gracedb.service.annotations import PUBLIC_LOG
from gw_ops.local_gracedb.service.base import EVENT_ID, timestamp
from gw_ops.vocabulary import EXTERNAL_GROUP

#: Superevents (and external events) per page of the home page.
LIST_PAGE = 50
#: Newest log messages shown on one page (the API has them all).
LOG_PAGE = 200
#: Newest VOEvents, files and member events shown on one page.
ITEM_PAGE = 100
#: File names shown inline as images in the log.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")


def is_image(filename: str) -> bool:
    """Whether a log message's file is shown inline as an image."""
    return filename.lower().endswith(IMAGE_SUFFIXES)


class PageData:
    """Builds the context of each page from the service's store; ``base`` is the API root."""

    def __init__(self, service: GraceDbService):
        self.service = service

    # --- home -------------------------------------------------------------------------
    def home(self, base: str, start: int, anonymous: bool) -> dict[str, Any]:
        """Newest superevents (page at ``start``) and newest external events."""
        superevents = self.service.list_superevents(base, None, start, LIST_PAGE, "-created",
                                                    public_only=anonymous)
        externals = {"events": [], "numRows": 0}
        if not anonymous:  # events are never public
            externals = self.service.list_events(base, f"group: {EXTERNAL_GROUP}", 0, LIST_PAGE,
                                                 "-created")
        return {"superevents": superevents["superevents"], "superevent_total": superevents["numRows"],
                "start": start, "page_size": LIST_PAGE,
                "externals": externals["events"], "external_total": externals["numRows"]}

    # --- superevent and event pages -----------------------------------------------------
    def superevent(self, base: str, superevent_id: str, anonymous: bool) -> dict[str, Any]:
        """Everything the superevent page shows (404 for anonymous readers of a hidden one)."""
        service = self.service
        with service.store.read() as session:
            superevent = service.get_superevent(session, superevent_id)
            sid = superevent.superevent_id
            exposed = service.exposed(session, sid)
            if anonymous and not exposed:
                raise ApiError(404, "Not found.")
            members = session.execute(select(Event).where(Event.superevent_id == sid)
                                      .order_by(Event.id).limit(ITEM_PAGE)).scalars().all()
            signoffs = [] if anonymous else [
                service.signoff_dict(s, base) for s in session.execute(
                    select(Signoff).where(Signoff.object_id == sid).order_by(Signoff.id)).scalars()]
            return {"superevent": service.superevent_dict(session, superevent, base),
                    "exposed": exposed, "signoffs": signoffs,
                    "members": [self._member(e) for e in members],
                    **self._annotations(session, sid, base, anonymous)}

    def event(self, base: str, graceid: str) -> dict[str, Any]:
        """Everything the event page shows (events are never public: callers are logged in)."""
        service = self.service
        if not EVENT_ID.match(graceid):
            raise ApiError(404, f"Event {graceid} does not exist")
        with service.store.read() as session:
            event = service.get_event(session, graceid)
            return {"event": service.event_dict(session, event, base),
                    **self._annotations(session, event.graceid, base, anonymous=False)}

    @staticmethod
    def _member(event: Event) -> dict[str, Any]:
        return {"graceid": event.graceid, "group": event.group, "pipeline": event.pipeline,
                "search": event.search, "far": event.far, "gpstime": event.gpstime,
                "instruments": event.instruments}

    def _annotations(self, session, object_id: str, base: str, anonymous: bool) -> dict[str, Any]:
        """Labels, newest log messages (images marked), files and VOEvents of one object."""
        service = self.service
        logs = select(Log).where(Log.object_id == object_id)
        counted = select(func.count(Log.id)).where(Log.object_id == object_id)
        if anonymous:
            logs, counted = logs.where(PUBLIC_LOG), counted.where(PUBLIC_LOG)
        log_total = session.execute(counted).scalar()
        entries = session.execute(logs.order_by(Log.number.desc()).limit(LOG_PAGE)).scalars().all()
        log = []
        for entry in reversed(entries):
            item = service.log_dict(session, entry, base)
            item["is_image"] = bool(entry.filename) and is_image(entry.filename)
            log.append(item)
        # files: the newest version of each name, from the log messages that carry them
        file_rows = session.execute(
            (logs.where(Log.filename != "") if anonymous else
             select(Log).where(Log.object_id == object_id, Log.filename != ""))
            .order_by(Log.id.desc()).limit(ITEM_PAGE * 4)).scalars().all()
        files: dict[str, dict[str, Any]] = {}
        readable_versions = set()
        for row in file_rows:
            readable_versions.add((row.filename, row.file_version))
            if row.filename not in files:
                files[row.filename] = {
                    "name": row.filename, "version": row.file_version,
                    "url": service.file_url(object_id, f"{row.filename},{row.file_version}", base)}
        voevents = []
        rows = session.execute(select(VOEvent).where(VOEvent.object_id == object_id)
                               .order_by(VOEvent.number.desc()).limit(ITEM_PAGE)).scalars().all()
        for row in reversed(rows):
            item = service.voevent_dict(row, base)
            # anonymous readers may fetch only the public files
            item["readable"] = (row.filename, row.file_version) in readable_versions or not anonymous
            voevents.append(item)
        voevents.extend(_notices_in_log(session, service, object_id, logs,
                                        {v["filename"] for v in voevents}, base))
        labels = [service.label_dict(label, base) for label in service.labels_of(session, object_id)]
        return {"object_id": object_id, "labels": labels, "log": log, "log_total": log_total, "log_page": LOG_PAGE,
                "files": sorted(files.values(), key=lambda f: f["name"])[:ITEM_PAGE],
                "voevents": voevents}


def _notices_in_log(session, service: GraceDbService, object_id: str, logs, listed: set[str],
                    base: str) -> list[dict[str, Any]]:
    """Notices a pipeline built itself and recorded as a log file, in the VOEvent table's form.

    gw-ops' alert sender builds and validates each VOEvent itself (it does not wait for
    GraceDB's createVOEvent, a round trip on the latency path) and uploads the sent file as
    ``<superevent>-<serial>-<Type>.xml``; without this an operator would read "No alerts
    sent" above a log full of them.  ``logs`` is the page's log query (public messages only
    for anonymous readers).
    """
    name = re.compile(rf"^{re.escape(object_id)}-(\d+)-([A-Za-z]+)\.xml$")
    rows = session.execute(logs.where(Log.filename.like(f"{object_id}-%.xml"), Log.file_version == 0)
                           .order_by(Log.number).limit(ITEM_PAGE)).scalars().all()
    notices = []
    for row in rows:
        match = name.match(row.filename)
        if match is None or row.filename in listed:
            continue
        serial, alert_type = int(match.group(1)), match.group(2)
        notices.append({"N": serial, "voevent_type": alert_type, "ivorn": ivorn(object_id, serial, alert_type),
                        "filename": row.filename, "readable": True, "issuer": row.issuer,
                        "created": timestamp(row.created),
                        "file": service.file_url(object_id, f"{row.filename},{row.file_version}", base)})
    return notices
