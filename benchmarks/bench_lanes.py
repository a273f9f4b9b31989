"""Benchmark of the listeners and lanes through a real local stack (LocalExecutor, SQLite):

* LVAlert message published → handler running: p50/p95 over N messages sent at a steady
  rate, and where the time goes (ring → DAG run → task start → handler);
* GCN notice sent through the broker → handler running: p50/p95 over N notices;
* sustained messages/s with no loss (a burst of N messages);
* triggerer RSS.

Usage: ``.venv/bin/python benchmarks/bench_lanes.py [--count 200] [--rate 2]``
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from stack_harness import percentile, running_stack, stack_rss_mb, wait_for_dags


def lvalert_latencies(settings, count: int, rate: float) -> list[float]:
    from gw_ops.ops.probe import read_probe_records, send_lvalert_probe
    from gw_ops.transport.redis_client import get_redis
    client = get_redis(settings)
    prefix = f"lat-{uuid.uuid4().hex[:6]}-"
    for i in range(count):
        send_lvalert_probe(client, settings, f"{prefix}{i}")
        time.sleep(1 / rate)
    deadline = time.time() + 300
    while time.time() < deadline:
        records = [r for r in read_probe_records(client, settings, "lvalert") if r["uid"].startswith(prefix)]
        if len(records) >= count:
            break
        time.sleep(0.5)
    return [r["handled"] - r["sent"] for r in records]


def burst(settings, count: int) -> tuple[float, int, int]:
    from gw_ops.ops.probe import read_probe_records, send_lvalert_probe
    from gw_ops.transport.redis_client import get_redis
    client = get_redis(settings)
    prefix = f"burst-{uuid.uuid4().hex[:6]}-"
    started = time.time()
    for i in range(count):
        send_lvalert_probe(client, settings, f"{prefix}{i}")
    deadline = time.time() + 600
    while time.time() < deadline:
        uids = [r["uid"] for r in read_probe_records(client, settings, "lvalert") if r["uid"].startswith(prefix)]
        if len(uids) >= count:
            break
        time.sleep(0.2)
    time.sleep(settings.lvalert_rering_s)
    uids = [r["uid"] for r in read_probe_records(client, settings, "lvalert") if r["uid"].startswith(prefix)]
    last = max(r["handled"] for r in read_probe_records(client, settings, "lvalert") if r["uid"].startswith(prefix))
    return count / (last - started), len(set(uids)), len(uids)


def gcn_latencies(settings, count: int, rate: float) -> list[float]:
    from gw_ops.ops.probe import read_probe_records
    from gw_ops.transport.redis_client import get_redis
    from gw_ops.vtp.protocol import publish
    from tests.test_lanes_airflow import make_probe_notice
    client = get_redis(settings)
    prefix = f"gcnlat-{uuid.uuid4().hex[:6]}-"

    async def send_all():
        for i in range(count):
            await publish([make_probe_notice(f"{prefix}{i}")], settings.host, settings.broker_port)
            await asyncio.sleep(1 / rate)
    asyncio.run(send_all())
    deadline = time.time() + 300
    while time.time() < deadline:
        records = [r for r in read_probe_records(client, settings, "gcn") if prefix in r["uid"]]
        if len(records) >= count:
            break
        time.sleep(0.5)
    return [r["handled"] - r["sent"] for r in records]


def report(name: str, latencies: list[float], count: int) -> None:
    print(f"{name}: {len(latencies)}/{count} handled; latency p50 {percentile(latencies, 0.5):.2f} s, "
          f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s, "
          f"mean {statistics.mean(latencies):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.0, help="messages/s for the latency runs")
    args = parser.parse_args()
    with running_stack() as (settings, _):
        wait_for_dags(settings, "lvalert_probe_lvalert_probe", "gcn_probe_gcn_probe")
        time.sleep(15)  # triggers started
        report("LVAlert → handler", lvalert_latencies(settings, args.count, args.rate), args.count)
        report("GCN notice via broker → handler", gcn_latencies(settings, args.count, args.rate), args.count)
        rate, distinct, total = burst(settings, args.count)
        print(f"burst of {args.count}: {rate:.1f} messages/s sustained, {distinct} distinct handled, "
              f"{total} handler calls (loss {args.count - distinct}, duplicates {total - distinct})")
        print(f"triggerer RSS: {stack_rss_mb(settings)['triggerer']:.0f} MB")


if __name__ == "__main__":
    main()
