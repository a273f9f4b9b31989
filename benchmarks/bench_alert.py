"""Benchmark of the alert path: G event uploaded → preliminary VOEvent on the wire
(received by pygcn's client from the gw-ops broker), over N mock events, with where the
seconds went (:mod:`alert_timeline`: upload, classified, sky map ready, superevent
complete, VOEvent sent, on the wire) and BAYESTAR's own compute time (the sky map's
WALLTIME header).

Each candidate meets a quiet stack: the next upload waits until the lanes' linger
(``lane_linger_s``) and the previous event's plots are over, as for a candidate that
comes alone.

Anchor: the O4 mock data challenge's median of 29.5 s from merger to preliminary alert,
of which about 16 s is the search pipeline, leaves about 14 s for all of GWCelery's work
on 48-thread hardware; gw-ops' target is 15 s p50 and 20 s p95 on 2 cores with the local
preset.

Usage: ``python benchmarks/bench_alert.py [--events 10] [--default-bayestar] [--set NAME=VALUE]...``
(``--set`` changes one setting of the benchmark's stack, e.g. ``--set lane_linger_s=0``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from alert_timeline import STEPS, alert_timeline
from stack_harness import percentile, running_stack, wait_for_dags


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--default-bayestar", action="store_true",
                        help="BAYESTAR's default setting instead of the preset's")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the benchmark's stack (repeatable)")
    args = parser.parse_args()
    from gw_ops.config import get_settings
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops.demo import AlertReceiver
    from gw_ops.science.bayestar import header
    from gw_ops.transport.redis_client import get_redis

    overrides = {"preliminary_cleanup_timeout_s": 3600.0}
    if args.default_bayestar:
        overrides["bayestar_fast"] = False
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        # converted as the GW_OPS_* variable of that name would be
        overrides[name] = getattr(get_settings(env={f"GW_OPS_{name.upper()}": value}), name)
    with running_stack(**overrides) as (settings, _):
        wait_for_dags(settings, "lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                      "lvalert_orchestrator_handle_superevent")
        time.sleep(10)
        receiver = AlertReceiver(settings.host, settings.broker_port)
        receiver.start()
        client = gracedb_client(settings)
        redis_client = get_redis(settings)
        # the lanes' linger and the previous event's plots (about 10 s) are over
        quiet_s = max(settings.lane_linger_s, 20.0) + 5
        rows = []
        load = []
        for index in range(args.events):
            load.append(os.getloadavg()[0])
            upload = upload_mock_event(settings, uploads=1, index=index % 10, with_external=False,
                                       client=client)
            graceid = upload["graceids"][0]
            deadline = time.time() + 600
            sid = received = None
            while time.time() < deadline and received is None:
                sid = sid or client.event(graceid).json().get("superevent")
                received = receiver.preliminary_for(sid) if sid else None
                time.sleep(0.1)
            if received is None:
                print(f"{graceid}: no preliminary within 600 s")
                continue
            steps = alert_timeline(redis_client, settings, graceid)
            steps["on the wire"] = received[0]
            bayestar = float(header(client.files(graceid, "bayestar.multiorder.fits").read())["WALLTIME"])
            start = steps["upload"]
            row = {step: moment - start for step, moment in steps.items()}
            row["BAYESTAR"] = bayestar
            rows.append(row)
            print(f"{upload['name']} {graceid} {sid}: on the wire {row['on the wire']:.1f} s after the "
                  f"upload (BAYESTAR {bayestar:.1f} s); " + ", ".join(
                      f"{step} {row[step]:.1f}" for step in STEPS[1:] if step in row))
            time.sleep(quiet_s)
        bayestar_mode = ("default" if not settings.bayestar_fast
                         else f"fast {settings.bayestar_fast_sample_rate_hz:g} Hz")
        print(f"\n{len(rows)} events, preset {settings.preset}, BAYESTAR {bayestar_mode}, "
              f"{settings.omp_threads_effective} OpenMP threads, lane_linger_s {settings.lane_linger_s:g}; "
              f"1-min load average before each upload: median {statistics.median(load):.2f}, "
              f"max {max(load):.2f}" + (f"; set {', '.join(args.set)}" if args.set else ""))
        series = {"upload → on the wire": [r["on the wire"] for r in rows],
                  "BAYESTAR compute": [r["BAYESTAR"] for r in rows],
                  "everything else": [r["on the wire"] - r["BAYESTAR"] for r in rows]}
        previous = "upload"
        for step in (*STEPS[1:], "on the wire"):
            values = [r[step] - r[previous] for r in rows if step in r and previous in r]
            if values:
                series[f"  {previous} → {step}"] = values
                previous = step
        for name, values in series.items():
            print(f"  {name:<44} p50 {percentile(values, 0.5):6.2f} s   p95 {percentile(values, 0.95):6.2f} s"
                  f"   mean {statistics.mean(values):6.2f} s")


if __name__ == "__main__":
    main()
