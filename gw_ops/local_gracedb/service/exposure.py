"""Public visibility of superevents: GraceDB's expose/hide and what anonymous callers see."""
from __future__ import annotations

from sqlalchemy import delete, select

from gw_ops.local_gracedb.db import Exposure, utcnow
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.service.base import EVENT_ID, ServiceBase

#: What ``permissions/`` lists for an exposed superevent (GraceDB's public group).
PUBLIC_PERMISSIONS = [{"group": "public_users", "permission": "view_superevent"}]


class ExposureSection(ServiceBase):
    """``/superevents/{id}/permissions/`` and the public-read checks."""

    @staticmethod
    def exposed(session, superevent_id: str) -> bool:
        return session.execute(select(Exposure.id).where(
            Exposure.object_id == superevent_id)).first() is not None

    def readable_anonymously(self, object_id: str) -> bool:
        """Whether ``object_id`` is an exposed superevent (events are never public)."""
        if EVENT_ID.match(object_id):
            return False
        with self.store.read() as session:
            try:
                superevent = self.get_superevent(session, object_id)
            except ApiError:
                return False
            return self.exposed(session, superevent.superevent_id)

    def permissions(self, base: str, superevent_id: str) -> dict:
        with self.store.read() as session:
            superevent = self.get_superevent(session, superevent_id)
            public = self.exposed(session, superevent.superevent_id)
        return {"permissions": PUBLIC_PERMISSIONS if public else []}

    def modify_permissions(self, user: str, base: str, superevent_id: str, action: str) -> list:
        if action not in ("expose", "hide"):
            raise ApiError(400, f"action: \"{action}\" is not a valid choice.")
        with self.store.write() as tx:
            superevent = self.get_superevent(tx.session, superevent_id)
            sid = superevent.superevent_id
            public = self.exposed(tx.session, sid)
            if action == "expose" and not public:
                tx.session.add(Exposure(object_id=sid, exposed_by=user, created=utcnow()))
                self.add_log(tx, superevent, user, "Exposed superevent to public")
            elif action == "hide" and public:
                tx.session.execute(delete(Exposure).where(Exposure.object_id == sid))
                self.add_log(tx, superevent, user, "Hid superevent from public")
        return PUBLIC_PERMISSIONS if action == "expose" else []
