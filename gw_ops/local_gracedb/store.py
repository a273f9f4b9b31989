"""Storage of the local GraceDB: database session, write lock, files, LVAlert outbox.

All changes go through :meth:`Store.write`, which serializes writers with one
lock, commits, and then publishes the change's LVAlert messages (see
:mod:`gw_ops.local_gracedb.outbox`).  Reads use their own sessions without the lock.

Files are private: the SQLite database is created 0600 in a 0700 folder (an older
one is tightened at start), the files folder is 0700 and every stored file 0600.
A stored file's path is resolved and must lie inside the files folder.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gw_ops.config import Settings
from gw_ops.local_gracedb.db import Log, Outbox, OutboxDeadLetter, create_tables, make_engine
from gw_ops.local_gracedb.errors import ApiError
from gw_ops.local_gracedb.outbox import AlertPublisher, PublishError
from gw_ops.transport.redis_client import dumps

log = logging.getLogger(__name__)


def _private_dir(path: Path) -> Path:
    """Create ``path`` if needed and make it owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _private_sqlite(path: Path) -> None:
    """Create the SQLite database file 0600 in a 0700 folder before SQLite opens it.

    SQLite gives its ``-wal`` and ``-shm`` files the database file's mode.  Files
    of an older state folder (0644) are tightened too.
    """
    _private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists():
            os.chmod(existing, 0o600)


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
        _private_dir(target.parent)
        os.replace(staged, target)
        self.placed_files.append(target)
        return version


class Store:
    """Database, files folder and LVAlert publisher of one service process."""

    def __init__(self, settings: Settings, publisher: AlertPublisher | None = None):
        self.settings = settings
        url = settings.gracedb_sql_url
        if url.startswith("sqlite:///"):
            _private_sqlite(Path(url[len("sqlite:///"):]))
        self.engine = make_engine(url)
        create_tables(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.files_root = _private_dir(settings.gracedb_files_path).resolve()
        self.staging = _private_dir(self.files_root / ".staging")
        self.publisher = publisher or AlertPublisher(settings)
        # one writer at a time: gives every stream its commit order and makes
        # id sequences race-free inside this process (unique constraints guard
        # against a second process on the same database)
        self.write_lock = threading.Lock()
        #: False after a transient publish failure, until the background retry succeeds.
        self.publishing = True

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading."""
        with self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Transaction]:
        """A transaction: commit on success, then publish its LVAlert messages.

        An exception inside rolls everything back (files moved into place are
        removed again) and publishes nothing.  A publish failure after the commit
        does not raise (see :meth:`_publish_committed`).
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
                self._publish_committed(session)

    def _publish_committed(self, session: Session) -> None:
        """Publish after a commit; a Redis outage leaves the messages to the background retry.

        The change is committed, so the request must not fail: a 500 here made
        retrying clients upload the same event twice.  While Redis is known to be
        failing, requests do not wait on it at all (only the retry loop does).
        """
        if not self.publishing:
            return
        try:
            self.publisher.drain(session)
        except PublishError as exc:
            self.publishing = False
            log.error("%s; the message waits in the outbox and is retried", exc)

    def drain_outbox(self) -> int:
        """Publish messages left over by an earlier failed publish (background retry).

        Raises
        ------
        PublishError
            While Redis still fails (the caller logs it and tries again later).
        """
        with self.write_lock, self.sessions() as session:
            sent = self.publisher.drain(session)
            self.publishing = True
            return sent

    def outbox_counts(self) -> dict[str, int]:
        """Messages waiting in the outbox and messages dead-lettered (for health checks)."""
        with self.sessions() as session:
            return {"pending": session.execute(select(func.count(Outbox.id))).scalar(),
                    "dead_letters": session.execute(
                        select(func.count(OutboxDeadLetter.id))).scalar()}

    def stage(self, content: bytes) -> Path:
        """Write upload bytes to a staging file (outside the write lock)."""
        path = self.staging / uuid.uuid4().hex
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(content)
        return path

    def file_path(self, object_id: str, filename: str, version: int) -> Path:
        """Where version ``version`` of a file of an object is stored.

        Raises
        ------
        ApiError
            400 when the path would leave ``<files>/<object_id>/`` (``..``, ``/``, NUL).
        """
        folder = self.files_root / object_id
        path = (folder / f"{filename},{version}").resolve()
        if "\x00" in object_id or "\x00" in filename or path.parent != folder.resolve() \
                or folder.resolve().parent != self.files_root:
            raise ApiError(400, f"Invalid file location {object_id!r}/{filename!r}")
        return path
