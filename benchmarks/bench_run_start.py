"""Upload -> the superevent's run exists (issue 11): seconds from a mock event's upload to
the ``superevent`` DAG run named after its superevent, on a fresh local stack.

For each of ``--candidates`` mock events, uploaded one after another (each once the last
one's run exists): when the superevent was seen in GraceDB, when its run was created
(the run's ``queued_at``) and when its first task started, all after the upload.

Usage: ``.venv/bin/python benchmarks/bench_run_start.py [--candidates 3]``
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from functools import partial

from stack_harness import percentile, running_stack, wait_for_dags

#: Longest wait (s) for one candidate's superevent and run.
CANDIDATE_TIMEOUT_S = 150.0
#: Seconds between one candidate's run and the next upload: mock events are stamped with
#: the upload time, and two uploads a second apart join one superevent.
CANDIDATE_GAP_S = 5.0


def unix(text: str | None) -> float | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def poll(check, timeout_s: float, every_s: float = 0.2):
    """``check()`` until it answers something true (returned), or None after ``timeout_s``."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    return None


def superevent_of(client, graceid: str) -> str | None:
    return client.event(graceid).json().get("superevent")


def started_tasks(airflow, superevent_id: str) -> list[dict]:
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    return [ti for ti in airflow.task_instances(SUPEREVENT_DAG_ID, superevent_id)
            if ti.get("start_date")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=3)
    args = parser.parse_args()
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops.airflow_api import AirflowApi, ApiException

    with running_stack(bayestar_fast=True) as (settings, _):
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
            sid = poll(partial(superevent_of, client, graceid), CANDIDATE_TIMEOUT_S)
            t_seen = time.time()
            if sid in seen:
                print(f"{sid}: the upload joined an earlier candidate's superevent; not counted")
                continue
            seen.add(sid)
            run = poll(partial(run_of, sid), CANDIDATE_TIMEOUT_S, every_s=0.5) if sid else None
            if not run:
                print(f"{sid or graceid}: no run within {CANDIDATE_TIMEOUT_S:.0f} s")
                continue
            queued = unix(run.get("queued_at")) - t_upload
            created.append(queued)
            tasks = poll(partial(started_tasks, airflow, sid), 60.0, every_s=0.5) or []
            started = min((unix(ti["start_date"]) for ti in tasks), default=None)
            if started is not None:
                first_task.append(started - t_upload)
            print(f"{sid:<12} {t_seen - t_upload:7.1f} {queued:12.1f} "
                  f"{(started - t_upload) if started else float('nan'):11.1f}")
        print(f"\nupload -> superevent run exists: p50 {percentile(created, 0.5):.1f} s, "
              f"max {max(created, default=float('nan')):.1f} s over {len(created)} candidates")
        if first_task:
            print(f"upload -> its first task started: p50 {percentile(first_task, 0.5):.1f} s")


if __name__ == "__main__":
    main()
