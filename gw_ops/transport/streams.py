"""At-least-once message lanes on Redis Streams: the delivery core of every handler DAG.

Why one module of about 460 lines: the drain's reclaim, read, order, handle and
acknowledge steps share the exactly-once record (one MULTI with the XACK); cutting
them apart would spread that invariant over several files.

The design (called *doorbell and drain* in the README):

* Every message source is a durable Redis stream: one per LVAlert node (written by
  GraceDB), one for received GCN notices (written by the GCN listener).
* Every handler owns a consumer group on each stream it reads, named after its DAG, so
  one message reaches every handler registered for it.
* A listener trigger in the Airflow triggerer only *rings*: it fires an asset event when a
  group has undelivered messages, or delivered ones nobody acknowledged for a while.  It
  consumes nothing, so a killed triggerer, or asset events that Airflow merges or drops,
  lose nothing: the next ring (at most ``lvalert_rering_s`` later) finds the same work.
* The handler DAG's task *drains*: it reclaims messages abandoned by dead consumers,
  reads everything waiting, orders the batch, calls the handler once per message and
  acknowledges each message only after its handler returned.
* Three kinds of failure, three outcomes (see :func:`drain`):

  - *bad input* (:class:`gw_ops.errors.PermanentError`: unparseable, schema-invalid,
    unknown type) is kept in a dead-letter stream with its reason and acknowledged;
  - a *transient* failure (GraceDB 5xx, a refused connection, a timeout) never counts
    toward any limit: the message is retried with backoff and stays pending for as long
    as the outage lasts, and an alarm (the health record ``lane:<group>``) says so;
  - any *other* exception is a bug: the message stays pending and visible, the drain
    raises :class:`LaneFailed` after handling the rest of the batch (the task fails red).

  Only a message whose handler never returned (the worker died in it)
  ``lvalert_max_deliveries`` times is dead-lettered for that reason: a poison message
  must not kill every worker forever.
* Exactly once in effect: before acknowledging, the lane records the message id as done
  (one MULTI with the XACK), and skips ids already done if they come back.  Handlers are
  idempotent as well, for the one window left (a crash between handler and record).

No Airflow imports here: the trigger and the task in :mod:`gw_ops.airflow` call these
functions, and tests drive them directly.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import redis

from gw_ops.config import Settings
from gw_ops.errors import PermanentError, is_transient
from gw_ops.transport.redis_client import dead_letter, read_health, record_health

log = logging.getLogger(__name__)

#: How long "done" markers are kept (s): far longer than any redelivery can take.
DONE_MARKER_TTL_S = 7 * 24 * 3600
#: Messages read per XREADGROUP call.
READ_BATCH = 500
#: Longest single blocking read (s) of a lingering drain (see ``linger_s`` of :func:`drain`).
LINGER_SLICE_S = 1.0
#: Waits (s) between attempts of a message that failed transiently within one drain.  After
#: the last one the message stays pending; the next run retries it (after
#: ``lvalert_claim_idle_s``), however long the outage lasts.
TRANSIENT_RETRY_WAITS_S = (0.5, 2.0, 5.0)
#: Health-record state of a lane waiting out a transient failure, of a lane whose handler
#: failed unexpectedly, and of a lane that works.
LANE_RETRYING, LANE_FAILING, LANE_OK = "retrying", "failing", "ok"


class LaneFailed(RuntimeError):
    """A handler raised an unexpected exception (a bug): its messages stay pending.

    Attributes
    ----------
    report : DrainReport
        What the drain did, ``failed`` listing the messages left pending by the bug.
    """

    def __init__(self, message: str, report: DrainReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Message:
    """One stream entry handed to a lane.

    Attributes
    ----------
    stream : str
        Stream key it came from.
    message_id : str
        Redis stream id (``"<ms>-<seq>"``); arrival order within the stream.
    fields : dict of str to bytes
        The entry's fields.
    deliveries : int
        How many times it has been delivered to this group (1 on first delivery).
    """

    stream: str
    message_id: str
    fields: dict[str, bytes]
    deliveries: int = 1

    @property
    def arrival(self) -> tuple[int, int]:
        """Sortable arrival time from the id: (milliseconds, sequence)."""
        ms, _, seq = self.message_id.partition("-")
        return int(ms), int(seq or 0)


@dataclass
class DrainReport:
    """What one drain did: counts and per-message outcomes (for the task log and XCom)."""

    handled: list[str] = field(default_factory=list)
    skipped_duplicates: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    #: Left pending after a transient failure (retried later, never dead-lettered).
    left_pending: list[str] = field(default_factory=list)
    #: Left pending after an unexpected exception (a bug; the drain raises LaneFailed).
    failed: list[str] = field(default_factory=list)
    reclaimed: int = 0
    #: ``(message id, start, end)`` (Unix s) of each handler call of a ``claim_one`` drain:
    #: when and how long each message took, for the task's XCom (which drains overlapped).
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    #: Last transient and unexpected failure, one line each ("" when none).
    transient_reason: str = ""
    failure_reason: str = ""

    def summary(self) -> dict[str, Any]:
        return {"handled": len(self.handled), "duplicates": len(self.skipped_duplicates),
                "dead_lettered": len(self.dead_lettered), "left_pending": len(self.left_pending),
                "failed": len(self.failed), "reclaimed": self.reclaimed}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def ensure_group(client: redis.Redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Create consumer group ``group`` on ``stream`` (and the stream) unless it exists.

    ``start_id='0'``: a new group is handed every entry the stream still holds.  At ``$``
    it would skip what was added before it existed (a group lost with a Redis restart, a
    stream published to before ``gw-ops up`` declared its groups); handlers are idempotent,
    so seeing an old entry again is safe, skipping one is not.
    Returns True when the group was created now.
    """
    try:
        client.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def _group_info(client: redis.Redis, stream: str, group: str) -> dict | None:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        return None
    for info in groups:
        if _text(info["name"]) == group:
            return info
    return None


def _id_tuple(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


def waiting_work(client: redis.Redis, streams: Iterable[str], group: str, claim_idle_s: float) -> dict[str, int]:
    """Work waiting for ``group``: per stream, undelivered entries plus stale pending ones.

    Works on Redis 6.2 (no ``lag`` field): an entry is undelivered when the stream's last
    id is newer than the group's last-delivered id.  Pending entries count when idle
    longer than ``claim_idle_s`` (their consumer is presumed dead).

    Returns
    -------
    dict
        ``{stream: count}`` for streams with work (count is a lower bound: 1 for
        undelivered entries, plus the stale pending count).
    """
    work: dict[str, int] = {}
    for stream in streams:
        info = _group_info(client, stream, group)
        if info is None:
            continue
        count = 0
        try:
            last_generated = _text(client.xinfo_stream(stream)["last-generated-id"])
        except redis.ResponseError:
            continue
        if _id_tuple(last_generated) > _id_tuple(_text(info["last-delivered-id"])):
            count += int(info.get("lag") or 1)
        if int(info["pending"]):
            stale = client.xpending_range(stream, group, min="-", max="+", count=100,
                                          idle=int(claim_idle_s * 1000))
            count += len(stale)
        if count:
            work[stream] = count
    return work


def _done_key(settings: Settings, group: str, stream: str, message_id: str) -> str:
    return settings.key("done", group, stream.removeprefix(settings.key_prefix), message_id)


def _claim_stale(client: redis.Redis, stream: str, group: str, consumer: str,
                 claim_idle_s: float) -> list[Message]:
    """Take over messages that another (dead) consumer received but never acknowledged."""
    messages: list[Message] = []
    start = "0-0"
    while True:
        reply = client.xautoclaim(stream, group, consumer, min_idle_time=int(claim_idle_s * 1000),
                                  start_id=start, count=READ_BATCH)
        start, entries = _text(reply[0]), reply[1]
        for message_id, fields in entries:
            if fields is None:  # trimmed away while pending
                client.xack(stream, group, message_id)
                continue
            messages.append(Message(stream, _text(message_id), {_text(k): v for k, v in fields.items()}, 2))
        if start == "0-0" or not entries:
            break
    if messages:
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in client.xpending_range(
            stream, group, min="-", max="+", count=len(messages) + 100, consumername=consumer)}
        messages = [Message(m.stream, m.message_id, m.fields, counts.get(m.message_id, 2)) for m in messages]
    return messages


def _read_new(client: redis.Redis, streams: list[str], group: str, consumer: str,
              block_ms: int | None = None, count: int = READ_BATCH) -> list[Message]:
    """New messages for ``consumer`` (at most ``count`` per stream); with ``block_ms``, wait
    up to that long (ms) for some."""
    reply = client.xreadgroup(group, consumer, {s: ">" for s in streams}, count=count,
                              block=block_ms)
    messages = []
    for stream, entries in reply or []:
        for message_id, fields in entries:
            messages.append(Message(_text(stream), _text(message_id), {_text(k): v for k, v in fields.items()}))
    return messages


def _claim_next(client: redis.Redis, settings: Settings, streams: list[str], group: str,
                consumer: str, round_number: int) -> list[Message]:
    """ONE message for ``consumer`` (``claim_one`` drains), or none: first one abandoned by
    a dead consumer (idle longer than ``lvalert_claim_idle_s``), else one new one.

    The streams are tried in turn, starting one further each round, so a busy stream
    cannot starve the others.  ``XAUTOCLAIM``/``XREADGROUP`` with ``COUNT 1`` hand a
    message to one consumer only: two drains never get the same one.
    """
    if not streams:
        return []
    start = round_number % len(streams)
    ordered = streams[start:] + streams[:start]
    for stream in ordered:
        start_id = "0-0"
        while True:  # skip (and acknowledge) entries trimmed away while pending
            reply = client.xautoclaim(stream, group, consumer, min_idle_time=int(settings.lvalert_claim_idle_s * 1000),
                                      start_id=start_id, count=1)
            start_id, entries = _text(reply[0]), reply[1]
            live = [(message_id, fields) for message_id, fields in entries if fields is not None]
            for message_id, fields in entries:
                if fields is None:
                    client.xack(stream, group, message_id)
            if live:
                message_id, fields = live[0]
                pending = client.xpending_range(stream, group, min=message_id, max=message_id, count=1)
                deliveries = int(pending[0]["times_delivered"]) if pending else 2
                return [Message(stream, _text(message_id), {_text(k): v for k, v in fields.items()}, deliveries)]
            if start_id == "0-0":  # an empty reply with a cursor only scanned part of the list
                break
    for stream in ordered:
        messages = _read_new(client, [stream], group, consumer, count=1)
        if messages:
            return messages
    return []


#: Refresh a pending entry only while ``consumer`` still owns it (atomic: a drain that
#: lost its message to a reclaim after a stall never takes it back).
_REFRESH_IF_OWNED = """
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
if entry and entry[2] == ARGV[3] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
  return 1
end
return 0
"""


class _keep_claimed:
    """Context manager: while a ``claim_one`` drain's handler runs, reset the idle time of
    its message's pending entry every third of ``lvalert_claim_idle_s`` (``XCLAIM JUSTID``,
    which leaves the delivery count alone), so drains running beside it never reclaim a
    message whose handler is alive (a localization takes minutes; the idle limit is one).
    A dead drain stops refreshing, and its message is reclaimed as before."""

    def __init__(self, client: redis.Redis, settings: Settings, group: str, consumer: str,
                 message: Message):
        import threading

        self._stop = threading.Event()
        self._interval_s = max(0.05, settings.lvalert_claim_idle_s / 3)
        self._args = (client, group, consumer, message)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"keep-claimed-{message.message_id}")

    def _run(self) -> None:
        client, group, consumer, message = self._args
        refresh = client.register_script(_REFRESH_IF_OWNED)
        while not self._stop.wait(self._interval_s):
            try:
                if not refresh(keys=[message.stream], args=[group, message.message_id, consumer]):
                    return  # acknowledged, or taken over: nothing more to keep
            except redis.RedisError as exc:  # transient: the next tick tries again
                log.warning("could not refresh pending message %s: %s", message.message_id, exc)

    def __enter__(self) -> _keep_claimed:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def _unfinished_key(settings: Settings, group: str) -> str:
    """Hash of attempts per message that began and never returned (the worker died)."""
    return settings.key("lane", "unfinished", group)


def _unfinished_field(settings: Settings, message: Message) -> str:
    return f"{message.stream.removeprefix(settings.key_prefix)} {message.message_id}"


def lane_health_component(group: str) -> str:
    """Name of a lane's health record (its alarm), e.g. ``lane:gw_ops_superevents``."""
    return f"lane:{group}"


def drain(client: redis.Redis, settings: Settings, streams: list[str], group: str, consumer: str,
          handle: Callable[[Message], Any], *, sort_key: Callable[[Message], Any] | None = None,
          source: str = "lvalert", max_rounds: int = 1000, linger_s: float = 0.0,
          batch_scope: Callable[[list[Message]], Any] | None = None,
          claim_one: bool = False) -> DrainReport:
    """Handle every message waiting for ``group`` on ``streams``; acknowledge each after success.

    Parameters
    ----------
    client : redis.Redis
    settings : Settings
        ``lvalert_claim_idle_s`` (s) and ``lvalert_max_deliveries`` apply.
    streams : list of str
        Stream keys of the lane.
    group : str
        Consumer group (the handler DAG's id).
    consumer : str
        Name of this consumer (unique per task attempt).
    handle : callable
        ``handle(message)``.  Raising :class:`gw_ops.errors.PermanentError` dead-letters
        the message with the error as reason.  A transient error
        (:func:`gw_ops.errors.is_transient`) is retried after each of
        :data:`TRANSIENT_RETRY_WAITS_S`, then left pending for the next run, never
        dead-lettered.  Any other exception leaves the message pending and makes the
        drain raise :class:`LaneFailed` once the rest of the batch is handled.
    sort_key : callable, optional
        Orders each batch (e.g. ``label_added`` before ``new``); ties keep arrival order.
    source : str
        Dead-letter stream name (``lvalert``, ``gcn``).
    max_rounds : int
        Upper bound of read rounds, so a firehose cannot keep one task running forever.
    linger_s : float
        Once the streams are empty, keep waiting this long (s) for more messages before
        returning; each handled message starts the wait again.  A lane on the alert path
        then handles the next message of the same candidate at once, without another
        Airflow task start (about 1.5 s here).  0 returns as soon as nothing waits.
    batch_scope : callable, optional
        ``batch_scope(batch)`` returns a context manager entered around the handling of
        each ordered batch (a handler may read what the whole batch needs at once; see
        :func:`gw_ops.handlers.superevents.batch_scope`).  It changes nothing about
        acknowledgement: each message is still acknowledged after its own handler
        returned.  A scope that fails to open is logged and the batch is handled without it.
    claim_one : bool
        Take ONE message at a time (one abandoned one, else one new one, ``COUNT 1``) and
        handle it before taking the next, for lanes that several drains run at once (the
        ``openmp`` localization lane, one drain per pool slot): a consumer group hands each
        message to one consumer only, so two drains never take the same message, and a
        drain never holds messages that an idle one could be handling.  While its handler
        runs, the message's pending entry is kept fresh (:func:`_keep_claimed`), so another
        drain reclaims it only once this one died, however long the handler takes.
        ``sort_key`` orders nothing then (a batch is one message).  ``linger_s`` applies.

    Returns
    -------
    DrainReport

    Raises
    ------
    LaneFailed
        A handler raised an unexpected exception; its messages stay pending.

    Notes
    -----
    The lane's health record ``lane:<group>`` (:func:`lane_health_component`) is the
    alarm: state ``retrying`` with the last transient reason while messages wait out an
    outage, ``failing`` after a bug, ``ok`` again once a drain leaves nothing behind.
    """
    report = DrainReport()
    for stream in streams:
        ensure_group(client, stream, group)
    outage = [False]  # once one message exhausted its waits, the others get one attempt each
    linger_until = time.monotonic() + linger_s
    for round_number in range(max_rounds):
        batch: list[Message] = []
        if claim_one:
            batch = _claim_next(client, settings, streams, group, consumer, round_number)
            if not batch:
                remaining_s = linger_until - time.monotonic()
                if remaining_s <= 0:
                    break
                # at most one message per stream, each handled before the next read
                batch = _read_new(client, streams, group, consumer, count=1,
                                  block_ms=max(1, int(1000 * min(remaining_s, LINGER_SLICE_S))))
            for message in sorted(batch, key=lambda m: m.arrival):
                started = time.time()
                with _keep_claimed(client, settings, group, consumer, message):
                    outcome = _handle_one(client, settings, group, message, handle, source, report, outage)
                report.spans.append((message.message_id, started, time.time()))
                getattr(report, outcome).append(message.message_id)
            if batch:
                linger_until = time.monotonic() + linger_s
            continue
        if round_number == 0:
            for stream in streams:
                batch.extend(_claim_stale(client, stream, group, consumer, settings.lvalert_claim_idle_s))
            report.reclaimed = len(batch)
        batch.extend(_read_new(client, streams, group, consumer))
        if not batch:
            remaining_s = linger_until - time.monotonic()
            if remaining_s <= 0:
                break
            # Wait in slices, so the round bound still ends a lane that lingers for ever.
            batch = _read_new(client, streams, group, consumer,
                              block_ms=max(1, int(1000 * min(remaining_s, LINGER_SLICE_S))))
            if not batch:
                continue
        batch.sort(key=lambda m: m.arrival)  # stable base order: arrival
        if sort_key is not None:
            batch.sort(key=sort_key)
        with _open_scope(batch_scope, batch):
            for message in batch:
                outcome = _handle_one(client, settings, group, message, handle, source, report, outage)
                getattr(report, outcome).append(message.message_id)
        linger_until = time.monotonic() + linger_s
    _raise_lane_alarm(client, settings, group, report)
    if report.failed:
        raise LaneFailed(f"lane {group}: the handler failed unexpectedly on {len(report.failed)} "
                         f"messages, left pending: {report.failure_reason}", report)
    return report


@contextlib.contextmanager
def _open_scope(batch_scope: Callable[[list[Message]], Any] | None, batch: list[Message]):
    """Enter ``batch_scope(batch)``; without one, or when it fails to open, nothing."""
    if batch_scope is None:
        yield
        return
    try:
        scope = batch_scope(batch)
        scope.__enter__()
    except Exception:  # noqa: BLE001 (an optimisation: the batch is handled without it)
        log.exception("batch scope of %d messages failed to open; handled without it", len(batch))
        yield
        return
    try:
        yield
    finally:
        scope.__exit__(None, None, None)


def _raise_lane_alarm(client: redis.Redis, settings: Settings, group: str, report: DrainReport) -> None:
    """Write the lane's health record: retrying / failing with the reason, or ok again."""
    component = lane_health_component(group)
    if report.failed:
        record_health(client, settings, component, LANE_FAILING,
                      f"{len(report.failed)} messages left pending by an unexpected error: "
                      f"{report.failure_reason}")
    elif report.left_pending:
        record_health(client, settings, component, LANE_RETRYING,
                      f"{len(report.left_pending)} messages waiting out a transient failure: "
                      f"{report.transient_reason}")
    elif read_health(client, settings, component).get("state") not in (None, LANE_OK):
        record_health(client, settings, component, LANE_OK, "the last drain left nothing behind")


def _handle_one(client: redis.Redis, settings: Settings, group: str, message: Message,
                handle: Callable[[Message], Any], source: str, report: DrainReport,
                outage: list[bool]) -> str:
    """Handle one message with retries; return the DrainReport list it belongs to."""
    done_key = _done_key(settings, group, message.stream, message.message_id)
    if client.exists(done_key):
        client.xack(message.stream, group, message.message_id)
        log.info("message %s %s already handled by %s: acknowledged again, not handled twice",
                 message.stream, message.message_id, group)
        return "skipped_duplicates"
    unfinished_key, unfinished_field = _unfinished_key(settings, group), _unfinished_field(settings, message)
    never_returned = int(client.hget(unfinished_key, unfinished_field) or 0)
    if never_returned >= settings.lvalert_max_deliveries:
        client.hdel(unfinished_key, unfinished_field)
        return _dead_letter(client, settings, group, message, source,
                            f"its handler never returned in {never_returned} attempts "
                            "(the worker died each time)")
    waits = [] if outage[0] else list(TRANSIENT_RETRY_WAITS_S)
    while True:
        # counted before the call and taken back after any outcome: what remains counts
        # only attempts that never returned (a crash or a kill inside the handler)
        client.hincrby(unfinished_key, unfinished_field, 1)
        try:
            handle(message)
        except Exception as exc:  # noqa: BLE001 (every failure is classified below)
            client.hincrby(unfinished_key, unfinished_field, -1)
            if isinstance(exc, PermanentError):
                client.hdel(unfinished_key, unfinished_field)
                log.error("message %s %s rejected by %s: %s", message.stream, message.message_id,
                          group, exc)
                return _dead_letter(client, settings, group, message, source, f"{type(exc).__name__}: {exc}")
            if not is_transient(exc):
                log.exception("message %s %s: handler of %s failed unexpectedly; left pending",
                              message.stream, message.message_id, group)
                report.failure_reason = f"{message.message_id}: {type(exc).__name__}: {exc}"[:500]
                return "failed"
            report.transient_reason = f"{type(exc).__name__}: {exc}"[:500]
            if not waits:
                outage[0] = True
                log.error("message %s %s: transient failure persists (%s); left pending for the next run",
                          message.stream, message.message_id, exc)
                return "left_pending"
            wait = waits.pop(0)
            log.warning("message %s %s: transient failure (%s); retrying in %.1f s",
                        message.stream, message.message_id, exc, wait)
            time.sleep(wait)
            continue
        break
    outage[0] = False  # it worked: the next message gets its full retries again
    with client.pipeline(transaction=True) as pipe:
        pipe.set(done_key, b"1", ex=DONE_MARKER_TTL_S)
        pipe.xack(message.stream, group, message.message_id)
        pipe.hdel(unfinished_key, unfinished_field)
        pipe.execute()
    return "handled"


def _dead_letter(client: redis.Redis, settings: Settings, group: str, message: Message, source: str,
                 reason: str) -> str:
    payload = message.fields.get("payload") or message.fields.get("xml") or repr(message.fields).encode()
    dead_letter(client, settings, f"{source}:{group}", f"{message.stream} {message.message_id}: {reason}", payload)
    with client.pipeline(transaction=True) as pipe:
        pipe.set(_done_key(settings, group, message.stream, message.message_id), b"dead", ex=DONE_MARKER_TTL_S)
        pipe.xack(message.stream, group, message.message_id)
        pipe.execute()
    return "dead_lettered"


def lane_streams(spec, settings: Settings) -> list[str]:
    """Redis streams a handler's lane reads (``spec`` is a :class:`gw_ops.transport.registry.HandlerSpec`)."""
    from gw_ops.transport.redis_client import gcn_incoming_stream, lvalert_stream

    if spec.kind == "lvalert":
        return [lvalert_stream(settings, node) for node in spec.keys]
    return [gcn_incoming_stream(settings)]


def ensure_lane_groups(client: redis.Redis, settings: Settings) -> int:
    """Create the consumer group of every registered handler on each of its streams.

    ``gw-ops up`` calls this before any service publishes, so the first messages are not
    missed while the triggerer is still starting.  Returns the number of groups created.
    """
    from gw_ops.transport.registry import load_handlers

    created = 0
    for spec in load_handlers(settings=settings):
        for stream in lane_streams(spec, settings):
            created += ensure_group(client, stream, spec.dag_id)
    return created


class LaneTransport(Protocol):
    """What the lanes and doorbells need from a message transport.

    :class:`RedisStreamsTransport` implements it on Redis Streams.  An igwn-alert (Kafka)
    transport would map a group to a Kafka consumer group, "waiting work" to the group's
    lag, and acknowledgement to an offset commit made only after the handler returned
    (never before, as the Kafka provider's trigger does).
    """

    def ensure_group(self, stream: str, group: str) -> bool:
        """Create the group on the stream (from its first entry) unless it exists."""

    def waiting_work(self, streams: Iterable[str], group: str) -> dict[str, int]:
        """Streams with work for the group (undelivered or abandoned messages)."""

    def drain(self, streams: list[str], group: str, consumer: str, handle: Callable[[Message], Any], *,
              sort_key: Callable[[Message], Any] | None = None, source: str = "lvalert",
              linger_s: float = 0.0,
              batch_scope: Callable[[list[Message]], Any] | None = None,
              claim_one: bool = False) -> DrainReport:
        """Handle every waiting message, acknowledging each after its handler returned;
        then wait up to ``linger_s`` (s) for more (``batch_scope``, ``claim_one``: see
        :func:`drain`)."""


class RedisStreamsTransport:
    """:class:`LaneTransport` on Redis Streams (the functions of this module)."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.client = client
        self.settings = settings

    def ensure_group(self, stream: str, group: str) -> bool:
        return ensure_group(self.client, stream, group)

    def waiting_work(self, streams: Iterable[str], group: str) -> dict[str, int]:
        return waiting_work(self.client, streams, group, self.settings.lvalert_claim_idle_s)

    def drain(self, streams: list[str], group: str, consumer: str, handle: Callable[[Message], Any], *,
              sort_key: Callable[[Message], Any] | None = None, source: str = "lvalert",
              linger_s: float = 0.0,
              batch_scope: Callable[[list[Message]], Any] | None = None,
              claim_one: bool = False) -> DrainReport:
        return drain(self.client, self.settings, streams, group, consumer, handle, sort_key=sort_key,
                     source=source, linger_s=linger_s, batch_scope=batch_scope, claim_one=claim_one)
