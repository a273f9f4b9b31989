"""What every section of the GraceDB service shares: JSON forms of the objects, lookups,
log messages and the LVAlert messages of a change."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from gw_ops.config import Settings
from gw_ops.formats.gpstime import gracedb_timestamp, utc_to_gps
from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.db import Event, Label, Log, Signoff, Superevent, Tag, VOEvent, utcnow
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.store import Store, Transaction

#: Event ids: one letter and the event's row number.
EVENT_ID = re.compile(r"^[GTMEH]\d+$")


def timestamp(value: dt.datetime) -> str:
    """GraceDB's text form of a stored time (naive times are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return gracedb_timestamp(value)


def event_nodes(event: Event) -> list[str]:
    """LVAlert nodes of an event: ``group_pipeline`` and ``group_pipeline_search``
    (lower case), as GraceDB publishes both."""
    base = f"{event.group}_{event.pipeline}".lower()
    return [base] + ([f"{base}_{event.search}".lower()] if event.search else [])


def superevent_node(superevent: Superevent) -> str:
    """LVAlert node of a superevent's category."""
    return C.SUPEREVENT_NODE[superevent.category]


def object_id_of(obj: Event | Superevent) -> str:
    """The id an event or superevent is stored under."""
    return obj.graceid if isinstance(obj, Event) else obj.superevent_id


def page_links(url: str, query, sort, start: int, count: int, total: int) -> dict:
    """``self``/``next``/``previous``/``first``/``last`` links of a listing page."""
    def page(offset: int) -> str:
        params = {k: v for k, v in (("query", query), ("sort", sort)) if v}
        params.update(start=offset, count=count)
        return f"{url}?{urlencode(params)}"
    return {"self": page(start),
            "next": page(start + count) if start + count < total else None,
            "previous": page(max(0, start - count)) if start > 0 else None,
            "first": page(0), "last": page(max(0, (total - 1) // count * count))}


class ServiceBase:
    """Serialisation and lookups on top of a :class:`Store`; ``base`` is the API root URL."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store

    # --- serialisation ------------------------------------------------------------
    @staticmethod
    def labels_of(session, object_id: str) -> list[Label]:
        return session.execute(select(Label).where(Label.object_id == object_id)
                               .order_by(Label.id)).scalars().all()

    def event_dict(self, session, event: Event, base: str) -> dict[str, Any]:
        url = f"{base}events/{event.graceid}"
        created = event.created if event.created.tzinfo else event.created.replace(
            tzinfo=dt.timezone.utc)
        return {
            "submitter": event.submitter, "created": timestamp(event.created),
            "group": event.group, "graceid": event.graceid, "pipeline": event.pipeline,
            "search": event.search, "gpstime": event.gpstime,
            "reporting_latency": (utc_to_gps(created) - event.gpstime
                                  if event.gpstime is not None else None),
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
        # members by id and group only: loading whole rows (their JSON extra_attributes)
        # made every superevent answer cost one row per member event
        members = session.execute(select(Event.graceid, Event.group).where(
            Event.superevent_id == sid).order_by(Event.id)).all()
        preferred = session.execute(select(Event).where(
            Event.graceid == superevent.preferred_event)).scalar_one_or_none()
        preferred_data = self.event_dict(session, preferred, base) if preferred else None
        return {
            "superevent_id": sid, "gw_id": superevent.gw_id,
            "category": C.SUPEREVENT_CATEGORIES[superevent.category],
            "created": timestamp(superevent.created), "submitter": superevent.submitter,
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

    @staticmethod
    def object_url(object_id: str, base: str) -> str:
        """URL of an object without trailing slash."""
        if EVENT_ID.match(object_id):
            return f"{base}events/{object_id}"
        return f"{base}superevents/{object_id}"

    def file_url(self, object_id: str, filename: str, base: str) -> str:
        return f"{self.object_url(object_id, base)}/files/{filename}"

    def log_dict(self, session, entry: Log, base: str) -> dict[str, Any]:
        is_event = bool(EVENT_ID.match(entry.object_id))
        url = (f"{base}events/{entry.object_id}/log/{entry.number}" if is_event
               else f"{base}superevents/{entry.object_id}/logs/{entry.number}/")
        tags = session.execute(select(Tag.name).where(Tag.log_id == entry.id)
                               .order_by(Tag.id)).scalars().all()
        return {
            "self": url, "N": entry.number, "comment": entry.comment,
            "created": timestamp(entry.created), "issuer": entry.issuer,
            "filename": entry.filename, "file_version": entry.file_version,
            "file": (self.file_url(entry.object_id, f"{entry.filename},{entry.file_version}", base)
                     if entry.filename else ""),
            "tag_names": list(tags),
            "links": {"self": url, "tags": url.rstrip("/") + ("/tag/" if is_event else "/tags/")},
        }

    def label_dict(self, label: Label, base: str) -> dict[str, Any]:
        suffix = "" if EVENT_ID.match(label.object_id) else "/"
        return {"name": label.name, "creator": label.creator, "created": timestamp(label.created),
                "self": f"{self.object_url(label.object_id, base)}/labels/{label.name}{suffix}"}

    def voevent_dict(self, entry: VOEvent, base: str) -> dict[str, Any]:
        return {"self": f"{self.object_url(entry.object_id, base)}/voevents/{entry.number}/",
                "N": entry.number, "ivorn": entry.ivorn, "voevent_type": entry.voevent_type,
                "filename": entry.filename, "file_version": entry.file_version,
                "file": self.file_url(entry.object_id, f"{entry.filename},{entry.file_version}", base),
                "created": timestamp(entry.created), "issuer": entry.issuer,
                **entry.attributes}

    @staticmethod
    def signoff_dict(signoff: Signoff, base: str) -> dict[str, Any]:
        return {"self": f"{base}superevents/{signoff.object_id}/signoffs/"
                        f"{signoff.signoff_type}{signoff.instrument}/",
                "submitter": signoff.submitter, "created": timestamp(signoff.created),
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
        if EVENT_ID.match(object_id):
            return self.get_event(session, object_id)
        return self.get_superevent(session, object_id)

    # --- changes ---------------------------------------------------------------------
    def object_alert(self, tx: Transaction, obj, base: str, alert_type: str, data: Any) -> None:
        """Queue an alert about ``obj`` (event or superevent) on its nodes."""
        tx.session.flush()
        if isinstance(obj, Event):
            tx.alert(event_nodes(obj), obj.graceid, alert_type, data,
                     self.event_dict(tx.session, obj, base))
        else:
            tx.alert([superevent_node(obj)], obj.superevent_id, alert_type, data,
                     self.superevent_dict(tx.session, obj, base))

    @staticmethod
    def add_log(tx: Transaction, obj, issuer: str, comment: str, filename: str = "",
                file_version: int | None = None) -> Log:
        """Append log message ``N`` (1, 2, ...) to an object."""
        obj.log_count = (obj.log_count or 0) + 1
        entry = Log(object_id=object_id_of(obj), number=obj.log_count, comment=comment,
                    issuer=issuer, filename=filename, file_version=file_version, created=utcnow())
        tx.session.add(entry)
        tx.session.flush()
        return entry
