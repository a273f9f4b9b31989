"""Benchmark of the external-trigger path through a real stack: a GCN notice published
to the gw-ops broker → GCN listener trigger → ``gcn:incoming`` → external-trigger lane
(pool exttrig) → external event visible in GraceDB.  p50/p95 over N notices published
one every ``1/rate`` s.

Usage: ``.venv/bin/python benchmarks/bench_exttrig_stack.py [--count 100] [--rate 1]``
"""
from __future__ import annotations

import argparse
import asyncio
import threading
import time

from stack_harness import percentile, running_stack, wait_for_dags


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0)
    args = parser.parse_args()
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.mock.notices import make_mock_grb_notice
    from gw_ops.vtp.protocol import publish

    with running_stack() as (settings, _):
        wait_for_dags(settings, "gcn_external_triggers_handle_notice")
        time.sleep(15)
        client = gracedb_client(settings)
        gps0 = 1400000000.0 + (int(time.time()) % 10**5) * 100
        spacing_s = 50.0  # trigger times far apart: no notice replaces another
        sent_at: dict[int, float] = {}
        seen_at: dict[int, float] = {}
        query = f"group: External gpstime: {gps0 - 1} .. {gps0 + spacing_s * args.count}"
        sending_done = threading.Event()

        def poll() -> None:
            # watches GraceDB while the notices go out; records when each event first shows
            deadline = time.time() + 600
            while time.time() < deadline and not (sending_done.is_set() and len(seen_at) >= args.count):
                for event in client.events(query):
                    seen_at.setdefault(round((event["gpstime"] - gps0) / spacing_s), time.time())
                time.sleep(0.1)

        async def send_all():
            for i in range(args.count):
                notice = make_mock_grb_notice(f"bench{i}", gps0 + spacing_s * i, 120.0, -30.0, 5.0)
                sent_at[i] = time.time()
                await publish([notice], settings.host, settings.broker_port)
                await asyncio.sleep(1 / args.rate)

        poller = threading.Thread(target=poll)
        poller.start()
        asyncio.run(send_all())
        sending_done.set()
        poller.join()
        # GraceDB's "created" has 1 s resolution: the poll that first saw each event
        # (every ~0.1 s plus the query) is a tighter upper bound of the visibility time
        latencies = [seen_at[i] - sent_at[i] for i in seen_at if i in sent_at]
        print(f"{len(latencies)}/{args.count} notices became external events")
        print(f"published → external event created in GraceDB: p50 {percentile(latencies, 0.5):.2f} s, "
              f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s")


if __name__ == "__main__":
    main()
