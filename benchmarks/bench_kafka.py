"""Benchmark of the Kafka transport through a real local stack (GW_OPS_TRANSPORT=kafka, tansu):

* IGWN Alert record produced to Kafka → LVAlert handler running: p50/p95 over N records
  sent at a steady rate (Kafka → listener trigger → lane stream → doorbell → DAG run → task);
* GCN Kafka notice (raw VOEvent XML on a classic topic) → GCN handler running: p50/p95;
* a burst of N IGWN Alert records: messages/s, lost, duplicated;
* triggerer RSS with both Kafka listeners running (and the VTP GCN listener, as deployed);
* ``--hop-only``: the Kafka hop alone, record produced → entry in the lane stream, through
  an in-process listener (no Airflow), to show what the transport itself adds.

Usage: ``.venv/bin/python benchmarks/bench_kafka.py [--count 200] [--rate 2] [--hop-only]``
(heavy: run under ``flock /tmp/gw-ops-heavy.lock``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

from stack_harness import percentile, running_stack, stack_rss_mb, wait_for_dags

from tests.helpers import free_port

GCN_TOPIC = "gcn.classic.voevent.TEST_COORDS"


def producer(server: str):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": server, "linger.ms": 0})


def send_lvalert(kafka, topic: str, uid: str) -> None:
    """One IGWN Alert record whose ``data.sent`` is the time (s) it was produced."""
    from gw_ops.transport.kafka_client import hop_headers
    value = json.dumps({"uid": uid, "alert_type": "new", "data": {"sent": time.time()}, "object": {}})
    kafka.produce(topic, value.encode(), headers=hop_headers("json"))
    kafka.poll(0)


def probe_topic(settings) -> str:
    from gw_ops.ops.probe import PROBE_NODE
    return f"{settings.igwn_alert_group}.{PROBE_NODE}"


def wait_records(client, settings, kind: str, prefix: str, count: int, timeout: float) -> list[dict]:
    from gw_ops.ops.probe import read_probe_records
    deadline = time.time() + timeout
    records: list[dict] = []
    while time.time() < deadline:
        records = [r for r in read_probe_records(client, settings, kind) if prefix in r["uid"]]
        if len(records) >= count:
            break
        time.sleep(0.5)
    return records


def lvalert_latencies(settings, count: int, rate: float) -> list[float]:
    from gw_ops.transport.redis_client import get_redis
    kafka = producer(settings.local_kafka_bootstrap)
    prefix = f"klat-{uuid.uuid4().hex[:6]}-"
    for i in range(count):
        send_lvalert(kafka, probe_topic(settings), f"{prefix}{i}")
        time.sleep(1 / rate)
    kafka.flush(10)
    records = wait_records(get_redis(settings), settings, "lvalert", prefix, count, 300)
    return [r["handled"] - r["sent"] for r in records]


def gcn_latencies(settings, count: int, rate: float) -> list[float]:
    from gw_ops.transport.redis_client import get_redis
    from tests.test_lanes_airflow import make_probe_notice
    kafka = producer(settings.local_kafka_bootstrap)
    prefix = f"kgcn-{uuid.uuid4().hex[:6]}-"
    for i in range(count):
        kafka.produce(GCN_TOPIC, make_probe_notice(f"{prefix}{i}"))  # raw XML, as GCN sends it
        kafka.poll(0)
        time.sleep(1 / rate)
    kafka.flush(10)
    records = wait_records(get_redis(settings), settings, "gcn", prefix, count, 300)
    return [r["handled"] - r["sent"] for r in records]


def burst(settings, count: int) -> tuple[float, int, int]:
    from gw_ops.ops.probe import read_probe_records
    from gw_ops.transport.redis_client import get_redis
    client = get_redis(settings)
    kafka = producer(settings.local_kafka_bootstrap)
    prefix = f"kburst-{uuid.uuid4().hex[:6]}-"
    started = time.time()
    for i in range(count):
        send_lvalert(kafka, probe_topic(settings), f"{prefix}{i}")
    kafka.flush(10)
    wait_records(client, settings, "lvalert", prefix, count, 600)
    time.sleep(settings.lvalert_rering_s)  # room for duplicates to show up
    records = [r for r in read_probe_records(client, settings, "lvalert") if r["uid"].startswith(prefix)]
    uids = [r["uid"] for r in records]
    last = max(r["handled"] for r in records)
    return count / (last - started), len(set(uids)), len(uids)


def hop_latencies(count: int, interval_s: float) -> tuple[list[float], float]:
    """Produce → lane-stream latencies (s) through an in-process bridge, and a burst's msgs/s."""
    import dataclasses
    import tempfile
    import threading
    from pathlib import Path

    from gw_ops.config import get_settings
    from gw_ops.ops.processes import stop_process_group
    from gw_ops.ops.tansu import start_tansu
    from gw_ops.transport.kafka import KafkaBridge, LVAlertRoute
    from gw_ops.transport.kafka_client import ensure_topics
    from gw_ops.transport.redis_client import get_redis, lvalert_stream

    port = free_port()
    proc = start_tansu("127.0.0.1", port, Path(tempfile.mkdtemp()) / "tansu.log")
    settings = dataclasses.replace(get_settings(), key_prefix=f"gwbench:{uuid.uuid4().hex[:8]}:",
                                   igwn_alert_bootstrap=f"127.0.0.1:{port}", igwn_alert_group="bench")
    client = get_redis(settings)
    stop = threading.Event()
    try:
        route = LVAlertRoute(settings, ["superevent"])
        ensure_topics(settings.igwn_alert_servers, route.topics)
        bridge = KafkaBridge(settings, route, settings.igwn_alert_servers, "bench-hop", "bench")
        runner = threading.Thread(target=bridge.run, args=(stop,))
        runner.start()
        stream = lvalert_stream(settings, "superevent")
        kafka = producer(settings.igwn_alert_servers)
        send_lvalert(kafka, "bench.superevent", "warmup")
        while client.xlen(stream) < 1:
            time.sleep(0.05)

        def run(n: int, pause: float) -> list[float]:
            start_len = client.xlen(stream)
            for i in range(n):
                send_lvalert(kafka, "bench.superevent", f"hop{i}")
                if pause:
                    time.sleep(pause)
            kafka.flush(10)
            while client.xlen(stream) < start_len + n:
                time.sleep(0.01)
            entries = client.xrange(stream)[start_len:]
            return [int(entry_id.split(b"-")[0]) / 1000 - json.loads(f[b"payload"])["data"]["sent"]
                    for entry_id, f in entries]

        latencies = run(count, interval_s)
        started = time.time()
        run(count, 0)
        rate = count / (time.time() - started)
        return latencies, rate
    finally:
        stop.set()
        stop_process_group(proc)
        for key in client.scan_iter(match=settings.key_prefix + "*"):
            client.delete(key)


def report(name: str, latencies: list[float], count: int) -> None:
    slow = [i for i, latency in enumerate(latencies) if latency > 5.0]
    print(f"{name}: {len(latencies)}/{count} handled; latency p50 {percentile(latencies, 0.5):.2f} s, "
          f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s, "
          f"mean {statistics.mean(latencies):.2f} s; over 5 s: {len(slow)}"
          + (f" (messages {slow[0]}..{slow[-1]} in handling order)" if slow else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.0, help="messages/s for the latency runs")
    parser.add_argument("--hop-only", action="store_true", help="only the Kafka hop, no Airflow")
    args = parser.parse_args()
    if args.hop_only:
        latencies, rate = hop_latencies(args.count, 0.005)
        print(f"Kafka hop (produce → lane stream, in-process listener, 5 ms apart): "
              f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p95 {percentile(latencies, 0.95) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms; burst of {args.count}: {rate:.0f} messages/s")
        return
    with running_stack(transport="kafka", kafka_port=free_port(), gcn_kafka_topics=(GCN_TOPIC,),
                       kafka_consumer_group=f"bench-{uuid.uuid4().hex[:6]}") as (settings, up_s):
        print(f"gw-ops up (Kafka transport, tansu) to all healthy: {up_s:.1f} s", flush=True)
        wait_for_dags(settings, "lvalert_probe_lvalert_probe", "gcn_probe_gcn_probe")
        from gw_ops.transport.redis_client import get_redis, read_health
        client = get_redis(settings)
        deadline = time.time() + 180
        while time.time() < deadline and not all(
                read_health(client, settings, name).get("state") == "connected"
                for name in ("igwn_alert", "gcn_kafka")):
            time.sleep(0.5)  # both Kafka listeners subscribed in the triggerer
        # warm-up: one record each way handled end to end (the listeners have joined their
        # groups and each lane has run once), so the figures are the steady state's
        started = time.time()
        lvalert_latencies(settings, 1, args.rate)
        gcn_latencies(settings, 1, args.rate)
        print(f"warm-up (one LVAlert and one GCN notice handled): {time.time() - started:.1f} s", flush=True)
        report("Kafka LVAlert → handler", lvalert_latencies(settings, args.count, args.rate), args.count)
        report("GCN Kafka notice → handler", gcn_latencies(settings, args.count, args.rate), args.count)
        rate, distinct, total = burst(settings, args.count)
        print(f"burst of {args.count} Kafka LVAlerts: {rate:.1f} messages/s sustained, {distinct} distinct "
              f"handled, {total} handler calls (loss {args.count - distinct}, duplicates {total - distinct})")
        sizes = stack_rss_mb(settings)
        print(f"triggerer RSS with both Kafka listeners: {sizes['triggerer']:.0f} MB "
              f"(tansu: {sizes.get('kafka', float('nan')):.0f} MB)")


if __name__ == "__main__":
    main()
