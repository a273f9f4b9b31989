"""Faults and attacks on the VOEvent broker (issue 12 items 1 and 4), with real processes.

* Redis SIGKILLed and restarted under a running ``gw-ops broker``: the broker keeps serving
  its peers, raises its alarm, and delivers everything appended before and after.
* A subscriber that drops mid-delivery and reconnects gets what it missed, in order, without
  what it acknowledged, while another subscriber acknowledged everything.
* Authoring is a separate permission from subscribing: a forged alert is refused.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import pytest

from gw_ops.config import get_settings
from gw_ops.transport.redis_client import deadletter_stream, voevent_outgoing_stream
from gw_ops.vtp import protocol as vtp
from gw_ops.vtp.broker import append_voevent
from tests.helpers import wait_for
from tests.private_redis import PrivateRedis, private_redis  # noqa: F401 - fixture
from tests.test_broker import (  # noqa: F401 - listener_factory is a fixture
    StoppableLog,
    StopPygcn,
    ivorn,
    listener_factory,
    numbered,
    wait_subscribers,
)


def recv_packet(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed by the broker")
            data += chunk
        return data
    (length,) = struct.unpack(">I", exact(4))
    return exact(length)


class RawSubscriber:
    """A VTP subscriber on a plain socket that acks ``ack_limit`` VOEvents, then drops the link
    when the next one arrives (without acking it).  ``ack_limit=None`` acks everything.
    ``before_drop()``, when given, is called before it drops the link (e.g. to wait until the
    broker has read its acks: a drop with deliveries unread resets the link, and the reset
    discards what the broker had received but not read yet)."""

    def __init__(self, host: str, port: int, ivorn_: str, ack_limit: int | None = None,
                 before_drop=None):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.ivorn, self.ack_limit, self.before_drop = ivorn_, ack_limit, before_drop
        self.acked: list[str] = []
        self.dropped_at: str | None = None
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def send(self, payload: bytes) -> None:
        self.sock.sendall(vtp.encode_packet(payload))

    def run(self) -> None:
        try:
            while True:
                root = vtp.parse_xml(recv_packet(self.sock))
                kind = vtp.classify(root)
                if kind == vtp.IAMALIVE:
                    self.send(vtp.make_transport(vtp.IAMALIVE, vtp.transport_text(root, "Origin"), self.ivorn))
                elif kind == vtp.VOEVENT:
                    event = vtp.ivorn_of(root)
                    if self.ack_limit is not None and len(self.acked) >= self.ack_limit:
                        self.dropped_at = event
                        if self.before_drop is not None:
                            self.before_drop()
                        return
                    self.send(vtp.make_transport(vtp.ACK, event, self.ivorn))
                    self.acked.append(event)
        except OSError:
            pass
        finally:
            self.sock.close()
            self.closed.set()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)


def wait_delivering(broker, subscriber_ivorn: str, sessions: int = 1) -> None:
    """Wait until the broker started its ``sessions``-th delivery to ``subscriber_ivorn``
    (it knows a subscriber only from its first answer)."""
    wait_for(lambda: broker.log_text().count(f"delivering to '{subscriber_ivorn} from ") >= sessions,
             timeout=10, what=f"delivery session {sessions} to {subscriber_ivorn}")


# --- item 1: Redis SIGKILL and restart ---------------------------------------------------
def test_broker_survives_redis_sigkill_and_restart(broker_factory, listener_factory, private_redis):  # noqa: F811
    from gcn.voeventclient import listen as pygcn_listen
    broker = broker_factory(redis_url=private_redis.url)
    settings = broker.settings
    ours = listener_factory(settings, [broker.address], use_redis=False)
    pygcn_received: list[bytes] = []
    plog = StoppableLog()

    def run_pygcn():
        try:
            pygcn_listen(host=broker.host, port=broker.port, ivorn="ivo://faults/pygcn", iamalive_timeout=5,
                         max_reconnect_timeout=1, log=plog,
                         handler=lambda payload, root: pygcn_received.append(payload))
        except StopPygcn:
            pass
    pygcn_thread = threading.Thread(target=run_pygcn, daemon=True)
    pygcn_thread.start()
    client = private_redis.client()
    try:
        wait_delivering(broker, "ivo://faults/pygcn")
        wait_delivering(broker, "ivo://gw-ops/listener")
        before = [numbered(n) for n in range(1, 6)]
        for payload in before:
            append_voevent(client, settings, payload)
        wait_for(lambda: len(ours.received) == 5 and len(pygcn_received) == 5, timeout=15,
                 what="the alerts appended before the fault")
        # appended just before the kill: maybe not yet sent; the AOF (fsync always) keeps them
        just_before = [numbered(n) for n in range(6, 9)]
        for payload in just_before:
            append_voevent(client, settings, payload)
        client.close()
        private_redis.kill()
        killed_at = time.time()
        wait_for(lambda: "Redis unavailable" in broker.log_text(), timeout=15, what="the broker's alarm")
        # still serving: the process lives and our listener keeps getting iamalives
        heartbeats = lambda: sum("(iamalive)" in d and t > killed_at for t, _, d in ours.states)  # noqa: E731
        # longer than the ack timeout (2 s): peers must not be dropped for Redis' sake
        wait_for(lambda: heartbeats() >= 8, timeout=20, what="iamalives while Redis is down")
        assert broker.proc.poll() is None, broker.log_text()
        outage_s = time.time() - killed_at
        private_redis.start()  # same port, same folder
        client = private_redis.client()
        after = [numbered(n) for n in range(9, 14)]
        for payload in after:
            append_voevent(client, settings, payload)
        expected = [ivorn(p) for p in before + just_before + after]
        wait_for(lambda: ours.ivorns()[-len(after):] == expected[-len(after):] and
                 len(pygcn_received) >= len(expected), timeout=30,
                 what="every alert at both subscribers after the restart")
        assert broker.proc.poll() is None, broker.log_text()
        # at-least-once: an alert in flight at the kill may come twice, none is missing
        # and the order holds
        ours_unique = list(dict.fromkeys(ours.ivorns()))
        pygcn_unique = list(dict.fromkeys(ivorn(p) for p in pygcn_received))
        assert ours_unique == expected and pygcn_unique == expected
        # the record from before the kill came back with the AOF; wait for the new one
        wait_for(lambda: broker.health().get("state") == "connected" and
                 broker.counters().get("redis_outages") == 1, timeout=10,
                 what="the broker's health record: connected again, one outage counted")
        assert broker.counters()["dropped"] == 0, broker.health()
        print(f"Redis SIGKILL + restart ({outage_s:.1f} s down): {len(expected)} alerts in, "
              f"{len(ours_unique)} distinct at our listener ({len(ours.ivorns())} deliveries), "
              f"{len(pygcn_unique)} at pygcn ({len(pygcn_received)}), broker kept serving "
              f"({heartbeats()} iamalives to our listener since the kill)")
    finally:
        plog.stopped = True
        broker.stop()
        pygcn_thread.join(10)
        client.close()


# --- item 4: delivery tracked per subscriber --------------------------------------------
def test_subscriber_dropping_mid_delivery_gets_what_it_missed(broker_service, redis_client,
                                                              listener_factory):  # noqa: F811
    settings = broker_service.settings
    steady = listener_factory(settings, [broker_service.address], use_redis=False)
    entry_ids: list[bytes] = []
    cursor_key = settings.key("broker", "subscriber", "cursor")

    def broker_read_both_acks():
        # the broker's cursor of the flaky subscriber at alert 2: both acks were read
        wait_for(lambda: redis_client.hget(cursor_key, "ivo://faults/flaky from 127.0.0.1") == entry_ids[1],
                 timeout=30, what="the broker reading the flaky subscriber's two acks")
    flaky = RawSubscriber(broker_service.host, broker_service.port, "ivo://faults/flaky", ack_limit=2,
                          before_drop=broker_read_both_acks)
    wait_delivering(broker_service, "ivo://faults/flaky")
    wait_delivering(broker_service, "ivo://gw-ops/listener")
    alerts = [numbered(n) for n in range(1, 7)]
    for payload in alerts:
        entry_ids.append(append_voevent(redis_client, settings, payload))
    expected = [ivorn(p) for p in alerts]
    wait_for(lambda: steady.ivorns() == expected, timeout=60, what="the steady subscriber's alerts")
    assert flaky.closed.wait(60)
    assert flaky.acked == expected[:2] and flaky.dropped_at == expected[2]
    wait_subscribers(broker_service, 1)  # the broker saw it go
    back = RawSubscriber(broker_service.host, broker_service.port, "ivo://faults/flaky")
    # exactly what it has no ack for, in order (its acks were read before the drop)
    try:
        wait_for(lambda: back.acked == expected[2:], timeout=60, what="the missed alerts, in order")
        append_voevent(redis_client, settings, numbered(7))
        wait_for(lambda: back.acked == expected[2:] + [ivorn(numbered(7))], timeout=60)
        wait_for(lambda: steady.ivorns() == expected + [ivorn(numbered(7))], timeout=60)
        print(f"two subscribers, one dropped after 2 of 6: it got the other {len(expected) - 2} "
              "on reconnection")
    finally:
        back.close()


def test_replay_to_a_reconnecting_subscriber_is_bounded(broker_factory, redis_client, listener_factory):  # noqa: F811
    broker = broker_factory(broker_replay_max_entries=2)
    settings = broker.settings
    steady = listener_factory(settings, [broker.address], use_redis=False)
    flaky = RawSubscriber(broker.host, broker.port, "ivo://faults/flaky", ack_limit=1)
    wait_delivering(broker, "ivo://faults/flaky")
    wait_delivering(broker, "ivo://gw-ops/listener")
    alerts = [numbered(n) for n in range(1, 7)]
    for payload in alerts:
        append_voevent(redis_client, settings, payload)
    wait_for(lambda: len(steady.received) == 6, timeout=15)
    assert flaky.closed.wait(15)
    wait_subscribers(broker, 1)
    back = RawSubscriber(broker.host, broker.port, "ivo://faults/flaky")
    try:
        try:
            wait_for(lambda: back.acked == [ivorn(p) for p in alerts[-2:]], timeout=15,
                     what="only the newest 2 missed alerts")
        except TimeoutError:
            raise AssertionError(f"got {back.acked}\n{broker.log_text()}") from None
        assert "cut to the newest 2 entries" in broker.log_text()
    finally:
        back.close()


# --- item 3: authoring is a separate permission ------------------------------------------
def exchange(host: str, port: int, payload: bytes, source: str = "127.0.0.1") -> tuple[str, str]:
    """Send one VOEvent as an author from ``source``; return the broker's (role, result)."""
    with socket.create_connection((host, port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(vtp.encode_packet(payload))
        while True:
            root = vtp.parse_xml(recv_packet(sock))
            kind = vtp.classify(root)
            if kind in (vtp.ACK, vtp.NAK):
                return kind, vtp.transport_text(root, "Meta/Result")


def test_forged_alert_from_a_subscriber_only_peer_is_refused(broker_factory, redis_client,
                                                             listener_factory):  # noqa: F811
    assert get_settings(env={}).broker_authors == ("127.0.0.0/8", "::1/128")  # local preset
    assert get_settings(env={"GW_OPS_PRESET": "production"}).broker_authors == ()
    broker = broker_factory(broker_authors=("127.0.0.2/32",))
    settings = broker.settings
    subscriber = listener_factory(settings, [broker.address], use_redis=False)
    wait_delivering(broker, "ivo://gw-ops/listener")
    forged = numbered(666)  # an LVK Preliminary, from a peer that may only subscribe
    kind, result = exchange(broker.host, broker.port, forged)
    assert kind == vtp.NAK and "may not author" in result
    assert redis_client.xlen(voevent_outgoing_stream(settings)) == 0
    letters = redis_client.xrange(deadletter_stream(settings, "broker"))
    assert len(letters) == 1 and b"may not author" in letters[0][1][b"reason"]
    # the allowed author (its own address) is accepted, and only its alert is delivered
    genuine = numbered(1)
    assert exchange(broker.host, broker.port, genuine, source="127.0.0.2") == (vtp.ACK, "")
    wait_for(lambda: subscriber.ivorns() == [ivorn(genuine)], timeout=10, what="the genuine alert")
    assert broker.counters()["refused_authors"] == 1
    # publish() (gw-ops gcn publish) reports the refusal as an error
    with pytest.raises(vtp.PublishError, match="may not author"):
        asyncio.run(vtp.publish([numbered(667)], broker.host, broker.port, timeout=5))
    assert subscriber.ivorns() == [ivorn(genuine)]


def test_broker_started_while_redis_is_down_serves_once_it_is_up(
        broker_factory, listener_factory, private_redis):  # noqa: F811
    private_redis.kill()
    broker = broker_factory(redis_url=private_redis.url)  # it starts and listens regardless
    ours = listener_factory(broker.settings, [broker.address], use_redis=False)
    wait_for(lambda: sum("(iamalive)" in d for _, _, d in ours.states) >= 3, timeout=15,
             what="iamalives from a broker without Redis")
    assert "Redis unavailable" in broker.log_text() and broker.proc.poll() is None
    private_redis.start()
    client = private_redis.client()
    try:
        append_voevent(client, broker.settings, numbered(1))
        wait_for(lambda: ours.ivorns() == [ivorn(numbered(1))], timeout=20, what="the first alert")
    finally:
        client.close()
