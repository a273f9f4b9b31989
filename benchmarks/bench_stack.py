"""Benchmark of the local stack: time for ``gw-ops up`` to all-healthy, RSS at idle,
DAG folder parse time, ``gw-ops down`` time.  Prints its figures.

Usage: ``.venv/bin/python benchmarks/bench_stack.py``
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from stack_harness import REPO, gw_ops, running_stack, stack_rss_mb

PARSE = r"""
import time
t = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
print(f"PARSE {time.perf_counter() - t:.2f} {len(bag.dags)} {len(bag.import_errors)}")
"""


def dag_parse_seconds() -> tuple[float, int]:
    home = tempfile.mkdtemp(prefix="gw-ops-parse-")
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    stdout = subprocess.run([sys.executable, "-c", PARSE], env=env, cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    line = next(line for line in stdout.splitlines() if line.startswith("PARSE "))
    _, seconds, dags, _ = line.split()
    return float(seconds), int(dags)


def main() -> None:
    seconds, dags = dag_parse_seconds()
    print(f"DAG folder parse (DagBag, cold process, incl. imports): {seconds:.2f} s for {dags} DAGs")
    with running_stack() as (settings, up_seconds):
        print(f"gw-ops up to all healthy (fresh state, SQLite): {up_seconds:.1f} s")
        time.sleep(30)  # idle: DAGs parsed, triggers running
        sizes = stack_rss_mb(settings)
        for name, mb in sizes.items():
            print(f"  RSS {name:<14} {mb:7.0f} MB")
        print(f"RSS of the whole local stack at idle: {sum(sizes.values()):.0f} MB")
        started = time.perf_counter()
        gw_ops(settings, "down")
        print(f"gw-ops down: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
