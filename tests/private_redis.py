"""A private ``redis-server`` for fault tests: its own port and folder, AOF on, killable.

The shared Redis of this machine must never be restarted by a test; these tests start
their own server, SIGKILL it and start it again on the same port and folder (the AOF
brings the data back, as a durable production Redis would).
"""
from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port, wait_for


class PrivateRedis:
    """One ``redis-server`` process on 127.0.0.1:``port`` storing in ``folder`` (AOF)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.folder / 'redis.log').read_text()}")
            client = self.client()
            try:
                return client.ping()
            finally:
                client.close()
        wait_for(answers, timeout=20, interval=0.05, what=f"private redis-server on {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (the AOF holds what was acknowledged)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()


@pytest.fixture
def private_redis(tmp_path):
    """A started :class:`PrivateRedis`, killed after the test."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
