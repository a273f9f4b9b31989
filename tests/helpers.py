"""Small helpers shared by the tests (no fixtures here; see conftest.py and tests/fixtures/)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1,
             what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``TimeoutError`` naming ``what`` when ``timeout`` (s) passes first.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the service may still be starting
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}; last error: {last_error!r}")


def lane_settled(client, stream: str, group: str) -> bool:
    """Whether consumer group ``group`` has been handed every entry of ``stream`` and has
    acknowledged each: after that no entry can be delivered again (nothing pending to
    reclaim), so a count of handled messages is final.  Works on Redis 6.2 (no ``lag``)."""
    def text(value):
        return value.decode() if isinstance(value, bytes) else value
    last = text(client.xinfo_stream(stream)["last-generated-id"])
    for info in client.xinfo_groups(stream):
        if text(info["name"]) == group:
            return info["pending"] == 0 and text(info["last-delivered-id"]) == last
    return False


def gw_ops_process(args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``gw-ops ARGS`` (via ``python -m gw_ops.ops.cli``) in its own process group."""
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "gw_ops.ops.cli", *args], env={**os.environ, **env},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=REPO_ROOT)
