"""The Celery stack with 1 or 2 ``openmp`` workers: a burst of mock events until the last sky
map, and the stack's idle resident memory per service.

Each ``openmp`` worker has one slot and BAYESTAR one OpenMP thread (``omp_threads=1``), so on
a 2-core machine two workers should take about half the time of one.  The second worker runs
as on another host (its own ``AIRFLOW_HOME``; the stack's settings, DAGs, Redis and
PostgreSQL), and the ``openmp`` pool has one slot per worker.

Usage (one stack per run; heavy, so on the shared machine under the lock)::

    flock /tmp/gw-ops-heavy.lock python benchmarks/bench_celery_openmp.py --workers 1
    flock /tmp/gw-ops-heavy.lock python benchmarks/bench_celery_openmp.py --workers 2

Needs PostgreSQL at ``GW_OPS_TEST_POSTGRES_URL`` (default the machine's cluster).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stack_harness import running_stack, stack_rss_mb, wait_for_dags  # noqa: E402
from tests.helpers import free_port, wait_for  # noqa: E402

POSTGRES_URL = os.environ.get("GW_OPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: Node name of the second ("other host") openmp worker.
OTHER_WORKER = "openmp@other-host"
#: Seconds between uploads of the burst: each candidate its own superevent (CBC superevent
#: windows are 1 s either side), so each one is localized.
UPLOAD_SPACING_S = 2.5


def start_other_worker(settings, folder: Path) -> subprocess.Popen:
    """An openmp worker with its own AIRFLOW_HOME, sharing the stack's settings and URLs."""
    from gw_ops.ops import distributed, stack
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GW_OPS_", "AIRFLOW"))}
    env.update(stack.airflow_env(stack.running_settings(settings)))
    env.update(AIRFLOW_HOME=str(folder / "airflow"), AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(folder / "logs"))
    worker = subprocess.Popen(
        [distributed.airflow_executable(), "celery", "worker", "--queues", "openmp", "--concurrency", "1",
         "--celery-hostname", OTHER_WORKER, "--skip-serve-logs"],
        env=env, cwd=folder, stdout=open(folder / "worker.log", "ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    app = distributed._control_app(stack.running_settings(settings))
    try:
        wait_for(lambda: app.control.ping(destination=[OTHER_WORKER], timeout=1.0), timeout=180, interval=1,
                 what="the second openmp worker answers ping")
    finally:
        app.close()
    return worker


def process_tree_rss_mb(pid: int) -> float:
    import psutil
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()

    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops.demo import PIPELINE_DAGS

    overrides = dict(executor="celery", postgres_url=POSTGRES_URL, flower_port=free_port(),
                     omp_threads=1, celery_openmp_concurrency=1, openmp_pool_slots=args.workers,
                     celery_default_concurrency=2, bayestar_fast=True)
    with running_stack(**overrides) as (settings, up_s):
        print(f"gw-ops up --executor celery: healthy in {up_s:.1f} s")
        wait_for_dags(settings, *PIPELINE_DAGS)
        folder = Path(tempfile.mkdtemp(prefix="gw-ops-other-host-"))
        worker = start_other_worker(settings, folder) if args.workers == 2 else None
        try:
            rss = stack_rss_mb(settings)
            if worker is not None:
                rss["worker-openmp@other-host"] = process_tree_rss_mb(worker.pid)
            print(f"idle RSS of the Celery stack ({args.workers} openmp worker(s)): "
                  f"{sum(rss.values()):.0f} MB in all")
            for name, size in sorted(rss.items(), key=lambda item: -item[1]):
                print(f"  {name:28s} {size:7.0f} MB")
            client = gracedb_client(settings)
            load_before = os.getloadavg()[0]
            started = time.time()
            graceids = []
            for index in range(args.events):
                upload = upload_mock_event(settings, uploads=1, index=index, with_external=False, client=client)
                graceids.extend(upload["graceids"])
                time.sleep(UPLOAD_SPACING_S)
            burst_s = time.time() - started

            def superevents_localized():
                preferred = set()
                for graceid in graceids:
                    sid = client.event(graceid).json().get("superevent")
                    if not sid:
                        return None
                    preferred.add(client.superevent(sid).json()["preferred_event"])
                ready = {g for g in preferred
                         if "SKYMAP_READY" in {e["name"] for e in client.labels(g).json()["labels"]}}
                return preferred if ready == preferred else None
            localized = wait_for(superevents_localized, timeout=1500, interval=1,
                                 what="a sky map for every superevent")
            last_s = time.time() - started
            load_after = os.getloadavg()
            print(f"burst: {args.events} mock events uploaded over {burst_s:.1f} s "
                  f"({UPLOAD_SPACING_S} s apart), {len(localized)} superevents localized")
            print(f"time from the first upload until the last sky map: {last_s:.1f} s "
                  f"({args.workers} openmp worker(s), 1 slot and 1 OpenMP thread each)")
            print(f"load average: {load_before:.2f} before the burst; 1/5/15 min after: "
                  f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} cores)")
            print(json.dumps({"workers": args.workers, "events": args.events, "last_skymap_s": round(last_s, 1),
                              "idle_rss_mb": round(sum(rss.values())), "load_1min_after": load_after[0]}))
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(60)
    from gw_ops.ops import distributed
    distributed.drop_stack_database(settings)  # the stack is down: its metadata goes too


if __name__ == "__main__":
    main()
