"""Unit tests of gw_ops.vtp.protocol: framing, hardened parsing, Transport messages, notice types."""
from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from gcn import NoticeType

from gw_ops.vtp import protocol as vtp

DATA = Path(__file__).parent / "data" / "voevents"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://evil/lol" role="test"
 version="2.0"><What><Param name="Packet_Type" value="150"/><Description>&lol9;</Description></What></voe:VOEvent>
"""


def external_entity(target: Path) -> bytes:
    """A VOEvent that would inline ``target`` if external entities were resolved."""
    return (f'<?xml version="1.0"?><!DOCTYPE voe:VOEvent [<!ENTITY xxe SYSTEM "file://{target}">]>'
            '<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://evil/xxe" '
            'role="test" version="2.0"><What><Param name="Packet_Type" value="150"/>'
            '<Description>&xxe;</Description></What></voe:VOEvent>').encode()


def read_from(data: bytes, max_bytes: int = 1024) -> bytes:
    async def main():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await vtp.read_packet(reader, max_bytes)
    return asyncio.run(main())


def test_framing_round_trip():
    payload = b"<x/>" * 10
    packet = vtp.encode_packet(payload)
    assert packet[:4] == struct.pack(">I", len(payload))
    assert read_from(packet + b"trailing") == payload


def test_read_packet_rejects_oversize_and_little_endian():
    with pytest.raises(vtp.PacketTooLarge, match="more than the 1024 allowed"):
        read_from(struct.pack(">I", 1025) + b"x" * 1025)
    # A 100-byte packet framed little-endian reads as 1677721600 bytes.
    with pytest.raises(vtp.PacketTooLarge, match="little-endian"):
        read_from(struct.pack("<I", 100) + b"x" * 100)


def test_read_packet_truncated():
    with pytest.raises(asyncio.IncompleteReadError):
        read_from(struct.pack(">I", 50) + b"short")


def test_parse_real_notice():
    root = vtp.parse_xml((DATA / "gbm_flt_pos.xml").read_bytes())
    assert vtp.classify(root) == vtp.VOEVENT
    assert vtp.notice_type_of(root) is NoticeType.FERMI_GBM_FLT_POS
    assert vtp.ivorn_of(root).startswith("ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos")
    lvk = vtp.parse_xml((DATA / "lvk_preliminary.xml").read_bytes())
    assert vtp.notice_type_of(lvk) is NoticeType.LVC_PRELIMINARY


@pytest.mark.parametrize("payload", [b"not xml at all", b"", b"<unclosed>", b"\xff\xfe\x00garbage"])
def test_parse_rejects_non_xml(payload):
    with pytest.raises(vtp.BadPacket, match="XML"):
        vtp.parse_xml(payload)


def test_billion_laughs_not_expanded():
    # libxml2 itself may stop at its amplification limit; either way it is refused.
    with pytest.raises(vtp.BadPacket, match="DTD|amplification"):
        vtp.parse_xml(BILLION_LAUGHS)


def test_external_entity_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(vtp.BadPacket, match="DTD") as info:
        vtp.parse_xml(external_entity(secret))
    assert "TOP-SECRET" not in str(info.value)


def test_parser_itself_does_not_expand_entities(tmp_path):
    """Second line of defence: even without the DOCTYPE check nothing expands."""
    from lxml import etree

    from gw_ops.formats.xml import hardened_parser
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    root = etree.fromstring(external_entity(secret), parser=hardened_parser())
    assert "TOP-SECRET" not in etree.tostring(root).decode()
    try:
        root = etree.fromstring(BILLION_LAUGHS, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:  # libxml2's own amplification guard
        assert "amplification" in str(exc)
    else:
        assert len(etree.tostring(root)) < 10_000


@pytest.mark.parametrize("role", vtp.TRANSPORT_ROLES)
def test_transport_round_trip(role):
    packet = vtp.make_transport(role, "ivo://a/b#c<&>", "ivo://me", result="why & how")
    root = vtp.parse_xml(packet)
    assert vtp.classify(root) == role
    assert vtp.transport_text(root, "Origin") == "ivo://a/b#c<&>"
    assert vtp.transport_text(root, "Response") == "ivo://me"
    assert vtp.transport_text(root, "Meta/Result") == "why & how"
    assert vtp.transport_text(root, "TimeStamp").endswith("Z")
    # The order of the schema: Origin, Response, TimeStamp, Meta.
    assert [child.tag for child in root] == ["Origin", "Response", "TimeStamp", "Meta"]


def test_transport_understood_by_pygcn_namespace_list():
    from gcn.voeventclient import _valid_vtp_root_tags
    root = vtp.parse_xml(vtp.make_transport("iamalive", "ivo://server"))
    assert root.tag in _valid_vtp_root_tags
    assert root.find("Response") is None


def test_transport_bad_role():
    with pytest.raises(ValueError):
        vtp.make_transport("hello", "ivo://x")
    root = vtp.parse_xml(b'<trn:Transport xmlns:trn="http://telescope-networks.org/schema/Transport/v1.1"'
                         b' role="hello" version="1.0"/>')
    with pytest.raises(vtp.BadPacket, match="role"):
        vtp.classify(root)
    with pytest.raises(vtp.BadPacket, match="root element"):
        vtp.classify(vtp.parse_xml(b"<html/>"))


def test_notice_type_missing_or_unknown():
    with pytest.raises(vtp.NoticeTypeError, match="without a Packet_Type"):
        vtp.notice_type_of(vtp.parse_xml((DATA / "no_packet_type.xml").read_bytes()))
    with pytest.raises(vtp.NoticeTypeError, match="unknown GCN notice type '9999'"):
        vtp.notice_type_of(vtp.parse_xml((DATA / "unknown_notice_type.xml").read_bytes()))


def test_voevent_without_ivorn():
    root = vtp.parse_xml(b'<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"/>')
    with pytest.raises(vtp.BadPacket, match="ivorn"):
        vtp.ivorn_of(root)


def test_split_server():
    assert vtp.split_server("gcn.example.org:8099") == ("gcn.example.org", 8099)
    assert vtp.split_server("[::1]:8099") == ("::1", 8099)
    with pytest.raises(ValueError):
        vtp.split_server("nohost")
