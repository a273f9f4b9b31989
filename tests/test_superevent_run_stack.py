"""The ``superevent`` DAG through the running stack (issue 11): one run per superevent,
run id = superevent id, with its story; the advocate signoff answered in Airflow (the
Required Action) or through GraceDB, both paths agreeing; the alerts it sends and logs.

Two real (fast) BAYESTAR localizations: run under ``flock /tmp/gw-ops-heavy.lock``.
"""
from __future__ import annotations

import pytest

from gw_ops.formats.voevent import voevent_params
from gw_ops.ops.demo import AlertReceiver
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

DAG = "superevent"


@pytest.fixture(scope="module")
def receiver(airflow_stack):
    receiver = AlertReceiver(airflow_stack.settings.host, airflow_stack.settings.broker_port)
    receiver.start()
    return receiver


def alert_types(receiver, superevent_id):
    return [voevent_params(payload)["AlertType"] for _, payload in receiver.received
            if voevent_params(payload).get("GraceID") == superevent_id]


def upload_candidate(stack, index):
    from gw_ops.mock.pipeline import upload_mock_event

    for dag_id in ("lvalert_superevents_handle", "lvalert_orchestrator_handle_superevent", DAG):
        stack.airflow().wait_for_dag(dag_id, timeout=180)
    client = stack.gracedb()
    upload = upload_mock_event(stack.settings, uploads=1, index=index, with_external=False,
                               client=client)
    graceid = upload["graceids"][0]
    sid = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=120,
                   what="superevent of the mock event")
    return client, graceid, sid


def task_state(airflow, sid, task_id):
    response = airflow.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{sid}/taskInstances/{task_id}")
    return response.json().get("state") if response.status_code == 200 else None


def wait_task(airflow, sid, task_id, states, timeout=300):
    return wait_for(lambda: task_state(airflow, sid, task_id) in states and task_state(airflow, sid, task_id),
                    timeout=timeout, interval=0.5, what=f"{task_id} of {sid} in {states}")


def test_one_run_per_superevent_with_its_story_and_a_signoff_in_airflow(airflow_stack, receiver):
    airflow = airflow_stack.airflow()
    client, graceid, sid = upload_candidate(airflow_stack, 0)
    run = wait_for(lambda: airflow.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{sid}").status_code == 200
                   and airflow.run(DAG, sid), timeout=120, what=f"superevent run {sid}")
    assert run["dag_run_id"] == sid
    conf = run["conf"]
    assert conf["superevent_id"] == sid and conf["preferred_event"] == graceid
    assert conf["pipeline"] == "gstlal" and conf["group"] == "CBC" and conf["far"] > 0
    assert conf["gracedb_url"].endswith(f"/superevents/{sid}/view/")
    assert sid in (run.get("note") or "") and graceid in run["note"]

    assert wait_task(airflow, sid, "preliminary_alert", ("success", "failed")) == "success"
    assert "Preliminary" in alert_types(receiver, sid)
    labels = {e["name"] for e in client.labels(sid).json()["labels"]}
    assert "ADVREQ" in labels, labels
    assert wait_task(airflow, sid, "advocate_signoff", ("awaiting_input",)) == "awaiting_input"
    # the advocate answers the Required Action in Airflow (what the UI sends)
    answer = airflow.request("PATCH", f"/api/v2/dags/{DAG}/dagRuns/{sid}/taskInstances/advocate_signoff/-1/"
                                      "hitlDetails", json={"chosen_options": ["ADVOK"], "params_input": {}})
    assert answer.status_code == 200, answer.text
    assert wait_task(airflow, sid, "initial", ("success", "failed")) == "success"
    assert task_state(airflow, sid, "retraction") == "skipped"
    wait_for(lambda: "Initial" in alert_types(receiver, sid), timeout=60, what="Initial on the wire")
    assert "ADVOK" in {e["name"] for e in client.labels(sid).json()["labels"]}  # written to GraceDB
    # a second answer is refused: the first one counts
    again = airflow.request("PATCH", f"/api/v2/dags/{DAG}/dagRuns/{sid}/taskInstances/advocate_signoff/-1/"
                                     "hitlDetails", json={"chosen_options": ["ADVNO"], "params_input": {}})
    assert again.status_code == 409
    assert alert_types(receiver, sid).count("Initial") == 1
    runs = [r for r in airflow.runs(DAG, limit=100) if r["dag_run_id"] == sid]
    assert len(runs) == 1


def test_signoff_through_gracedb_answers_the_run(airflow_stack, receiver):
    airflow = airflow_stack.airflow()
    client, _, sid = upload_candidate(airflow_stack, 1)
    assert wait_task(airflow, sid, "advocate_signoff", ("awaiting_input",), timeout=400) == "awaiting_input"
    client.write_label(sid, "ADVNO")  # the advocate signs off in GraceDB instead
    assert wait_task(airflow, sid, "retraction", ("success", "failed"), timeout=120) == "success"
    assert task_state(airflow, sid, "initial") == "skipped"
    wait_for(lambda: "Retraction" in alert_types(receiver, sid), timeout=60, what="Retraction")
    assert alert_types(receiver, sid).count("Retraction") == 1
