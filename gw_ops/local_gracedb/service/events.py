"""Events: upload, replacement and listing."""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy import false, func, select

from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.db import Event, Label, utcnow
from gw_ops.local_gracedb.errors import ApiError, check_gps, check_rate
from gw_ops.local_gracedb.parsing import EventData, parse_event_file
from gw_ops.local_gracedb.query import QueryError, event_filters
from gw_ops.local_gracedb.service.base import ServiceBase, event_nodes, page_links


def _finite_everywhere(value: Any, where: str) -> None:
    """400 naming the first NaN or infinity in nested attributes (JSON cannot carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(400, f"Problem reading the event file: {where} is {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_everywhere(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _finite_everywhere(item, f"{where}[{index}]")


def check_event_data(data: EventData) -> EventData:
    """Refuse event files whose time, FAR or attributes no alert can be made from.

    The time must lie between :data:`~gw_ops.local_gracedb.errors.GPS_MIN_S` and
    :data:`~gw_ops.local_gracedb.errors.GPS_MAX_S`; the FAR must be finite and
    non-negative (a FAR of -1 became the preferred event); no attribute may be NaN
    or infinite (a FAR of NaN gave a 500 on every read).
    """
    if data.gpstime is None:
        raise ApiError(400, "Problem reading the event file: it gives no event time")
    check_gps("gpstime (end_time)", data.gpstime)
    check_rate("far", data.far)
    _finite_everywhere({"likelihood": data.likelihood, **data.extra_attributes}, "event")
    return data


class EventsSection(ServiceBase):
    """``/events/``: create, replace, read and list events."""

    def create_event(self, user: str, base: str, group: str, pipeline: str, search: str | None,
                     offline: bool, labels: list[str], filename: str, content: bytes) -> dict:
        data = check_event_data(parse_event_file(group, pipeline, content))
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
        data = check_event_data(parse_event_file(current.group, current.pipeline, content))
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

    def event(self, base: str, graceid: str) -> dict:
        with self.store.read() as session:
            return self.event_dict(session, self.get_event(session, graceid), base)

    def list_events(self, base: str, query: str | None, start: int, count: int,
                    sort: str | None, public_only: bool = False) -> dict:
        """A page of events matching ``query``; none when ``public_only`` (events are internal)."""
        try:
            clauses = event_filters(query)
        except QueryError as exc:
            raise ApiError(400, f"Invalid query: {exc}") from None
        if public_only:
            clauses.append(false())
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
                "links": page_links(f"{base}events/", query, sort, start, count, total)}
