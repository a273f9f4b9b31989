"""Operator and advocate signoffs of superevents."""
from __future__ import annotations

from sqlalchemy import select

from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.db import Signoff, utcnow
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.service.base import ServiceBase


class SignoffsSection(ServiceBase):
    """``/superevents/{id}/signoffs/``."""

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
            self.drop_label(tx, superevent, base, request_label, strict=False)
            self.apply_label(tx, superevent, base, f"{prefix}{status}", user, strict=False)
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
