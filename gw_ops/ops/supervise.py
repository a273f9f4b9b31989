"""Keep one process of the local stack running: start it again when it exits on its own.

``python -m gw_ops.ops.supervise --name NAME --record PATH -- COMMAND...``

The local stack has no systemd or Docker restart policy behind it (the compose file has
``restart: always``).  Airflow's scheduler and triggerer exit when their metadata
database fails them (seen: SQLite's "database is locked" on a busy machine), and with
the triggerer every listener would be gone until someone noticed.  So ``up`` starts the
scheduler, the triggerer, the DAG processor and the API server under this supervisor:

* the supervisor is the component's recorded process and its process group leader; the
  command runs in the same group, so ``gw-ops down`` / ``restart`` (SIGTERM to the group,
  SIGKILL after the grace period) stop both, and nothing is restarted then;
* a command that exits on its own with a failure status, or is killed by a signal other
  than SIGTERM/SIGINT, is started again after a wait that doubles from 1 s up to
  :data:`MAX_WAIT_S` (back to 1 s once a run lasted :data:`STABLE_AFTER_S`);
* a clean exit (status 0) ends the supervisor with it: nothing to restart;
* every restart is a line in the component's log and is counted in its pid record
  (``restarts``, ``last_exit``, ``last_restart``), which ``gw-ops status`` shows.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Longest wait before a restart (s).
MAX_WAIT_S = 30.0
#: A run that lasted this long (s) was healthy: the next crash waits 1 s again.
STABLE_AFTER_S = 60.0
#: Exit statuses that mean "stopped on purpose" (Popen's negative signal numbers).
STOPPED = {0, -signal.SIGTERM, -signal.SIGINT}


def _say(name: str, text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} gw-ops supervise {name}: {text}", file=sys.stderr,
          flush=True)


def _note_restart(record_path: Path | None, exit_status: int) -> None:
    """Count the restart in the component's pid record (written whole, then renamed)."""
    if record_path is None or not record_path.exists():
        return
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return
    record.update(restarts=int(record.get("restarts", 0)) + 1, last_exit=exit_status,
                  last_restart=time.time())
    partial = record_path.with_suffix(".partial")
    partial.write_text(json.dumps(record))
    partial.replace(record_path)


def supervise(name: str, command: list[str], record_path: Path | None = None) -> int:
    """Run ``command`` until it stops on purpose or this process is told to stop.

    Returns
    -------
    int
        The command's last exit status (0 when it was stopped by a signal on purpose).
    """
    stopping = False

    def stop(signum, _frame):
        # The command got the same signal (it is in our process group); wait for it.
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    wait_s = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        status = child.wait()
        if stopping or status in STOPPED:
            return 0 if status < 0 else status
        lasted = time.monotonic() - started
        if lasted >= STABLE_AFTER_S:
            wait_s = 1.0
        _say(name, f"exited with status {status} after {lasted:.0f} s; starting it again in {wait_s:.0f} s")
        _note_restart(record_path, status)
        deadline = time.monotonic() + wait_s
        while not stopping and time.monotonic() < deadline:
            # in slices: a signal handler's flag ends the wait within 0.2 s
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if stopping:
            return 0
        wait_s = min(2 * wait_s, MAX_WAIT_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the component's name (for the log)")
    parser.add_argument("--record", type=Path, default=None, help="its pid record (JSON)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")
    return supervise(args.name, command, args.record)


if __name__ == "__main__":
    sys.exit(main())
