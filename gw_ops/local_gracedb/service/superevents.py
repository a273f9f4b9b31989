"""Superevents: creation with race-free ids, updates, members, listing, confirmation as GW."""
from __future__ import annotations

import logging
import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gw_ops.formats.gpstime import gps_to_utc
from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.db import Event, Exposure, Label, Superevent, utcnow
from gw_ops.local_gracedb.errors import (
    ApiError,
    category_code,
    check_gps,
    check_label,
    check_rate,
    parse_float,
)
from gw_ops.local_gracedb.query import QueryError, superevent_filters
from gw_ops.local_gracedb.service.base import ServiceBase, page_links, superevent_node

log = logging.getLogger(__name__)

#: A GW name: category prefix, ``GW``, the date and a valid time of day.
GW_ID = re.compile(r"(?P<prefix>[MT]?)GW(?P<date>\d{6})_(?:[01]\d|2[0-3])[0-5]\d[0-5]\d")
#: Tries of a superevent creation that lost an id race to another process.
SUPEREVENT_ID_ATTEMPTS = 10


class SupereventsSection(ServiceBase):
    """``/superevents/``: create, update, members, read, list, confirm as GW."""

    def check_member(self, session, graceid: str, category: str,
                     superevent_id: str | None) -> Event:
        """The event ``graceid`` if it may join a superevent of ``category``; 400 otherwise."""
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
        t_start, t_0, t_end = (check_gps(key, parse_float(form, key))
                               for key in ("t_start", "t_0", "t_end"))
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
                    members = [self.check_member(session, g, category, None)
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
        changes = {key: parse_float(form, key, required=False)
                   for key in ("t_start", "t_0", "t_end", "time_coinc_far", "space_coinc_far")}
        changes = {key: value for key, value in changes.items() if value is not None}
        for key in ("t_start", "t_0", "t_end"):
            check_gps(key, changes.get(key))
        for key in ("time_coinc_far", "space_coinc_far"):
            check_rate(key, changes.get(key))
        if form.get("em_type"):
            changes["em_type"] = form["em_type"]
        preferred = form.get("preferred_event")
        if not changes and not preferred:
            raise ApiError(400, "Provide at least one of t_start, t_0, t_end, preferred_event, "
                                "em_type, time_coinc_far, space_coinc_far")
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            if preferred and preferred != superevent.preferred_event:
                event = self.check_member(tx.session, preferred, superevent.category,
                                          superevent.superevent_id)
                if event.group == "External":
                    raise ApiError(400, "preferred_event: an external event cannot be preferred")
                event.superevent_id = superevent.superevent_id
                changes["preferred_event"] = preferred
            if "em_type" in changes:
                self.check_member(tx.session, changes["em_type"], superevent.category,
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
            event = self.check_member(tx.session, graceid, superevent.category,
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

    def superevent(self, base: str, superevent_id: str) -> dict:
        with self.store.read() as session:
            return self.superevent_dict(session, self.get_superevent(session, superevent_id), base)

    def superevent_events(self, base: str, superevent_id: str) -> dict:
        with self.store.read() as session:
            superevent = self.get_superevent(session, superevent_id)
            ids = session.execute(select(Event.graceid).where(
                Event.superevent_id == superevent.superevent_id).order_by(Event.id)).scalars().all()
        return {"events": [{"graceid": g, "self": f"{base}superevents/{superevent_id}/events/{g}/"}
                           for g in ids], "numRows": len(ids)}

    def list_superevents(self, base: str, query: str | None, start: int, count: int,
                         sort: str | None, public_only: bool = False) -> dict:
        """A page of superevents matching ``query``; ``public_only``: the exposed ones."""
        try:
            clauses = superevent_filters(query)
        except QueryError as exc:
            raise ApiError(400, f"Invalid query: {exc}") from None
        if public_only:
            clauses.append(Superevent.superevent_id.in_(select(Exposure.object_id)))
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
                "links": page_links(f"{base}superevents/", query, sort, start, count, total)}

    def confirm_as_gw(self, user: str, base: str, superevent_id: str, gw_id: str | None) -> dict:
        """Mark a superevent as a GW with ``gw_id`` (default: from its ``t_0``).

        A given ``gw_id`` must be the GW form of the superevent's own date,
        ``[M|T]GWYYMMDD_HHMMSS``, and unused: any other text once wrote files outside
        the files folder (``..``) or made two superevents answer to one id.
        """
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            if superevent.is_gw:
                raise ApiError(400, f"Superevent {superevent_id} is already confirmed as a GW")
            prefix = {"P": "", "M": "M", "T": "T"}[superevent.category]
            when = gps_to_utc(superevent.t_0)
            gw_id = gw_id or f"{prefix}GW{when:%y%m%d_%H%M%S}"
            match = GW_ID.fullmatch(gw_id)
            if not match or match.group("prefix") != prefix or match.group("date") != superevent.date:
                raise ApiError(400, f"gw_id: \"{gw_id}\" is not {prefix}GW{superevent.date}_HHMMSS "
                                    f"(the GW form of {superevent.superevent_id})")
            if tx.session.execute(select(Superevent.id).where(
                    Superevent.gw_id == gw_id)).first() is not None:
                raise ApiError(400, f"gw_id: \"{gw_id}\" is already taken")
            superevent.gw_id = gw_id
            superevent.is_gw = True
            self.add_log(tx, superevent, user, f"Confirmed as GW: {superevent.gw_id}")
            tx.session.flush()
            result = self.superevent_dict(tx.session, superevent, base)
            tx.alert([superevent_node(superevent)], superevent.superevent_id, "confirmed_as_gw",
                     result, result)
        return result
