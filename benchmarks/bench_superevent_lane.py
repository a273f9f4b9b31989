"""Benchmark of the superevent lane *through Airflow* (doorbell trigger → DAG run → drain
task in the ``superevent`` pool), on a real local stack.

160 G events (10 superevents × 16 uploads, same plan as bench_superevents.py) are uploaded
at 20 events/s; printed: time from the last upload until every event is in its superevent
with its final preferred event, events/s through the lane, events left out, and the
ratio of the lane's time per event to one bare Airflow task start (the ``gw_ops_smoke``
DAG: run queued → task running).

Usage: ``.venv/bin/python benchmarks/bench_superevent_lane.py``
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime

from bench_superevents import PIPELINES, plan  # noqa: F401 (same upload plan)
from stack_harness import percentile, running_stack, wait_for_dags


def task_start_seconds(settings, runs: int = 5) -> list[float]:
    """Queued → task start of the trivial DAG, over a few runs."""
    from gw_ops.ops.airflow_api import AirflowApi
    airflow = AirflowApi.for_stack(settings)
    airflow.wait_for_dag("gw_ops_smoke")
    results = []
    for _ in range(runs):
        run_id = f"bench_{uuid.uuid4().hex[:8]}"
        airflow.trigger("gw_ops_smoke", run_id=run_id)
        run = airflow.wait_run("gw_ops_smoke", run_id)
        (ti,) = airflow.task_instances("gw_ops_smoke", run_id)
        queued = datetime.fromisoformat(run["queued_at"])
        results.append((datetime.fromisoformat(ti["start_date"]) - queued).total_seconds())
    return results


def main() -> None:
    from gw_ops.gracedb_client import gracedb_client
    from tests.coinc_factory import coinc_xml

    with running_stack() as (settings, _):
        wait_for_dags(settings, "lvalert_superevents_handle")
        time.sleep(10)
        starts = task_start_seconds(settings)
        client = gracedb_client(settings)
        groups = plan(10, 16, 1400000000.0 + (uuid.uuid4().int % 10**6) * 5000)
        rows = [(g, row) for g, group in enumerate(groups) for row in group]
        rows.sort(key=lambda item: item[1]["gpstime"])
        expected_group, graceids = {}, []
        interval = 1 / 20
        start = time.time()
        for n, (group, row) in enumerate(rows):
            time.sleep(max(0.0, start + n * interval - time.time()))
            graceid = client.create_event("CBC", row["pipeline"], "coinc.xml", search="AllSky",
                                          filecontents=coinc_xml(**row)).json()["graceid"]
            expected_group[graceid] = (group, row["instruments"] == ("H1", "L1", "V1"))
            graceids.append(graceid)
        last_upload = time.time()
        winners = {g: gid for gid, (g, win) in expected_group.items() if win}
        while time.time() - last_upload < 600:
            superevents = list(client.superevents(f"gpstime: {rows[0][1]['gpstime'] - 10} .. "
                                                  f"{rows[-1][1]['gpstime'] + 10}"))
            grouped = {gid for s in superevents for gid in s["gw_events"]}
            preferred_ok = all(s["preferred_event"] == winners[expected_group[s["gw_events"][0]][0]]
                               for s in superevents if s["gw_events"])
            if len(grouped) == len(graceids) and len(superevents) == 10 and preferred_ok:
                break
            time.sleep(0.2)
        done = time.time()
        left_out = len(set(graceids) - grouped)
        print(f"uploads: {len(graceids)} at {len(graceids) / (last_upload - start):.1f} events/s")
        print(f"last upload → all grouped with final preferred events: {done - last_upload:.1f} s "
              f"(superevents {len(superevents)}, left out {left_out}, preferred right: {preferred_ok})")
        lane_rate = len(graceids) / (done - start)
        print(f"events/s through the lane (first upload → all done): {lane_rate:.1f}")
        bare = percentile(starts, 0.5)
        print(f"bare Airflow task start (queued → running), median of {len(starts)}: {bare:.2f} s")
        print(f"lane time per event / bare task start: {(1 / lane_rate) / bare:.3f}")


if __name__ == "__main__":
    main()
