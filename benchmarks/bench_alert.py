"""Benchmark of the alert path: preferred G event uploaded → preliminary VOEvent on the
wire (received by pygcn's client from the gw-ops broker), over N mock events, split into
BAYESTAR compute (the sky map's WALLTIME header) and everything else.

Anchor: the O4 mock data challenge's median of 29.5 s from merger to preliminary alert,
of which about 16 s is the search pipeline, leaves about 14 s for all of GWCelery's work
on 48-thread hardware.

Usage: ``.venv/bin/python benchmarks/bench_alert.py [--events 10] [--fast]``
"""
from __future__ import annotations

import argparse
import statistics
import time

from stack_harness import percentile, running_stack, wait_for_dags


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--fast", action="store_true", help="BAYESTAR fast setting")
    args = parser.parse_args()
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops.demo import AlertReceiver
    from gw_ops.science.bayestar import header

    with running_stack(bayestar_fast=args.fast, preliminary_cleanup_timeout_s=3600.0) as (settings, _):
        wait_for_dags(settings, "lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                      "lvalert_orchestrator_handle_superevent")
        time.sleep(10)
        receiver = AlertReceiver(settings.host, settings.broker_port)
        receiver.start()
        client = gracedb_client(settings)
        rows = []
        for index in range(args.events):
            upload = upload_mock_event(settings, uploads=1, index=index % 10, with_external=False,
                                       client=client)
            graceid, t_upload = upload["graceids"][0], upload["uploaded_at"][0]
            deadline = time.time() + 600
            sid = received = None
            while time.time() < deadline and received is None:
                sid = sid or client.event(graceid).json().get("superevent")
                received = receiver.preliminary_for(sid) if sid else None
                time.sleep(0.2)
            if received is None:
                print(f"{graceid}: no preliminary within 600 s")
                continue
            total = received[0] - t_upload
            bayestar = float(header(client.files(graceid, "bayestar.multiorder.fits").read())["WALLTIME"])
            rows.append((total, bayestar))
            print(f"{upload['name']} {graceid} {sid}: upload → preliminary on the wire {total:.1f} s "
                  f"(BAYESTAR {bayestar:.1f} s, everything else {total - bayestar:.1f} s)")
        totals = [r[0] for r in rows]
        others = [r[0] - r[1] for r in rows]
        bayestars = [r[1] for r in rows]
        print(f"\n{len(rows)} events ({'fast' if args.fast else 'default'} BAYESTAR, "
              f"{settings.omp_threads_effective} OpenMP threads)")
        for name, values in (("total", totals), ("BAYESTAR", bayestars), ("everything else", others)):
            print(f"  {name:<16} p50 {percentile(values, 0.5):6.1f} s   p95 {percentile(values, 0.95):6.1f} s"
                  f"   mean {statistics.mean(values):6.1f} s")


if __name__ == "__main__":
    main()
