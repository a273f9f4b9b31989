"""Run every benchmark in turn and print their figures (``./run bench``).

Each benchmark is a script that starts what it needs (a stack, a GraceDB service, a
broker) on free ports and cleans up.  They are slow (the alert benchmark runs BAYESTAR
ten times) and load the machine: run them alone.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("bench_stack.py", "bench_gracedb.py", "bench_broker.py", "bench_lanes.py",
         "bench_superevents.py", "bench_superevent_lane.py", "bench_exttrig.py", "bench_exttrig_stack.py", "bench_bayestar.py", "bench_alert.py")


def main(names: list[str]) -> int:
    failures = 0
    for name in names or ORDER:
        print(f"\n===== {name} =====", flush=True)
        failures += subprocess.run([sys.executable, str(HERE / name)], cwd=HERE).returncode != 0
    return failures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
