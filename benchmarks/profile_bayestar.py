#!/usr/bin/env python
"""Where the seconds of one BAYESTAR localization go (stage timers, optional cProfile).

Times, for one mock event or GWCelery's test coinc, each stage of
:func:`gw_ops.science.bayestar.localize` separately: importing ligo.skymap, reading the
coinc and PSD documents, BAYESTAR's conditioning (PSD interpolation, template,
signal model / horizons, autocorrelation or SNR-series trimming), the distance-integral
lookup tables of BAYESTAR's C core (measured by running the core on a 5-sample SNR series,
so the sky-grid work is nearly nil), the full sky-grid refinement, and FITS writing.
Wall and process CPU time are printed beside each stage, with the load average.

Run it under ``nice -n 19`` on a shared machine.  For the split inside the C core use
``perf record -F 499 -o FILE -- python benchmarks/profile_bayestar.py ...`` and
``perf report -i FILE --sort symbol --stdio``.

Usage::

    python benchmarks/profile_bayestar.py [--event 0 | --coinc C --psd P] [--threads 1]
        [--sample-rate 2048] [--cprofile 15]
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StageClock:
    """Collects (stage, wall s, CPU s) rows."""

    def __init__(self):
        self.rows: list[tuple[str, float, float]] = []

    def time(self, name, func, *args, **kwargs):
        wall0, cpu0 = time.perf_counter(), _cpu_s()
        result = func(*args, **kwargs)
        self.rows.append((name, time.perf_counter() - wall0, _cpu_s() - cpu0))
        return result


def _core_args(event, waveform, f_low):
    """Arguments of BAYESTAR's C core for ``event``, as ligo.skymap's localize builds them."""
    import lal
    from ligo.skymap import bayestar

    epoch, sample_rate, toas, snrs, responses, locations, horizons = bayestar.condition(
        event, waveform=waveform, f_low=f_low)
    prior = bayestar.condition_prior(horizons)
    gmst = lal.GreenwichMeanSiderealTime(epoch)
    return (*prior, gmst, sample_rate, toas, snrs, responses, locations, horizons,
            bayestar._RESCALE_LOGLIKELIHOOD)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event", type=int, default=0, help="bundled mock event index")
    parser.add_argument("--coinc", help="coinc.xml path (instead of a mock event)")
    parser.add_argument("--psd", help="psd.xml.gz path, with --coinc")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads")
    parser.add_argument("--sample-rate", type=float, default=0.0,
                        help="SNR series rate (Hz) of the localization; 0: as uploaded")
    parser.add_argument("--cprofile", type=int, default=0,
                        help="print this many cProfile rows (by cumulative time) of localize")
    args = parser.parse_args(argv)

    import logging
    logging.disable(logging.WARNING)
    load_before = os.getloadavg()
    clock = StageClock()
    clock.time("import ligo.skymap.bayestar", __import__, "ligo.skymap.bayestar")
    from ligo.skymap import bayestar as ligo_bayestar
    from ligo.skymap import core
    from ligo.skymap.io import events, fits

    from gw_ops.science import bayestar

    if args.coinc:
        with open(args.coinc, "rb") as f:
            coinc = f.read()
        with open(args.psd, "rb") as f:
            psd = f.read()
        label = os.path.basename(args.coinc)
    else:
        from gw_ops.mock.events import load_mock_event
        mock = load_mock_event(args.event, now_gps=1_400_000_000.0)
        coinc, psd, label = mock.coinc_xml, mock.psd_xml_gz, mock.name

    def read():
        source = events.ligolw.open(io.BytesIO(coinc), psd_file=io.BytesIO(psd), coinc_def=None)
        return next(iter(source.values()))

    event = clock.time("read coinc.xml + psd.xml.gz", read)
    if args.sample_rate:
        event = clock.time(f"prepare SNR series at {args.sample_rate:g} Hz",
                           bayestar.event_at_sample_rate, event, args.sample_rate,
                           bayestar.DEFAULT_WAVEFORM, bayestar.DEFAULT_F_LOW_HZ)
    waveform, f_low = bayestar.DEFAULT_WAVEFORM, bayestar.DEFAULT_F_LOW_HZ
    core_args = clock.time("condition (PSD interp, template, horizons, series)",
                           _core_args, event, waveform, f_low)
    sample_rate, snrs = core_args[5], core_args[7]
    nsamples = snrs.shape[1]
    middle = nsamples // 2
    tiny = list(core_args)
    tiny[6] = core_args[6] + (middle - 2) / sample_rate
    tiny[7] = snrs[:, middle - 2:middle + 3].copy()
    with bayestar.openmp_threads(args.threads):
        clock.time("C core on 5 samples (~ distance lookup tables)", core.toa_phoa_snr, *tiny)
        clock.time(f"C core, full ({nsamples} samples at {sample_rate:g} Hz)",
                   core.toa_phoa_snr, *core_args)
        if args.cprofile:
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            skymap = profiler.runcall(ligo_bayestar.localize, event, waveform=waveform,
                                      f_low=f_low)
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(
                args.cprofile)
            print(stream.getvalue())
        else:
            skymap = clock.time("ligo.skymap localize (condition + core + moments)",
                                ligo_bayestar.localize, event, waveform=waveform, f_low=f_low)

    def write():
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bayestar.multiorder.fits")
            fits.write_sky_map(path, skymap, moc=True)
            return os.path.getsize(path)

    size = clock.time("write multi-order FITS", write)
    load_after = os.getloadavg()
    print(f"# {label}: {len(event.singles)} detectors, {nsamples} SNR samples at "
          f"{sample_rate:g} Hz, {len(skymap)} pixels, FITS {size / 1e6:.1f} MB, "
          f"{args.threads} OpenMP thread(s)")
    print(f"# load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
          f"{os.cpu_count()} cores")
    print(f"| {'stage':55} | {'wall s':>7} | {'CPU s':>7} |")
    print(f"|{'-' * 57}|{'-' * 9}|{'-' * 9}|")
    for name, wall, cpu in clock.rows:
        print(f"| {name:55} | {wall:7.2f} | {cpu:7.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
