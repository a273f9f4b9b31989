"""One VOEvent builder for the pipeline and the local GraceDB; one validator for them and the broker."""
from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gw_ops.formats import voevent
from gw_ops.formats.alert_content import AlertContent
from gw_ops.formats.xml import XMLDoctypeRefused
from gw_ops.local_gracedb import voevent as gracedb_voevent

DATA = Path(__file__).parent / "data" / "voevents"
SKYMAP_URL = "http://127.0.0.1:8090/api/superevents/S230518h/files/bayestar.multiorder.fits,0"


def gracedb_notice(voevent_type="PR", far=3.2e-10, **options) -> bytes:
    return gracedb_voevent.build_voevent(
        object_id="S230518h", number=2, voevent_type=voevent_type, t_0=1187008882.4,
        event_page="http://127.0.0.1:8090/superevents/S230518h/view/", far=far,
        instruments="H1,L1,V1", group="CBC", pipeline="gstlal", search="AllSky",
        options=options, skymap_url=SKYMAP_URL, created_iso="2023-05-18T12:59:35",
        role="observation")


def test_gracedb_form_fields_map_onto_the_shared_notice():
    xml = gracedb_notice(skymap_type="bayestar", BNS="0.9", NSBH=0.05, BBH=0.0, Terrestrial=0.05,
                         ProbHasNS=0.99, ProbHasRemnant=0.9, open_alert="true", internal="0")
    assert voevent.validate_voevent(xml) == "ivo://gwnet/LVC#S230518h-2-Preliminary"
    params = voevent.voevent_params(xml)
    assert params["Packet_Type"] == "150" and params["Pkt_Ser_Num"] == "2"
    assert params["AlertType"] == "Preliminary" and params["GraceID"] == "S230518h"
    assert params["FAR"] == "3.2e-10" and params["Instruments"] == "H1,L1,V1"
    assert params["BNS"] == "0.9" and params["HasNS"] == "0.99" and params["HasRemnant"] == "0.9"
    assert "HasMassGap" not in params
    assert (params["OpenAlert"], params["internal"], params["HardwareInj"]) == ("1", "0", "0")
    assert params["skymap_fits"] == SKYMAP_URL
    root = etree.fromstring(xml)
    assert root.find("./What/Group[@type='GW_SKYMAP']").get("name") == "bayestar"
    assert root.findtext(".//ISOTime") == "2017-08-17T12:41:04.400000Z"
    assert root.findtext("./Who/Date") == "2023-05-18T12:59:35"


def test_gracedb_notice_is_the_pipeline_builder_output():
    """Same inputs, same document: there is one builder."""
    xml = gracedb_notice(BNS=0.9, ProbHasNS=0.99, open_alert=1)
    content = AlertContent(
        superevent_id="S230518h", alert_type="Preliminary", serial_number=2,
        time_created="2023-05-18T12:59:35", event_time_gps=1187008882.4, far=3.2e-10,
        significant=True, group="CBC", pipeline="gstlal", search="AllSky",
        instruments=("H1", "L1", "V1"), skymap_url=SKYMAP_URL, classification={"BNS": 0.9},
        properties={"HasNS": 0.99}, role="observation",
        event_page="http://127.0.0.1:8090/superevents/S230518h/view/", open_alert=True)
    assert xml == voevent.build_voevent(content)


@pytest.mark.parametrize("code, alert_type, packet_type", [
    ("PR", "Preliminary", "150"), ("IN", "Initial", "151"), ("UP", "Update", "152"),
    ("RE", "Retraction", "164"), ("EW", "EarlyWarning", "163")])
def test_every_gracedb_type_is_a_valid_notice(code, alert_type, packet_type):
    xml = gracedb_notice(code)
    ivorn = f"ivo://gwnet/LVC#S230518h-2-{alert_type}"
    assert voevent.validate_voevent(xml) == ivorn == gracedb_voevent.ivorn_for("S230518h", 2, code)
    params = voevent.voevent_params(xml)
    assert params["Packet_Type"] == packet_type and params["AlertType"] == alert_type
    assert ("FAR" in params) is (code != "RE")


def test_unknown_far_and_raven_comment():
    xml = gracedb_notice(far=None, raven_coinc="1", CoincComment="GRB 1.2 s after")
    voevent.validate_voevent(xml)
    params = voevent.voevent_params(xml)
    assert "FAR" not in params and params["CoincComment"] == "GRB 1.2 s after"
    assert "CoincComment" not in voevent.voevent_params(gracedb_notice(CoincComment="x"))


def test_validate_without_schema_is_what_the_broker_relays():
    gbm = (DATA / "gbm_flt_pos.xml").read_bytes()
    assert voevent.validate_voevent(gbm, against_schema=False).startswith(
        "ivo://nasa.gsfc.gcn/Fermi#GBM_Flt_Pos")
    with pytest.raises(voevent.InvalidVOEvent, match="unknown root element"):
        voevent.validate_voevent(b"<not-a-voevent/>", against_schema=False)
    with pytest.raises(voevent.InvalidVOEvent, match="ivorn"):
        voevent.validate_voevent(b'<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"/>',
                                 against_schema=False)
    with pytest.raises(voevent.InvalidVOEvent, match="not a valid VOEvent 2.0"):
        voevent.validate_voevent(b'<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" '
                                 b'ivorn="ivo://x/y#z"/>')
    with pytest.raises(XMLDoctypeRefused):
        voevent.validate_voevent(b'<!DOCTYPE x [<!ENTITY a "b">]>' + gbm.split(b"?>", 1)[1])


def test_what_param_direct_or_grouped():
    root = etree.fromstring(b'<v><What><Group><Param name="Packet_Type" value=" 61 "/></Group>'
                            b'</What></v>')
    assert voevent.what_param(root, "Packet_Type") == "61"
    assert voevent.what_param(root, "TrigID") is None
