"""BAYESTAR wrapper: cheap checks of its helpers, and the suite's one real localization."""
from __future__ import annotations

import io

import pytest

from gw_ops import bayestar
from gw_ops.mock_events import load_mock_event
from gw_ops.skymap_products import area_deg2, contains

NOW_GPS = 1_400_000_000.0


def _event_source(event):
    from ligo.skymap.io import events
    return events.ligolw.open(io.BytesIO(event.coinc_xml), psd_file=io.BytesIO(event.psd_xml_gz),
                              coinc_def=None)


def test_openmp_threads_is_set_for_the_block_only():
    from ligo.skymap import omp
    before = omp.num_threads
    with bayestar.openmp_threads(1):
        assert omp.num_threads == 1
    assert omp.num_threads == before


def test_fast_setting_decimates_snr_series_around_the_trigger():
    (event,) = _event_source(load_mock_event(0, now_gps=NOW_GPS)).values()
    fast = bayestar._decimated_event(event, 2048.0)
    for original, single in zip(event.singles, fast.singles):
        series, full = single.snr_series, original.snr_series
        assert series.deltaT == pytest.approx(1 / 2048.0)
        length = len(series.data.data)
        assert length % 2 == 1
        # the middle sample is the trigger sample, with the same complex SNR
        middle_time = float(series.epoch) + (length // 2) * series.deltaT
        assert middle_time == pytest.approx(float(single.time), abs=full.deltaT)
        assert series.data.data[length // 2] == full.data.data[len(full.data.data) // 2]
        assert (single.detector, single.snr, single.phase) == (
            original.detector, original.snr, original.phase)
    assert bayestar._decimated_event(fast, 4096.0) is fast  # already coarser: unchanged


@pytest.mark.slow
def test_real_bayestar_localizes_a_bundled_event():
    """The suite's single real localization (fast setting, ~10-25 s here)."""
    event = load_mock_event(0, now_gps=NOW_GPS)
    fits_bytes = bayestar.localize(event.coinc_xml, event.psd_xml_gz, omp_threads=0, fast=True)
    header = bayestar.header(fits_bytes)
    assert header["FASTLOC"] is True and header["WALLTIME"] >= header["RUNTIME"] > 0
    assert header["CREATOR"] == "BAYESTAR"
    assert contains(fits_bytes, event.injection.ra_deg, event.injection.dec_deg, 0.9)
    assert area_deg2(fits_bytes, 0.9) < 100.0
    assert header["DISTMEAN"] == pytest.approx(event.injection.distance_mpc, rel=0.5)
