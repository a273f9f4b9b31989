"""Benchmark of the local GraceDB service: createEvent and writeLog latency and throughput.

Runs ``gw-ops gracedb serve`` as a subprocess (SQLite, then PostgreSQL in a
throwaway database that is dropped afterwards) and drives it with the real
``ligo-gracedb`` client:

* createEvent with a ~700 kB coinc.xml (the test coinc plus PSD arrays, as gstlal uploads);
* writeLog with a 100 kB file;
* p50/p95 latency (ms) of sequential calls, and uploads/s of 4 concurrent clients.

Anchor: GWCelery's GraceDB requirement, a 100 kB upload every 0.1 s sustained
(10 uploads/s) at about 100 ms per call.

Usage::

    .venv/bin/python benchmarks/bench_gracedb.py [--calls 40] [--seconds 10] [--no-postgres]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gw_ops.config import get_settings  # noqa: E402
from gw_ops.ops.processes import stop_process_group  # noqa: E402
from tests.fixtures.gracedb import start_gracedb  # noqa: E402
from tests.helpers import free_port  # noqa: E402

COINC = (REPO / "tests" / "data" / "gracedb" / "coinc_G211117.xml").read_bytes()
POSTGRES_ADMIN_URL = os.environ.get("GW_OPS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def big_coinc(target_bytes: int = 700_000) -> bytes:
    """The test coinc.xml with PSD-like LIGO-LW arrays appended up to ``target_bytes``."""
    rows = "\n".join(f"\t\t\t{i * 0.125:.6e} {1e-46 * (1 + i % 97):.15e}" for i in range(20000))
    array = ('<LIGO_LW Name="REAL8FrequencySeries"><Param Type="lstring" Name="instrument:param">'
             'H1</Param><Array Type="real_8" Name="PSD:array"><Dim Name="Frequency">20000</Dim>'
             f'<Dim>2</Dim><Stream Delimiter=" " Type="Local">\n{rows}\n</Stream></Array></LIGO_LW>')
    document = COINC.decode()
    closing = document.rindex("</LIGO_LW>")
    while len(document.encode()) < target_bytes:
        document = document[:closing] + array + document[closing:]
        closing = document.rindex("</LIGO_LW>")
    return document.encode()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(label: str, call, calls: int) -> None:
    """Sequential latency of ``call``."""
    latencies, failures = [], 0
    for _ in range(calls):
        start = time.perf_counter()
        try:
            call()
            latencies.append((time.perf_counter() - start) * 1000)
        except Exception:  # counted, reported
            failures += 1
    print(f"  {label:<34} n={calls:<4} p50={statistics.median(latencies):7.1f} ms  "
          f"p95={percentile(latencies, 0.95):7.1f} ms  failures={failures}")


def throughput(label: str, make_call, workers: int, seconds: float) -> None:
    """Calls per second of ``workers`` concurrent clients, each with its own client."""
    done, failures, latencies = [0], [0], []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work():
        call = make_call()
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                call()
                with lock:
                    done[0] += 1
                    latencies.append((time.perf_counter() - start) * 1000)
            except Exception:
                with lock:
                    failures[0] += 1
    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    print(f"  {label:<34} {workers} clients: {done[0] / elapsed:6.1f} uploads/s  "
          f"p50={statistics.median(latencies):7.1f} ms  p95={percentile(latencies, 0.95):7.1f} ms  "
          f"failures={failures[0]}")


def run(db_label: str, db_url: str, calls: int, seconds: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-gracedb-"))
    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    settings = get_settings(env={}, state_dir=state, key_prefix=prefix, gracedb_port=free_port(),
                            gracedb_db_url=db_url, redis_url="redis://127.0.0.1:6379/0")
    service = start_gracedb(settings, state / "gracedb.log")
    try:
        client = service.client()
        coinc = big_coinc()
        payload = os.urandom(100_000)
        print(f"{db_label}: coinc.xml {len(coinc) / 1000:.0f} kB, log file {len(payload) / 1000:.0f} kB")
        graceid = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                      filecontents=coinc).json()["graceid"]
        measure("createEvent (700 kB coinc.xml)", lambda: client.create_event(
            "CBC", "gstlal", "coinc.xml", search="AllSky", filecontents=coinc), calls)
        measure("writeLog (100 kB file)", lambda: client.write_log(
            graceid, "bench", filename="upload.bin", filecontents=payload), calls)

        def make_log_call():
            own = service.client()
            return lambda: own.write_log(graceid, "bench", filename="upload.bin", filecontents=payload)

        def make_event_call():
            own = service.client()
            return lambda: own.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                            filecontents=coinc)
        throughput("writeLog (100 kB file)", make_log_call, 4, seconds)
        throughput("createEvent (700 kB coinc.xml)", make_event_call, 4, seconds)
    finally:
        stop_process_group(service.process)
        import redis
        client = redis.Redis()
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="sequential calls per measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput run")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print("Anchor (GWCelery): 100 kB upload every 0.1 s sustained (10/s), ~100 ms per call\n")
    run("SQLite", "", args.calls, args.seconds)
    if args.no_postgres:
        return
    import sqlalchemy
    database = f"gwops_bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
        print()
        run("PostgreSQL", url.replace("postgresql://", "postgresql+psycopg2://"), args.calls,
            args.seconds)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
