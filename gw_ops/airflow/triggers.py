"""Triggers of the Airflow triggerer: the long-lived listeners of gw-ops.

:class:`StreamDoorbellTrigger`
    Watches Redis streams for one consumer group and fires (an asset event, hence a DAG
    run) when the group has work: new entries, or entries delivered long ago and never
    acknowledged.  It reads nothing on the group's behalf, so nothing is lost when the
    triggerer dies or when Airflow folds several asset events into one run; see
    :mod:`gw_ops.transport.streams` for the whole delivery design.
:class:`GcnListenerTrigger`
    Holds the VOEvent Transport Protocol connection to the GCN servers, appends every
    notice to the durable ``gcn:incoming`` stream *before* acknowledging it to the
    server, and fires once per notice.
:class:`StreamMatchTrigger`
    Fires once when a matching LVAlert message or GCN notice appears after given stream
    ids: the deferrable half of the LVAlert and GCN sensors.
:class:`DueActionTrigger`
    Fires when a delayed action (e.g. the second preliminary alert) falls due.
:class:`AlertRecordTrigger`, :class:`LocalizationRecordTrigger`, :class:`AnnotationsTrigger`
    Fire once when a superevent's first Preliminary was sent, when its preferred event
    was localized, when its annotations are on it: the deferred waits of the superevent
    run's tasks.

All take only JSON-serialisable arguments; settings come from the ``GW_OPS_*``
environment of the triggerer, like everything else.  None of them dies when Redis
restarts or drops its connection: each retries with backoff (:class:`RedisBackoff`, capped
at ``redis_retry_cap_s``) and carries on from where it was; only an unexpected exception
(a bug) ends a trigger.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from gw_ops.transport.streams import _text

log = logging.getLogger(__name__)


def _settings():
    from gw_ops.config import get_settings
    return get_settings()


class RedisBackoff:
    """Waits between attempts of a trigger to reach Redis again, and the outage's log lines.

    The first wait is 0.5 s; each failed attempt doubles it, up to ``cap_s`` (setting
    ``redis_retry_cap_s``).  The first failure of an outage is logged as an error, the
    others as warnings, and the end of the outage with its length.

    Parameters
    ----------
    what : str
        Who waits, for the log (e.g. ``"doorbell gw_ops_superevents"``).
    cap_s : float
        Longest wait (s).
    """

    FIRST_WAIT_S = 0.5

    def __init__(self, what: str, cap_s: float):
        self.what, self.cap_s = what, cap_s
        self.wait_s = self.FIRST_WAIT_S
        #: Monotonic time (s) the outage began, None while Redis answers.
        self.down_since: float | None = None

    async def failed(self, exc: BaseException) -> None:
        """Log the failure and sleep the next wait."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error("%s: Redis unavailable (%s); retrying with backoff up to %g s",
                      self.what, exc, self.cap_s)
        else:
            log.warning("%s: Redis still unavailable after %.0f s (%s); next try in %g s",
                        self.what, time.monotonic() - self.down_since, exc, self.wait_s)
        await asyncio.sleep(self.wait_s)
        self.wait_s = min(self.wait_s * 2, self.cap_s)

    def answered(self) -> float | None:
        """Redis answered: reset the backoff; return how long (s) the outage lasted, if any."""
        self.wait_s = self.FIRST_WAIT_S
        if self.down_since is None:
            return None
        outage_s, self.down_since = time.monotonic() - self.down_since, None
        log.warning("%s: Redis answers again after %.1f s", self.what, outage_s)
        return outage_s


def _redis_down(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis is unreachable or not ready (anything else is a bug)."""
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith(("LOADING", "MASTERDOWN", "TRYAGAIN")))


_Found = TypeVar("_Found")


async def _poll_until(settings, read: Callable[[Any], Awaitable[_Found | None]], deadline_unix: float,
                      poll_s: float, backoff: RedisBackoff) -> _Found | None:
    """Poll Redis with ``read`` until it finds something or a deadline passes.

    The shared loop of the deferred waits of a superevent run (:class:`AlertRecordTrigger`,
    :class:`LocalizationRecordTrigger`, and through the first, :class:`AnnotationsTrigger`):
    one asyncio Redis client for the whole wait, no thread and no blocking read.  A Redis
    outage is waited through with ``backoff`` (the deadline still holds); any other
    exception of ``read`` is a bug and is raised.  The client is closed before returning.

    Parameters
    ----------
    settings : gw_ops.config.Settings
        Settings of the triggerer (``redis_url``).
    read : callable
        ``async read(client) -> value or None``: one poll on the ``redis.asyncio`` client;
        None while nothing was found.
    deadline_unix : float
        Unix time (s) to give up at.
    poll_s : float
        Seconds between polls that found nothing.
    backoff : RedisBackoff
        Waits (and log lines) of a Redis outage.

    Returns
    -------
    object or None
        The first result of ``read`` that is not None; None when the deadline passed first.
    """
    from gw_ops.transport.redis_client import get_async_redis

    client = get_async_redis(settings)
    try:
        while time.time() < deadline_unix:
            try:
                found = await read(client)
            except Exception as exc:  # noqa: BLE001 (only an outage is waited through)
                if not _redis_down(exc):
                    raise
                await backoff.failed(exc)
                continue
            backoff.answered()
            if found is not None:
                return found
            await asyncio.sleep(poll_s)
        return None
    finally:
        await client.aclose()


class StreamDoorbellTrigger(BaseEventTrigger):
    """Fire when consumer group ``group`` has work waiting on ``streams``.

    Parameters
    ----------
    streams : list of str
        Redis stream keys (with the deployment's key prefix).
    group : str
        Consumer group, i.e. the handler DAG id.
    component : str
        Name under which the listener's health is recorded (``lvalert``, ``gcn``).
    rering_s : float, optional
        Ring again after this long (s) while work still waits (default: setting
        ``lvalert_rering_s``).
    """

    def __init__(self, streams: list[str], group: str, component: str = "lvalert",
                 rering_s: float | None = None):
        super().__init__()
        self.streams = list(streams)
        self.group = group
        self.component = component
        self.rering_s = rering_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"streams": self.streams, "group": self.group, "component": self.component,
                 "rering_s": self.rering_s})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The sync transport in a worker thread keeps one implementation of the "is there
        # work" rule (gw_ops.transport.streams.waiting_work) for trigger, tests and tasks.
        from gw_ops.transport.redis_client import get_redis, record_health
        from gw_ops.transport.streams import RedisStreamsTransport

        settings = _settings()
        rering_s = self.rering_s if self.rering_s is not None else settings.lvalert_rering_s
        client = get_redis(settings, socket_timeout=settings.lvalert_poll_block_ms / 1000 + 5,
                           socket_connect_timeout=5)
        detail = f"watching {len(self.streams)} streams for {self.group}"
        backoff = RedisBackoff(f"doorbell {self.group}", settings.redis_retry_cap_s)
        last_seen = {stream: "$" for stream in self.streams}
        last_signature: tuple | None = None
        last_ring = 0.0
        healthy = None

        transport = RedisStreamsTransport(client, settings)

        def check_work() -> dict[str, int]:
            for stream in self.streams:
                transport.ensure_group(stream, self.group)
            return transport.waiting_work(self.streams, self.group)

        def wait_for_entries() -> bool:
            reply = client.xread(last_seen, block=settings.lvalert_poll_block_ms, count=100)
            for stream, entries in reply or []:
                if entries:
                    last_seen[_text(stream)] = _text(entries[-1][0])
            return bool(reply)

        try:
            while True:
                try:
                    work = await asyncio.to_thread(check_work)
                    outage_s = backoff.answered()
                    if healthy is not True:
                        await asyncio.to_thread(
                            record_health, client, settings, self.component, "connected",
                            detail if outage_s is None else f"{detail} (Redis was down {outage_s:.0f} s)")
                        healthy = True
                    now = time.time()
                    # the newest ids belong to the signature: "1 waiting" after one message
                    # was drained and the next one arrived is new work, to ring for now
                    signature = (tuple(sorted(work.items())), tuple(sorted(last_seen.items())))
                    if work and (signature != last_signature or now - last_ring >= rering_s):
                        last_signature, last_ring = signature, now
                        yield TriggerEvent({"group": self.group, "work": dict(work), "rung_at": now})
                    elif not work:
                        last_signature = None
                    if await asyncio.to_thread(wait_for_entries):
                        await asyncio.to_thread(record_health, client, settings, self.component,
                                                "connected", detail, True)
                except Exception as exc:  # noqa: BLE001 (a listener must keep running)
                    if not _redis_down(exc):
                        raise  # a bug: the trigger fails red
                    healthy = False
                    last_signature = None  # what happened meanwhile is unknown: ring if work waits
                    await backoff.failed(exc)
        finally:
            client.close()


class GcnListenerTrigger(BaseEventTrigger):
    """The GCN listener: a VTP subscriber that makes every notice durable, then rings.

    Parameters
    ----------
    servers : list of str, optional
        ``host:port`` of VTP servers (default: setting ``gcn_servers``, i.e. the local
        broker in the local preset).
    """

    def __init__(self, servers: list[str] | None = None):
        super().__init__()
        self.servers = list(servers) if servers else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {"servers": self.servers})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from gw_ops.vtp import protocol as vtp

        settings = _settings()
        servers = self.servers or list(settings.gcn_server_list)
        rings: asyncio.Queue = asyncio.Queue()

        def ring(stream_id, fields) -> None:
            # The event carries only small text: the notice itself is in the stream.
            rings.put_nowait({"stream_id": _text(stream_id), "notice_type": _text(fields.get("notice_type", "")),
                              "ivorn": _text(fields.get("ivorn", ""))})

        pump = asyncio.create_task(vtp.gcn_to_redis(settings, servers=servers, on_notice=ring))
        try:
            async for event in ring_events(rings, pump, "GCN"):
                yield event
        finally:
            pump.cancel()


async def ring_events(rings: asyncio.Queue, pump: asyncio.Future, listener: str
                      ) -> AsyncIterator[TriggerEvent]:
    """One trigger event per ring that a listener's ``pump`` puts on ``rings``.

    The pump (the listener's receive loop) should never end: when it does, what ended it is
    raised, or :class:`RuntimeError` naming ``listener``, so the trigger fails visibly and
    Airflow restarts it, instead of waiting forever on a queue nobody fills.
    """
    while True:
        getter = asyncio.ensure_future(rings.get())
        done, _ = await asyncio.wait({getter, pump}, return_when=asyncio.FIRST_COMPLETED)
        if pump in done:
            getter.cancel()
            pump.result()
            raise RuntimeError(f"{listener} listener stopped unexpectedly")
        yield TriggerEvent({"notice": getter.result(), "rung_at": time.time()})


class StreamMatchTrigger(BaseTrigger):
    """Fire once when a matching message appears on streams after given ids.

    The deferrable half of :class:`gw_ops.airflow.sensors.LVAlertSensor` and
    :class:`gw_ops.airflow.sensors.GcnNoticeSensor`: it reads the streams without a
    consumer group (it takes nothing from the lanes) from the ids the sensor captured
    *before* checking the current state, so nothing falls between check and wait.

    Parameters
    ----------
    streams : list of str
        Stream keys to watch.
    after_ids : dict
        ``{stream: id}``: only newer entries count.
    match : dict
        For ``kind="lvalert"``: ``uid``, ``alert_type``, ``label`` (see
        :func:`gw_ops.transport.lvalert.message_matches`).  For ``kind="gcn"``: ``notice_types``
        (list of names) and ``ivorn_contains``.  Missing keys match anything.
    kind : str
        ``lvalert`` or ``gcn``.
    """

    def __init__(self, streams: list[str], after_ids: dict[str, str], match: dict[str, Any],
                 kind: str = "lvalert"):
        super().__init__()
        self.streams = list(streams)
        self.after_ids = dict(after_ids)
        self.match = dict(match)
        self.kind = kind

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"streams": self.streams, "after_ids": self.after_ids, "match": self.match,
                 "kind": self.kind})

    def _matches(self, fields: dict) -> dict | None:
        """The event payload for a matching entry, else None."""
        from gw_ops.transport.lvalert import message_matches

        if self.kind == "lvalert":
            try:
                message = json.loads(fields[b"payload"])
            except (KeyError, ValueError):
                return None
            return {"message": message} if isinstance(message, dict) and \
                message_matches(message, self.match) else None
        notice_type = _text(fields.get(b"notice_type", b""))
        ivorn = _text(fields.get(b"ivorn", b""))
        if self.match.get("notice_types") and notice_type not in self.match["notice_types"]:
            return None
        if self.match.get("ivorn_contains") and self.match["ivorn_contains"] not in ivorn:
            return None
        return {"notice_type": notice_type, "ivorn": ivorn}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from gw_ops.transport.redis_client import get_redis

        settings = _settings()
        client = get_redis(settings, socket_timeout=settings.lvalert_poll_block_ms / 1000 + 5,
                           socket_connect_timeout=5)
        cursor = dict(self.after_ids)
        backoff = RedisBackoff("stream match", settings.redis_retry_cap_s)

        def read():
            return client.xread(cursor, block=settings.lvalert_poll_block_ms, count=100)

        try:
            while True:
                try:
                    reply = await asyncio.to_thread(read)
                except Exception as exc:  # noqa: BLE001 (wait through Redis outages)
                    if not _redis_down(exc):
                        raise
                    await backoff.failed(exc)
                    continue
                backoff.answered()
                for stream, entries in reply or []:
                    for message_id, fields in entries:
                        cursor[_text(stream)] = _text(message_id)
                        found = self._matches(fields)
                        if found is not None:
                            yield TriggerEvent({"stream": _text(stream), "id": _text(message_id), **found})
                            return
        finally:
            client.close()


class DueActionTrigger(BaseEventTrigger):
    """Fire when a delayed action (:mod:`gw_ops.transport.delayed`) falls due.

    Sleeps until the earliest due time, re-reading the queue every ``poll_s`` so an
    earlier action scheduled meanwhile is not missed.  Fires at most once per
    ``poll_s`` while actions stay due (the DAG run then takes them).
    """

    def __init__(self, poll_s: float = 1.0):
        super().__init__()
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {"poll_s": self.poll_s})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from gw_ops.transport.delayed import next_due
        from gw_ops.transport.redis_client import get_redis

        settings = _settings()
        client = get_redis(settings, socket_timeout=10, socket_connect_timeout=5)
        last_fired_for: float | None = None
        last_ring = 0.0
        backoff = RedisBackoff("delayed actions", settings.redis_retry_cap_s)
        try:
            while True:
                try:
                    due = await asyncio.to_thread(next_due, client, settings)
                except Exception as exc:  # noqa: BLE001 (keep waiting through Redis outages)
                    if not _redis_down(exc):
                        raise
                    await backoff.failed(exc)
                    continue
                backoff.answered()
                now = time.time()
                # ring once per due action, and again while it stays overdue (a run that
                # Airflow merged away or that failed must not strand it)
                if due is not None and due <= now and (
                        last_fired_for != due or now - last_ring >= settings.lvalert_rering_s):
                    last_fired_for, last_ring = due, now
                    yield TriggerEvent({"due": due, "rung_at": now})
                await asyncio.sleep(self.poll_s)
        finally:
            client.close()


class AlertRecordTrigger(BaseTrigger):
    """Fire once when the first of some alerts of a superevent was sent (or at a deadline).

    Polls the alert record hash of :mod:`gw_ops.handlers.alert_sender` (one ``HMGET`` per
    ``poll_s`` on an asyncio Redis client: no thread, no blocking read, so hundreds of
    waiting superevent runs cost the triggerer next to nothing).  Redis outages are
    waited through with :class:`RedisBackoff`.

    Parameters
    ----------
    superevent_id : str
    keys : list of str
        Alert keys, e.g. ``["Preliminary-1", "Preliminary-less-significant"]``; the event
        names the first one found (in this order).
    deadline_unix : float
        Unix time (s) to give up at; the event then carries ``timed_out: True``.  Absolute,
        so a trigger re-created after a triggerer restart keeps the same deadline.
    poll_s : float
        Seconds between polls.
    """

    def __init__(self, superevent_id: str, keys: list[str], deadline_unix: float, poll_s: float = 0.5):
        super().__init__()
        self.superevent_id = superevent_id
        self.keys = list(keys)
        self.deadline_unix = deadline_unix
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"superevent_id": self.superevent_id, "keys": self.keys,
                 "deadline_unix": self.deadline_unix, "poll_s": self.poll_s})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from gw_ops.handlers.alert_sender import alert_record_key

        settings = _settings()
        record_key = alert_record_key(settings, self.superevent_id)

        async def first_record(client) -> tuple[str, bytes] | None:
            records = await client.hmget(record_key, [f"key:{key}" for key in self.keys])
            return next(((key, record) for key, record in zip(self.keys, records)
                         if record is not None), None)

        found = await _poll_until(
            settings, first_record, self.deadline_unix, self.poll_s,
            RedisBackoff(f"alert record {self.superevent_id}", settings.redis_retry_cap_s))
        if found is None:
            yield TriggerEvent({"keys": self.keys, "timed_out": True})
            return
        key, record = found
        serial, stream_id = _text(record).split()
        yield TriggerEvent({"key": key, "serial_number": int(serial), "stream_id": stream_id,
                            "timed_out": False})


class LocalizationRecordTrigger(BaseTrigger):
    """Fire once when a superevent's preferred event was localized (or at a deadline).

    Polls the records of :func:`gw_ops.handlers.localization.record_localization`: the event
    last localized for the superevent, else the record of ``preferred_event`` (localized
    before the superevent existed).  Two ``GET`` per ``poll_s`` on an asyncio Redis
    client; Redis outages are waited through with :class:`RedisBackoff`.

    Parameters
    ----------
    superevent_id : str
    preferred_event : str
        The superevent's preferred G event when its run was requested.
    deadline_unix : float
        Unix time (s) to give up at (the event then carries ``timed_out: True``).
    poll_s : float
        Seconds between polls.
    """

    def __init__(self, superevent_id: str, preferred_event: str, deadline_unix: float,
                 poll_s: float = 0.5):
        super().__init__()
        self.superevent_id = superevent_id
        self.preferred_event = preferred_event
        self.deadline_unix = deadline_unix
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"superevent_id": self.superevent_id, "preferred_event": self.preferred_event,
                 "deadline_unix": self.deadline_unix, "poll_s": self.poll_s})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from gw_ops.handlers.localization import localization_record_key, localized_event_key

        settings = _settings()

        async def record_of_superevent(client) -> bytes | None:
            graceid = await client.get(localized_event_key(settings, self.superevent_id))
            graceid = _text(graceid) if graceid is not None else self.preferred_event
            return await client.get(localization_record_key(settings, graceid)) if graceid else None

        record = await _poll_until(
            settings, record_of_superevent, self.deadline_unix, self.poll_s,
            RedisBackoff(f"localization of {self.superevent_id}", settings.redis_retry_cap_s))
        if record is None:
            yield TriggerEvent({"timed_out": True})
            return
        yield TriggerEvent({"record": json.loads(record), "timed_out": False})


class AnnotationsTrigger(BaseTrigger):
    """Fire once a superevent carries its annotations, or when they are overdue.

    The annotations (p_astro, em_bright, the sky-map image) are copied to a superevent with
    its first alert, so this waits in two steps: for the first of ``alert_keys`` in the
    alert record (Redis, as :class:`AlertRecordTrigger`; ``timed_out`` with ``phase:
    "alert"`` when none came by ``deadline_unix``), then for ``filenames`` on the
    superevent in GraceDB (one file listing per ``files_poll_s``, in a thread), at most
    ``files_wait_s`` after the alert; the event lists the files ``present`` and
    ``missing``.  A GraceDB error while listing is logged and the listing tried again.

    Parameters
    ----------
    superevent_id : str
    alert_keys : list of str
    filenames : list of str
    deadline_unix : float
        Unix time (s) to stop waiting for the alert.
    files_wait_s : float
        Seconds after the alert to wait for the files.
    poll_s, files_poll_s : float
        Seconds between polls of the alert record and of GraceDB.
    """

    def __init__(self, superevent_id: str, alert_keys: list[str], filenames: list[str],
                 deadline_unix: float, files_wait_s: float, poll_s: float = 0.5,
                 files_poll_s: float = 2.0):
        super().__init__()
        self.superevent_id = superevent_id
        self.alert_keys = list(alert_keys)
        self.filenames = list(filenames)
        self.deadline_unix = deadline_unix
        self.files_wait_s = files_wait_s
        self.poll_s = poll_s
        self.files_poll_s = files_poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"superevent_id": self.superevent_id, "alert_keys": self.alert_keys,
                 "filenames": self.filenames, "deadline_unix": self.deadline_unix,
                 "files_wait_s": self.files_wait_s, "poll_s": self.poll_s,
                 "files_poll_s": self.files_poll_s})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        first_alert = None
        async for event in AlertRecordTrigger(self.superevent_id, self.alert_keys,
                                              self.deadline_unix, self.poll_s).run():
            first_alert = event.payload
        if first_alert is None or first_alert.get("timed_out"):
            yield TriggerEvent({"timed_out": True, "phase": "alert"})
            return
        from gw_ops import gracedb_client as gateway

        settings = _settings()
        client = gateway.pipeline_client(settings)
        files_deadline = int(first_alert["stream_id"].split("-")[0]) / 1000.0 + self.files_wait_s
        present: set[str] = set()
        while True:
            try:
                names = await asyncio.to_thread(gateway.file_names, client, self.superevent_id)
                present = set(self.filenames) & {name.split(",")[0] for name in names}
            except Exception as exc:  # noqa: BLE001 (GraceDB's trouble must not end the wait)
                log.warning("annotations of %s: GraceDB file listing failed (%s); trying again",
                            self.superevent_id, exc)
            if present == set(self.filenames) or time.time() >= files_deadline:
                break
            await asyncio.sleep(self.files_poll_s)
        yield TriggerEvent({"timed_out": False, "alert_key": first_alert["key"],
                            "present": sorted(present),
                            "missing": sorted(set(self.filenames) - present)})
