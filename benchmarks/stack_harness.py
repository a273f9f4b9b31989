"""A throwaway local stack for benchmarks: free ports, own state folder and Redis prefix.

Not a test fixture: benchmarks print figures and are run by hand (``./run bench``).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gw_ops.config import Settings, get_settings  # noqa: E402
from tests.helpers import free_port  # noqa: E402

#: Variables a benchmark takes from the caller's environment: a Redis of one's own (durable,
#: or accepted as volatile with GW_OPS_ALLOW_VOLATILE_REDIS=1).
PASSED_VARIABLES = ("GW_OPS_REDIS_URL", "GW_OPS_ALLOW_VOLATILE_REDIS")


def bench_settings(**overrides) -> Settings:
    """Settings of a benchmark stack (free ports, fresh state folder and key prefix).

    Without ``GW_OPS_REDIS_URL`` the stack gets its own durable Redis: the URL points at a
    free port, where nothing answers, so ``gw-ops up`` starts its embedded append-only
    server (this machine's shared Redis is volatile, and ``up`` refuses it).
    """
    state = Path(tempfile.mkdtemp(prefix="gw-ops-bench-"))
    redis_port = free_port()
    values = dict(state_dir=state, key_prefix=f"gwbench:{uuid.uuid4().hex[:8]}:",
                  redis_url=os.environ.get("GW_OPS_REDIS_URL", f"redis://127.0.0.1:{redis_port}/0"),
                  airflow_port=free_port(), gracedb_port=free_port(), broker_port=free_port(),
                  embedded_redis_port=redis_port, airflow_worker_log_port=free_port(),
                  airflow_trigger_log_port=free_port(), extra_handler_modules=("gw_ops.ops.probe",),
                  mock_event_interval_minutes=0, vetting_timeout_s=24 * 3600.0)
    values.update(overrides)
    return get_settings(env={k: v for k, v in os.environ.items() if k in PASSED_VARIABLES}, **values)


def env_of(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GW_OPS_", "AIRFLOW"))}
    env.update(settings.as_env())
    env["XDG_CONFIG_HOME"] = str(settings.state_path / "xdg-config")  # up records its folder there
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    return env


def gw_ops(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", *args], env=env_of(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def running_stack(**overrides):
    """Start a stack, yield (settings, seconds to healthy), stop it and delete its Redis keys."""
    from gw_ops.transport.redis_client import get_redis

    settings = bench_settings(**overrides)
    started = time.perf_counter()
    result = gw_ops(settings, "up")
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"gw-ops up failed:\n{result.stdout}\n{result.stderr}")
    embedded = settings.redis_url.endswith(f":{settings.embedded_redis_port}/0")
    try:
        yield settings, elapsed
    finally:
        gw_ops(settings, "down")
        if not embedded:  # the embedded Redis stopped with the stack; its files go with the folder
            client = get_redis(settings)
            for key in client.scan_iter(match=settings.key_prefix + "*", count=1000):
                client.delete(key)


def stack_rss_mb(settings: Settings) -> dict[str, float]:
    """Resident memory (MB) per component, its descendants included."""
    import json

    import psutil
    sizes = {}
    for record_file in sorted((settings.state_path / "run").glob("*.json")):
        pid = json.loads(record_file.read_text())["pid"]
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        sizes[record_file.stem] = total / 2**20
    return sizes


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_for_dags(settings: Settings, *dag_ids: str, timeout: float = 180) -> None:
    from gw_ops.ops.airflow_api import AirflowApi
    client = AirflowApi.for_stack(settings)
    for dag_id in dag_ids:
        client.wait_for_dag(dag_id, timeout=timeout)
