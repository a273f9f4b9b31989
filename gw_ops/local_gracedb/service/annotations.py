"""Log messages, files and tags of events and superevents."""
from __future__ import annotations

import mimetypes
import re

from fastapi.responses import FileResponse
from sqlalchemy import delete, exists, func, select

from gw_ops.local_gracedb.db import Log, Tag
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.permissions import PUBLIC_TAG
from gw_ops.local_gracedb.service.base import ServiceBase, object_id_of

#: SQL condition: the log message carries the ``public`` tag.
PUBLIC_LOG = exists(select(Tag.id).where(Tag.log_id == Log.id, Tag.name == PUBLIC_TAG))


def media_type(filename: str) -> str:
    """Content type a stored file is served with."""
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class AnnotationsSection(ServiceBase):
    """``/log/``, ``/files/`` and ``/tag(s)/`` of events and superevents."""

    def write_log(self, user: str, base: str, object_id: str, comment: str, tags: list[str],
                  display_names: list[str], label: str | None,
                  upload: tuple[str, bytes] | None) -> dict:
        staged = self.store.stage(upload[1]) if upload else None
        try:
            with self.store.write() as tx:
                obj = self.get_object(tx.session, object_id)
                object_id = object_id_of(obj)  # a gw_id in the URL names it too
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
                    self.apply_label(tx, obj, base, label, user, strict=False)
            return result
        finally:
            if staged:
                staged.unlink(missing_ok=True)

    def logs(self, base: str, object_id: str, number: int | None = None,
             public_only: bool = False) -> dict:
        """Log messages (or message ``number``); ``public_only``: those tagged ``public``."""
        with self.store.read() as session:
            object_id = object_id_of(self.get_object(session, object_id))
            statement = select(Log).where(Log.object_id == object_id).order_by(Log.number)
            if public_only:
                statement = statement.where(PUBLIC_LOG)
            if number is not None:
                entry = session.execute(statement.where(Log.number == number)).scalar_one_or_none()
                if entry is None:
                    raise ApiError(404, f"Log message {number} of {object_id} does not exist")
                return self.log_dict(session, entry, base)
            entries = [self.log_dict(session, e, base) for e in session.execute(statement).scalars()]
        return {"numRows": len(entries), "log": entries,
                "links": {"self": f"{self.object_url(object_id, base)}/log/"}}

    def files(self, base: str, object_id: str, public_only: bool = False) -> dict:
        """Links of every file version; ``public_only``: those of ``public`` log messages."""
        with self.store.read() as session:
            object_id = object_id_of(self.get_object(session, object_id))
            statement = select(Log.filename, Log.file_version).where(
                Log.object_id == object_id, Log.filename != "").order_by(Log.id)
            rows = session.execute(statement.where(PUBLIC_LOG) if public_only else statement).all()
        listing: dict[str, str] = {}
        for filename, version in rows:
            listing[f"{filename},{version}"] = self.file_url(object_id, f"{filename},{version}", base)
            listing[filename] = self.file_url(object_id, filename, base)
        return listing

    def file_response(self, object_id: str, name: str, public_only: bool = False) -> FileResponse:
        """The stored file ``name`` (``file`` or ``file,version``); 404 when unknown."""
        with self.store.read() as session:
            object_id = object_id_of(self.get_object(session, object_id))
            filename, version = name, None
            match = re.match(r"^(.*),(\d+)$", name)
            if match:
                filename, version = match.group(1), int(match.group(2))
            if version is None:
                version = session.execute(select(func.max(Log.file_version)).where(
                    Log.object_id == object_id, Log.filename == filename)).scalar()
            statement = select(Log.id).where(Log.object_id == object_id, Log.filename == filename,
                                             Log.file_version == version)
            if public_only:
                statement = statement.where(PUBLIC_LOG)
            known = version is not None and session.execute(statement).first() is not None
        path = self.store.file_path(object_id, filename, version) if known else None
        if path is None or not path.exists():
            raise ApiError(404, f"File {name} of {object_id} does not exist")
        return FileResponse(path, filename=filename, media_type=media_type(filename))

    def get_log(self, session, object_id: str, number: int) -> Log:
        entry = session.execute(select(Log).where(Log.object_id == object_id,
                                                  Log.number == number)).scalar_one_or_none()
        if entry is None:
            raise ApiError(404, f"Log message {number} of {object_id} does not exist")
        return entry

    def tags(self, base: str, object_id: str, number: int) -> dict:
        with self.store.read() as session:
            object_id = object_id_of(self.get_object(session, object_id))
            entry = self.get_log(session, object_id, number)
            rows = session.execute(select(Tag).where(Tag.log_id == entry.id).order_by(Tag.id)).scalars()
            return {"tags": [{"name": t.name, "displayName": t.display_name} for t in rows]}

    def add_tag(self, user: str, base: str, object_id: str, number: int, name: str,
                display_name: str | None) -> dict:
        if not name or not re.fullmatch(r"[\w.\-]+", name):
            raise ApiError(400, f"name: invalid tag name {name!r}")
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            object_id = object_id_of(obj)  # a gw_id in the URL names it too
            entry = self.get_log(tx.session, object_id, number)
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
            object_id = object_id_of(obj)  # a gw_id in the URL names it too
            entry = self.get_log(tx.session, object_id, number)
            removed = tx.session.execute(delete(Tag).where(Tag.log_id == entry.id, Tag.name == name))
            if not removed.rowcount:
                raise ApiError(404, f"Tag {name} is not applied to log message {number}")
            result = self.log_dict(tx.session, entry, base)
            self.object_alert(tx, obj, base, "log", result)
