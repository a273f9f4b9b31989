"""gw_ops.vtp.protocol.listen / gcn_to_redis against a scripted VTP server sending hostile input.

The server here is a real TCP peer (asyncio) that writes exactly the bytes a test
scripts, per connection, and records what the listener answers.  Each bad input is
followed by a good notice: the listener must reject (log + dead-letter) the bad one,
keep running, and deliver the good one.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import struct
from pathlib import Path

import pytest

from gw_ops.transport.redis_client import deadletter_stream, gcn_incoming_stream, read_health
from gw_ops.vtp import protocol as vtp
from tests.test_vtp import BILLION_LAUGHS, DATA, external_entity

GOOD = (DATA / "gbm_flt_pos.xml").read_bytes()
GOOD_IVORN = vtp.ivorn_of(vtp.parse_xml(GOOD))


@pytest.fixture
def fast_settings(fresh_prefix_settings):
    return dataclasses.replace(fresh_prefix_settings, gcn_timeout_s=3.0, gcn_backoff_cap_s=2.0,
                               gcn_max_packet_bytes=1024 * 1024)


class ScriptedServer:
    """Serves connection ``i`` the raw byte chunks ``scripts[i]`` (then stays open)."""

    def __init__(self, scripts: list[list[bytes]]):
        self.scripts = scripts
        self.connections = 0
        self.answers: list[bytes] = []  # payloads the listener sent back
        self.server = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader, writer):
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        for chunk in script:
            writer.write(chunk)
        await writer.drain()
        try:
            while True:
                self.answers.append(await vtp.read_packet(reader, 1 << 20))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def answer_roles(self) -> list[tuple[str, str]]:
        roots = [vtp.parse_xml(answer) for answer in self.answers]
        return [(vtp.classify(r), vtp.transport_text(r, "Origin")) for r in roots]

    async def close(self):
        self.server.close()


async def run_listener_until(settings, server: ScriptedServer, condition, timeout=15.0):
    """Run gcn_to_redis against ``server`` until ``condition()`` holds; stop it cleanly."""
    address = await server.start()
    stop = asyncio.Event()
    task = asyncio.ensure_future(vtp.gcn_to_redis(settings, servers=[address], stop=stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await asyncio.to_thread(condition):
            assert not task.done(), f"listener ended: {task.exception()!r}"
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.close()


def frame(payload: bytes) -> bytes:
    return vtp.encode_packet(payload)


NO_TYPE = (DATA / "no_packet_type.xml").read_bytes()
UNKNOWN_TYPE = (DATA / "unknown_notice_type.xml").read_bytes()

#: name -> (connection scripts, expected reason fragment, listener naks the bad one?)
BAD_INPUTS = {
    "non-xml": ([[frame(b"\x00\x01 this is not XML"), frame(GOOD)]], "not well-formed XML", False),
    "billion-laughs": ([[frame(BILLION_LAUGHS), frame(GOOD)]], "bad packet", False),
    "external-entity": ([[frame(external_entity(Path("/etc/hostname"))), frame(GOOD)]], "DTD", False),
    "no-packet-type": ([[frame(NO_TYPE), frame(GOOD)]], "without a Packet_Type", True),
    "unknown-notice-type": ([[frame(UNKNOWN_TYPE), frame(GOOD)]], "unknown GCN notice type '9999'", True),
    # These two lose the framing: the listener drops the link, reconnects, and the good
    # notice comes on the next connection.
    "oversize-length": ([[struct.pack(">I", 2 * 1024 * 1024) + b"x" * 64], [frame(GOOD)]],
                        "oversize packet", False),
    "little-endian-length": ([[struct.pack("<I", len(GOOD)) + GOOD], [frame(GOOD)]],
                             "little-endian", False),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_rejected_listener_continues(name, fast_settings, redis_client, caplog):
    scripts, reason, naked = BAD_INPUTS[name]
    server = ScriptedServer(scripts)
    incoming = gcn_incoming_stream(fast_settings)
    dead = deadletter_stream(fast_settings, "gcn")
    caplog.set_level(logging.WARNING, logger="gw_ops.vtp.protocol")

    asyncio.run(run_listener_until(fast_settings, server,
                                   lambda: redis_client.xlen(incoming) >= 1
                                   and (vtp.ACK, GOOD_IVORN) in server.answer_roles()))

    # The bad input: logged and dead-lettered with its reason.
    letters = redis_client.xrange(dead)
    assert len(letters) == 1, letters
    assert reason in letters[0][1][b"reason"].decode()
    assert reason in caplog.text
    # The good notice that followed arrived, exactly once, and was acked.
    (entry_id, fields), = redis_client.xrange(incoming)
    assert fields[b"xml"] == GOOD
    assert fields[b"notice_type"] == b"FERMI_GBM_FLT_POS"
    assert fields[b"ivorn"].decode() == GOOD_IVORN
    assert float(fields[b"received"]) > 0
    roles = server.answer_roles()
    assert roles.count((vtp.ACK, GOOD_IVORN)) == 1
    assert (vtp.NAK in [role for role, _ in roles]) == naked
    assert server.connections == len(scripts)
    # The listener's state: it stopped cleanly and recorded that it saw a message.
    health = read_health(redis_client, fast_settings, "gcn")
    assert health["state"] == "disconnected" and "last_message" in health


def test_iamalive_answered_and_silence_is_a_dead_link(fast_settings):
    """iamalive gets an iamalive back; silence past gcn_timeout_s makes the listener reconnect."""
    settings = dataclasses.replace(fast_settings, gcn_timeout_s=0.5)
    server = ScriptedServer([[frame(vtp.make_transport(vtp.IAMALIVE, "ivo://scripted"))]])
    states: list[tuple[str, str]] = []

    async def main():
        address = await server.start()
        stop = asyncio.Event()
        task = asyncio.ensure_future(vtp.listen([address], lambda *a: None, settings=settings,
                                                on_state=lambda s, d: states.append((s, d)),
                                                stop=stop))
        for _ in range(100):
            if server.connections >= 2:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        await server.close()

    asyncio.run(main())
    assert server.connections >= 2
    reply = vtp.parse_xml(server.answers[0])
    assert vtp.classify(reply) == vtp.IAMALIVE
    assert vtp.transport_text(reply, "Origin") == "ivo://scripted"
    assert vtp.transport_text(reply, "Response") == vtp.CLIENT_IVORN
    assert any(s == "disconnected" and "dead link" in d and "reconnecting now" in d for s, d in states)


def test_ack_only_after_callback_and_not_on_failure(fast_settings):
    """The ack follows the callback; a failing callback leaves the notice unacked."""
    server = ScriptedServer([[frame(GOOD)]])
    calls = []

    async def on_voevent(payload, root, notice_type):
        calls.append(len(server.answers))  # answers already sent when the callback runs
        if len(calls) == 1:
            raise RuntimeError("Redis is down")

    async def main():
        address = await server.start()
        stop = asyncio.Event()
        task = asyncio.ensure_future(vtp.listen([address], on_voevent, settings=fast_settings,
                                                stop=stop))
        for _ in range(200):
            if len(calls) >= 2 and server.answers:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        await server.close()

    asyncio.run(main())
    assert calls[:2] == [0, 0]  # nothing was acked before either callback ran
    assert server.connections == 2  # the failure dropped the link; the resend came on a new one
    assert server.answer_roles() == [(vtp.ACK, GOOD_IVORN)]


def test_cycles_through_servers(fast_settings):
    """A dead first server costs one back-off step; the second one then delivers."""
    from tests.helpers import free_port
    server = ScriptedServer([[frame(GOOD)]])
    received, states, addresses = [], [], []

    async def main():
        address = await server.start()
        addresses.append(address)
        stop = asyncio.Event()
        task = asyncio.ensure_future(vtp.listen(
            [f"127.0.0.1:{free_port()}", address], lambda p, r, t: received.append(p),
            settings=fast_settings, on_state=lambda s, d: states.append((s, d)), stop=stop))
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        await server.close()

    asyncio.run(main())
    assert received == [GOOD]
    assert states[0][0] == "disconnected" and states[0][1].endswith("retry in 1 s")
    assert states[1] == ("connected", addresses[0])
