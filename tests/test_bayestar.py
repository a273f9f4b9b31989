"""BAYESTAR wrapper: cheap checks of its helpers (the real localization is in test_alert_path.py)."""
from __future__ import annotations

import io

import pytest

from gw_ops.mock.events import load_mock_event
from gw_ops.science import bayestar

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


