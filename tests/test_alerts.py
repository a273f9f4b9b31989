"""Alert contents: VOEvent (schema-valid, pygcn-readable), JSON alert, Circular draft."""
from __future__ import annotations

import base64

import pytest
from gcn import NoticeType
from gcn.handlers import get_notice_type
from lxml import etree

from gw_ops.formats import alert_content, circular, json_alert, voevent
from gw_ops.formats.xml import XMLDoctypeRefused

SKYMAP_URL = "http://127.0.0.1:8090/api/superevents/S230518h/files/bayestar.multiorder.fits,0"


def make_content(**changes) -> alert_content.AlertContent:
    values = dict(
        superevent_id="S230518h", alert_type=alert_content.PRELIMINARY, serial_number=1,
        time_created="2023-05-18T12:59:35Z", event_time_gps=1126259462.4, far=3.2e-10,
        significant=True, group="CBC", pipeline="gstlal", search="AllSky",
        instruments=("H1", "L1"), skymap_filename="bayestar.multiorder.fits",
        skymap_url=SKYMAP_URL, skymap_bytes=b"SIMPLE  = T tiny fits",
        classification={"BNS": 0.1, "NSBH": 0.7, "BBH": 0.0, "Terrestrial": 0.2},
        properties={"HasNS": 1.0, "HasRemnant": 0.2, "HasMassGap": 0.05},
        event_page="http://127.0.0.1:8090/superevents/S230518h/view/")
    values.update(changes)
    return alert_content.AlertContent(**values)


@pytest.mark.parametrize("alert_type, notice_type", [
    (alert_content.EARLY_WARNING, NoticeType.LVC_EARLY_WARNING),
    (alert_content.PRELIMINARY, NoticeType.LVC_PRELIMINARY),
    (alert_content.INITIAL, NoticeType.LVC_INITIAL),
    (alert_content.UPDATE, NoticeType.LVC_UPDATE),
    (alert_content.RETRACTION, NoticeType.LVC_RETRACTION),
])
def test_voevent_is_valid_and_pygcn_reads_its_type(alert_type, notice_type):
    content = make_content(alert_type=alert_type, serial_number=3,
                           cited_ivorns=("ivo://gwnet/LVC#S230518h-1-Preliminary",))
    xml = voevent.build_voevent(content)
    voevent.validate_voevent(xml)
    root = etree.fromstring(xml)
    assert NoticeType(get_notice_type(root)) == notice_type
    assert root.get("ivorn") == f"ivo://gwnet/LVC#S230518h-3-{alert_type}"
    assert root.get("role") == "observation"
    params = voevent.voevent_params(xml)
    assert params["AlertType"] == alert_type
    assert params["Pkt_Ser_Num"] == "3"
    # LVK VOEvents carry the serial number as a string (GraceDB-built notices)
    assert root.find(".//Param[@name='Pkt_Ser_Num']").get("dataType") == "string"
    assert params["GraceID"] == "S230518h"
    assert params["EventPage"].endswith("/superevents/S230518h/view/")
    cite = root.find("./Citations/EventIVORN")
    assert cite.text == "ivo://gwnet/LVC#S230518h-1-Preliminary"
    assert cite.get("cite") == ("retraction" if alert_type == alert_content.RETRACTION else "supersedes")


def test_preliminary_notice_contents():
    xml = voevent.build_voevent(make_content())
    params = voevent.voevent_params(xml)
    assert params["FAR"] == "3.2e-10"
    assert params["Significant"] == "1"
    assert params["Instruments"] == "H1,L1"
    assert (params["Group"], params["Pipeline"], params["Search"]) == ("CBC", "gstlal", "AllSky")
    assert params["skymap_fits"] == SKYMAP_URL
    assert params["NSBH"] == "0.7" and params["Terrestrial"] == "0.2"
    assert params["HasNS"] == "1.0" and params["HasMassGap"] == "0.05"
    assert params["HardwareInj"] == "0" and params["OpenAlert"] == "1"
    assert params["internal"] == "0"
    root = etree.fromstring(xml)
    assert root.find("./What/Group[@type='GW_SKYMAP']").get("name") == "bayestar"
    assert root.findtext(".//ISOTime") == "2015-09-14T09:50:45.400000Z"  # GW150914
    assert root.find("./Citations") is None
    assert root.find(".//Param[@name='FAR']").get("unit") == "Hz"


def test_retraction_carries_identification_only():
    xml = voevent.build_voevent(make_content(alert_type=alert_content.RETRACTION, serial_number=2))
    params = voevent.voevent_params(xml)
    assert params["AlertType"] == "Retraction"
    for absent in ("FAR", "skymap_fits", "BNS", "HasNS", "Instruments"):
        assert absent not in params


def test_mdc_superevents_are_test_role_and_burst_has_no_classification():
    content = make_content(superevent_id="MS230518h", group="Burst", pipeline="cwb",
                           duration=0.02, central_frequency=150.0)
    assert content.role == "test"
    xml = voevent.build_voevent(content)
    voevent.validate_voevent(xml)
    params = voevent.voevent_params(xml)
    assert etree.fromstring(xml).get("role") == "test"
    assert "BNS" not in params and "HasNS" not in params
    assert params["central_freq"] == "150.0"


def test_external_coincidence_group():
    coinc = alert_content.ExternalCoinc(gcn_notice_id=123, ivorn="ivo://nasa.gsfc.gcn/Fermi#x",
                                 observatory="Fermi", search="GRB", time_difference=1.7,
                                 time_coincidence_far=1e-5,
                                 time_sky_position_coincidence_far=2e-7)
    xml = voevent.build_voevent(make_content(external_coinc=coinc))
    voevent.validate_voevent(xml)
    params = voevent.voevent_params(xml)
    assert params["External_Observatory"] == "Fermi"
    assert params["Time_Sky_Position_Coincidence_FAR"] == "2e-07"
    assert json_alert.build_json_alert(make_content(external_coinc=coinc))["external_coinc"][
        "gcn_notice_id"] == 123


def test_invalid_voevent_is_refused():
    xml = voevent.build_voevent(make_content()).replace(b'role="observation"', b'role="rumour"')
    with pytest.raises(ValueError, match="not a valid VOEvent"):
        voevent.validate_voevent(xml)


def test_parsing_does_not_resolve_external_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (f'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<v>&x;</v>').encode()
    with pytest.raises(XMLDoctypeRefused) as refused:
        voevent.parse_voevent(xml)
    assert "TOP-SECRET" not in str(refused.value)


def test_content_rejects_unknown_type_and_serial_zero():
    with pytest.raises(ValueError):
        make_content(alert_type="Rumour")
    with pytest.raises(ValueError):
        make_content(serial_number=0)


def test_json_alert_contents():
    alert = json_alert.build_json_alert(make_content())
    assert alert["superevent_id"] == "S230518h"
    assert alert["alert_type"] == "PRELIMINARY"
    assert alert["time_created"] == "2023-05-18T12:59:35Z"
    event = alert["event"]
    assert event["time"] == "2015-09-14T09:50:45.400000Z"
    assert event["far"] == 3.2e-10 and event["significant"] is True
    assert event["instruments"] == ["H1", "L1"]
    assert event["classification"]["NSBH"] == 0.7
    assert event["properties"]["HasRemnant"] == 0.2
    assert base64.b64decode(event["skymap"]) == b"SIMPLE  = T tiny fits"
    assert alert["urls"]["skymap"] == SKYMAP_URL
    assert alert["external_coinc"] is None
    ew = json_alert.build_json_alert(make_content(alert_type=alert_content.EARLY_WARNING))
    assert ew["alert_type"] == "EARLYWARNING"  # igwn-gwalert-schema's enum spelling
    retraction = json_alert.build_json_alert(make_content(alert_type=alert_content.RETRACTION))
    assert retraction["alert_type"] == "RETRACTION" and retraction["event"] is None


def test_circular_draft():
    text = circular.build_circular(make_content(alert_type=alert_content.INITIAL, serial_number=2))
    assert text.startswith("SUBJECT: LIGO/Virgo/KAGRA S230518h: Identification")
    assert "gstlal" in text and "H1, L1" in text and "2015-09-14T09:50:45.400000Z" in text
    assert "NSBH (70%)" in text and "HasNS: 100%" in text
    assert SKYMAP_URL in text
    assert "ivo://gwnet/LVC#S230518h-2-Initial" in text
    retraction = circular.build_circular(make_content(
        alert_type=alert_content.RETRACTION, cited_ivorns=("ivo://gwnet/LVC#S230518h-1-Preliminary",)))
    assert "Retraction" in retraction and "S230518h-1-Preliminary" in retraction
