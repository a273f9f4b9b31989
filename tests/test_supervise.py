"""The local stack's supervisor (:mod:`gw_ops.ops.supervise`): a process that exits on its
own is started again, counted in its pid record; one stopped on purpose is not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.helpers import REPO_ROOT, wait_for


def _supervised(tmp_path, script: str) -> tuple[subprocess.Popen, object]:
    record = tmp_path / "component.json"
    record.write_text(json.dumps({"pid": 0}))
    proc = subprocess.Popen([sys.executable, "-m", "gw_ops.ops.supervise", "--name", "demo",
                             "--record", str(record), "--", sys.executable, "-c", script],
                            cwd=REPO_ROOT, start_new_session=True, stderr=subprocess.PIPE, text=True)
    return proc, record


def test_a_crashed_command_is_started_again_and_counted(tmp_path):
    runs = tmp_path / "runs"
    # exits with status 3 on its first run, then stays up until stopped
    script = (f"import pathlib, time; p = pathlib.Path({str(runs)!r}); n = len(p.read_text()) if p.exists() else 0; "
              "p.write_text('x' * (n + 1)); raise SystemExit(3) if n == 0 else time.sleep(600)")
    proc, record = _supervised(tmp_path, script)
    try:
        wait_for(lambda: runs.exists() and len(runs.read_text()) == 2, timeout=60, what="the second run")
        saved = json.loads(record.read_text())
        assert saved["restarts"] == 1 and saved["last_exit"] == 3, saved
        os.killpg(proc.pid, signal.SIGTERM)  # as gw-ops down does: the whole group
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "exited with status 3" in proc.stderr.read()
    assert len(runs.read_text()) == 2, "stopped on purpose: not started again"


def test_a_command_killed_by_sigkill_alone_is_started_again(tmp_path):
    pids = tmp_path / "pids"
    script = (f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(600)")
    proc, record = _supervised(tmp_path, script)
    try:
        first = int(wait_for(lambda: pids.exists() and pids.read_text().split(), timeout=60,
                             what="the command started")[0])
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: pids.read_text().split()[1:], timeout=60, what="the command again")
        assert int(second[0]) != first and proc.poll() is None
        assert json.loads(record.read_text())["last_exit"] == -signal.SIGKILL
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_clean_exit_ends_the_supervisor(tmp_path):
    proc, record = _supervised(tmp_path, "raise SystemExit(0)")
    assert proc.wait(timeout=60) == 0
    assert "restarts" not in json.loads(record.read_text())
