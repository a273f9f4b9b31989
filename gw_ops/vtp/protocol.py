"""VOEvent Transport Protocol (VTP): framing, hardened parsing, a GCN client and a publisher.

VTP (IVOA Note "VOEvent Transport Protocol", v1.1) runs over TCP.  Every packet is a
4-byte big-endian (network order) unsigned length followed by that many bytes of XML.
The XML is either a VOEvent or a ``Transport`` message whose ``role`` attribute is

``iamalive``
    keep-alive; the server sends one periodically and the client answers with its own.
``ack`` / ``nak``
    receipt (or refusal) of a VOEvent; ``Origin`` names the VOEvent's IVORN and
    ``Response`` the IVORN of whoever answers.

This module has no Airflow imports and never blocks its event loop, so the
coroutines below can run inside an Airflow trigger as well as in a service.

Why one module of about 680 lines: the client (:func:`listen`) and the author
(:func:`publish`) are the two ends of the same exchange and share its framing,
Transport messages and receipt handling; the XML parsing itself lives in
:mod:`gw_ops.formats.xml`.  The next cut, if it grows, is client / publisher.

Public API
----------
:func:`encode_packet`, :func:`read_packet`
    Framing.
:func:`parse_xml`, :func:`classify`, :func:`ivorn_of`, :func:`notice_type_of`
    Hardened parsing and inspection.
:func:`make_transport`
    ``iamalive`` / ``ack`` / ``nak`` messages.
:func:`listen`
    A VTP subscriber (GCN client) with reconnection, back-off and at-least-once acking.
:func:`gcn_to_redis`
    :func:`listen` wired to Redis: notices go to the ``gcn:incoming`` stream before they
    are acked, rejects go to the dead-letter stream, the link state to ``health:gcn``.
:func:`publish`, :func:`publish_files`
    Send VOEvents to a broker as an author and wait for each ack.
"""
from __future__ import annotations

import asyncio
import datetime
import inspect
import itertools
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from gcn import NoticeType
from lxml import etree

from gw_ops.config import Settings
from gw_ops.formats import xml as safe_xml
from gw_ops.formats.voevent import VOEVENT_TAGS, what_param

log = logging.getLogger(__name__)

#: The length prefix: one unsigned 32-bit integer in network (big-endian) order.
_LENGTH = struct.Struct("!I")

#: Namespaces a Transport root element may carry (the VTP note and deployed servers
#: disagree on the exact URI, so every variant seen in the wild is accepted).
TRANSPORT_NAMESPACES = (
    "http://telescope-networks.org/schema/Transport/v1.1",
    "http://telescope-networks.org/xml/Transport/v1.1",
    "http://www.telescope-networks.org/xml/Transport/v1.1",
)
#: The namespace of the Transport messages we write (the one pygcn writes too).
TRANSPORT_NAMESPACE = TRANSPORT_NAMESPACES[0]
_TRANSPORT_TAGS = {f"{{{ns}}}Transport" for ns in TRANSPORT_NAMESPACES}

#: What :func:`classify` returns.
IAMALIVE, ACK, NAK, VOEVENT = "iamalive", "ack", "nak", "voevent"
TRANSPORT_ROLES = (IAMALIVE, ACK, NAK)

#: IVORNs this side of the link uses in ``Response`` / ``Origin`` elements.
CLIENT_IVORN = "ivo://gw-ops/listener"
PUBLISHER_IVORN = "ivo://gw-ops/publisher"

#: How long (s) a first connection attempt may take before it counts as failed.
CONNECT_TIMEOUT_S = 10.0
#: Back-off (s) after the first failed connection attempt; it doubles from here.
BACKOFF_START_S = 1.0


# --- errors ------------------------------------------------------------------------------
class VTPError(Exception):
    """Base class of everything this module rejects."""


class PacketTooLarge(VTPError):
    """A length prefix announced more bytes than allowed.

    A packet framed with a little-endian prefix shows up here too: the 4 bytes of a
    small little-endian length read as a huge big-endian one.  Framing is lost after
    this, so the connection must be dropped.
    """


class BadPacket(VTPError):
    """The payload is not acceptable XML (syntax error, DTD/entities, unknown root)."""


class NoticeTypeError(VTPError):
    """A VOEvent has no ``Packet_Type`` Param, or one that is not a known GCN notice type."""


class PublishError(VTPError):
    """The broker refused (nak) a published VOEvent or did not answer in time."""


# --- framing -----------------------------------------------------------------------------
def encode_packet(payload: bytes) -> bytes:
    """Frame ``payload`` as one VTP packet (4-byte big-endian length, then the bytes).

    Parameters
    ----------
    payload : bytes
        The XML document.

    Returns
    -------
    bytes
    """
    return _LENGTH.pack(len(payload)) + payload


async def read_packet(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """Read one VTP packet and return its payload.

    Parameters
    ----------
    reader : asyncio.StreamReader
    max_bytes : int
        Largest payload accepted (bytes), e.g. ``settings.gcn_max_packet_bytes``.

    Returns
    -------
    bytes

    Raises
    ------
    PacketTooLarge
        The prefix announces more than ``max_bytes`` (nothing of the payload is read,
        so a hostile peer cannot make us allocate it).
    asyncio.IncompleteReadError
        The peer closed the connection mid-packet (or between packets).
    """
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > max_bytes:
        hint = " (little-endian length prefix?)" if _LENGTH.unpack(header[::-1])[0] <= max_bytes else ""
        raise PacketTooLarge(f"packet of {length} bytes announced, more than the "
                             f"{max_bytes} allowed{hint}; prefix {header.hex()}")
    return await reader.readexactly(length)


# --- parsing -----------------------------------------------------------------------------
#: Largest document :func:`parse_xml` accepts when the caller names no limit (bytes): the
#: default ``gcn_max_packet_bytes``, the most a VTP packet may carry.
DEFAULT_MAX_XML_BYTES: int = Settings.__dataclass_fields__["gcn_max_packet_bytes"].default


def parse_xml(payload: bytes, *, max_bytes: int = DEFAULT_MAX_XML_BYTES) -> etree._Element:
    """Parse untrusted XML from the network and return its root element.

    :func:`gw_ops.formats.xml.parse_xml` does the work: entities are not resolved,
    nothing is loaded from the network, huge trees are refused, and any document with a
    DOCTYPE (the carrier of billion-laughs and external-entity attacks) is rejected.

    Parameters
    ----------
    payload : bytes
    max_bytes : int, optional
        Largest document accepted (bytes), e.g. ``settings.gcn_max_packet_bytes``.

    Returns
    -------
    lxml.etree._Element

    Raises
    ------
    BadPacket
        Too large, not well-formed XML, or a DTD/entity declaration is present.
    """
    try:
        return safe_xml.parse_xml(payload, max_bytes=max_bytes)
    except safe_xml.XMLRejected as exc:
        raise BadPacket(str(exc)) from None


def classify(root: etree._Element) -> str:
    """What a parsed packet is.

    Parameters
    ----------
    root : lxml.etree._Element

    Returns
    -------
    str
        ``"iamalive"``, ``"ack"``, ``"nak"`` (Transport roles) or ``"voevent"``.

    Raises
    ------
    BadPacket
        Unknown root element, or a Transport message without a known role.
    """
    if root.tag in VOEVENT_TAGS:
        return VOEVENT
    if root.tag in _TRANSPORT_TAGS:
        role = root.get("role")
        if role in TRANSPORT_ROLES:
            return role
        raise BadPacket(f"Transport message with unknown role {role!r}")
    raise BadPacket(f"unknown root element {root.tag!r}")


def ivorn_of(root: etree._Element) -> str:
    """The ``ivorn`` attribute of a VOEvent.

    Raises
    ------
    BadPacket
        The attribute is missing or empty.
    """
    ivorn = (root.get("ivorn") or "").strip()
    if not ivorn:
        raise BadPacket("VOEvent without an ivorn attribute")
    return ivorn


def notice_type_of(root: etree._Element) -> NoticeType:
    """GCN notice type of a VOEvent, from its ``What/Param[@name='Packet_Type']``.

    Parameters
    ----------
    root : lxml.etree._Element
        A VOEvent root.

    Returns
    -------
    gcn.NoticeType

    Raises
    ------
    NoticeTypeError
        The Param is missing, not an integer, or not a known notice type.
    """
    raw = what_param(root, "Packet_Type")
    if raw is None:
        raise NoticeTypeError("VOEvent without a Packet_Type Param")
    try:
        return NoticeType(int(raw))
    except ValueError:
        raise NoticeTypeError(f"unknown GCN notice type {raw!r}") from None


def _timestamp() -> str:
    """Now, UTC, ISO 8601 (what VTP's ``TimeStamp`` carries)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_transport(role: str, origin: str, response: str | None = None,
                   result: str | None = None) -> bytes:
    """Build a VTP Transport message (not yet framed; see :func:`encode_packet`).

    Parameters
    ----------
    role : str
        ``"iamalive"``, ``"ack"`` or ``"nak"``.
    origin : str
        For ``ack``/``nak``: IVORN of the VOEvent answered.  For ``iamalive``: IVORN of
        the server that started the exchange.
    response : str, optional
        IVORN of whoever answers (absent in a server's first ``iamalive``).
    result : str, optional
        Human-readable reason, sent in ``Meta/Result`` (useful with ``nak``).

    Returns
    -------
    bytes
        UTF-8 XML with declaration.
    """
    if role not in TRANSPORT_ROLES:
        raise ValueError(f"role must be one of {TRANSPORT_ROLES}, not {role!r}")
    root = etree.Element(f"{{{TRANSPORT_NAMESPACE}}}Transport", nsmap={"trn": TRANSPORT_NAMESPACE},
                         role=role, version="1.0")
    # The schema fixes the order: Origin, Response, TimeStamp, Meta.
    etree.SubElement(root, "Origin").text = origin
    if response is not None:
        etree.SubElement(root, "Response").text = response
    etree.SubElement(root, "TimeStamp").text = _timestamp()
    if result is not None:
        meta = etree.SubElement(root, "Meta")
        etree.SubElement(meta, "Result").text = result
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def transport_text(root: etree._Element, element: str) -> str:
    """Text of a Transport child (``Origin``, ``Response``, ``Meta/Result``), or ``""``."""
    found = root.find(element)
    return (found.text or "").strip() if found is not None else ""


# --- the subscriber ----------------------------------------------------------------------
async def _call(callback: Callable | None, *args: Any) -> Any:
    """Call a sync or async callback and return its (awaited) result."""
    if callback is None:
        return None
    result = callback(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _quietly(callback: Callable | None, *args: Any) -> None:
    """Call an observer callback; its failure must not take the listener down."""
    try:
        await _call(callback, *args)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - observers are not allowed to break the link
        log.exception("callback %r failed", callback)


def split_server(server: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[v6]:port"``) as ``(host, port)``."""
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"server {server!r} is not host:port")
    return host.strip("[]"), int(port)


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (TimeoutError, OSError):
        pass


class _Connection:
    """One subscriber connection: read packets, answer them, report what happened."""

    def __init__(self, reader, writer, server, on_voevent, on_reject, settings, ivorn,
                 on_state=None):
        self.reader, self.writer, self.server = reader, writer, server
        self.on_voevent, self.on_reject, self.on_state = on_voevent, on_reject, on_state
        self.settings, self.ivorn = settings, ivorn
        #: True once a valid packet arrived: the link works, so the back-off resets.
        self.good = False
        self.notices = 0

    async def send(self, payload: bytes) -> None:
        self.writer.write(encode_packet(payload))
        await self.writer.drain()

    async def reject(self, reason: str, payload: bytes) -> None:
        log.warning("rejected packet from %s: %s", self.server, reason)
        await _quietly(self.on_reject, reason, payload)

    async def run(self) -> str:
        """Serve the connection until it ends; return why it ended."""
        while True:
            try:
                payload = await asyncio.wait_for(
                    read_packet(self.reader, self.settings.gcn_max_packet_bytes),
                    self.settings.gcn_timeout_s)
            except TimeoutError:
                return f"no packet for {self.settings.gcn_timeout_s} s (dead link)"
            except PacketTooLarge as exc:
                # The rest of the stream cannot be framed any more: drop the link.
                await self.reject(f"oversize packet: {exc}", b"")
                return "oversize packet, framing lost"
            except asyncio.IncompleteReadError:
                return "closed by server"
            await self.handle(payload)

    async def handle(self, payload: bytes) -> None:
        try:
            root = parse_xml(payload, max_bytes=self.settings.gcn_max_packet_bytes)
            kind = classify(root)
        except BadPacket as exc:
            await self.reject(f"bad packet: {exc}", payload)
            return
        if kind == IAMALIVE:
            self.good = True
            await self.send(make_transport(IAMALIVE, transport_text(root, "Origin"), self.ivorn))
            # a heartbeat of the listener's health record: a quiet but live link stays
            # "connected" with a fresh time, a dead or killed listener goes stale
            await _quietly(self.on_state, "connected", f"{self.server} (iamalive)")
            return
        if kind != VOEVENT:  # an ack/nak is not for a subscriber; note it and go on
            self.good = True
            log.info("ignoring %s from %s", kind, self.server)
            return
        try:
            ivorn = ivorn_of(root)
        except BadPacket as exc:
            await self.reject(f"bad VOEvent: {exc}", payload)
            return  # without an IVORN there is nothing to ack or nak
        try:
            notice_type = notice_type_of(root)
        except NoticeTypeError as exc:
            await self.reject(f"bad notice: {exc}", payload)
            # nak: the server learns we saw it and must not resend it forever.
            await self.send(make_transport(NAK, ivorn, self.ivorn, str(exc)))
            return
        self.good = True
        # At-least-once: ack only after the callback made the notice durable.  If it
        # raises, the exception ends this connection without an ack, so the server
        # resends (our broker does) after we reconnect.
        await _call(self.on_voevent, payload, root, notice_type)
        await self.send(make_transport(ACK, ivorn, self.ivorn))
        self.notices += 1


async def listen(servers: Sequence[str], on_voevent: Callable[[bytes, Any, NoticeType], Awaitable[Any]],
                 *, settings: Settings, on_state: Callable[[str, str], Any] | None = None,
                 on_reject: Callable[[str, bytes], Any] | None = None,
                 stop: asyncio.Event | None = None, ivorn: str = CLIENT_IVORN) -> None:
    """Subscribe to VTP servers and hand every VOEvent to ``on_voevent``.

    Servers are tried in turn.  A failed attempt, or a connection that ended without one
    valid packet, waits ``1 s`` and then twice as long each time, up to
    ``settings.gcn_backoff_cap_s``; after a good connection the next attempt is
    immediate and the wait starts again at 1 s.

    Parameters
    ----------
    servers : sequence of str
        ``host:port`` of each server, e.g. ``settings.gcn_server_list``.
    on_voevent : callable
        ``on_voevent(payload: bytes, root, notice_type: gcn.NoticeType)``, sync or async.
        The VOEvent is acked only after it returns, so it must make the notice durable
        (delivery is at-least-once).  An exception drops the connection unacked and the
        next attempt waits as after a failed connection (storage down: back off).
    settings : Settings
        Uses ``gcn_timeout_s`` (silence (s) that counts as a dead link),
        ``gcn_backoff_cap_s`` (s) and ``gcn_max_packet_bytes`` (bytes).
    on_state : callable, optional
        ``on_state(state, detail)`` with state ``"connected"`` or ``"disconnected"``.
    on_reject : callable, optional
        ``on_reject(reason, payload)`` for every refused packet (non-XML, DTD/entities,
        oversize, VOEvent without ivorn or with a missing or unknown notice type).  The
        payload is ``b""`` when it was never read (oversize).
    stop : asyncio.Event, optional
        Set it to make the listener close its connection and return.  Cancelling the
        task works as well.
    ivorn : str
        This client's IVORN, sent in ``Response`` elements.
    """
    if not servers:
        raise ValueError("no VTP servers given")
    if stop is None:
        await _listen_forever(list(servers), on_voevent, settings, on_state, on_reject, ivorn)
        return
    task = asyncio.ensure_future(
        _listen_forever(list(servers), on_voevent, settings, on_state, on_reject, ivorn))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            pending.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()


async def _listen_forever(servers, on_voevent, settings, on_state, on_reject, ivorn) -> None:
    backoff = BACKOFF_START_S
    for server in itertools.cycle(servers):
        host, port = split_server(server)
        writer = None
        try:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                        CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError) as exc:
                reason = f"cannot connect to {server}: {exc or type(exc).__name__}"
                good = False
            else:
                log.info("connected to %s", server)
                await _quietly(on_state, "connected", server)
                connection = _Connection(reader, writer, server, on_voevent, on_reject,
                                         settings, ivorn, on_state)
                callback_failed = False
                try:
                    reason = await connection.run()
                except (OSError, asyncio.IncompleteReadError) as exc:
                    reason = f"connection error: {exc!r}"
                except Exception as exc:  # noqa: BLE001 - the on_voevent callback failed
                    log.exception("notice callback failed; dropping %s without ack", server)
                    reason = f"notice callback failed: {exc!r}"
                    callback_failed = True
                # A failed callback (storage down) is not a working link: back off, or the
                # server's resend and our failure would loop as fast as the network allows.
                good = connection.good and not callback_failed
        finally:
            await _close(writer)
        if good:
            backoff = BACKOFF_START_S
            log.warning("disconnected from %s: %s; reconnecting", server, reason)
            await _quietly(on_state, "disconnected", f"{server}: {reason}; reconnecting now")
            continue
        log.warning("disconnected from %s: %s; retry in %g s", server, reason, backoff)
        await _quietly(on_state, "disconnected", f"{server}: {reason}; retry in {backoff:g} s")
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, settings.gcn_backoff_cap_s)


# --- the Redis pump ----------------------------------------------------------------------
async def gcn_to_redis(settings: Settings, *, servers: Sequence[str] | None = None,
                       stop: asyncio.Event | None = None,
                       on_notice: Callable[[str, dict], Any] | None = None) -> None:
    """Run :func:`listen` and store what arrives in Redis.

    Each VOEvent is XADDed to ``gcn_incoming_stream(settings)`` with fields ``xml``,
    ``notice_type`` (name, e.g. ``FERMI_GBM_FLT_POS``), ``ivorn`` and ``received`` (Unix
    time, s) *before* it is acked.  Rejected packets go to ``dead_letter(..., "gcn",
    ...)``; the link state goes to ``record_health(..., "gcn", ...)``.

    Parameters
    ----------
    settings : Settings
    servers : sequence of str, optional
        Defaults to ``settings.gcn_server_list``.
    stop : asyncio.Event, optional
        Set to return.
    on_notice : callable, optional
        ``on_notice(stream_id, fields)`` after each notice is stored (sync or async),
        e.g. for an Airflow trigger to yield an event.
    """
    from gw_ops.transport.redis_client import (
        dead_letter,
        gcn_incoming_stream,
        get_async_redis,
        get_redis,
        record_health,
    )

    async_client = get_async_redis(settings)
    # dead_letter and record_health are synchronous helpers; run them in a thread so
    # the event loop (possibly Airflow's triggerer) never blocks on Redis.
    sync_client = get_redis(settings)
    stream = gcn_incoming_stream(settings)
    current_server = [""]  # detail of the health record while connected

    async def store(payload: bytes, root, notice_type: NoticeType) -> None:
        fields = {"xml": payload, "notice_type": notice_type.name, "ivorn": root.get("ivorn"),
                  "received": repr(time.time())}
        stream_id = await async_client.xadd(stream, fields)
        await asyncio.to_thread(record_health, sync_client, settings, "gcn", "connected",
                                current_server[0], True)
        await _call(on_notice, stream_id.decode() if isinstance(stream_id, bytes) else stream_id,
                    fields)

    async def reject(reason: str, payload: bytes) -> None:
        await asyncio.to_thread(dead_letter, sync_client, settings, "gcn", reason, payload)

    async def state(name: str, detail: str) -> None:
        current_server[0] = detail
        await asyncio.to_thread(record_health, sync_client, settings, "gcn", name, detail)

    try:
        await listen(list(servers or settings.gcn_server_list), store, settings=settings,
                     on_state=state, on_reject=reject, stop=stop)
    finally:
        try:
            await asyncio.to_thread(record_health, sync_client, settings, "gcn", "disconnected",
                                    "listener stopped")
        except Exception:  # noqa: BLE001 - Redis may be what failed
            log.exception("could not record gcn health")
        await async_client.aclose()
        sync_client.close()


# --- the publisher -----------------------------------------------------------------------
async def publish(payloads: Iterable[bytes], host: str, port: int, *, timeout: float = 10.0,
                  max_bytes: int = 1024 * 1024, ivorn: str = PUBLISHER_IVORN) -> list[str]:
    """Send VOEvents to a broker as an author; return once each is acked.

    Parameters
    ----------
    payloads : iterable of bytes
        VOEvent documents; each is checked locally first (well-formed, a VOEvent, has an
        ivorn).
    host, port : str, int
        The broker.
    timeout : float
        Seconds allowed to connect, and for each VOEvent's ack.
    max_bytes : int
        Largest packet accepted from the broker (bytes).
    ivorn : str
        Our IVORN, sent when we answer the broker's iamalive.

    Returns
    -------
    list of str
        IVORNs of the acked VOEvents, in order.

    Raises
    ------
    PublishError
        A nak, no answer within ``timeout``, or the broker closed the connection.
    BadPacket
        A payload is not a valid VOEvent (nothing after it is sent).
    """
    documents = []
    for payload in payloads:
        root = parse_xml(payload, max_bytes=max_bytes)
        if classify(root) != VOEVENT:
            raise BadPacket("not a VOEvent")
        documents.append((payload, ivorn_of(root)))
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        raise PublishError(f"cannot connect to broker {host}:{port}: {exc!r}") from None
    acked = []
    try:
        for payload, event_ivorn in documents:
            writer.write(encode_packet(payload))
            await writer.drain()
            try:
                await asyncio.wait_for(_await_receipt(reader, writer, event_ivorn, max_bytes, ivorn),
                                       timeout)
            except TimeoutError:
                raise PublishError(f"no ack for {event_ivorn} within {timeout} s") from None
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise PublishError(f"broker closed the connection before acking "
                                   f"{event_ivorn}: {exc!r}") from None
            log.info("broker acked %s", event_ivorn)
            acked.append(event_ivorn)
    finally:
        await _close(writer)
    return acked


async def _await_receipt(reader, writer, event_ivorn: str, max_bytes: int, ivorn: str) -> None:
    """Read packets until the broker acks (return) or naks (raise) ``event_ivorn``."""
    while True:
        root = parse_xml(await read_packet(reader, max_bytes), max_bytes=max_bytes)
        kind = classify(root)
        if kind == IAMALIVE:
            writer.write(encode_packet(make_transport(IAMALIVE, transport_text(root, "Origin"), ivorn)))
            await writer.drain()
        elif kind == VOEVENT:
            # A broker may stream events to every peer; ack so it does not drop us.
            writer.write(encode_packet(make_transport(ACK, ivorn_of(root), ivorn)))
            await writer.drain()
        elif transport_text(root, "Origin") == event_ivorn:
            if kind == ACK:
                return
            raise PublishError(f"broker refused {event_ivorn}: "
                               f"{transport_text(root, 'Meta/Result') or 'nak'}")
        elif kind == NAK and not transport_text(root, "Origin"):
            # The broker could not even read an IVORN from what we sent.
            raise PublishError(f"broker refused {event_ivorn} as unreadable: "
                               f"{transport_text(root, 'Meta/Result') or 'nak'}")


def publish_files(paths: Iterable[str | Path], host: str, port: int, timeout: float = 10.0) -> list[str]:
    """Publish VOEvent files through a broker (blocking wrapper of :func:`publish`).

    Must not be called from a running event loop; await :func:`publish` there.

    Parameters
    ----------
    paths : iterable of str or Path
    host, port : str, int
        The broker.
    timeout : float
        Seconds allowed to connect and for each ack.

    Returns
    -------
    list of str
        IVORNs acked by the broker.
    """
    payloads = [Path(path).read_bytes() for path in paths]
    return asyncio.run(publish(payloads, host, port, timeout=timeout))
