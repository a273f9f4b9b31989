"""DAG runs per candidate in the demo (issue 11): ``gw-ops demo``'s one mock candidate on a
fresh stack, then every DAG run it caused, per DAG.

The demo ends when the Preliminary is on the wire; the candidate's life goes on (second
Preliminary, re-rings of the lanes, files copied to the superevent), so the count waits
until no run has been created for ``--quiet`` seconds after the second Preliminary's due
time.  Scheduled runs (maintenance on the clock) are listed apart: they do not come from
the candidate.

Usage: ``.venv/bin/python benchmarks/bench_demo_runs.py [--cleanup 30] [--quiet 30]``
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import time

from stack_harness import running_stack


def parse_time(text: str | None) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


def runs_since(airflow, since: float) -> list[dict]:
    """Every DAG run of the stack queued after ``since`` (Unix s)."""
    from gw_ops.ops.airflow_api import plain

    found = []
    for dag in plain(airflow.call(airflow.dags.get_dags, limit=200))["dags"]:
        for run in airflow.runs(dag["dag_id"], limit=500):
            if parse_time(run.get("queued_at") or run.get("run_after")) >= since:
                found.append(run)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cleanup", type=float, default=30.0,
                        help="preliminary_cleanup_timeout_s of the stack (s)")
    parser.add_argument("--quiet", type=float, default=30.0,
                        help="seconds without a new run that end the count")
    args = parser.parse_args()
    from gw_ops.ops import demo
    from gw_ops.ops.airflow_api import AirflowApi

    with running_stack(bayestar_fast=True, preliminary_cleanup_timeout_s=args.cleanup) as (settings, _):
        started = time.time()
        lines: list[str] = []
        code = demo.run(settings, keep_up=True, out=lines.append)
        print("\n".join(lines))
        if code:
            raise SystemExit(f"demo failed with status {code}")
        airflow = AirflowApi.for_stack(settings)
        time.sleep(args.cleanup)
        count, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < args.quiet:
            runs = runs_since(airflow, started)
            if len(runs) != count:
                count, last_change = len(runs), time.monotonic()
            time.sleep(2.0)
        per_dag = collections.Counter(run["dag_id"] for run in runs if run.get("run_type") != "scheduled")
        scheduled = collections.Counter(run["dag_id"] for run in runs if run.get("run_type") == "scheduled")
        print(f"\nDAG runs caused by the demo's one candidate: {sum(per_dag.values())}")
        for dag_id, number in sorted(per_dag.items()):
            print(f"  {dag_id:<50} {number:4d}")
        if scheduled:
            print(f"scheduled runs meanwhile (not the candidate's): {dict(scheduled)}")


if __name__ == "__main__":
    main()
