"""The local stack through its real processes: up, status, a DAG run over the REST API,
pools, port refusal.  (``down`` leaving nothing behind is checked when the shared
``airflow_stack`` fixture stops.)"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid

from tests.fixtures.stack import stack_env
from tests.helpers import REPO_ROOT, free_port

COMPONENT_NAMES = ("gracedb", "broker", "api-server", "scheduler", "dag-processor", "triggerer")


def test_status_lists_every_component_healthy(airflow_stack):
    result = airflow_stack.gw_ops("status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in COMPONENT_NAMES:
        assert name in lines, f"status has no line for {name}: {result.stdout}"
        assert " running " in lines[name] and "healthy" in lines[name] and "UNHEALTHY" not in lines[name]


def test_first_up_prints_generated_admin_password_once(airflow_stack):
    from gw_ops.ops.stack import airflow_login
    _, password = airflow_login(airflow_stack.settings)
    assert password in airflow_stack.up_output
    assert len(password) >= 12 and password != "admin"


def test_smoke_dag_run_succeeds_through_the_rest_api(airflow_stack):
    airflow = airflow_stack.airflow()
    airflow.wait_for_dag("gw_ops_smoke", timeout=120)
    run_id = f"test_{uuid.uuid4().hex[:8]}"
    airflow.trigger("gw_ops_smoke", run_id=run_id)
    run = airflow.wait_run("gw_ops_smoke", run_id, timeout=180)
    assert run["state"] == "success"
    # a second run with the same id is refused: run ids are unique
    duplicate = airflow.request("POST", "/api/v2/dags/gw_ops_smoke/dagRuns",
                                json={"logical_date": None, "dag_run_id": run_id})
    assert duplicate.status_code == 409


def test_pools_are_declared_with_their_sizes(airflow_stack):
    from gw_ops.airflow.pools import pool_specs
    response = airflow_stack.airflow().request("GET", "/api/v2/pools")
    response.raise_for_status()
    pools = {p["name"]: p["slots"] for p in response.json()["pools"]}
    for spec in pool_specs(airflow_stack.settings):
        assert pools.get(spec.name) == spec.slots


def test_up_refuses_a_port_taken_by_something_else(airflow_stack, tmp_path):
    # a second stack whose GraceDB port is the running stack's Airflow port
    settings = dataclasses.replace(airflow_stack.settings, state_dir=tmp_path / "second",
                                   gracedb_port=airflow_stack.settings.airflow_port,
                                   airflow_port=free_port(), broker_port=free_port())
    result = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "up"], env=stack_env(settings),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"port 127.0.0.1:{airflow_stack.settings.airflow_port} is taken" in result.stdout
    assert not list((tmp_path / "second" / "run").glob("*.json")), "nothing may be started"


def test_new_state_folder_does_not_inherit_redis_data_of_an_earlier_stack(airflow_stack):
    from gw_ops.transport.redis_client import get_redis
    assert not get_redis(airflow_stack.settings).exists(airflow_stack.settings.key("stale", "alert-record"))
    assert "deleted 1 Redis keys" in airflow_stack.up_output
