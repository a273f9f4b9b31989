"""Storage of the local GraceDB: database session, write lock, files, LVAlert outbox.

All changes go through :meth:`Store.write`, which serializes writers with one
lock, commits, and then publishes the change's LVAlert messages (see
:mod:`gw_ops.local_gracedb.outbox`).  Reads use their own sessions without the lock.
"""
from __future__ import annotations

import contextlib
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gw_ops.config import Settings
from gw_ops.local_gracedb.db import Log, Outbox, create_tables, make_engine
from gw_ops.local_gracedb.outbox import AlertPublisher
from gw_ops.transport.redis_client import dumps


class Transaction:
    """One write: a database session plus the LVAlert messages it will publish."""

    def __init__(self, session: Session, store: Store):
        self.session = session
        self.store = store
        self.placed_files: list[Path] = []

    def alert(self, nodes: list[str], uid: str, alert_type: str, data: Any, obj: Any) -> None:
        """Queue ``{"uid","alert_type","data","object"}`` for each node (sent after commit)."""
        payload = dumps({"uid": uid, "alert_type": alert_type, "data": data, "object": obj})
        for node in nodes:
            self.session.add(Outbox(node=node, payload=payload))

    def place_file(self, staged: Path, object_id: str, filename: str) -> int:
        """Move a staged upload to ``<files>/<object_id>/<filename>,<version>``; return the version.

        The version is one more than the newest stored for that name (0 for the first).
        """
        newest = self.session.execute(
            select(func.max(Log.file_version)).where(Log.object_id == object_id,
                                                     Log.filename == filename)).scalar()
        version = 0 if newest is None else newest + 1
        target = self.store.file_path(object_id, filename, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        self.placed_files.append(target)
        return version


class Store:
    """Database, files folder and LVAlert publisher of one service process."""

    def __init__(self, settings: Settings, publisher: AlertPublisher | None = None):
        self.settings = settings
        url = settings.gracedb_sql_url
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        create_tables(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.files_root = settings.gracedb_files_path
        self.files_root.mkdir(parents=True, exist_ok=True)
        self.staging = self.files_root / ".staging"
        self.staging.mkdir(exist_ok=True)
        self.publisher = publisher or AlertPublisher(settings)
        # one writer at a time: gives every stream its commit order and makes
        # id sequences race-free inside this process (unique constraints guard
        # against a second process on the same database)
        self.write_lock = threading.Lock()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading."""
        with self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Transaction]:
        """A transaction: commit on success, then publish its LVAlert messages.

        An exception inside rolls everything back (files moved into place are
        removed again) and publishes nothing.
        """
        with self.write_lock:
            with self.sessions() as session:
                transaction = Transaction(session, self)
                try:
                    yield transaction
                    session.commit()
                except BaseException:
                    session.rollback()
                    for path in transaction.placed_files:
                        path.unlink(missing_ok=True)
                    raise
                self.publisher.drain(session)

    def drain_outbox(self) -> int:
        """Publish messages left over by an earlier failed publish (background retry)."""
        with self.write_lock, self.sessions() as session:
            return self.publisher.drain(session)

    def stage(self, content: bytes) -> Path:
        """Write upload bytes to a staging file (outside the write lock)."""
        path = self.staging / uuid.uuid4().hex
        with open(path, "wb") as handle:
            handle.write(content)
        return path

    def file_path(self, object_id: str, filename: str, version: int) -> Path:
        """Where version ``version`` of a file of an object is stored."""
        return self.files_root / object_id / f"{filename},{version}"
