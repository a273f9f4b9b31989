"""The gw-ops VOEvent broker: a VTP server fed by a durable Redis stream.

Why one module of about 670 lines: per-subscriber cursors, pipelined sending, author
connections and the Redis-outage handling act on the same connection state; who a
subscriber is lives in :mod:`gw_ops.vtp.subscribers`.

Subscribers (our :func:`gw_ops.vtp.protocol.listen`, pygcn's ``gcn.voeventclient.listen``, any VTP
client) connect to ``settings.host:settings.broker_port`` and receive every VOEvent
appended to ``voevent_outgoing_stream(settings)`` (fields ``xml``, ``ivorn``).  A DAG task
"sends" a VOEvent with :func:`append_voevent`; ``gw-ops gcn publish`` does the same over
VTP, as an *author*.

Delivery policy: per subscriber
-------------------------------
* Each subscriber has its own cursor in Redis (see :mod:`gw_ops.vtp.subscribers` for who
  a subscriber is and where it starts).  The broker reads the stream from that cursor and
  sends entries in stream order as soon as they are read (pipelined: a slow or dead
  subscriber delays nobody else).  The cursor moves past an entry, in order, once *this*
  subscriber answered it (``ack`` or ``nak``).  So a subscriber that dropped mid-delivery
  and reconnects within ``broker_replay_window_s`` gets what it missed, in order, without
  what it already answered, whatever the other subscribers did.
* A subscriber is known by its first answer to an iamalive (sent as soon as it connects);
  until then it is sent nothing.  Delivery is at-least-once: entries sent and not yet
  answered when a link drops are sent again; receivers must accept duplicates (the IVORN
  identifies them).
* **No subscriber connected:** entries wait in the stream.  The first subscriber that is
  new (or away too long) starts after the newest entry anyone answered, so the backlog
  nobody received goes to it.  Everything restarts from Redis after a broker restart.
* Entries that are not valid VOEvents (a task bypassed :func:`append_voevent`) go to the
  dead-letter stream ``deadletter:broker`` once and are skipped.

Redis outages
-------------
A lost Redis connection never stops the broker.  Every Redis call of the delivery is
retried with backoff (0.5 s doubling to ``redis_retry_cap_s``); meanwhile peers keep
being served (iamalive goes on), authors get a ``nak`` that says "try again", the health
record's state is ``redis-down`` (written whenever Redis answers that client; the log
says it at once), and delivery resumes from each subscriber's cursor when Redis is back.
The health detail counts ``redis_outages``.

Peers and permissions
---------------------
* Only addresses inside ``settings.broker_allow`` (CIDR list) are admitted, as
  subscribers; others are closed at once and logged.  Authoring is a separate
  permission: only admitted peers inside ``settings.broker_authors`` may author (empty by
  default: nobody).
* Every ``settings.broker_iamalive_s`` each peer gets an ``iamalive``; a peer that leaves
  one unanswered for ``settings.broker_ack_timeout_s``, or does not ack a VOEvent within
  that time, is dropped.
* A peer that sends a VOEvent is an author.  If its address may not author, the VOEvent
  is nak'ed and dead-lettered and nothing else happens (it stays a subscriber).  An
  allowed author is no longer sent the stream; its VOEvent is validated (well-formed, no
  DTD, a VOEvent with an ivorn), appended to the outgoing stream, and only then acked; a
  bad one is nak'ed and dead-lettered.

The broker's state goes to ``record_health(..., "broker", ...)`` with a ``detail`` such as
``subscribers=2 authors=0 sent=5 acked=5 ...``.

This module is over 400 lines because the broker is one asyncio state machine (peers,
sessions, heartbeat, Redis retries) whose parts share its counters and its alarm.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis

from gw_ops.config import Settings
from gw_ops.formats.voevent import validate_voevent
from gw_ops.transport.redis_client import (
    dead_letter,
    get_async_redis,
    get_redis,
    record_health,
    voevent_outgoing_stream,
)
from gw_ops.vtp import protocol as vtp
from gw_ops.vtp.subscribers import SubscriberCursors

log = logging.getLogger(__name__)

#: IVORN the broker writes in ``Origin``/``Response`` elements.
BROKER_IVORN = "ivo://gw-ops/broker"
#: How long (ms) one XREAD blocks; bounds how late the broker notices a subscriber leaving.
_XREAD_BLOCK_MS = 1000
#: Entries read per XREAD.
_XREAD_COUNT = 100
#: Entries sent to one subscriber and not yet answered, at most.
_MAX_INFLIGHT = 1000
#: Validated entries kept in memory (at most this many, and this many bytes), so an entry is
#: parsed (and dead-lettered) once, not once per subscriber.
_PREPARED_CACHE = 4096
_PREPARED_CACHE_BYTES = 64 * 1024 * 1024
#: First wait (s) before retrying Redis; it doubles up to ``settings.redis_retry_cap_s``.
_REDIS_RETRY_START_S = 0.5
#: Health state while Redis does not answer.
REDIS_DOWN = "redis-down"
#: Errors that mean "Redis is not reachable right now".
_REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

T = TypeVar("T")
#: A subscriber whose unsent backlog exceeds this (bytes) is too slow and is dropped.
_MAX_PEER_BUFFER_BYTES = 32 * 1024 * 1024
#: Approximate length the outgoing stream is trimmed to.
OUTGOING_MAXLEN = 100_000


def cursor_key(settings: Settings) -> str:
    """Redis key holding the id of the last outgoing-stream entry the broker settled."""
    return settings.key("broker", "cursor")


def outgoing_ivorn(xml: bytes) -> str:
    """IVORN of a VOEvent to send, checked by :func:`gw_ops.formats.voevent.validate_voevent`.

    Not against the schema: the broker relays other authors' notices as they are.

    Raises
    ------
    gw_ops.vtp.protocol.BadPacket
        Not well-formed, has a DTD, is not a VOEvent, or has no ivorn.
    """
    try:
        return validate_voevent(xml, against_schema=False)
    except ValueError as exc:
        raise vtp.BadPacket(str(exc)) from None


def append_voevent(client: redis.Redis, settings: Settings, xml_bytes: bytes | str) -> bytes:
    """Queue a VOEvent for the broker to send (what a DAG task calls); return the stream id.

    The entry is durable once this returns: the broker sends it when it runs and has a
    subscriber, even if it is down right now.

    Parameters
    ----------
    client : redis.Redis
        Synchronous client.
    settings : Settings
    xml_bytes : bytes or str
        The VOEvent document.

    Returns
    -------
    bytes
        Id of the new entry in ``voevent_outgoing_stream(settings)``.

    Raises
    ------
    gw_ops.vtp.protocol.BadPacket
        The document is not a valid VOEvent; nothing is appended.
    """
    xml = xml_bytes.encode() if isinstance(xml_bytes, str) else bytes(xml_bytes)
    ivorn = outgoing_ivorn(xml)
    return client.xadd(voevent_outgoing_stream(settings), {"xml": xml, "ivorn": ivorn},
                       maxlen=OUTGOING_MAXLEN, approximate=True)


def parse_allow_list(entries: tuple[str, ...] | list[str]) -> list[ipaddress._BaseNetwork]:
    """``settings.broker_allow`` as networks (single addresses become /32 or /128)."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def address_allowed(host: str, networks: list[ipaddress._BaseNetwork]) -> bool:
    """Whether a peer address lies in one of ``networks``."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


class PeerGone(Exception):
    """The peer was dropped before it answered."""


class Peer:
    """One connected VTP peer (subscriber or author)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str,
                 host: str, may_author: bool):
        self.reader, self.writer, self.name, self.host = reader, writer, name, host
        self.may_author = may_author
        self.is_author = False
        self.closed = False
        #: Subscriber identity (see gw_ops.vtp.subscribers), set by its first answer.
        self.identity: str | None = None
        #: The task sending it the stream (Broker.deliver), once it is identified.
        self.session: asyncio.Task | None = None
        #: Futures of VOEvents sent and not yet answered, per IVORN, oldest first.
        self.awaiting: dict[str, deque[asyncio.Future]] = {}
        #: Monotonic time (s) of the oldest unanswered iamalive, None when all answered.
        self.iamalive_unanswered_since: float | None = None
        self._write_lock = asyncio.Lock()

    @property
    def is_subscriber(self) -> bool:
        return not self.is_author and not self.closed

    async def send(self, payload: bytes) -> None:
        """Send one packet (raises OSError when the link is gone)."""
        async with self._write_lock:
            self.writer.write(vtp.encode_packet(payload))
            await self.writer.drain()

    def expect_answer(self, ivorn: str) -> asyncio.Future:
        """A future resolved with ``"ack"``/``"nak"`` when the peer answers ``ivorn``."""
        future = asyncio.get_running_loop().create_future()
        self.awaiting.setdefault(ivorn, deque()).append(future)
        return future

    def answer(self, ivorn: str, kind: str) -> bool:
        """Resolve the oldest future waiting for ``ivorn``; False if none was waiting."""
        waiting = self.awaiting.get(ivorn)
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(kind)
                return True
        return False

    def forget_deliveries(self, reason: str) -> None:
        """Fail every pending delivery (the peer left or became an author)."""
        for waiting in self.awaiting.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(PeerGone(reason))
        self.awaiting.clear()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.info("dropping %s: %s", self.name, reason)
        self.forget_deliveries(reason)
        self.writer.close()


class Broker:
    """The running broker; see the module documentation for its policy."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.networks = parse_allow_list(settings.broker_allow)
        self.author_networks = parse_allow_list(settings.broker_authors)
        self.peers: set[Peer] = set()
        #: Tasks serving connections, awaited at shutdown so none outlives the clients.
        self.peer_tasks: set[asyncio.Task] = set()
        self.stats: Counter[str] = Counter()
        # Bounded socket waits: a Redis that vanished without closing its sockets must
        # look like an error, not like a very long XREAD.
        timeouts = dict(socket_connect_timeout=5, socket_timeout=_XREAD_BLOCK_MS / 1000 + 10)
        self.async_client = get_async_redis(settings, **timeouts)
        # record_health / dead_letter are synchronous helpers: run them in a thread.
        self.sync_client = get_redis(settings, **timeouts)
        self.stream = voevent_outgoing_stream(settings)
        self.cursors = SubscriberCursors(self.async_client, settings, self.stream, cursor_key(settings))
        self.prepared: OrderedDict[str, tuple[str, bytes] | None] = OrderedDict()
        self.prepared_bytes = 0
        #: Monotonic time (s) Redis stopped answering, None while it answers.
        self.redis_down_since: float | None = None

    # --- bookkeeping ------------------------------------------------------------------
    @property
    def subscribers(self) -> list[Peer]:
        return [peer for peer in self.peers if peer.is_subscriber]

    def detail(self) -> str:
        counts = {"subscribers": len(self.subscribers),
                  "authors": sum(1 for p in self.peers if p.is_author and not p.closed)}
        keys = ("sent", "acked", "naked", "published", "rejected", "refused", "refused_authors",
                "dropped", "iamalive_sent", "iamalive_answered", "redis_outages", "errors")
        counts.update({key: self.stats[key] for key in keys})
        return " ".join(f"{key}={value}" for key, value in counts.items())

    async def record(self, state: str | None = None, message_seen: bool = False) -> None:
        if state is None:
            state = REDIS_DOWN if self.redis_down_since is not None else "connected"
        try:
            await asyncio.to_thread(record_health, self.sync_client, self.settings, "broker",
                                    state, self.detail(), message_seen)
        except redis.RedisError as exc:
            log.warning("could not record broker health (%s): %s", state, exc)

    async def dead_letter(self, reason: str, payload: bytes) -> None:
        log.warning("dead-lettering: %s", reason)
        self.stats["rejected"] += 1
        try:
            await asyncio.to_thread(dead_letter, self.sync_client, self.settings, "broker",
                                    reason, payload)
        except redis.RedisError:
            log.exception("could not dead-letter %s", reason)

    # --- Redis outages ----------------------------------------------------------------
    def redis_failed(self, what: str, exc: BaseException) -> None:
        """Note a failed Redis call: the first failure of an outage raises the alarm."""
        if self.redis_down_since is None:
            self.redis_down_since = time.monotonic()
            self.stats["redis_outages"] += 1
            log.error("Redis unavailable (%s: %r): still serving peers, retrying with backoff "
                      "up to %g s", what, exc, self.settings.redis_retry_cap_s)
            asyncio.ensure_future(self.record())

    def redis_answered(self) -> None:
        if self.redis_down_since is not None:
            log.warning("Redis answers again after %.1f s; resuming delivery from the cursors",
                        time.monotonic() - self.redis_down_since)
            self.redis_down_since = None
            asyncio.ensure_future(self.record())

    async def with_redis(self, what: str, call: Callable[[], Awaitable[T]],
                         keep_going: Callable[[], bool] = lambda: True) -> T:
        """``await call()``, retried with capped backoff while Redis is unreachable.

        Raises
        ------
        PeerGone
            ``keep_going()`` turned false while waiting (the peer left).
        """
        wait = _REDIS_RETRY_START_S
        first = True
        while True:
            try:
                result = await call()
            except _REDIS_DOWN_ERRORS as exc:
                if first and self.redis_down_since is None:
                    # a pooled connection that died with an earlier server: the pool
                    # opens a new one, so one immediate retry tells an outage from that
                    first = False
                    continue
                self.redis_failed(what, exc)
            else:
                self.redis_answered()
                return result
            if not keep_going():
                raise PeerGone(f"gone while Redis was down ({what})")
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.settings.redis_retry_cap_s)

    # --- peers ------------------------------------------------------------------------
    async def handle_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        name = f"{peername[0]}:{peername[1]}"
        if not address_allowed(str(peername[0]), self.networks):
            self.stats["refused"] += 1
            log.warning("refused connection from %s: not in broker_allow %s", name,
                        ",".join(self.settings.broker_allow))
            writer.close()
            await self.record()
            return
        may_author = address_allowed(str(peername[0]), self.author_networks)
        peer = Peer(reader, writer, name, str(peername[0]).split("%")[0], may_author)
        task = asyncio.current_task()
        self.peer_tasks.add(task)
        self.peers.add(peer)
        log.info("peer %s connected (%d subscribers)", name, len(self.subscribers))
        await self.record()
        try:
            # The answer to this first iamalive tells who the peer is (its Response IVORN).
            peer.iamalive_unanswered_since = time.monotonic()
            if await self._send_quietly(peer, vtp.make_transport(vtp.IAMALIVE, BROKER_IVORN)):
                self.stats["iamalive_sent"] += 1
            await self.serve_peer(peer)
        finally:
            peer.close("connection ended")
            self.peers.discard(peer)
            if peer.session is not None:  # it ends once it sees the peer closed
                try:
                    await asyncio.wait_for(peer.session, _XREAD_BLOCK_MS / 1000 + 5)
                except TimeoutError:
                    pass  # wait_for cancelled it (it was waiting out a Redis outage)
            log.info("peer %s gone (%d subscribers)", name, len(self.subscribers))
            await self.record()
            self.peer_tasks.discard(task)

    async def serve_peer(self, peer: Peer) -> None:
        """Read the peer's packets until it leaves; start its delivery once it is known."""
        while not peer.closed:
            try:
                payload = await vtp.read_packet(peer.reader, self.settings.gcn_max_packet_bytes)
            except vtp.PacketTooLarge as exc:
                await self.dead_letter(f"from {peer.name}: {exc}", b"")
                self.stats["dropped"] += 1
                return
            except (asyncio.IncompleteReadError, OSError):
                return
            await self.handle_packet(peer, payload)
            if peer.session is None and peer.identity is not None and peer.is_subscriber:
                peer.session = asyncio.ensure_future(self.deliver(peer))

    def identify(self, peer: Peer, response_ivorn: str) -> None:
        """Give ``peer`` its subscriber identity (see gw_ops.vtp.subscribers)."""
        base = f"{response_ivorn or 'anonymous'} from {peer.host}"
        taken = {other.identity for other in self.peers if other is not peer and not other.closed}
        identity, number = base, 1
        while identity in taken:
            number += 1
            identity = f"{base} #{number}"
        peer.identity = identity
        log.info("peer %s is subscriber %r", peer.name, identity)

    async def handle_packet(self, peer: Peer, payload: bytes) -> None:
        try:
            root = vtp.parse_xml(payload)
            kind = vtp.classify(root)
        except vtp.BadPacket as exc:
            await self.dead_letter(f"from {peer.name}: {exc}", payload)
            # Origin is unknown; an empty one tells an author its packet was refused.
            await self._send_quietly(peer, vtp.make_transport(vtp.NAK, "", BROKER_IVORN, str(exc)))
            return
        if kind in (vtp.IAMALIVE, vtp.ACK, vtp.NAK) and peer.identity is None:
            self.identify(peer, vtp.transport_text(root, "Response"))
        if kind == vtp.IAMALIVE:
            peer.iamalive_unanswered_since = None
            self.stats["iamalive_answered"] += 1
            log.debug("iamalive answered by %s", peer.name)
        elif kind in (vtp.ACK, vtp.NAK):
            ivorn = vtp.transport_text(root, "Origin")
            if peer.answer(ivorn, kind):
                self.stats["acked" if kind == vtp.ACK else "naked"] += 1
                log.info("%s %s %s", peer.name, "acked" if kind == vtp.ACK else "nak'ed", ivorn)
            else:
                log.warning("%s sent %s for %r, which it was not waiting to answer",
                            peer.name, kind, ivorn)
        else:
            await self.accept_from_author(peer, payload, root)

    async def accept_from_author(self, peer: Peer, payload: bytes, root) -> None:
        ivorn = root.get("ivorn") or ""
        if not peer.may_author:
            # Subscribing does not allow authoring: a forged alert stops here.
            self.stats["refused_authors"] += 1
            reason = f"{peer.host} may not author (not in broker_authors)"
            await self.dead_letter(f"VOEvent {ivorn!r} from {peer.name}: {reason}", payload)
            await self._send_quietly(peer, vtp.make_transport(vtp.NAK, ivorn, BROKER_IVORN, reason))
            return
        if not peer.is_author:
            peer.is_author = True
            # An author is not a subscriber: do not wait for it to ack the stream.
            peer.forget_deliveries("peer became an author")
        try:
            ivorn = vtp.ivorn_of(root)
        except vtp.BadPacket as exc:
            await self.dead_letter(f"VOEvent from {peer.name}: {exc}", payload)
            await self._send_quietly(peer, vtp.make_transport(vtp.NAK, ivorn, BROKER_IVORN, str(exc)))
            return
        try:
            await self.async_client.xadd(self.stream, {"xml": payload, "ivorn": ivorn},
                                         maxlen=OUTGOING_MAXLEN, approximate=True)
        except redis.RedisError as exc:
            # Not bad input: nothing to dead-letter.  The nak tells the author to retry.
            self.redis_failed("storing an author's VOEvent", exc)
            await self._send_quietly(peer, vtp.make_transport(
                vtp.NAK, ivorn, BROKER_IVORN, f"broker cannot store it now (Redis: {exc}); send it again"))
            return
        self.redis_answered()
        self.stats["published"] += 1
        log.info("accepted %s from author %s", ivorn, peer.name)
        await self._send_quietly(peer, vtp.make_transport(vtp.ACK, ivorn, BROKER_IVORN))
        await self.record(message_seen=True)

    async def _send_quietly(self, peer: Peer, payload: bytes) -> bool:
        try:
            await peer.send(payload)
            return True
        except (OSError, RuntimeError) as exc:
            peer.close(f"send failed: {exc!r}")
            return False

    # --- iamalive ---------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """Send iamalive to every peer; drop those that left one unanswered too long."""
        while True:
            await asyncio.sleep(self.settings.broker_iamalive_s)
            now = time.monotonic()
            for peer in list(self.peers):
                since = peer.iamalive_unanswered_since
                if since is not None and now - since > self.settings.broker_ack_timeout_s:
                    self.stats["dropped"] += 1
                    peer.close(f"iamalive unanswered for {now - since:.1f} s")
                    continue
                if since is None:
                    peer.iamalive_unanswered_since = now
                if await self._send_quietly(peer, vtp.make_transport(vtp.IAMALIVE, BROKER_IVORN)):
                    self.stats["iamalive_sent"] += 1
            await self.record()

    # --- one subscriber's delivery ----------------------------------------------------
    async def deliver(self, peer: Peer) -> None:
        """Send the stream to one subscriber from its cursor, moving the cursor as it answers.

        Sending and settling are pipelined: entries are written as soon as they are read,
        while :meth:`settle` waits for the answers in stream order and moves the cursor.
        """
        identity = peer.identity
        keep_going = lambda: peer.is_subscriber  # noqa: E731
        inflight: asyncio.Queue = asyncio.Queue(maxsize=_MAX_INFLIGHT)
        settler = asyncio.ensure_future(self.settle(peer, inflight))
        try:
            position, how = await self.with_redis(
                "reading a subscriber's cursor", lambda: self.cursors.start_position(identity), keep_going)
            log.info("delivering to %r: %s", identity, how)
            while peer.is_subscriber and not settler.done():
                reply = await self.with_redis(
                    "reading the outgoing stream",
                    lambda position=position: self.async_client.xread(
                        {self.stream: position}, count=_XREAD_COUNT, block=_XREAD_BLOCK_MS),
                    keep_going)
                for _stream, entries in reply or ():
                    for raw_id, fields in entries:
                        if not peer.is_subscriber:
                            return
                        entry_id = raw_id.decode()
                        answer = await self.send_entry(peer, entry_id, fields)
                        await inflight.put((entry_id, answer))
                        position = entry_id
        except PeerGone:
            pass
        except Exception:  # noqa: BLE001 - a bug: drop this peer (it reconnects), keep the rest
            self.stats["errors"] += 1
            log.exception("delivery to %r failed", identity)
            peer.close("broker error")
        finally:
            try:
                inflight.put_nowait(None)  # the settler settles what was sent, then ends
            except asyncio.QueueFull:
                settler.cancel()  # only when the peer is gone with 1000 entries unanswered
            await asyncio.gather(settler, return_exceptions=True)
            try:
                await self.cursors.touch(identity)
            except redis.RedisError:
                pass

    async def settle(self, peer: Peer, inflight: asyncio.Queue) -> None:
        """Wait for each sent entry's answer, in order; move the subscriber's cursor."""
        while True:
            item = await inflight.get()
            if item is None:
                return
            entry_id, answer = item
            if not await answer:
                return  # dropped without answering: the cursor stays before this entry
            await self.with_redis("moving a subscriber's cursor",
                                  lambda entry_id=entry_id: self.cursors.settled(peer.identity, entry_id))
            await self.record(message_seen=True)

    async def prepare(self, entry_id: str, fields: dict[bytes, bytes]) -> tuple[str, bytes] | None:
        """``(ivorn, framed packet)`` of an entry, or None if it is invalid (dead-lettered once)."""
        if entry_id in self.prepared:
            self.prepared.move_to_end(entry_id)
            return self.prepared[entry_id]
        xml = fields.get(b"xml", b"")
        try:
            prepared = (outgoing_ivorn(xml), vtp.encode_packet(xml))
        except vtp.BadPacket as exc:
            await self.dead_letter(f"outgoing entry {entry_id}: {exc}", xml)
            prepared = None
        self.prepared[entry_id] = prepared
        self.prepared_bytes += len(prepared[1]) if prepared else 0
        while len(self.prepared) > _PREPARED_CACHE or self.prepared_bytes > _PREPARED_CACHE_BYTES:
            _, dropped = self.prepared.popitem(last=False)
            self.prepared_bytes -= len(dropped[1]) if dropped else 0
        return prepared

    async def send_entry(self, peer: Peer, entry_id: str, fields: dict[bytes, bytes]) -> asyncio.Future:
        """Write one entry to ``peer`` now; return a future of "did it answer"."""
        prepared = await self.prepare(entry_id, fields)
        if prepared is None:
            done = asyncio.get_running_loop().create_future()
            done.set_result(True)  # settled: skipped for good
            return done
        ivorn, packet = prepared
        if peer.writer.transport.get_write_buffer_size() > _MAX_PEER_BUFFER_BYTES:
            self.stats["dropped"] += 1
            peer.close("too slow: its send buffer is full")
            raise PeerGone("too slow")
        answer = peer.expect_answer(ivorn)
        # A plain write keeps the order of packets; no drain, so a slow peer cannot hold
        # up the others (its buffer is bounded just above).
        peer.writer.write(packet)
        self.stats["sent"] += 1
        return asyncio.ensure_future(self.await_answer(peer, ivorn, entry_id, answer))

    async def await_answer(self, peer: Peer, ivorn: str, entry_id: str, answer: asyncio.Future) -> bool:
        try:
            await asyncio.wait_for(answer, self.settings.broker_ack_timeout_s)
            return True
        except TimeoutError:
            if not peer.closed:
                self.stats["dropped"] += 1
                peer.close(f"no ack for {ivorn} within {self.settings.broker_ack_timeout_s} s")
        except PeerGone:
            pass
        log.info("%r did not answer %s (%s): it gets it again when it reconnects",
                 peer.identity, ivorn, entry_id)
        return False

    # --- lifetime ---------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.handle_peer, self.settings.host,
                                            self.settings.broker_port)
        await self.record()  # before the "listening" line, which tools wait for
        log.info("VOEvent broker listening on %s:%d, subscribers from %s, authors from %s",
                 self.settings.host, self.settings.broker_port, ",".join(self.settings.broker_allow),
                 ",".join(self.settings.broker_authors) or "nowhere")
        tasks = [asyncio.ensure_future(self.heartbeat())]
        stopper = asyncio.ensure_future(stop.wait())
        try:
            loader = asyncio.ensure_future(self.with_redis("reading the cursor", self.cursors.load_global))
            done, _ = await asyncio.wait([*tasks, stopper, loader], return_when=asyncio.FIRST_COMPLETED)
            if loader in done:
                loader.result()
                done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            else:
                loader.cancel()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()
        finally:
            server.close()
            for task in (*tasks, stopper):
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            for peer in list(self.peers):
                peer.close("broker stopping")
            if self.peer_tasks:  # let them record their exit while Redis is still open
                await asyncio.wait(list(self.peer_tasks), timeout=5)
            await server.wait_closed()
            await self.record("disconnected")
            await self.async_client.aclose()
            self.sync_client.close()
            log.info("VOEvent broker stopped")


async def run_broker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the broker until ``stop`` is set (or the task is cancelled).

    Parameters
    ----------
    settings : Settings
        Uses ``host``, ``broker_port``, ``broker_allow``, ``broker_iamalive_s`` (s),
        ``broker_ack_timeout_s`` (s), ``gcn_max_packet_bytes`` (bytes) and the Redis
        settings.
    stop : asyncio.Event, optional
        Set it to shut the broker down cleanly.
    """
    await Broker(settings).run(stop or asyncio.Event())


def serve(settings: Settings) -> None:
    """Run the broker in the foreground until SIGTERM or SIGINT (``gw-ops broker``)."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_broker(settings, stop)

    asyncio.run(main())
