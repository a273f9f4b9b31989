"""The shared parser of untrusted XML (gw_ops.formats.xml): size bound, DOCTYPE, entities."""
from __future__ import annotations

import pytest
from lxml import etree

from gw_ops.formats import xml as safe_xml
from tests.test_vtp import BILLION_LAUGHS, external_entity

LIGO_LW_DOCTYPE = (b'<?xml version="1.0"?>\n<!DOCTYPE LIGO_LW SYSTEM '
                   b'"http://ldas-sw.ligo.caltech.edu/doc/ligolwAPI/html/ligolw_dtd.txt">\n')


def test_parses_plain_xml():
    root = safe_xml.parse_xml(b"<a><b x='1'/></a>", max_bytes=100)
    assert root.tag == "a" and root[0].get("x") == "1"


def test_size_bound_is_checked_before_parsing():
    payload = b"<a>" + b"x" * 100 + b"</a>"
    assert safe_xml.parse_xml(payload, max_bytes=len(payload)).text == "x" * 100
    with pytest.raises(safe_xml.XMLTooLarge, match=f"{len(payload)} bytes is larger than the "
                                                    f"{len(payload) - 1} bytes allowed"):
        safe_xml.parse_xml(payload, max_bytes=len(payload) - 1)
    # Not well-formed, but refused for its size first: libxml2 never sees it.
    with pytest.raises(safe_xml.XMLTooLarge):
        safe_xml.parse_xml(b"<" * 1000, max_bytes=10)


@pytest.mark.parametrize("payload", [b"", b"not xml", b"<unclosed>", b"\xff\xfe\x00garbage"])
def test_malformed_is_a_value_error_with_libxml2_detail(payload):
    with pytest.raises(safe_xml.MalformedXML, match="not well-formed XML") as info:
        safe_xml.parse_xml(payload, max_bytes=1000)
    assert isinstance(info.value, ValueError) and info.value.detail


def test_non_bytes_is_a_bug_not_bad_input():
    with pytest.raises(TypeError):
        safe_xml.parse_xml("<a/>", max_bytes=100)


@pytest.mark.parametrize("allow_doctype", [False, True])
def test_billion_laughs_refused(allow_doctype):
    with pytest.raises(safe_xml.XMLRejected, match="DTD|amplification|entit"):
        safe_xml.parse_xml(BILLION_LAUGHS, max_bytes=10_000, allow_doctype=allow_doctype)


@pytest.mark.parametrize("allow_doctype", [False, True])
def test_external_entity_refused_and_never_read(tmp_path, allow_doctype):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(safe_xml.XMLDoctypeRefused) as info:
        safe_xml.parse_xml(external_entity(secret), max_bytes=10_000, allow_doctype=allow_doctype)
    assert "TOP-SECRET" not in str(info.value)


def test_ligolw_doctype_allowed_only_when_asked():
    payload = LIGO_LW_DOCTYPE + b"<LIGO_LW><Table Name='coinc_inspiral:table'/></LIGO_LW>"
    with pytest.raises(safe_xml.XMLDoctypeRefused, match="DOCTYPE"):
        safe_xml.parse_xml(payload, max_bytes=10_000)
    root = safe_xml.parse_xml(payload, max_bytes=10_000, allow_doctype=True)
    assert root.tag == "LIGO_LW"


def test_entity_reference_to_unloaded_external_dtd_refused():
    # The external DTD is never loaded, so &x; stays an unresolved reference: refused.
    payload = LIGO_LW_DOCTYPE + b"<LIGO_LW>&x;</LIGO_LW>"
    with pytest.raises(safe_xml.XMLDoctypeRefused, match="entities are not allowed"):
        safe_xml.parse_xml(payload, max_bytes=10_000, allow_doctype=True)


def test_hardened_parser_never_expands(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    root = etree.fromstring(external_entity(secret), parser=safe_xml.hardened_parser())
    assert "TOP-SECRET" not in etree.tostring(root).decode()
