"""Deferrable sensors through the running stack: they wait in the triggerer (task state
``deferred``, no worker slot) and finish when the awaited message arrives."""
from __future__ import annotations

import uuid

from gw_ops.ops.probe import make_probe_notice
from tests.coinc_factory import coinc_xml
from tests.helpers import wait_for


def task_state(airflow, dag_id, run_id):
    (ti,) = airflow.task_instances(dag_id, run_id)
    return ti["state"]


def test_label_sensor_defers_until_the_label_arrives(airflow_stack):
    airflow = airflow_stack.airflow()
    airflow.wait_for_dag("gw_ops_wait_for_label")
    airflow.wait_for_dag("lvalert_superevents_handle")
    client = airflow_stack.gracedb()
    gpstime = 1300000000.0 + (uuid.uuid4().int % 10**6) * 1000
    graceid = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                  filecontents=coinc_xml(gpstime=gpstime, snr=10, far=1e-9)).json()["graceid"]
    sid = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=180, what="superevent")
    run_id = f"wait_{uuid.uuid4().hex[:8]}"
    airflow.trigger("gw_ops_wait_for_label", conf={"uid": sid, "label": "DQV"}, run_id=run_id)
    wait_for(lambda: task_state(airflow, "gw_ops_wait_for_label", run_id) == "deferred", timeout=180,
             what="sensor deferred")
    client.write_label(sid, "DQV")
    run = airflow.wait_run("gw_ops_wait_for_label", run_id, timeout=120)
    assert run["state"] == "success"
    # the label is there now: a new sensor succeeds without waiting for a message
    again = f"wait_{uuid.uuid4().hex[:8]}"
    airflow.trigger("gw_ops_wait_for_label", conf={"uid": sid, "label": "DQV"}, run_id=again)
    assert airflow.wait_run("gw_ops_wait_for_label", again, timeout=120)["state"] == "success"


def test_gcn_sensor_defers_until_the_notice_arrives(airflow_stack, tmp_path):
    airflow = airflow_stack.airflow()
    airflow.wait_for_dag("gw_ops_wait_for_gcn_notice")
    suffix = f"sensor-{uuid.uuid4().hex[:6]}"
    run_id = f"gcn_{uuid.uuid4().hex[:8]}"
    airflow.trigger("gw_ops_wait_for_gcn_notice", run_id=run_id,
                    conf={"notice_types": ["TEST_COORDS"], "ivorn_contains": suffix})
    wait_for(lambda: task_state(airflow, "gw_ops_wait_for_gcn_notice", run_id) == "deferred", timeout=180,
             what="sensor deferred")
    airflow_stack.wait_gcn_listener()
    path = tmp_path / "probe.xml"
    path.write_bytes(make_probe_notice(suffix))
    assert airflow_stack.gw_ops("gcn", "publish", str(path)).returncode == 0
    run = airflow.wait_run("gw_ops_wait_for_gcn_notice", run_id, timeout=120)
    assert run["state"] == "success"
