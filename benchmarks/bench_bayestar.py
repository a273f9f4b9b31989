#!/usr/bin/env python
"""Benchmark of localization and sky-map products on the bundled mock events.

Prints, per event and setting: BAYESTAR wall time of :func:`gw_ops.science.bayestar.localize`
(s), the process CPU time it used (s; less sensitive than wall time to other work on a
shared machine), BAYESTAR's own RUNTIME, the 90 % credible area and the searched area
and probability of the injected position; then the time of each product.

Usage::

    .venv/bin/python benchmarks/bench_bayestar.py [--events 0,1] [--threads 1,2]
        [--settings default,fast,1024] [--volume cheap|full|none]

For the fidelity of each setting against the default see bench_fidelity.py.

Every localization takes 10-90 s here (2 shared cores): keep the lists short.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(func, *args, **kwargs):
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - wall0, _cpu_s() - cpu0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="0,1", help="bundle indexes, comma separated")
    parser.add_argument("--threads", default="1,2", help="OpenMP thread counts")
    parser.add_argument("--settings", default="default,fast",
                        help="default, fast (2048 Hz) and/or SNR series rates, e.g. 1024")
    parser.add_argument("--volume", choices=("none", "cheap", "full"), default="cheap",
                        help="volume plot to time (full: about 10 min here)")
    args = parser.parse_args(argv)

    import logging
    logging.disable(logging.WARNING)  # ligo.skymap warns about PSD truncation per detector
    from gw_ops.mock.events import load_mock_event
    from gw_ops.science import bayestar, skymap_products

    indexes = [int(i) for i in args.events.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    settings = args.settings.split(",")
    print(f"cores={os.cpu_count()} load_avg={os.getloadavg()[0]:.2f} events={indexes} "
          f"threads={thread_counts} settings={settings}", flush=True)
    print(f"{'event':8} {'pop':5} {'snr':>5} {'setting':8} {'thr':>3} {'wall_s':>7} "
          f"{'cpu_s':>7} {'runtime_s':>9} {'a90_deg2':>9} {'searched_deg2':>13} "
          f"{'searched_p':>10} {'load':>5}", flush=True)
    walls: dict[tuple[str, int], list[float]] = {}
    last_map = None
    for index in indexes:
        event = load_mock_event(index, now_gps=1_400_000_000.0)
        inj = event.injection
        for setting in settings:
            for threads in thread_counts:
                fast = {} if setting == "default" else {"fast": True} if setting == "fast" \
                    else {"fast": True, "fast_sample_rate_hz": float(setting)}
                fits_bytes, wall, cpu = _timed(
                    bayestar.localize, event.coinc_xml, event.psd_xml_gz,
                    omp_threads=threads, **fast)
                header = bayestar.header(fits_bytes)
                a90 = skymap_products.area_deg2(fits_bytes, 0.9)
                searched = skymap_products.searched_area_deg2(fits_bytes, inj.ra_deg, inj.dec_deg)
                searched_p = skymap_products.searched_probability(fits_bytes, inj.ra_deg, inj.dec_deg)
                walls.setdefault((setting, threads), []).append(wall)
                print(f"{event.name:8} {inj.population:5} {event.network_snr:5.1f} {setting:8} "
                      f"{threads:3d} {wall:7.1f} {cpu:7.1f} {header['RUNTIME']:9.1f} {a90:9.1f} "
                      f"{searched:13.1f} {searched_p:10.3f} {os.getloadavg()[0]:5.2f}", flush=True)
                last_map = fits_bytes

    print("\nmedian wall time per setting (s):")
    for (setting, threads), values in sorted(walls.items()):
        print(f"  {setting:8} {threads} thread(s): {statistics.median(values):6.1f}  (n={len(values)})")

    if last_map is not None:
        print("\nproducts of the last sky map (s):")
        _, wall, _ = _timed(skymap_products.plot_allsky, last_map)
        print(f"  plot_allsky            {wall:7.1f}")
        _, wall, _ = _timed(skymap_products.flatten, last_map)
        print(f"  flatten (nside {skymap_products.DEFAULT_FLATTEN_NSIDE})    {wall:7.1f}")
        _, wall, _ = _timed(skymap_products.area_deg2, last_map, 0.9)
        print(f"  area_deg2              {wall:7.1f}")
        if args.volume != "none":
            threads = max(thread_counts)
            _, wall, _ = _timed(skymap_products.plot_volume, last_map, threads,
                                cheap=(args.volume == "cheap"))
            print(f"  plot_volume ({args.volume}, {threads} thr) {wall:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
