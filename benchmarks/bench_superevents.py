"""Benchmark of the superevent manager's lane against the local GraceDB service.

160 G events (10 superevents x 16 uploads from 4 pipelines within 2 s) are uploaded at
20 events/s into a freshly started local GraceDB; then the lane is drained by calling
``superevents.handle`` on every LVAlert message in stream order (label_added first, as
the lane sorts), inside the lane's ``superevents.batch_scope`` of the whole batch.  Printed figures:

* upload rate achieved (events/s) and GraceDB create_event latency,
* time from the last upload until every event is in its superevent with its final
  preferred event (s),
* events/s through the lane, per-message handle() latency (median, p95, max, ms),
* GraceDB calls per message, events left out (must be 0).

Usage::

    .venv/bin/python benchmarks/bench_superevents.py [--superevents 10] [--uploads 16] [--rate 20]

It uses its own state folder and Redis key prefix and deletes its keys at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gw_ops.config import get_settings  # noqa: E402
from gw_ops.handlers import superevents as se  # noqa: E402
from gw_ops.ops.processes import stop_process_group  # noqa: E402
from gw_ops.transport.redis_client import get_redis, lvalert_stream  # noqa: E402
from tests.coinc_factory import coinc_xml  # noqa: E402
from tests.helpers import free_port, gw_ops_process, wait_for  # noqa: E402

PIPELINES = ("gstlal", "pycbc", "spiir", "MBTA")


class CountingClient:
    """Wraps a GraceDb client and counts the calls the handler makes."""

    def __init__(self, client):
        self.client, self.calls = client, 0

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def counted(*args, **kwargs):
            self.calls += 1
            result = method(*args, **kwargs)
            return list(result) if name == "superevents" else result
        return counted


def plan(n_superevents: int, uploads: int, gps0: float):
    """Upload parameters; within each group the 3-detector upload is the expected winner."""
    groups = []
    for group in range(n_superevents):
        t0 = gps0 + 300.0 * group  # far outside the +-100 s lookup of the neighbours
        rows = []
        for n in range(uploads):
            rows.append(dict(gpstime=t0 + 2.0 * n / uploads, snr=8.0 + 0.3 * n, far=1e-9,
                             pipeline=PIPELINES[n % len(PIPELINES)],
                             instruments=("H1", "L1", "V1") if n == uploads // 2 else ("H1", "L1")))
        groups.append(rows)
    return groups


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--superevents", type=int, default=10)
    parser.add_argument("--uploads", type=int, default=16)
    parser.add_argument("--rate", type=float, default=20.0, help="uploads per second")
    parser.add_argument("--no-batch-scope", action="store_true",
                        help="handle the messages without the lane's batch scope")
    args = parser.parse_args(argv)

    state = Path(tempfile.mkdtemp(prefix="bench-superevents-"))
    settings = get_settings(env={}, state_dir=state, gracedb_port=free_port(),
                            key_prefix=f"gwbench:{uuid.uuid4().hex[:8]}:")
    redis = get_redis(settings)
    service = gw_ops_process(["gracedb", "serve"], settings.as_env(), state / "gracedb.log")
    try:
        from gw_ops.gracedb_client import gracedb_client
        wait_for(lambda: gracedb_client(settings).ping().status_code == 200, timeout=60,
                 what="the local GraceDB")
        client = gracedb_client(settings)

        groups = plan(args.superevents, args.uploads, gps0=1_400_000_000.0)
        expected = {}  # graceid -> (group index, is expected preferred)
        upload_latency = []
        interval = 1.0 / args.rate
        start = time.perf_counter()
        for index, rows in enumerate(groups):
            for n, row in enumerate(rows):
                due = start + interval * len(expected)
                time.sleep(max(0.0, due - time.perf_counter()))
                content = coinc_xml(masses=(1.4, 1.3), **row)
                t = time.perf_counter()
                graceid = client.create_event("CBC", row["pipeline"], "coinc.xml",
                                             search="AllSky", filecontents=content).json()["graceid"]
                upload_latency.append(time.perf_counter() - t)
                expected[graceid] = (index, n == args.uploads // 2)
        last_upload = time.perf_counter()
        n_events = len(expected)
        print(f"uploaded {n_events} events in {last_upload - start:.2f} s "
              f"({n_events / (last_upload - start):.1f} events/s; create_event median "
              f"{1e3 * statistics.median(upload_latency):.1f} ms)")

        # --- drain the lane -----------------------------------------------------------
        counting = CountingClient(client)
        wait_for(lambda: sum(redis.xlen(lvalert_stream(settings, node)) for node in se.NODES)
                 >= n_events, timeout=30, what="every LVAlert message")
        batch = []
        for node in se.NODES:
            for entry_id, fields in redis.xrange(lvalert_stream(settings, node)):
                ms, seq = entry_id.decode().split("-")
                batch.append(((int(ms), int(seq)),
                              dict(json.loads(fields[b"payload"]), node=node)))
        messages = sorted((m for _, m in sorted(batch, key=lambda item: item[0])),
                          key=se.sort_key)
        handle_latency, outcomes = [], []
        drain_start = time.perf_counter()
        # as the lane does: one batch scope around the ordered batch (--no-batch-scope:
        # one superevent query per message, as before the scope existed)
        scope = (contextlib.nullcontext() if args.no_batch_scope
                 else se.batch_scope(messages, client=counting, settings=settings))
        with scope:
            for message in messages:
                t = time.perf_counter()
                outcomes.append(se.handle(message, client=counting, settings=settings))
                handle_latency.append(time.perf_counter() - t)
        done = time.perf_counter()

        # --- check: every event grouped, right preferred event ------------------------
        superevents = list(client.superevents(query=(
            f"category: production {1_400_000_000 - 200} .. "
            f"{1_400_000_000 + 300 * args.superevents + 200}")))
        grouped = {g: s for s in superevents for g in s["gw_events"]}
        left_out = [g for g in expected if g not in grouped]
        wrong_group = [g for g in expected if g in grouped and any(
            expected[other][0] != expected[g][0] for other in grouped[g]["gw_events"])]
        winners = {expected[g][0]: g for g in expected if expected[g][1]}
        wrong_preferred = [s["superevent_id"] for s in superevents
                           if s["preferred_event"] != winners.get(expected[s["gw_events"][0]][0])]

        drain = done - drain_start
        actions = [outcome.action for outcome in outcomes]
        counts = ", ".join(f"{action}={actions.count(action)}" for action in sorted(set(actions)))
        print(f"messages handled: {len(messages)} ({counts})")
        print(f"lane drain: {drain:.2f} s -> {n_events / drain:.1f} events/s through the lane")
        print(f"handle() latency: median {1e3 * statistics.median(handle_latency):.1f} ms, "
              f"p95 {1e3 * percentile(handle_latency, 0.95):.1f} ms, "
              f"max {1e3 * max(handle_latency):.1f} ms")
        print(f"GraceDB calls per message: {counting.calls / len(messages):.2f}")
        print(f"time from last upload until all {n_events} events grouped with final "
              f"preferred events: {done - last_upload:.2f} s")
        print(f"superevents: {len(superevents)} (expected {args.superevents}); events left "
              f"out: {len(left_out)}; mixed groups: {len(wrong_group)}; wrong preferred: "
              f"{len(wrong_preferred)}")
        ok = (not left_out and not wrong_group and not wrong_preferred
              and len(superevents) == args.superevents)
        print("RESULT:", "OK" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        stop_process_group(service)
        for key in redis.scan_iter(match=settings.key_prefix + "*", count=1000):
            redis.delete(key)


if __name__ == "__main__":
    sys.exit(main())
