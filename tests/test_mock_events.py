"""Bundled mock events: listing, loading, time shift, jittered uploads (cheap, no BAYESTAR)."""
from __future__ import annotations

import gzip
import math
import random

import pytest

from gw_ops.mock import events as mock_events
from gw_ops.mock.events import coinc_summary, jittered_uploads, list_mock_events, load_mock_event

NOW_GPS = 1_400_000_000.25


def test_bundle_lists_bns_and_nsbh_events_above_threshold():
    events = list_mock_events()
    assert len(events) >= 8
    assert {e.injection.population for e in events} == {"BNS", "NSBH"}
    for e in events:
        assert e.network_snr > 12
        assert 0 < e.far_hz < 1e-7
        assert 0 < e.injection.distance_mpc < 300
        assert -math.pi / 2 <= e.injection.dec_rad <= math.pi / 2


def test_bundle_is_small():
    folder = mock_events._bundle()
    total = sum(f.stat().st_size for f in __import__("pathlib").Path(str(folder)).rglob("*")
                if f.is_file())
    assert total < 3 * 1024 * 1024


def test_load_shifts_all_times_to_now_and_keeps_snr_and_far():
    original = list_mock_events()[2]
    event = load_mock_event(2, now_gps=NOW_GPS)
    summary = coinc_summary(event.coinc_xml)
    assert summary["gps_time"] == pytest.approx(NOW_GPS, abs=1e-6)
    assert summary["snr"] == pytest.approx(original.network_snr)
    assert summary["far_hz"] == pytest.approx(original.far_hz)
    # singles and SNR series moved with the coinc: within the light travel time
    for single in summary["singles"].values():
        assert abs(single["gps_time"] - NOW_GPS) < 0.05
    for epoch in summary["snr_series_epochs"]:
        assert abs(epoch - NOW_GPS) < 0.2
    assert event.gps_time == pytest.approx(NOW_GPS)
    assert abs(event.injection.gps_time - NOW_GPS) < 0.05
    assert gzip.decompress(event.psd_xml_gz).startswith(b"<?xml")
    assert (event.pipeline, event.search, event.group) == ("gstlal", "MDC", "CBC")


def test_injection_right_ascension_follows_earth_rotation():
    """A shift by whole sidereal days keeps RA; half a sidereal day rotates it by pi."""
    original = list_mock_events()[0]
    sidereal_day_s = 86164.0905
    days = 1000
    for extra_s, expected_rotation in ((0.0, 0.0), (0.5 * sidereal_day_s, math.pi)):
        event = load_mock_event(0, now_gps=original.gps_time + days * sidereal_day_s + extra_s)
        rotation = event.injection.ra_rad - original.injection.ra_rad - expected_rotation
        assert abs((rotation + math.pi) % (2 * math.pi) - math.pi) < 1e-3
        assert event.injection.dec_rad == original.injection.dec_rad
        assert event.injection.ra_deg == pytest.approx(math.degrees(event.injection.ra_rad) % 360)


def test_pick_by_name_and_random():
    assert load_mock_event("event01", now_gps=NOW_GPS).name == "event01"
    names = {load_mock_event(None, now_gps=NOW_GPS, rng=random.Random(seed)).name for seed in range(6)}
    assert len(names) > 1
    with pytest.raises(IndexError):
        load_mock_event(99)
    with pytest.raises(KeyError):
        load_mock_event("nope")


def test_jittered_uploads_are_distinct_copies_of_one_signal():
    event = load_mock_event(1, now_gps=NOW_GPS)
    uploads = jittered_uploads(event, 16, random.Random(3))
    assert len(uploads) == 16 and len(set(uploads)) == 16
    summaries = [coinc_summary(u) for u in uploads]
    snrs = [s["snr"] for s in summaries]
    assert len(set(snrs)) == 16  # random preferred event among them
    for s in summaries:
        assert s["snr"] == pytest.approx(event.network_snr, rel=0.01)
        assert s["gps_time"] == pytest.approx(NOW_GPS, abs=0.001)
        assert s["far_hz"] == pytest.approx(event.far_hz)
        assert (s["mass1"], s["mass2"]) == pytest.approx(
            (event.injection.mass1_msun, event.injection.mass2_msun), rel=0.5)
    # same seed, same uploads
    assert jittered_uploads(event, 2, random.Random(3)) == uploads[:2]
