"""The local stack's executor (gw_ops.airflow.executor): what it imports before forking."""
from __future__ import annotations

import subprocess
import sys

from gw_ops.airflow.executor import WarmLocalExecutor, preload_modules
from gw_ops.config import get_settings
from gw_ops.ops.stack import airflow_env


def test_preload_imports_modules_and_skips_a_missing_one(caplog):
    took = preload_modules(("json", "gw_ops_no_such_module_anywhere", "gw_ops.rules.superevents"))
    assert set(took) == {"json", "gw_ops.rules.superevents"}
    assert all(seconds >= 0 for seconds in took.values())
    assert "gw_ops_no_such_module_anywhere" in caplog.text


def test_every_default_preload_module_imports_in_a_fresh_process():
    """A typo in the setting would silently cost each task its import again."""
    modules = get_settings(env={}).task_preload_modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_local_stack_runs_the_warm_executor_with_fork(tmp_path):
    env = airflow_env(get_settings(env={}, state_dir=tmp_path))
    module, name = env["AIRFLOW__CORE__EXECUTOR"].rsplit(".", 1)
    assert (module, name) == (WarmLocalExecutor.__module__, WarmLocalExecutor.__name__)
    assert env["AIRFLOW__CORE__MP_START_METHOD"] == "fork"
