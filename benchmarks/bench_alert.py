"""Benchmark of the alert path: preferred G event uploaded → preliminary VOEvent on the
wire (received by pygcn's client from the gw-ops broker), over N mock events, split into
BAYESTAR compute (the sky map's WALLTIME header) and everything else.

Anchor: the O4 mock data challenge's median of 29.5 s from merger to preliminary alert,
of which about 16 s is the search pipeline, leaves about 14 s for all of GWCelery's work
on 48-thread hardware.

Where the seconds go (issue 11): every LVAlert message and the outgoing VOEvent are Redis
stream entries whose ids carry their millisecond time, so each event's path is split into
upload -> superevent created -> sky map ready (BAYESTAR inside) -> superevent locked ->
preliminary appended -> on the wire; and for each lane the Airflow API gives the run's
creation and the task's queue/start/end times: message -> run created (doorbell and
scheduler), run created -> task started (executor), task started -> milestone (work).
At the end it counts the DAG runs per candidate (``--runs`` to print them per DAG).

Usage: ``.venv/bin/python benchmarks/bench_alert.py [--events 10] [--fast] [--runs]``
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import statistics
import time

from stack_harness import percentile, running_stack, wait_for_dags

LANES = {"superevent created": "lvalert_superevents_handle",
         "sky map ready": "lvalert_orchestrator_localize_preferred",
         "superevent locked": "lvalert_superevents_handle",
         "preliminary appended": "lvalert_orchestrator_handle_superevent"}


def stream_time(entry_id) -> float:
    """Unix time (s) of a Redis stream entry id."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-")[0]) / 1000.0


def milestones(redis, settings, graceid: str, sid: str) -> dict[str, float]:
    """Times of the alert path's milestones of one event, from the Redis streams."""
    from gw_ops.handlers.alert_sender import alert_record_key

    found: dict[str, float] = {}
    for key in redis.scan_iter(match=settings.key("lvalert", "*"), count=1000):
        for entry_id, fields in redis.xrange(key):
            try:
                message = json.loads(fields[b"payload"])
            except (KeyError, ValueError):
                continue
            uid, kind = message.get("uid"), message.get("alert_type")
            label = (message.get("data") or {}).get("name")
            when = stream_time(entry_id)
            if uid == sid and kind == "new":
                found.setdefault("superevent created", when)
            elif uid == graceid and kind == "label_added" and label == "SKYMAP_READY":
                found.setdefault("sky map ready", when)
            elif uid == sid and kind == "label_added" and label in ("SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"):
                found.setdefault("superevent locked", when)
    record = redis.hget(alert_record_key(settings, sid), "key:Preliminary-1")
    if record:
        found["preliminary appended"] = stream_time(record.decode().split()[1])
    return found


def parse_time(text: str | None) -> float | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def lane_timings(airflow, dag_id: str, after: float) -> tuple[float, float, float] | None:
    """(run created, task queued, task started, task ended) of the first run of a lane
    created after ``after``."""
    for run in sorted(airflow.runs(dag_id, limit=200), key=lambda r: r.get("queued_at") or ""):
        created = parse_time(run.get("queued_at"))
        if created is None or created < after:
            continue
        tis = [ti for ti in airflow.task_instances(dag_id, run["dag_run_id"]) if ti["task_id"] == "drain"]
        if not tis or not tis[0].get("start_date"):
            return None
        return created, parse_time(tis[0]["start_date"]), parse_time(tis[0].get("end_date"))
    return None


def count_runs(airflow) -> dict[str, int]:
    """DAG runs per DAG id of the stack (the official client's totals)."""
    from gw_ops.ops.airflow_api import plain

    dags = plain(airflow.call(airflow.dags.get_dags, limit=200))["dags"]
    counts = {dag["dag_id"]: airflow.call(airflow.dag_runs.get_dag_runs, dag["dag_id"], limit=1).total_entries
              for dag in dags}
    return {k: v for k, v in counts.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--fast", action="store_true", help="BAYESTAR fast setting")
    parser.add_argument("--runs", action="store_true", help="print the DAG runs per DAG")
    args = parser.parse_args()
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops.airflow_api import AirflowApi
    from gw_ops.ops.demo import AlertReceiver
    from gw_ops.science.bayestar import header
    from gw_ops.transport.redis_client import get_redis

    with running_stack(bayestar_fast=args.fast, preliminary_cleanup_timeout_s=3600.0) as (settings, _):
        wait_for_dags(settings, "lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                      "lvalert_orchestrator_handle_superevent")
        time.sleep(10)
        receiver = AlertReceiver(settings.host, settings.broker_port)
        receiver.start()
        client = gracedb_client(settings)
        airflow = AirflowApi.for_stack(settings)
        redis = get_redis(settings)
        runs_before = count_runs(airflow)
        rows = []
        stages = collections.defaultdict(list)
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
            times = milestones(redis, settings, graceid, sid)
            previous_name, previous = "upload", t_upload
            parts = []
            for name in ("superevent created", "sky map ready", "superevent locked",
                         "preliminary appended"):
                if name not in times:
                    continue
                lane = lane_timings(airflow, LANES[name], previous - 0.05)
                if lane and lane[0] <= times[name]:
                    created, started, _ = lane
                    stages[f"{name}: message -> run created"].append(max(0.0, created - previous))
                    stages[f"{name}: run created -> task started"].append(max(0.0, started - created))
                    stages[f"{name}: task started -> done"].append(times[name] - max(started, previous))
                stages[f"{previous_name} -> {name}"].append(times[name] - previous)
                parts.append(f"{name} +{times[name] - previous:.2f}")
                previous_name, previous = name, times[name]
            stages["preliminary appended -> on the wire"].append(received[0] - previous)
            print("    " + ", ".join(parts) + f", on the wire +{received[0] - previous:.2f}")
        totals = [r[0] for r in rows]
        others = [r[0] - r[1] for r in rows]
        bayestars = [r[1] for r in rows]
        print(f"\n{len(rows)} events ({'fast' if args.fast else 'default'} BAYESTAR, "
              f"{settings.omp_threads_effective} OpenMP threads)")
        for name, values in (("total", totals), ("BAYESTAR", bayestars), ("everything else", others)):
            print(f"  {name:<16} p50 {percentile(values, 0.5):6.1f} s   p95 {percentile(values, 0.95):6.1f} s"
                  f"   mean {statistics.mean(values):6.1f} s")
        print("\nwhere the seconds go (p50 / p95 / mean, s; the sky-map stage includes BAYESTAR):")
        for name, values in stages.items():
            print(f"  {name:<58} {percentile(values, 0.5):6.2f} {percentile(values, 0.95):6.2f} "
                  f"{statistics.mean(values):6.2f}")
        time.sleep(3 * settings.lvalert_rering_s)  # let re-rings and trailing runs finish
        runs = {k: v - runs_before.get(k, 0) for k, v in count_runs(airflow).items()}
        runs = {k: v for k, v in runs.items() if v}
        print(f"\nDAG runs per candidate: {sum(runs.values()) / max(1, args.events):.1f} "
              f"({sum(runs.values())} runs for {args.events} candidates)")
        if args.runs:
            for dag_id, count in sorted(runs.items()):
                print(f"  {dag_id:<50} {count / max(1, args.events):6.1f}")


if __name__ == "__main__":
    main()
