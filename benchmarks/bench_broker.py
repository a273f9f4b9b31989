"""Latency of the VTP path: broker subprocess, our listener (gcn_to_redis) in this process.

Measures, per notice,

* ``append``: ``append_voevent`` (a DAG task's XADD) -> notice stored in ``gcn:incoming``;
* ``publish``: ``vtp.publish`` (author over VTP, broker ack) -> notice stored.

Usage::

    .venv/bin/python benchmarks/bench_broker.py [N]

Uses ``GW_OPS_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) under a throw-away
key prefix, deleted at the end.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from gw_ops.config import get_settings  # noqa: E402
from gw_ops.ops.processes import stop_process_group  # noqa: E402
from gw_ops.transport.redis_client import get_redis  # noqa: E402
from gw_ops.vtp import protocol as vtp  # noqa: E402
from gw_ops.vtp.broker import append_voevent  # noqa: E402
from tests.helpers import free_port, gw_ops_process, wait_for  # noqa: E402

TEMPLATE = (REPO_ROOT / "tests" / "data" / "voevents" / "lvk_preliminary.xml").read_bytes()


def notice(tag: str) -> bytes:
    return TEMPLATE.replace(b"MS230101a-1-Preliminary", f"MS230101a-{tag}-Preliminary".encode())


async def measure(settings, n: int) -> dict[str, list[float]]:
    stored: dict[str, float] = {}
    stop = asyncio.Event()
    pump = asyncio.ensure_future(vtp.gcn_to_redis(
        settings, stop=stop, on_notice=lambda sid, f: stored.__setitem__(f["ivorn"], time.perf_counter())))
    client = get_redis(settings)
    try:
        while client.hget(settings.key("health", "gcn"), "state") != b"connected":
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the broker count the subscriber
        results: dict[str, list[float]] = {"append": [], "publish": []}
        for i in range(n):
            for kind in results:
                payload = notice(f"{kind}{i}")
                ivorn = vtp.ivorn_of(vtp.parse_xml(payload))
                started = time.perf_counter()
                if kind == "append":
                    await asyncio.to_thread(append_voevent, client, settings, payload)
                else:
                    await vtp.publish([payload], settings.host, settings.broker_port)
                while ivorn not in stored:
                    await asyncio.sleep(0.0005)
                results[kind].append(stored[ivorn] - started)
        return results
    finally:
        stop.set()
        await pump
        client.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    state = Path(tempfile.mkdtemp(prefix="gw-ops-bench-"))
    settings = get_settings(env={}, state_dir=state, key_prefix=prefix, broker_port=free_port(),
                            redis_url=os.environ.get("GW_OPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    log = state / "broker.log"
    proc = gw_ops_process(["broker"], settings.as_env(), log)
    try:
        wait_for(lambda: "listening on" in log.read_text(), timeout=30, what="the broker")
        results = asyncio.run(measure(settings, n))
    finally:
        stop_process_group(proc)
        client = get_redis(settings)
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
    for kind, values in results.items():
        values = sorted(values)
        print(f"{kind:8s} -> stored: n={len(values)} median {statistics.median(values) * 1e3:.2f} ms, "
              f"p90 {values[int(0.9 * (len(values) - 1))] * 1e3:.2f} ms, max {values[-1] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
