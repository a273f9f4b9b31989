"""The gw-ops VOEvent broker: a VTP server fed by a durable Redis stream.

Subscribers (our :func:`gw_ops.vtp.protocol.listen`, pygcn's ``gcn.voeventclient.listen``, any VTP
client) connect to ``settings.host:settings.broker_port`` and receive every VOEvent
appended to ``voevent_outgoing_stream(settings)`` (fields ``xml``, ``ivorn``).  A DAG task
"sends" a VOEvent with :func:`append_voevent`; ``gw-ops gcn publish`` does the same over
VTP, as an *author*.

Delivery policy
---------------
* The broker reads the stream from a cursor kept in Redis (``settings.key("broker",
  "cursor")``), so whatever was appended while it was down is sent after it restarts.
* Entries are sent in stream order to every connected subscriber as soon as they are
  read (pipelined: a slow or dead subscriber does not delay the others).  The cursor
  moves past an entry, in order, once each subscriber it was sent to answered (``ack``
  or ``nak``) or was dropped, and at least one of them answered.
* **No subscriber connected:** the broker holds.  Entries stay in the stream, the cursor
  does not move, and the backlog goes to the first subscriber that connects (a stream of
  alerts nobody received is worth more late than never).  Subscribers that connect
  later get only what is appended after that: the broker is a fan-out, not a replay
  service.
* If every subscriber of an entry was dropped without answering, the entry is held the
  same way and sent again.  Delivery is therefore at-least-once: receivers must accept
  duplicates (the IVORN identifies them).
* Entries that are not valid VOEvents (a task bypassed :func:`append_voevent`) go to the
  dead-letter stream ``deadletter:broker`` and are skipped.

Peers
-----
* Only addresses inside ``settings.broker_allow`` (CIDR list) are admitted; others are
  closed at once and logged.
* Every ``settings.broker_iamalive_s`` each peer gets an ``iamalive``; a peer that leaves
  one unanswered for ``settings.broker_ack_timeout_s``, or does not ack a VOEvent within
  that time, is dropped.
* A peer that sends a VOEvent is an author: it is no longer sent the stream.  Its VOEvent
  is validated (well-formed, no DTD, a VOEvent with an ivorn), appended to the outgoing
  stream, and only then acked; a bad one is nak'ed and dead-lettered.

The broker's state goes to ``record_health(..., "broker", ...)`` with a ``detail`` such as
``subscribers=2 authors=0 sent=5 acked=5 ...``.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import time
from collections import Counter, deque

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

log = logging.getLogger(__name__)

#: IVORN the broker writes in ``Origin``/``Response`` elements.
BROKER_IVORN = "ivo://gw-ops/broker"
#: How long (ms) one XREAD blocks; bounds how late the broker notices a subscriber leaving.
_XREAD_BLOCK_MS = 1000
#: Entries read per XREAD.
_XREAD_COUNT = 100
#: Entries sent but not yet settled (answered by every subscriber) at most.
_MAX_INFLIGHT = 1000
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

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str):
        self.reader, self.writer, self.name = reader, writer, name
        self.is_author = False
        self.closed = False
        #: Futures of VOEvents sent and not yet answered, per IVORN, oldest first.
        self.awaiting: dict[str, deque[asyncio.Future]] = {}
        #: Monotonic time (s) of the oldest unanswered iamalive, None when all answered.
        self.iamalive_unanswered_since: float | None = None
        self._write_lock = asyncio.Lock()

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
        self.peers: set[Peer] = set()
        #: Tasks serving connections, awaited at shutdown so none outlives the clients.
        self.peer_tasks: set[asyncio.Task] = set()
        self.stats: Counter[str] = Counter()
        self.has_subscribers = asyncio.Event()
        self.async_client = get_async_redis(settings)
        # record_health / dead_letter are synchronous helpers: run them in a thread.
        self.sync_client = get_redis(settings)
        self.stream = voevent_outgoing_stream(settings)

    # --- bookkeeping ------------------------------------------------------------------
    @property
    def subscribers(self) -> list[Peer]:
        return [peer for peer in self.peers if not peer.is_author and not peer.closed]

    def detail(self) -> str:
        counts = {"subscribers": len(self.subscribers),
                  "authors": sum(1 for p in self.peers if p.is_author and not p.closed)}
        keys = ("sent", "acked", "naked", "published", "rejected", "refused", "dropped",
                "iamalive_sent", "iamalive_answered")
        counts.update({key: self.stats[key] for key in keys})
        return " ".join(f"{key}={value}" for key, value in counts.items())

    def peers_changed(self) -> None:
        if self.subscribers:
            self.has_subscribers.set()
        else:
            self.has_subscribers.clear()

    async def record(self, state: str = "connected", message_seen: bool = False) -> None:
        try:
            await asyncio.to_thread(record_health, self.sync_client, self.settings, "broker",
                                    state, self.detail(), message_seen)
        except redis.RedisError:
            log.exception("could not record broker health")

    async def dead_letter(self, reason: str, payload: bytes) -> None:
        log.warning("dead-lettering: %s", reason)
        self.stats["rejected"] += 1
        try:
            await asyncio.to_thread(dead_letter, self.sync_client, self.settings, "broker",
                                    reason, payload)
        except redis.RedisError:
            log.exception("could not dead-letter %s", reason)

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
        peer = Peer(reader, writer, name)
        task = asyncio.current_task()
        self.peer_tasks.add(task)
        self.peers.add(peer)
        self.peers_changed()
        log.info("peer %s connected (%d subscribers)", name, len(self.subscribers))
        await self.record()
        try:
            await self.serve_peer(peer)
        finally:
            peer.close("connection ended")
            self.peers.discard(peer)
            self.peers_changed()
            log.info("peer %s gone (%d subscribers)", name, len(self.subscribers))
            await self.record()
            self.peer_tasks.discard(task)

    async def serve_peer(self, peer: Peer) -> None:
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

    async def handle_packet(self, peer: Peer, payload: bytes) -> None:
        try:
            root = vtp.parse_xml(payload)
            kind = vtp.classify(root)
        except vtp.BadPacket as exc:
            await self.dead_letter(f"from {peer.name}: {exc}", payload)
            # Origin is unknown; an empty one tells an author its packet was refused.
            await self._send_quietly(peer, vtp.make_transport(vtp.NAK, "", BROKER_IVORN, str(exc)))
            return
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
        if not peer.is_author:
            peer.is_author = True
            # An author is not a subscriber: do not wait for it to ack the stream.
            peer.forget_deliveries("peer became an author")
            self.peers_changed()
        ivorn = root.get("ivorn") or ""
        try:
            ivorn = vtp.ivorn_of(root)
            await self.async_client.xadd(self.stream, {"xml": payload, "ivorn": ivorn},
                                         maxlen=OUTGOING_MAXLEN, approximate=True)
        except (vtp.BadPacket, redis.RedisError) as exc:
            await self.dead_letter(f"VOEvent from {peer.name}: {exc}", payload)
            await self._send_quietly(peer, vtp.make_transport(vtp.NAK, ivorn, BROKER_IVORN, str(exc)))
            return
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
            self.peers_changed()
            await self.record()

    # --- the stream -------------------------------------------------------------------
    async def distribute(self) -> None:
        """Send the outgoing stream to the subscribers, moving the durable cursor.

        Sending and settling are pipelined: every entry is written to the subscribers as
        soon as it is read, while a separate task waits for the answers in stream order
        and moves the cursor.  So one slow or dead subscriber delays only the cursor,
        not what the others receive.  When an entry ends up with no answer at all, the
        sender rewinds to the cursor and sends again from there.
        """
        key = cursor_key(self.settings)
        self.cursor = (await self.async_client.get(key) or b"0-0").decode()
        log.info("outgoing stream %s, cursor %s", self.stream, self.cursor)
        self.generation = 0  # bumped by a rewind; older in-flight entries are then ignored
        inflight: asyncio.Queue = asyncio.Queue(maxsize=_MAX_INFLIGHT)
        settler = asyncio.ensure_future(self.settle(inflight, key))
        try:
            read_from, generation = self.cursor, self.generation
            while True:
                await self.has_subscribers.wait()
                if generation != self.generation:
                    read_from, generation = self.cursor, self.generation
                reply = await self.async_client.xread({self.stream: read_from}, count=_XREAD_COUNT,
                                                      block=_XREAD_BLOCK_MS)
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        if generation != self.generation:
                            break  # rewound while we read: start again from the cursor
                        await self.has_subscribers.wait()
                        outcome = await self.send_entry(entry_id.decode(), fields)
                        await inflight.put((generation, entry_id.decode(), outcome))
                        read_from = entry_id.decode()
        finally:
            settler.cancel()
            await asyncio.gather(settler, return_exceptions=True)

    async def settle(self, inflight: asyncio.Queue, key: str) -> None:
        """Wait for each sent entry's answers, in order; move the cursor or rewind."""
        while True:
            generation, entry_id, outcome = await inflight.get()
            answered = await outcome
            if generation != self.generation:
                continue  # sent before a rewind: it will be sent again
            if answered:
                self.cursor = entry_id
                await self.async_client.set(key, entry_id)
                await self.record(message_seen=True)
            else:
                log.warning("nobody answered %s: holding it for the next subscriber", entry_id)
                self.generation += 1

    async def send_entry(self, entry_id: str, fields: dict[bytes, bytes]) -> asyncio.Future:
        """Write one entry to every subscriber now; return a future of "was it answered"."""
        xml = fields.get(b"xml", b"")
        try:
            ivorn = outgoing_ivorn(xml)
        except vtp.BadPacket as exc:
            await self.dead_letter(f"outgoing entry {entry_id}: {exc}", xml)
            done = asyncio.get_running_loop().create_future()
            done.set_result(True)  # settled: skipped for good
            return done
        packet = vtp.encode_packet(xml)  # framed once, written to every subscriber
        waits = []
        for peer in self.subscribers:
            if peer.writer.transport.get_write_buffer_size() > _MAX_PEER_BUFFER_BYTES:
                self.stats["dropped"] += 1
                peer.close("too slow: its send buffer is full")
                continue
            answer = peer.expect_answer(ivorn)
            # A plain write keeps the per-peer order of packets; no drain, so a slow
            # peer cannot hold up the others (its buffer is bounded just above).
            peer.writer.write(packet)
            self.stats["sent"] += 1
            waits.append(self.await_answer(peer, ivorn, answer))
        self.peers_changed()
        return asyncio.ensure_future(self.collect(entry_id, ivorn, waits))

    async def await_answer(self, peer: Peer, ivorn: str, answer: asyncio.Future) -> str | None:
        try:
            return await asyncio.wait_for(answer, self.settings.broker_ack_timeout_s)
        except TimeoutError:
            if not peer.closed:
                self.stats["dropped"] += 1
                peer.close(f"no ack for {ivorn} within {self.settings.broker_ack_timeout_s} s")
        except PeerGone:
            pass
        return None

    async def collect(self, entry_id: str, ivorn: str, waits: list) -> bool:
        answers = await asyncio.gather(*waits)
        self.peers_changed()
        answered = sum(1 for answer in answers if answer)
        log.info("sent %s (%s) to %d subscribers, %d answered", ivorn, entry_id, len(waits), answered)
        return answered > 0

    # --- lifetime ---------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.handle_peer, self.settings.host,
                                            self.settings.broker_port)
        log.info("VOEvent broker listening on %s:%d, admitting %s", self.settings.host,
                 self.settings.broker_port, ",".join(self.settings.broker_allow))
        await self.record()
        tasks = [asyncio.ensure_future(self.distribute()), asyncio.ensure_future(self.heartbeat())]
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
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
