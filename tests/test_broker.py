"""The VOEvent broker as a real subprocess, with real peers: pygcn's client, our listener,
``gw-ops gcn publish``, raw sockets."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gw_ops.transport.redis_client import (
    deadletter_stream,
    gcn_incoming_stream,
    read_health,
    voevent_outgoing_stream,
)
from gw_ops.vtp import protocol as vtp
from gw_ops.vtp.broker import append_voevent, cursor_key
from tests.helpers import REPO_ROOT, wait_for

DATA = Path(__file__).parent / "data" / "voevents"
GBM = (DATA / "gbm_flt_pos.xml").read_bytes()
LVK = (DATA / "lvk_preliminary.xml").read_bytes()


def numbered(n: int) -> bytes:
    """The LVK sample with a distinct ivorn."""
    return LVK.replace(b"MS230101a-1-Preliminary", f"MS230101a-{n}-Preliminary".encode())


def ivorn(payload: bytes) -> str:
    return vtp.ivorn_of(vtp.parse_xml(payload))


class ListenerThread:
    """Our gcn_to_redis (or listen) running in its own event loop in a thread."""

    def __init__(self, settings, servers, use_redis=True, on_voevent=None):
        self.settings, self.servers = settings, servers
        self.received: list[tuple[float, str]] = []  # (time.time(), ivorn)
        self.states: list[tuple[float, str, str]] = []
        self.rejects: list[str] = []
        self.use_redis, self.on_voevent = use_redis, on_voevent
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop_event = asyncio.Event()
            if self.use_redis:
                await vtp.gcn_to_redis(self.settings, servers=self.servers, stop=self.stop_event,
                                       on_notice=lambda sid, f: self.received.append((time.time(), f["ivorn"])))
            else:
                async def on_voevent(payload, root, notice_type):
                    if self.on_voevent:
                        await self.on_voevent(payload, root, notice_type)
                    self.received.append((time.time(), root.get("ivorn")))
                await vtp.listen(self.servers, on_voevent, settings=self.settings,
                                 on_state=lambda s, d: self.states.append((time.time(), s, d)),
                                 on_reject=lambda r, p: self.rejects.append(r), stop=self.stop_event)
        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def start(self):
        self.thread.start()
        wait_for(lambda: self.stop_event is not None, timeout=5)
        return self

    def ivorns(self) -> list[str]:
        return [i for _, i in self.received]

    def stop(self):
        if self.stop_event is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.error is None, repr(self.error)


@pytest.fixture
def listener_factory():
    listeners: list[ListenerThread] = []

    def make(*args, **kwargs) -> ListenerThread:
        listener = ListenerThread(*args, **kwargs).start()
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.stop()


def wait_subscribers(broker, n, timeout=10):
    wait_for(lambda: broker.counters().get("subscribers") == n, timeout=timeout,
             what=f"{n} subscribers at the broker")


# --- pygcn's own client ----------------------------------------------------------------
class StopPygcn(BaseException):
    """Raised from pygcn's logger calls to end its endless ``listen`` loop."""


class StoppableLog(logging.LoggerAdapter):
    """Logger for pygcn's listen that raises StopPygcn at its next call once stopped.

    pygcn's loop catches every Exception (even around the handler), but its error
    paths call the logger, so a BaseException from there ends the thread.
    """

    def __init__(self):
        super().__init__(logging.getLogger("pygcn-peer"), {})
        self.stopped = False

    def log(self, *args, **kwargs):
        if self.stopped:
            raise StopPygcn()
        super().log(*args, **kwargs)

    def warn(self, *args, **kwargs):  # pygcn uses the deprecated spelling
        self.warning(*args, **kwargs)


def test_pygcn_client_receives_from_broker(broker_service, redis_client):
    from gcn.voeventclient import listen as pygcn_listen
    received = []
    plog = StoppableLog()

    def run_pygcn():
        try:
            pygcn_listen(host=broker_service.host, port=broker_service.port, iamalive_timeout=5,
                         max_reconnect_timeout=1, log=plog,
                         handler=lambda payload, root: received.append(payload))
        except StopPygcn:
            pass
    thread = threading.Thread(target=run_pygcn, daemon=True)
    thread.start()
    try:
        wait_subscribers(broker_service, 1)
        append_voevent(redis_client, broker_service.settings, GBM)
        append_voevent(redis_client, broker_service.settings, LVK)
        wait_for(lambda: len(received) == 2, timeout=10, what="pygcn to receive both")
        assert received == [GBM, LVK]
        # pygcn acked both and answered the broker's iamalives (the counters reach the
        # health record at the broker's next heartbeat: wait for them, never read at once)
        wait_for(lambda: (c := broker_service.counters())["iamalive_answered"] >= 2 and c["acked"] == 2,
                 timeout=10, what="2 acks and 2 iamalive answers recorded")
        assert broker_service.counters()["dropped"] == 0
        assert f"acked {ivorn(GBM)}" in broker_service.log_text()
        assert redis_client.get(cursor_key(broker_service.settings)) is not None
    finally:
        plog.stopped = True
        broker_service.stop()  # pygcn's next log call (socket error) ends its thread
        thread.join(10)
    assert not thread.is_alive()


# --- our listener ------------------------------------------------------------------------
def test_our_listener_receives_from_broker(broker_service, redis_client, listener_factory):
    settings = broker_service.settings
    listener = listener_factory(settings, [broker_service.address])
    wait_subscribers(broker_service, 1)
    sent_at = {}
    for n in range(1, 6):
        payload = numbered(n)
        sent_at[ivorn(payload)] = time.time()
        append_voevent(redis_client, settings, payload)
    wait_for(lambda: len(listener.received) == 5, timeout=10, what="5 notices")
    assert listener.ivorns() == [ivorn(numbered(n)) for n in range(1, 6)]
    entries = redis_client.xrange(gcn_incoming_stream(settings))
    assert [f[b"notice_type"] for _, f in entries] == [b"LVC_PRELIMINARY"] * 5
    latencies = [t - sent_at[i] for t, i in listener.received]
    print(f"append -> stored latency: max {max(latencies) * 1e3:.1f} ms")
    assert max(latencies) < 2.0
    health = read_health(redis_client, settings, "gcn")
    assert health["state"] == "connected"
    wait_for(lambda: broker_service.counters()["acked"] == 5, timeout=5)


def test_publish_cli_end_to_end(broker_service, redis_client, listener_factory, tmp_path):
    """`gw-ops gcn publish` -> broker (author, durable append, ack) -> our listener -> Redis."""
    settings = broker_service.settings
    listener = listener_factory(settings, [broker_service.address])
    wait_subscribers(broker_service, 1)
    files = []
    for n in (7, 8):
        path = tmp_path / f"notice{n}.xml"
        path.write_bytes(numbered(n))
        files.append(str(path))
    files.append(str(DATA / "gbm_flt_pos.xml"))
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "gcn", "publish", *files,
                             "--broker", broker_service.address],
                            env={**settings.as_env()}, cwd=REPO_ROOT, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    wait_for(lambda: len(listener.received) == 3, timeout=10, what="3 published notices")
    assert listener.ivorns() == [ivorn(numbered(7)), ivorn(numbered(8)), ivorn(GBM)]
    print(f"publish CLI (process start included) -> stored: "
          f"{(listener.received[-1][0] - started) * 1e3:.0f} ms")
    # Durable in the outgoing stream too, and the broker counted an author.
    assert redis_client.xlen(voevent_outgoing_stream(settings)) == 3
    wait_for(lambda: broker_service.counters()["published"] == 3, timeout=10, what="3 published recorded")


def test_publish_latency_in_process(broker_service, listener_factory):
    """publish() -> broker ack -> listener stored, measured without process start-up."""
    settings = broker_service.settings
    listener = listener_factory(settings, [broker_service.address])
    wait_subscribers(broker_service, 1)
    latencies = []
    for n in range(20, 30):
        payload = numbered(n)
        started = time.time()
        assert asyncio.run(vtp.publish([payload], broker_service.host, broker_service.port)) == [ivorn(payload)]
        wanted = ivorn(payload)
        wait_for(lambda wanted=wanted: wanted in listener.ivorns(), timeout=5, interval=0.002)
        latencies.append(listener.received[-1][0] - started)
    latencies.sort()
    print(f"publish -> listener stored: median {latencies[5] * 1e3:.1f} ms, max {latencies[-1] * 1e3:.1f} ms")
    assert latencies[5] < 1.0


def test_broker_naks_bad_voevents_from_authors(broker_service, redis_client):
    settings = broker_service.settings

    def exchange(payload: bytes) -> tuple[str, str, str]:
        with socket.create_connection((broker_service.host, broker_service.port), timeout=5) as sock:
            sock.sendall(vtp.encode_packet(payload))
            while True:
                (length,) = struct.unpack(">I", recv_exact(sock, 4))
                root = vtp.parse_xml(recv_exact(sock, length))
                if vtp.classify(root) != vtp.IAMALIVE:
                    return (vtp.classify(root), vtp.transport_text(root, "Origin"),
                            vtp.transport_text(root, "Meta/Result"))

    assert exchange(b"definitely not xml")[0] == vtp.NAK
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + GBM.split(b"?>", 1)[1]
    assert exchange(dtd)[0] == vtp.NAK
    no_ivorn = GBM.replace(b'ivorn="', b'x-ivorn="')
    kind, _, result = exchange(no_ivorn)
    assert kind == vtp.NAK and "ivorn" in result
    # Nothing bad reached the outgoing stream; all three were dead-lettered.
    assert redis_client.xlen(voevent_outgoing_stream(settings)) == 0
    assert redis_client.xlen(deadletter_stream(settings, "broker")) == 3
    # publish() turns a nak into PublishError (send a VOEvent-shaped one with a DTD).
    with pytest.raises(vtp.BadPacket):
        vtp.publish_files([DATA / "README.md"], broker_service.host, broker_service.port)
    # The broker still works.
    assert vtp.publish_files([DATA / "gbm_flt_pos.xml"], broker_service.host,
                             broker_service.port) == [ivorn(GBM)]


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_notices_without_or_with_unknown_type_through_broker(broker_service, redis_client,
                                                               listener_factory, tmp_path):
    """Published through the real broker: the listener naks + dead-letters, then goes on."""
    settings = broker_service.settings
    listener = listener_factory(settings, [broker_service.address])
    wait_subscribers(broker_service, 1)
    vtp.publish_files([DATA / "no_packet_type.xml", DATA / "unknown_notice_type.xml",
                       DATA / "gbm_flt_pos.xml"], broker_service.host, broker_service.port)
    wait_for(lambda: listener.ivorns() == [ivorn(GBM)], timeout=10, what="the good notice")
    reasons = [f[b"reason"].decode() for _, f in redis_client.xrange(deadletter_stream(settings, "gcn"))]
    assert len(reasons) == 2
    assert "without a Packet_Type" in reasons[0] and "9999" in reasons[1]
    # the good notice is acked after the two naks: wait for the record that has all three
    wait_for(lambda: (c := broker_service.counters())["naked"] == 2 and c["acked"] == 1, timeout=10,
             what="2 naks and 1 ack recorded")
    assert "nak'ed ivo://gwnet/LVC#MS230101a-2-NoType" in broker_service.log_text()


# --- durability, reconnection, refusal, dead peers ---------------------------------------
def test_restart_loses_nothing_and_listener_backs_off(broker_service, redis_client, listener_factory):
    settings = broker_service.settings
    listener = listener_factory(settings, [broker_service.address], use_redis=False)
    wait_subscribers(broker_service, 1)
    first = append_voevent(redis_client, settings, numbered(1))
    wait_for(lambda: len(listener.received) == 1, timeout=10)
    # Received is not yet settled: only once the broker has moved its durable cursor past
    # entry 1 (after the ack) may it stop without sending entry 1 again (at-least-once).
    wait_for(lambda: redis_client.get(cursor_key(settings)) == first, timeout=30,
             what="the broker's cursor past the first entry")

    broker_service.stop()
    down_at = time.time()
    for n in (2, 3, 4):  # appended while the broker is down
        append_voevent(redis_client, settings, numbered(n))
    # Let the listener fail a few times: waits 1, 2, 2 s (cap 2 s in FAST_TIMINGS).
    wait_for(lambda: sum("retry in" in d for _, s, d in listener.states) >= 3, timeout=30,
             what="three failed reconnections")
    broker_service.start()
    wait_for(lambda: len(listener.received) == 4, timeout=30, what="the backlog after restart")
    assert listener.ivorns() == [ivorn(numbered(n)) for n in (1, 2, 3, 4)]

    retries = [d.rsplit("retry in ", 1)[1] for _, s, d in listener.states if "retry in" in d]
    assert retries[:3] == ["1 s", "2 s", "2 s"], retries
    failed = [t for t, s, d in listener.states if "retry in" in d]
    gaps = [b - a for a, b in zip(failed, failed[1:], strict=False)]
    assert 0.9 < gaps[0] < 1.9 and gaps[1] > 1.8, gaps  # it really waited 1 s, then 2 s
    states = [s for _, s, _ in listener.states]
    assert states[0] == "connected" and states[-1] == "connected"
    print(f"broker down {time.time() - down_at:.1f} s; backoff waits {retries[:4]}")
    # After a good connection the back-off starts again at 1 s.
    n_states = len(listener.states)
    broker_service.stop()
    wait_for(lambda: any("retry in" in d for _, s, d in listener.states[n_states:]), timeout=10)
    after = [d for _, s, d in listener.states[n_states:]]
    assert after[0].endswith("closed by server; reconnecting now"), after
    assert after[1].endswith("retry in 1 s"), after


def test_no_subscriber_holds_until_one_connects(broker_service, redis_client, listener_factory):
    settings = broker_service.settings
    for n in (1, 2):
        append_voevent(redis_client, settings, numbered(n))
    appended_at = time.time()
    # the broker, alive with nobody to send to, must hold: let it record its health (one
    # heartbeat, every broker_iamalive_s) three times after the append, then look
    wait_for(lambda: float(broker_service.health().get("updated", 0))
             > appended_at + 3 * settings.broker_iamalive_s, timeout=30, what="three broker heartbeats")
    assert broker_service.health()["state"] == "connected"
    assert redis_client.get(cursor_key(settings)) is None
    listener = listener_factory(settings, [broker_service.address])
    wait_for(lambda: len(listener.received) == 2, timeout=10, what="the held backlog")
    assert listener.ivorns() == [ivorn(numbered(1)), ivorn(numbered(2))]
    wait_for(lambda: redis_client.get(cursor_key(settings)) is not None, timeout=5)


def test_allow_list_refuses_others(broker_factory):
    broker = broker_factory(broker_allow=("10.0.0.0/8", "192.0.2.1"))
    with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed at once, no iamalive ever
    wait_for(lambda: "refused connection from 127.0.0.1" in broker.log_text(), timeout=5)
    wait_for(lambda: broker.counters().get("refused") == 1, timeout=5)
    assert broker.counters()["subscribers"] == 0


def test_silent_peer_dropped_and_event_redelivered(broker_service, redis_client, listener_factory):
    """A subscriber that neither acks nor answers iamalive is dropped; nothing is lost."""
    settings = broker_service.settings
    silent = socket.create_connection((broker_service.host, broker_service.port), timeout=10)
    try:
        wait_subscribers(broker_service, 1)
        append_voevent(redis_client, settings, numbered(1))
        started = time.time()
        wait_for(lambda: broker_service.counters()["dropped"] >= 1, timeout=10, what="the drop")
        print(f"silent peer dropped after {time.time() - started:.1f} s")
        assert "no ack for" in broker_service.log_text() or "iamalive unanswered" in broker_service.log_text()
        # It was the only subscriber, so the entry is held for the next one.
        assert redis_client.get(cursor_key(settings)) is None
        listener = listener_factory(settings, [broker_service.address])
        wait_for(lambda: listener.ivorns() == [ivorn(numbered(1))], timeout=10)
    finally:
        silent.close()


def test_failed_callback_redelivered_by_broker(broker_service, redis_client, listener_factory):
    """At-least-once end to end: a callback that fails once leaves the notice unacked."""
    settings = broker_service.settings
    failures = []

    async def flaky(payload, root, notice_type):
        if not failures:
            failures.append(root.get("ivorn"))
            raise RuntimeError("simulated storage failure")

    listener = listener_factory(settings, [broker_service.address], use_redis=False, on_voevent=flaky)
    wait_subscribers(broker_service, 1)
    append_voevent(redis_client, settings, numbered(5))
    wait_for(lambda: listener.ivorns() == [ivorn(numbered(5))], timeout=15)
    assert failures == [ivorn(numbered(5))]


def test_broker_skips_invalid_stream_entries(broker_service, redis_client, listener_factory):
    settings = broker_service.settings
    listener = listener_factory(settings, [broker_service.address])
    wait_subscribers(broker_service, 1)
    redis_client.xadd(voevent_outgoing_stream(settings), {"xml": b"<not-a-voevent/>", "ivorn": "x"})
    append_voevent(redis_client, settings, GBM)
    wait_for(lambda: listener.ivorns() == [ivorn(GBM)], timeout=10)
    letters = redis_client.xrange(deadletter_stream(settings, "broker"))
    assert len(letters) == 1 and b"unknown root element" in letters[0][1][b"reason"]
    with pytest.raises(vtp.BadPacket):
        append_voevent(redis_client, settings, b"<not-a-voevent/>")


def test_broker_health_and_clean_shutdown(broker_service, redis_client):
    # broker_service.start() returned once this run's record was written (the race of
    # reading it after the "listening" line alone is gone)
    health = broker_service.health()
    assert health["state"] == "connected" and "subscribers=0" in health["detail"]
    broker_service.stop()  # SIGTERM, waiting for the exit as long as a loaded machine needs
    assert broker_service.proc.returncode == 0, broker_service.log_text()
    assert broker_service.health()["state"] == "disconnected"
    assert "VOEvent broker stopped" in broker_service.log_text()


def test_fan_out_to_several_subscribers_despite_a_silent_one(broker_factory, redis_client,
                                                             listener_factory):
    """Every subscriber gets every notice; a silent one is dropped and does not block the rest.

    No clock in the assertion: the silent peer's acknowledgement timeout is long (20 s), so
    "the others had everything while the silent one was still waiting to be dropped" shows
    that nobody waited for it, however busy the machine is.
    """
    broker_service = broker_factory(broker_ack_timeout_s=20.0)
    settings = broker_service.settings
    first = listener_factory(settings, [broker_service.address], use_redis=False)
    second = listener_factory(settings, [broker_service.address], use_redis=False)
    silent = socket.create_connection((broker_service.host, broker_service.port), timeout=10)
    try:
        wait_subscribers(broker_service, 3)
        for n in (1, 2, 3):
            append_voevent(redis_client, settings, numbered(n))
        expected = [ivorn(numbered(n)) for n in (1, 2, 3)]
        wait_for(lambda: first.ivorns() == expected and second.ivorns() == expected, timeout=15,
                 interval=0.01)
        # Pipelined sending: the silent peer, not yet timed out, held up nobody.
        counters = broker_service.counters()
        assert counters["dropped"] == 0 and counters["subscribers"] == 3, counters
        wait_for(lambda: (c := broker_service.counters())["subscribers"] == 2 and c["acked"] == 6
                 and c["dropped"] == 1, timeout=60, what="the silent peer dropped, 6 acks recorded")
    finally:
        silent.close()
