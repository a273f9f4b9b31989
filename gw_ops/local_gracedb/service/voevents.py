"""VOEvents of events and superevents, built by the shared VOEvent builder."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from gw_ops.local_gracedb import constants as C
from gw_ops.local_gracedb.db import Log, Superevent, VOEvent, utcnow
from gw_ops.local_gracedb.errors import ApiError, parse_bool, parse_float
from gw_ops.local_gracedb.service.base import ServiceBase, object_id_of
from gw_ops.local_gracedb.voevent import ALERT_TYPE_OF_CODE, build_voevent, ivorn_for

#: Form fields passed on to the VOEvent builder.
VOEVENT_OPTIONS = ("internal", "open_alert", "hardware_inj", "CoincComment", "raven_coinc",
                   "skymap_type", "ProbHasNS", "ProbHasRemnant", "BNS", "NSBH", "BBH",
                   "Terrestrial", "HasMassGap")


class VOEventsSection(ServiceBase):
    """``/voevent(s)/`` of events and superevents."""

    def create_voevent(self, user: str, base: str, object_id: str, form: dict) -> dict:
        voevent_type = form.get("voevent_type") or ""
        if voevent_type not in C.VOEVENT_TYPES:
            raise ApiError(400, f"voevent_type: \"{voevent_type}\" is not a valid choice.")
        skymap = form.get("skymap_filename")
        if voevent_type == "IN" and not skymap:
            raise ApiError(400, "skymap_filename is required for initial VOEvents")
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            object_id = object_id_of(obj)  # a gw_id in the URL names it too
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
            kind = ALERT_TYPE_OF_CODE[voevent_type]  # file name and IVORN agree: EarlyWarning
            filename = f"{object_id}-{number}-{kind}.xml"
            options = {key: form.get(key) for key in VOEVENT_OPTIONS if form.get(key) is not None}
            # the VOEvent's links are for its subscribers: the public root when one is set
            public = self.settings.gracedb_public_api_url if self.settings.gracedb_public_url else base
            xml = build_voevent(
                object_id=object_id, number=number, voevent_type=voevent_type, t_0=t_0,
                event_page=f"{public.rsplit('/api/', 1)[0]}/superevents/{object_id}/view/",
                far=preferred.far, instruments=preferred.instruments, group=preferred.group,
                pipeline=preferred.pipeline, search=preferred.search or "",
                options=options,
                skymap_url=self.file_url(object_id, skymap, public) if skymap else None,
                created_iso=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                role=role)
            version = tx.place_file(self.store.stage(xml), object_id, filename)
            self.add_log(tx, obj, user, f"New VOEvent: {filename}", filename, version)
            entry = VOEvent(object_id=object_id, number=number, voevent_type=voevent_type,
                            ivorn=ivorn_for(object_id, number, voevent_type), filename=filename,
                            file_version=version, issuer=user, created=utcnow(),
                            attributes={"skymap_type": form.get("skymap_type"),
                                        "skymap_filename": skymap,
                                        "internal": parse_bool(form.get("internal", True)),
                                        "open_alert": parse_bool(form.get("open_alert", False)),
                                        "hardware_inj": parse_bool(form.get("hardware_inj", False)),
                                        "coinc_comment": parse_bool(form.get("CoincComment", False)),
                                        "prob_has_ns": parse_float(form, "ProbHasNS", False),
                                        "prob_has_remnant": parse_float(form, "ProbHasRemnant", False),
                                        "prob_bns": parse_float(form, "BNS", False),
                                        "prob_nsbh": parse_float(form, "NSBH", False),
                                        "prob_bbh": parse_float(form, "BBH", False),
                                        "prob_terrestrial": parse_float(form, "Terrestrial", False),
                                        "prob_has_mass_gap": parse_float(form, "HasMassGap", False)})
            tx.session.add(entry)
            tx.session.flush()
            result = self.voevent_dict(entry, base)
            self.object_alert(tx, obj, base, "voevent", result)
        return result

    def voevents(self, base: str, object_id: str, number: int | None = None) -> dict:
        with self.store.read() as session:
            object_id = object_id_of(self.get_object(session, object_id))
            statement = select(VOEvent).where(VOEvent.object_id == object_id).order_by(VOEvent.number)
            entries = session.execute(statement).scalars().all()
        if number is not None:
            match = [e for e in entries if e.number == number]
            if not match:
                raise ApiError(404, f"VOEvent {number} of {object_id} does not exist")
            return self.voevent_dict(match[0], base)
        return {"voevents": [self.voevent_dict(e, base) for e in entries], "numRows": len(entries)}
