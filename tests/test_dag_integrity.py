"""DAG folder integrity: loads without errors, every DAG is documented and owned, and
parsing imports nothing heavy (ligo.skymap, astropy, healpy)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import REPO_ROOT

HEAVY_MODULES = ("ligo.skymap", "astropy", "healpy", "lal", "matplotlib")

PARSE_SCRIPT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
report = {
    "import_errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
    "dags": {},
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("astropy", "healpy", "lal", "matplotlib")
                    or m.startswith("ligo.skymap")),
}
for dag_id, dag in bag.dags.items():
    tasks = dag.tasks
    report["dags"][dag_id] = {
        "tags": sorted(dag.tags or []),
        "doc_md": bool(dag.doc_md and dag.doc_md.strip()),
        "owners": sorted({t.owner for t in tasks}),
        "retries": sorted({t.retries for t in tasks}),
        "pools": sorted({t.pool for t in tasks}),
        "queues": sorted({t.queue for t in tasks}),
        "max_active_runs": dag.max_active_runs,
    }
print("REPORT" + json.dumps(report))
"""


def parse_dag_folder(tmp_path, **extra_env: str) -> dict:
    env = {**os.environ, **extra_env, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags")}
    result = subprocess.run([sys.executable, "-c", PARSE_SCRIPT, str(REPO_ROOT / "dags")], env=env,
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    line = next((line for line in result.stdout.splitlines() if line.startswith("REPORT")), None)
    assert line, f"DAG parse script failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(line[len("REPORT"):])


def test_dag_folder_loads_and_every_dag_is_documented(tmp_path):
    report = parse_dag_folder(tmp_path)
    assert report["import_errors"] == {}
    dags = report["dags"]
    assert {"gw_ops_smoke", "gw_ops_listener_health"} <= set(dags)
    assert any(dag_id.startswith("lvalert_") for dag_id in dags), "no LVAlert handler DAG declared"
    assert any(dag_id.startswith("gcn_") for dag_id in dags), "no GCN handler DAG declared"
    for dag_id, info in dags.items():
        assert info["tags"], f"{dag_id} has no tags"
        assert info["doc_md"], f"{dag_id} has no doc_md"
        assert info["owners"] == ["gw-ops"], f"{dag_id} owners {info['owners']}"
        assert all(r is not None for r in info["retries"]), f"{dag_id} has tasks without retries set"
    # parsing the DAG folder imports nothing heavy: those imports belong inside tasks
    assert report["heavy"] == []


def test_serial_lanes_use_their_one_slot_pools(tmp_path):
    from gw_ops.airflow.pools import pool_specs
    from gw_ops.config import get_settings

    report = parse_dag_folder(tmp_path)
    pools_in_use = {pool for info in report["dags"].values() for pool in info["pools"]}
    declared = {spec.name for spec in pool_specs(get_settings(env={}))} | {"default_pool"}
    assert pools_in_use <= declared, f"DAGs name undeclared pools: {pools_in_use - declared}"
    assert "superevent" in pools_in_use and "exttrig" in pools_in_use
    sizes = {spec.name: spec.slots for spec in pool_specs(get_settings(env={}))}
    assert sizes["superevent"] == 1 and sizes["exttrig"] == 1 and sizes["openmp"] >= 1


def test_one_run_per_lane_and_no_dag_that_can_only_do_nothing(tmp_path):
    # a lane run drains until its streams are empty: a second active run could only wait
    # for the first (issue 11: 16 runs "running" for one openmp slot)
    off = parse_dag_folder(tmp_path, GW_OPS_PRESET="local", GW_OPS_PLOT_VOLUME="0")["dags"]
    lanes = {dag_id: info for dag_id, info in off.items() if dag_id.startswith(("lvalert_", "gcn_"))}
    # except the localization lane: one drain per openmp slot, each taking one message
    localization = lanes.pop("lvalert_orchestrator_localize_preferred")
    from gw_ops.airflow.pools import pool_specs
    from gw_ops.config import get_settings
    parse_env = {**{k: v for k, v in os.environ.items() if k.startswith("GW_OPS_")}, "GW_OPS_PRESET": "local"}
    openmp_slots = {spec.name: spec.slots for spec in pool_specs(get_settings(env=parse_env))}
    assert localization["max_active_runs"] == openmp_slots["openmp"]
    assert lanes and all(info["max_active_runs"] == 1 for info in lanes.values()), lanes
    # volume plots off: no volume-plot lane at all
    assert "lvalert_orchestrator_plot_volume_after_alert" not in off
    assert "lvalert_orchestrator_localize_preferred" in off
    on = parse_dag_folder(tmp_path / "on", GW_OPS_PRESET="local", GW_OPS_PLOT_VOLUME="1")["dags"]
    assert "lvalert_orchestrator_plot_volume_after_alert" in on
