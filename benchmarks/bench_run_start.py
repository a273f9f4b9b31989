"""Upload -> the superevent's run exists (issue 11): seconds from a mock event's upload to
the ``superevent`` DAG run named after its superevent, on a fresh local stack.

For each of ``--candidates`` mock events, uploaded one after another (each once the last
one's run exists): when the superevent was seen in GraceDB, when its run was created
(the run's ``queued_at``) and when its first task started, all after the upload.

With ``--count-runs QUIET_S``, it then counts every DAG run the candidates caused, per
DAG (as :mod:`bench_demo_runs` does for the demo): after the second Preliminary's due time
(``preliminary_cleanup_timeout_s`` = 30 s here), until no run was created for ``QUIET_S``.

Usage: ``.venv/bin/python benchmarks/bench_run_start.py [--candidates 3] [--count-runs 20]``
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from functools import partial

from stack_harness import percentile, running_stack, wait_for_dags

from gw_ops.ops.demo import wait_until

#: Longest wait (s) for one candidate's superevent and run.
CANDIDATE_TIMEOUT_S = 150.0
#: Seconds between one candidate's run and the next upload: mock events are stamped with
#: the upload time, and two uploads a second apart join one superevent.
CANDIDATE_GAP_S = 5.0
#: The stack's ``preliminary_cleanup_timeout_s`` (s): the second Preliminary's delay.
CLEANUP_S = 30.0


def unix(text: str | None) -> float | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def superevent_of(client, graceid: str) -> str | None:
    return client.event(graceid).json().get("superevent")


def started_tasks(airflow, superevent_id: str) -> list[dict]:
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    return [ti for ti in airflow.task_instances(SUPEREVENT_DAG_ID, superevent_id)
            if ti.get("start_date")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--count-runs", type=float, default=None, metavar="QUIET_S",
                        help="count the DAG runs caused, until none was made for QUIET_S seconds")
    args = parser.parse_args()
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops.airflow_api import AirflowApi, ApiException

    started_at = time.time()
    with running_stack(bayestar_fast=True, preliminary_cleanup_timeout_s=CLEANUP_S) as (settings, _):
        wait_for_dags(settings, "lvalert_superevents_handle", SUPEREVENT_DAG_ID)
        airflow = AirflowApi.for_stack(settings)
        client = gracedb_client(settings)

        def run_of(superevent_id):
            try:
                return airflow.run(SUPEREVENT_DAG_ID, superevent_id)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        created, first_task = [], []
        print(f"{'superevent':<12} {'seen':>7} {'run created':>12} {'first task':>11}  (s after upload)")
        seen: set[str] = set()
        for index in range(args.candidates):
            if index:
                time.sleep(CANDIDATE_GAP_S)
            upload = upload_mock_event(settings, uploads=1, index=index, with_external=False,
                                       client=client)
            t_upload, graceid = upload["uploaded_at"][0], upload["graceids"][0]
            sid = wait_until(partial(superevent_of, client, graceid), CANDIDATE_TIMEOUT_S, 0.2)
            t_seen = time.time()
            if sid in seen:
                print(f"{sid}: the upload joined an earlier candidate's superevent; not counted")
                continue
            seen.add(sid)
            run = wait_until(partial(run_of, sid), CANDIDATE_TIMEOUT_S, 0.5) if sid else None
            if not run:
                print(f"{sid or graceid}: no run within {CANDIDATE_TIMEOUT_S:.0f} s")
                continue
            queued = unix(run.get("queued_at")) - t_upload
            created.append(queued)
            tasks = wait_until(partial(started_tasks, airflow, sid), 60.0, 0.5) or []
            started = min((unix(ti["start_date"]) for ti in tasks), default=None)
            if started is not None:
                first_task.append(started - t_upload)
            print(f"{sid:<12} {t_seen - t_upload:7.1f} {queued:12.1f} "
                  f"{(started - t_upload) if started else float('nan'):11.1f}")
        print(f"\nupload -> superevent run exists: p50 {percentile(created, 0.5):.1f} s, "
              f"max {max(created, default=float('nan')):.1f} s over {len(created)} candidates")
        if first_task:
            print(f"upload -> its first task started: p50 {percentile(first_task, 0.5):.1f} s")
        if args.count_runs is not None:
            count_runs(airflow, started_at, len(created), args.count_runs)


def count_runs(airflow, since: float, candidates: int, quiet_s: float) -> None:
    """Print the DAG runs made since ``since`` per DAG, once none was made for ``quiet_s``."""
    import collections

    from bench_demo_runs import runs_since

    time.sleep(CLEANUP_S)  # the second Preliminary is due then
    count, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < quiet_s:
        runs = runs_since(airflow, since)
        if len(runs) != count:
            count, last_change = len(runs), time.monotonic()
        time.sleep(2.0)
    per_dag = collections.Counter(run["dag_id"] for run in runs if run.get("run_type") != "scheduled")
    total = sum(per_dag.values())
    print(f"\nDAG runs caused by {candidates} candidates: {total} "
          f"({total / max(candidates, 1):.1f} per candidate)")
    for dag_id, number in sorted(per_dag.items()):
        print(f"  {dag_id:<50} {number:4d}")


if __name__ == "__main__":
    main()
