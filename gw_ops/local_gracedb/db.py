"""Database tables of the local GraceDB (SQLAlchemy 2; SQLite or PostgreSQL).

Ids are derived from database rows: an event's number is its primary key (one
counter for all groups, as in GraceDB) and a superevent's letters come from
``(category, date, number)``, which is unique so that two writers can never
hand out the same id.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    """Current UTC time (aware)."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Base of the GraceDB tables."""


class Event(Base):
    """An event uploaded by a pipeline; ``graceid`` is the prefix letter plus ``id``."""

    __tablename__ = "event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    graceid: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    group: Mapped[str] = mapped_column(String(32))
    pipeline: Mapped[str] = mapped_column(String(64))
    search: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submitter: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    gpstime: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    far: Mapped[float | None] = mapped_column(Float, nullable=True)
    instruments: Mapped[str] = mapped_column(String(64), default="")
    nevents: Mapped[int | None] = mapped_column(Integer, nullable=True)
    likelihood: Mapped[float | None] = mapped_column(Float, nullable=True)
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    extra_attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    filename: Mapped[str] = mapped_column(String(256), default="")
    superevent_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    log_count: Mapped[int] = mapped_column(Integer, default=0)
    voevent_count: Mapped[int] = mapped_column(Integer, default=0)


class Superevent(Base):
    """A superevent; ``superevent_id`` is prefix + YYMMDD of ``t_0`` + letters of ``number``."""

    __tablename__ = "superevent"
    __table_args__ = (UniqueConstraint("category", "date", "number", name="superevent_sequence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    superevent_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    category: Mapped[str] = mapped_column(String(1))
    date: Mapped[str] = mapped_column(String(6))
    number: Mapped[int] = mapped_column(Integer)
    submitter: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    t_start: Mapped[float] = mapped_column(Float, index=True)
    t_0: Mapped[float] = mapped_column(Float, index=True)
    t_end: Mapped[float] = mapped_column(Float)
    preferred_event: Mapped[str] = mapped_column(String(32), index=True)
    is_gw: Mapped[bool] = mapped_column(Boolean, default=False)
    gw_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    em_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    time_coinc_far: Mapped[float | None] = mapped_column(Float, nullable=True)
    space_coinc_far: Mapped[float | None] = mapped_column(Float, nullable=True)
    log_count: Mapped[int] = mapped_column(Integer, default=0)
    voevent_count: Mapped[int] = mapped_column(Integer, default=0)


class Label(Base):
    """A label applied to an event or superevent (``object_id`` is the graceid/superevent id)."""

    __tablename__ = "label"
    __table_args__ = (UniqueConstraint("object_id", "name", name="one_label_per_object"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    creator: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Log(Base):
    """A log message (possibly with a file) of an event or superevent, numbered ``N`` per object."""

    __tablename__ = "log"
    __table_args__ = (UniqueConstraint("object_id", "number", name="log_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    issuer: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    filename: Mapped[str] = mapped_column(String(256), default="")
    file_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Tag(Base):
    """A tag on a log message."""

    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("log_id", "name", name="one_tag_per_log"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    log_id: Mapped[int] = mapped_column(ForeignKey("log.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(128), default="")


class VOEvent(Base):
    """A VOEvent generated for an event or superevent, numbered ``N`` per object."""

    __tablename__ = "voevent"
    __table_args__ = (UniqueConstraint("object_id", "number", name="voevent_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    voevent_type: Mapped[str] = mapped_column(String(4))
    ivorn: Mapped[str] = mapped_column(String(256))
    filename: Mapped[str] = mapped_column(String(256))
    file_version: Mapped[int] = mapped_column(Integer)
    issuer: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Signoff(Base):
    """An operator or advocate signoff of a superevent."""

    __tablename__ = "signoff"
    __table_args__ = (UniqueConstraint("object_id", "signoff_type", "instrument",
                                       name="one_signoff_per_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(32), index=True)
    signoff_type: Mapped[str] = mapped_column(String(4))
    instrument: Mapped[str] = mapped_column(String(4), default="")
    status: Mapped[str] = mapped_column(String(4))
    comment: Mapped[str] = mapped_column(Text, default="")
    submitter: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Outbox(Base):
    """LVAlert messages written in the same transaction as the change they announce.

    A row is deleted once the message is on its Redis stream, so a message whose
    publication failed is still here and is sent (in order) by the next writer
    or the background retry.
    """

    __tablename__ = "lvalert_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)


class Exposure(Base):
    """A superevent exposed to the public (GraceDB's ``expose`` permission change)."""

    __tablename__ = "exposure"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    exposed_by: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxDeadLetter(Base):
    """An LVAlert message that could not be published (too large, refused by Redis), with why.

    It left the outbox, so it blocks no later message; it is kept whole here.
    """

    __tablename__ = "lvalert_dead_letter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def make_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite gets WAL mode and a busy timeout for concurrent readers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # noqa: ANN001 - SQLAlchemy hook
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def create_tables(engine: Engine) -> None:
    """Create the tables that do not exist yet."""
    Base.metadata.create_all(engine)
