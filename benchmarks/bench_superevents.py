"""Benchmark of the superevent manager's lane against the local GraceDB service.

160 G events (10 superevents x 16 uploads from 4 pipelines within 2 s) are uploaded at
20 events/s into a freshly started local GraceDB.  Two modes:

* default (*concurrent*): the lane drains WHILE the events are uploaded, as in
  production.  Before the first upload a separate process (see below) runs the real
  :func:`gw_ops.transport.streams.drain` on the superevent lane's streams
  (``lvalert_stream(settings, node) for node in superevents.NODES``), with the lane's
  consumer group (its DAG id, created from ``"0"`` by the drain), the lane's message
  handler and exactly the drain arguments of the Airflow task
  (:func:`gw_ops.airflow.lanes.drain_options`: ``label_added`` first, the lane's
  ``superevents.batch_scope`` around each read batch, ``lane_linger_s`` of the settings,
  20 s in the local preset).  The handler is called as the task calls it (no client
  passed: the process's ``pipeline_client``); the only addition is a wrapper that
  reports when each handler call started and returned.
  **Lag** = (return time of the last handler call, once the lane has handled every
  LVAlert message the uploads produced) - (return time of the last ``create_event``),
  wall clock (Unix s) on the one host.  No polling of GraceDB during the run (it
  would load the 2-core host the lane shares); GraceDB is read once afterwards to verify
  that every event is in its superevent with its final preferred event.  Since the lane
  is the only writer of superevents, GraceDB's state at that last return is the final
  one, so the lag is an upper bound of "grouped with final preferred events": an event's
  grouping may be right before its message is handled (``unchanged``), never after.
  The drain process is then stopped (SIGTERM) instead of lingering out its 20 s.
  GraceDB calls are the HTTP requests of the lane's GraceDB client (counted at its
  transport adapters), batch-scope queries included.
  Why a process, not a thread: in production the lane is an Airflow task process of its
  own, and the uploads come from the pipelines' processes; a drain thread would share
  the uploading process's GIL.  Measured on the 2-core host (Dec 2026, load 2-5 from a
  test suite alongside), the thread did NOT lag more (thread 0.03-0.09 s, process
  0.02-2.4 s, the spread set by the host's load): the upload loop mostly waits (sleep,
  HTTP; the coinc files are built before the clock starts), so the GIL costs little.  The
  process stays the default because it is the production arrangement;
  ``--drain-in thread`` keeps the variant (it waits out the lane's linger at the end).
  Further figures: read batch sizes (1 when the lane keeps up; growing when it falls
  behind), the lane's throughput while busy (messages / summed handler time: its
  headroom over the 20/s arrivals), and message published (Redis stream id) -> handled.
* ``--backlog``: all 160 events are uploaded FIRST; then ``superevents.handle`` is called
  on every LVAlert message in stream order (label_added first, as the lane sorts),
  inside the lane's ``superevents.batch_scope`` of the whole batch.  Its "time from the
  last upload" is the whole backlog's handling time, not the lane's lag; it measures the
  handler's cost per message.  GraceDB calls are the handler's client method calls.

Printed figures: upload rate achieved (events/s) and create_event latency; messages
handled; lag after the last upload (concurrent) or backlog drain time; events/s through
the lane; per-message handler latency (median, p95, max, ms); GraceDB calls per message;
the load average when the run ended (``/proc/loadavg``); and the check: superevents
found, events left out, mixed groups, wrong preferred events (all must be 0).

Usage::

    .venv/bin/python benchmarks/bench_superevents.py [--superevents 10] [--uploads 16] [--rate 20]
        [--backlog [--no-batch-scope]] [--drain-in process|thread] [--profile FILE]

``--profile FILE`` (concurrent mode) runs the drain under cProfile and writes its stats
(``pstats``) to FILE.  It uses its own state folder and Redis key prefix and deletes its
keys at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
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


def print_handled(count: int, actions: dict[str, int], durations: list[float]) -> None:
    """Print how many messages were handled, by outcome, and the handler calls' latency
    (``durations`` in s; printed in ms)."""
    print(f"messages handled: {count} "
          f"({', '.join(f'{k}={v}' for k, v in sorted(actions.items()))})")
    print(f"handler call latency: median {1e3 * statistics.median(durations):.1f} ms, "
          f"p95 {1e3 * percentile(durations, 0.95):.1f} ms, max {1e3 * max(durations):.1f} ms")


def print_verdict(client, expected, n_superevents: int, load: str) -> bool:
    """Print the load average and the check's verdict; returns whether the check passed."""
    print(f"load average at the end: {load}")
    ok = check(client, expected, n_superevents)
    print("RESULT:", "OK" if ok else "FAILED")
    return ok


def load_average() -> str:
    """The host's 1, 5 and 15 min load averages (``/proc/loadavg``)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def upload(client, groups, rate: float, uploads: int):
    """Upload the plan at ``rate`` events/s; returns (expected, latencies (s), start, end)
    with ``expected`` graceid -> (group index, is the expected preferred event) and the
    start and end as Unix times (s)."""
    # the files are made before the clock starts: a pipeline uploads a file it has, and
    # building them here (tens of ms each on a loaded host) would slow the upload rate
    contents = [[coinc_xml(masses=(1.4, 1.3), **row) for row in rows] for rows in groups]
    expected, latency = {}, []
    interval = 1.0 / rate
    start = time.time()
    for index, rows in enumerate(groups):
        for n, row in enumerate(rows):
            due = start + interval * len(expected)
            time.sleep(max(0.0, due - time.time()))
            content = contents[index][n]
            t = time.perf_counter()
            graceid = client.create_event("CBC", row["pipeline"], "coinc.xml",
                                         search="AllSky", filecontents=content).json()["graceid"]
            latency.append(time.perf_counter() - t)
            expected[graceid] = (index, n == uploads // 2)
    end = time.time()
    print(f"uploaded {len(expected)} events in {end - start:.2f} s "
          f"({len(expected) / (end - start):.1f} events/s; create_event median "
          f"{1e3 * statistics.median(latency):.1f} ms)")
    return expected, latency, start, end


def check(client, expected, n_superevents: int) -> bool:
    """Read the superevents from GraceDB once; print and return whether every event is in
    its own group's superevent with the expected preferred event."""
    superevents = list(client.superevents(query=(
        f"category: production {1_400_000_000 - 200} .. "
        f"{1_400_000_000 + 300 * n_superevents + 200}")))
    grouped = {g: s for s in superevents for g in s["gw_events"]}
    left_out = [g for g in expected if g not in grouped]
    wrong_group = [g for g in expected if g in grouped and any(
        expected[other][0] != expected[g][0] for other in grouped[g]["gw_events"])]
    winners = {expected[g][0]: g for g in expected if expected[g][1]}
    wrong_preferred = [s["superevent_id"] for s in superevents
                       if s["preferred_event"] != winners.get(expected[s["gw_events"][0]][0])]
    print(f"superevents: {len(superevents)} (expected {n_superevents}); events left "
          f"out: {len(left_out)}; mixed groups: {len(wrong_group)}; wrong preferred: "
          f"{len(wrong_preferred)}")
    return (not left_out and not wrong_group and not wrong_preferred
            and len(superevents) == n_superevents)


class _CountingAdapter:
    """Transport adapter that counts the HTTP requests it sends through ``inner``."""

    def __init__(self, inner, counter: list[int]):
        self.inner, self.counter = inner, counter

    def send(self, request, **kwargs):
        self.counter[0] += 1
        return self.inner.send(request, **kwargs)

    def close(self) -> None:
        self.inner.close()


def drain_lane(env: dict, consumer: str, events, profile: str | None, in_process: bool) -> None:
    """The superevent lane's drain as its Airflow task runs it, reporting on ``events``:
    ``("ready", t)``, ``("batch", size, t)`` per read batch, ``("handled", stream, id, start,
    end, GraceDB requests so far)`` per handler call, then ``("done", summary)`` or
    ``("stopped", None)`` (times: Unix s).  ``in_process``: SIGTERM ends it (and writes
    the profile) instead of the lane's linger."""
    import cProfile
    import signal

    # an Airflow 3 task process has httpx imported (its Task SDK talks over it); here the
    # lane's run-start thread would import it while the drain imports too, and lose the
    # first run starts to an import race (KeyError / half-initialised httpx submodules)
    import httpx  # noqa: F401

    from gw_ops import gracedb_client as gateway
    from gw_ops.airflow.lanes import drain_options, message_handler
    from gw_ops.transport.registry import get_handler
    from gw_ops.transport.streams import RedisStreamsTransport, lane_streams

    # the task's environment: the handler reads its settings from it (no settings passed)
    os.environ.update(env)
    settings = get_settings()
    spec = get_handler(f"{se.__name__}.handle")
    # the client the handler uses (no client passed, as the task calls it); made now, as a
    # lane task that is lingering has it already
    calls = [0]
    lane_client = gateway.pipeline_client(settings)
    for prefix, adapter in list(lane_client.adapters.items()):
        lane_client.mount(prefix, _CountingAdapter(adapter, calls))
    handle = message_handler(spec)

    def reporting(message):
        started = time.time()
        try:
            handle(message)
        finally:
            events.put(("handled", message.stream, message.message_id, started, time.time(),
                        calls[0]))

    options = drain_options(spec, settings)
    scope = options["batch_scope"]

    def reporting_scope(batch):
        events.put(("batch", len(batch), time.time()))
        return scope(batch)
    options["batch_scope"] = reporting_scope
    if in_process:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    redis = get_redis(settings)
    profiler = cProfile.Profile() if profile else None
    events.put(("ready", time.time()))
    try:
        if profiler:
            profiler.enable()
        report = RedisStreamsTransport(redis, settings).drain(
            lane_streams(spec, settings), spec.dag_id, consumer, reporting, **options)
        events.put(("done", report.summary()))
    except SystemExit:
        events.put(("stopped", None))
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        redis.close()


def lane_messages(redis, settings) -> dict[tuple[str, str], dict]:
    """Every LVAlert message on the lane's streams: (stream, id) -> decoded payload."""
    messages = {}
    for node in se.NODES:
        stream = lvalert_stream(settings, node)
        for entry_id, fields in redis.xrange(stream):
            messages[(stream, entry_id.decode())] = json.loads(fields[b"payload"])
    return messages


def run_concurrent(args, settings, redis, client, groups) -> bool:
    """Upload while the lane drains (see the module docstring); returns the check."""
    import multiprocessing
    import queue
    import threading

    consumer = f"bench:{uuid.uuid4().hex[:8]}"
    if args.drain_in == "process":
        context = multiprocessing.get_context("spawn")
        events = context.Queue()
        worker = context.Process(target=drain_lane, name="superevent-lane",
                                 args=(settings.as_env(), consumer, events, args.profile, True))
    else:
        events = queue.Queue()
        worker = threading.Thread(target=drain_lane, name="superevent-lane", daemon=True,
                                  args=(settings.as_env(), consumer, events, args.profile, False))
    worker.start()
    handled, batches = {}, []
    try:
        kind, *rest = events.get(timeout=120)
        assert kind == "ready", kind
        expected, _, start, last_upload = upload(client, groups, args.rate, args.uploads)
        deadline = last_upload + args.deadline
        caught_up = None
        while caught_up is None and time.time() < deadline:
            try:
                kind, *rest = events.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if kind == "batch":
                batches.append(rest)
            elif kind == "handled":
                stream, message_id, t0, t1, calls = rest
                handled[(stream, message_id)] = (t0, t1, calls)
                if len(handled) >= len(expected):
                    present = lane_messages(redis, settings)
                    graceids = {m.get("object", {}).get("graceid") for m in present.values()}
                    if set(expected) <= graceids and set(present) <= set(handled):
                        caught_up = present
            elif kind in ("done", "stopped"):
                break
    finally:
        if args.drain_in == "process" and worker.is_alive():
            worker.terminate()  # SIGTERM: ends the lane's linger
        stopped_at = time.time() + (5 if args.drain_in == "process" else settings.lane_linger_s + 10)
        while worker.is_alive() and time.time() < stopped_at:
            try:
                kind, *rest = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "handled":
                handled[(rest[0], rest[1])] = tuple(rest[2:])
        worker.join(timeout=5)
        if args.drain_in == "process" and worker.is_alive():
            worker.kill()
            worker.join()
    load = load_average()
    if caught_up is None:
        print(f"the lane did not catch up within {args.deadline:.0f} s of the last upload "
              f"({len(handled)} messages handled)")
        print("RESULT: FAILED")
        return False
    ends = [t1 for t0, t1, _ in handled.values()]
    durations = [t1 - t0 for t0, t1, _ in handled.values()]
    # arrival: the Redis stream id's milliseconds (when GraceDB published the message)
    waits = [handled[key][1] - int(key[1].split("-")[0]) / 1e3 for key in caught_up]
    calls = max(c for _, _, c in handled.values())
    last = max(ends)
    actions = {}
    for message in caught_up.values():
        actions[message.get("alert_type")] = actions.get(message.get("alert_type"), 0) + 1
    sizes = [b[0] for b in batches]
    print(f"lane: drain in a {args.drain_in}, linger {settings.lane_linger_s:.0f} s; "
          f"read batches: {len(batches)} (largest {max(sizes, default=0)}, first ten {sizes[:10]})")
    busy = sum(durations)
    print(f"lane busy in handler calls: {busy:.2f} s -> {len(durations) / busy:.1f} messages/s "
          f"while busy (arrivals: {args.rate:.0f}/s)")
    print_handled(len(caught_up), actions, durations)
    print(f"message published -> handled: median {1e3 * statistics.median(waits):.0f} ms, "
          f"p95 {1e3 * percentile(waits, 0.95):.0f} ms, max {1e3 * max(waits):.0f} ms")
    print(f"GraceDB calls per message: {calls / len(caught_up):.2f} (HTTP requests of the "
          f"lane's client)")
    print(f"lag: last handler return {last - last_upload:.2f} s after the last upload "
          f"(upload window {last_upload - start:.2f} s)")
    return print_verdict(client, expected, args.superevents, load)


def run_backlog(args, settings, redis, client, groups) -> bool:
    """Upload everything, then handle the backlog (see the module docstring)."""
    expected, _, _, last_upload_unix = upload(client, groups, args.rate, args.uploads)
    last_upload = time.perf_counter()  # the drain is timed with perf_counter
    n_events = len(expected)
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
    load = load_average()

    drain = done - drain_start
    actions = [outcome.action for outcome in outcomes]
    print_handled(len(messages), {action: actions.count(action) for action in set(actions)},
                  handle_latency)
    print(f"lane drain: {drain:.2f} s -> {n_events / drain:.1f} events/s through the lane")
    print(f"GraceDB calls per message: {counting.calls / len(messages):.2f} (client method calls)")
    print(f"time from last upload until all {n_events} events grouped with final "
          f"preferred events: {done - last_upload:.2f} s (backlog: uploads first)")
    return print_verdict(client, expected, args.superevents, load)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--superevents", type=int, default=10)
    parser.add_argument("--uploads", type=int, default=16)
    parser.add_argument("--rate", type=float, default=20.0, help="uploads per second")
    parser.add_argument("--backlog", action="store_true",
                        help="upload everything first, then handle the backlog (the old mode)")
    parser.add_argument("--no-batch-scope", action="store_true",
                        help="--backlog: handle the messages without the lane's batch scope")
    parser.add_argument("--drain-in", choices=("process", "thread"), default="process",
                        help="where the concurrent lane's drain runs (default: a process)")
    parser.add_argument("--deadline", type=float, default=60.0,
                        help="give up this long (s) after the last upload")
    parser.add_argument("--profile", metavar="FILE",
                        help="concurrent mode: cProfile the drain, pstats to FILE")
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
        run = run_backlog if args.backlog else run_concurrent
        return 0 if run(args, settings, redis, client, groups) else 1
    finally:
        stop_process_group(service)
        for key in redis.scan_iter(match=settings.key_prefix + "*", count=1000):
            redis.delete(key)


if __name__ == "__main__":
    sys.exit(main())
