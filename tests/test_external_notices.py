"""Parsing, vetoes and bad-input handling of external-trigger notices (no services).

The fixtures in tests/data/gcn are real GCN notices; tests/data/gcn/SOURCES.md says
where each came from.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gw_ops.config import get_settings
from gw_ops.handlers import external_triggers as X
from gw_ops.handlers.external_triggers import InvalidNotice, parse_notice
from gw_ops.mock.notices import make_mock_grb_notice
from gw_ops.rules import external as external_rules

DATA = Path(__file__).resolve().parent / "data" / "gcn"
SETTINGS = get_settings(env={})


def notice_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse(name: str):
    return parse_notice(notice_bytes(name), settings=SETTINGS)


# file, notice type, pipeline, search, trigger id, ISO time, RA, Dec, error (deg), role
PARSED = [
    ("fermi_gbm_alert.xml", "FERMI_GBM_ALERT", "Fermi", "GRB", "548841234",
     "2018-05-24T09:58:26.31Z", None, None, None, "observation"),
    ("fermi_gbm_flt_pos.xml", "FERMI_GBM_FLT_POS", "Fermi", "GRB", "336801278",
     "2011-09-04T03:54:36.02", 193.0, -31.75, 17.4333, "observation"),
    ("fermi_gbm_fin_pos.xml", "FERMI_GBM_FIN_POS", "Fermi", "GRB", "548848711",
     "2018-05-24T09:58:26.31Z", 140.05, -39.0499, 5.6, "observation"),
    ("fermi_gbm_subthresh.xml", "FERMI_GBM_SUBTHRESH", "Fermi", "SubGRB", "578679123",
     "2019-05-04T16:16:28.22Z", 143.53, 38.0799, 10.49, "observation"),
    ("swift_bat_grb_pos.xml", "SWIFT_BAT_GRB_POS_ACK", "Swift", "GRB", "1123129",
     "2022-09-07T14:05:25.76Z", 268.87, -20.3153, 0.05, "observation"),
    # INTEGRAL: the id comes from the IVORN (#Wakeup_Pos_000000-0-640), TrigID is 0
    ("integral_wakeup_test.xml", "INTEGRAL_WAKEUP", "INTEGRAL", "GRB", "000000",
     "2017-05-23T12:03:23.68", 1.2343, 2.3455, 0.0169, "test"),
    ("snews.xml", "SNEWS", "SNEWS", "Supernova", "1000194",
     "2018-09-18T16:00:01.00Z", None, None, None, "observation"),
    ("snews_test.xml", "SNEWS", "SNEWS", "Supernova", "1000194",
     "2018-09-18T16:00:01.00", None, None, None, "test"),
    ("icecube_gold.xml", "ICECUBE_ASTROTRACK_GOLD", "IceCube", "HEN", "134191_17593623",
     "2020-06-15T14:49:17.37", 143.4519, 3.7891, 0.9201, "observation"),
    ("icecube_bronze.xml", "ICECUBE_ASTROTRACK_BRONZE", "IceCube", "HEN", "134207_33533447",
     "2020-06-20T03:03:32.28", 162.2481, 11.9072, 0.5134, "observation"),
]


@pytest.mark.parametrize("name,notice_type,pipeline,search,trigger_id,iso,ra,dec,error,role",
                         PARSED, ids=[row[0] for row in PARSED])
def test_parse_real_notices(name, notice_type, pipeline, search, trigger_id, iso, ra, dec,
                            error, role):
    notice = parse(name)
    assert (notice.notice_type, notice.pipeline, notice.search) == (notice_type, pipeline, search)
    assert notice.trigger_id == trigger_id
    assert notice.event_time == iso
    assert (notice.ra, notice.dec, notice.error_radius) == (ra, dec, error)
    assert notice.role == role
    assert notice.has_position == (error is not None)


# UTC -> GPS: 18 leap seconds since 2017, 15 in 2011 (GPS - UTC offsets).
@pytest.mark.parametrize("name,gps", [
    ("fermi_gbm_fin_pos.xml", 1211191124.31),   # 2018-05-24T09:58:26.31 UTC + 18 s
    ("fermi_gbm_flt_pos.xml", 999143691.02),    # 2011-09-04T03:54:36.02 UTC + 15 s
    ("snews.xml", 1221321619.0),
])
def test_event_time_to_gps(name, gps):
    assert parse(name).gpstime == pytest.approx(gps, abs=1e-3)


# file, expected NOT_GRB (a word of the reason or None)
VETOES = [
    ("fermi_gbm_alert.xml", "first Fermi GBM alert packet"),
    ("fermi_gbm_flt_pos.xml", None),                       # GRB at 93 %
    ("fermi_gbm_flt_pos_noise.xml", "classifies it as a GRB at 0 %"),
    ("fermi_gbm_fin_pos.xml", None),
    ("fermi_gbm_subthresh.xml", None),                     # reliability 8
    # reliability 2: dropped, not vetoed (test_low_reliability_subthreshold_is_dropped)
    ("fermi_gbm_subthresh_lowconfidence.xml", None),
    ("swift_bat_grb_pos.xml", None),
    ("swift_bat_grb_pos_lost_lock.xml", "star tracker had lost lock"),
    ("icecube_gold.xml", None),
    ("snews.xml", None),
]


@pytest.mark.parametrize("name,reason", VETOES, ids=[row[0] for row in VETOES])
def test_not_grb_vetoes(name, reason):
    reasons = parse(name).not_grb_reasons
    if reason is None:
        assert reasons == ()
    else:
        assert len(reasons) == 1 and reason in reasons[0]


def test_veto_thresholds_follow_settings():
    strict = get_settings(env={"GW_OPS_EXTTRIG_FERMI_MIN_GRB_PERCENT": "95",
                               "GW_OPS_EXTTRIG_SUBTHRESHOLD_MIN_RELIABILITY": "9"})
    assert parse_notice(notice_bytes("fermi_gbm_flt_pos.xml"), settings=strict).not_grb_reasons
    subthreshold = parse_notice(notice_bytes("fermi_gbm_subthresh.xml"), settings=strict)
    assert external_rules.drop_reason(subthreshold, strict) == \
        "Fermi subthreshold reliability 8 (< 9)"


def test_icecube_far_is_converted_to_hz():
    # 0.2894 per year
    # per 365-day year, as GWCelery and ligo-raven count it
    assert parse("icecube_gold.xml").far_hz == pytest.approx(0.2894 / (365 * 86400), rel=1e-12)


def _edit(name: str, old: str, new: str) -> bytes:
    text = notice_bytes(name).decode()
    assert old in text, old
    return text.replace(old, new, 1).encode()


BAD = [
    ("no time", _edit("swift_bat_grb_pos.xml", "<ISOTime>2022-09-07T14:05:25.76Z</ISOTime>",
                      ""), "no event time"),
    ("malformed date", _edit("swift_bat_grb_pos.xml", "2022-09-07T14:05:25.76Z",
                             "2022-13-45T99:05:25Z"), "malformed event time"),
    ("no position", _edit("fermi_gbm_fin_pos.xml", "<Position2D unit=\"deg\">",
                          "<Elsewhere unit=\"deg\">").replace(b"</Position2D>",
                                                             b"</Elsewhere>"), "no position"),
    ("dec outside sky", _edit("fermi_gbm_fin_pos.xml", "<C2>-39.0499</C2>", "<C2>-139.0</C2>"),
     "outside the sky"),
    ("ra outside sky", _edit("icecube_gold.xml", "<C1>143.4519</C1>", "<C1>400.0</C1>"),
     "outside the sky"),
    ("ra not a number", _edit("icecube_gold.xml", "<C1>143.4519</C1>", "<C1>nan</C1>"),
     "not finite"),
    ("unknown instrument", _edit("swift_bat_grb_pos.xml", '"Packet_Type"  value="61"',
                                 '"Packet_Type"  value="67"'), "not an instrument"),
    ("unknown packet type", _edit("swift_bat_grb_pos.xml", '"Packet_Type"  value="61"',
                                  '"Packet_Type"  value="9999"'), "unknown notice type"),
    ("no trigger id", _edit("swift_bat_grb_pos.xml", 'name="TrigID"', 'name="Other"'),
     "no trigger id"),
    ("not XML", b"<voe:VOEvent", "not well-formed"),
]


@pytest.mark.parametrize("label,payload,reason", BAD, ids=[row[0] for row in BAD])
def test_bad_notices_raise_invalid_notice(label, payload, reason):
    with pytest.raises(InvalidNotice) as info:
        parse_notice(payload, settings=SETTINGS)
    assert reason in info.value.reason


def test_invalid_notice_is_permanent_for_the_lane():
    from gw_ops.errors import is_transient

    assert not is_transient(InvalidNotice("malformed event time"))


def test_handler_rejects_bad_notice_before_touching_gracedb(monkeypatch):
    """The lane calls handle_notice(payload, root); bad input never reaches GraceDB."""
    import gw_ops.gracedb_client as gracedb_client_module

    def no_client(*args, **kwargs):
        raise AssertionError("GraceDB must not be contacted for an invalid notice")

    monkeypatch.setattr(gracedb_client_module, "gracedb_client", no_client)
    payload = _edit("swift_bat_grb_pos.xml", "<C2>-20.3153</C2>", "<C2>95.0</C2>")
    with pytest.raises(InvalidNotice, match="outside the sky"):
        X.handle_notice(payload, X.parse_xml(payload))


def test_parser_does_not_expand_entities():
    payload = (b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<VOEvent role="observation"><What><Param name="Packet_Type" value="61"/>'
               b'<Param name="TrigID" value="&x;"/></What></VOEvent>')
    with pytest.raises(InvalidNotice):
        parse_notice(payload, settings=SETTINGS)


@pytest.mark.parametrize("policy,expected", [
    ("mdc", ("External", "MDC")), ("test", ("Test", "Supernova")), ("ignore", None)])
def test_test_notice_policy(policy, expected):
    settings = get_settings(env={"GW_OPS_EXTTRIG_TEST_NOTICES": policy})
    notice = parse_notice(notice_bytes("snews_test.xml"), settings=settings)
    assert external_rules.gracedb_group_and_search(notice, settings) == expected
    observation = parse_notice(notice_bytes("snews.xml"), settings=settings)
    assert external_rules.gracedb_group_and_search(observation, settings) == ("External", "Supernova")


def test_mock_notice_round_trip():
    payload = make_mock_grb_notice("MS240517a", 1400000000.5, 10.0, -20.0, 5.0)
    notice = parse_notice(payload, settings=SETTINGS)
    assert (notice.notice_type, notice.pipeline, notice.search) == \
        ("FERMI_GBM_GND_POS", "Fermi", "MDC")
    assert notice.trigger_id == "MS240517a"
    assert notice.gpstime == pytest.approx(1400000000.5, abs=1e-3)
    assert (notice.ra, notice.dec, notice.error_radius) == (10.0, -20.0, 5.0)
    # a rehearsal: GWCelery's mdc-test_event marker makes its search MDC
    assert notice.role == "observation" and notice.not_grb_reasons == ()
    assert "mdc-test_event" in notice.ivorn
    assert external_rules.gracedb_group_and_search(notice, SETTINGS) == ("External", "MDC")
    real = make_mock_grb_notice(7, 1400000000.0, 10.0, -20.0, 5.0, mdc=False)
    assert parse_notice(real, settings=SETTINGS).search == "GRB"
    test = make_mock_grb_notice(7, 1400000000.0, 10.0, -20.0, 5.0, role="test")
    assert parse_notice(test, settings=SETTINGS).role == "test"


@pytest.mark.parametrize("kwargs", [dict(ra=361), dict(dec=-91), dict(error_deg=0),
                                    dict(trigger_id="a b"), dict(role="fake")])
def test_mock_notice_rejects_bad_arguments(kwargs):
    arguments = dict(trigger_id="1", gps_time=1e9, ra=1.0, dec=1.0, error_deg=1.0)
    arguments.update(kwargs)
    with pytest.raises(ValueError):
        make_mock_grb_notice(**arguments)


def test_handlers_are_registered_with_the_exttrig_pool():
    from gw_ops.transport.registry import handlers_for

    for notice_type in external_rules.NOTICE_KINDS:
        specs = handlers_for("gcn", notice_type)
        assert [s.func for s in specs] == [X.handle_notice]
        assert specs[0].task_kwargs["pool"] == "exttrig"
    for node in ("superevent", "mdc_superevent", "test_superevent"):
        assert X.handle_superevent in [s.func for s in handlers_for("lvalert", node)]


def test_import_is_light():
    """The DAG processor imports handler modules: no astropy/healpy/ligo.skymap/numpy."""
    code = ("import sys, gw_ops.handlers.external_triggers, gw_ops.handlers.raven, gw_ops.science.ext_skymaps; "
            "heavy = [m for m in ('astropy', 'healpy', 'ligo.skymap', 'numpy') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize("name", ["icecube_gold.xml", "icecube_bronze.xml",
                                  "fermi_gbm_subthresh.xml",
                                  "fermi_gbm_subthresh_lowconfidence.xml"])
def test_trigger_id_from_ivorn_matches_parsed_id(name):
    """GraceDB records TrigID only; these notices' ids are recovered from the IVORN."""
    notice = parse(name)
    assert external_rules.trigger_id_from_ivorn(notice.pipeline, notice.search, notice.ivorn) == \
        notice.trigger_id
    assert external_rules.trigger_id_from_ivorn("Swift", "GRB", parse("swift_bat_grb_pos.xml").ivorn) is None
