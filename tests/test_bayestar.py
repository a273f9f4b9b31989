"""BAYESTAR wrapper: cheap checks of its helpers (the real localization is in test_alert_path.py)."""
from __future__ import annotations

import io
import math

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




def _without_series(event):
    """The event as a pipeline that uploads no SNR series would give it."""
    return bayestar.replace_snr_series(event, [None] * len(event.singles))


def test_zero_noise_series_are_the_ones_bayestar_builds_itself():
    from ligo.skymap.bayestar import condition
    (event,) = _event_source(load_mock_event(1, now_gps=NOW_GPS)).values()
    bare = _without_series(event)
    built = bayestar.zero_noise_event(bare, bayestar.DEFAULT_WAVEFORM, bayestar.DEFAULT_F_LOW_HZ)
    assert all(single.snr_series is not None for single in built.singles)
    kwargs = {"waveform": bayestar.DEFAULT_WAVEFORM, "f_low": bayestar.DEFAULT_F_LOW_HZ,
              "f_high_truncate": bayestar.F_HIGH_TRUNCATE}
    internal, explicit = condition(bare, **kwargs), condition(built, **kwargs)
    # epoch, sample rate, arrival times, |SNR| and phase series, horizons: all identical
    for mine, theirs in zip(explicit, internal):
        assert mine == theirs if not hasattr(mine, "shape") else (mine == theirs).all()
    assert bayestar.zero_noise_event(event) is event  # uploaded series are kept


@pytest.mark.parametrize("rate", [2048.0, 1024.0])
def test_fast_setting_decimates_zero_noise_series_too(rate):
    (event,) = _event_source(load_mock_event(2, now_gps=NOW_GPS)).values()
    fast = bayestar.event_at_sample_rate(_without_series(event), rate)
    for original, single in zip(event.singles, fast.singles):
        series = single.snr_series
        assert series.deltaT == pytest.approx(1 / rate)
        length = len(series.data.data)
        assert length % 2 == 1
        assert float(series.epoch) + (length // 2) * series.deltaT == pytest.approx(
            float(original.time), abs=1e-8)
        # the middle sample is the trigger's complex SNR (normalized autocorrelation at lag 0)
        expected = original.snr * complex(math.cos(original.phase), math.sin(original.phase))
        assert series.data.data[length // 2] == pytest.approx(expected, rel=1e-5)


def test_presets_choose_the_fast_setting_only_where_the_figures_allow():
    from gw_ops.config import get_settings
    local = bayestar.settings_kwargs(get_settings(env={"GW_OPS_PRESET": "local"}))
    production = bayestar.settings_kwargs(get_settings(env={"GW_OPS_PRESET": "production"}))
    assert local["fast"] is True
    # an integer decimation step of the 8192 Hz series the bundle and BAYESTAR's own use
    assert 8192.0 % local["fast_sample_rate_hz"] == 0 and local["fast_sample_rate_hz"] < 8192.0
    assert production["fast"] is False
    overridden = bayestar.settings_kwargs(get_settings(
        env={"GW_OPS_PRESET": "local", "GW_OPS_BAYESTAR_FAST": "0"}))
    assert overridden["fast"] is False


def test_the_localization_modules_can_be_imported_before_the_localization_thread_starts():
    """What the openmp lane imports in its own thread before BAYESTAR's thread starts, so
    the two never import astropy for the first time at once (seen: a fresh Celery worker's
    first localization failed with a half-initialised ``astropy.units``)."""
    import subprocess
    import sys
    probe = ("import sys; from gw_ops.science.bayestar import import_localization_modules; "
             "assert 'astropy.units' not in sys.modules; import_localization_modules(); "
             "print(all(m in sys.modules for m in ('astropy.units', 'ligo.skymap.bayestar', "
             "'ligo.skymap.io.fits', 'astropy.io.fits')))")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert shown.stdout.strip() == "True", shown.stderr[-2000:]
