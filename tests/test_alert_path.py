"""The main job end to end through the running stack, with a real BAYESTAR localization:
mock event → superevent → sky map → preliminary alert received by pygcn's own client;
then ADV OK → Initial and ADVNO → Retraction.  (The suite's single real localization.)

The candidate's superevent gets exactly one run of the ``superevent`` DAG, run id = the
superevent id, whose advocate signoff (an Airflow Required Action) is answered by the
ADVOK that comes through GraceDB and leads to its ``initial`` task (issue 11)."""
from __future__ import annotations

import pytest
from airflow_client.client.models import UpdateHITLDetailPayload

from gw_ops.formats.voevent import validate_voevent, voevent_params
from gw_ops.ops.airflow_api import ApiException, plain
from gw_ops.ops.demo import AlertReceiver
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

#: The DAG with one run per superevent.
RUN_DAG = "superevent"


@pytest.fixture(scope="module")
def receiver(airflow_stack):
    receiver = AlertReceiver(airflow_stack.settings.host, airflow_stack.settings.broker_port)
    receiver.start()
    return receiver


def alerts_for(receiver, superevent_id):
    found = []
    for _, payload in receiver.received:
        params = voevent_params(payload)
        if params.get("GraceID") == superevent_id:
            found.append((params["AlertType"], int(params["Pkt_Ser_Num"]), payload))
    return found


@pytest.fixture(scope="module")
def mock_candidate(airflow_stack, receiver):
    from gw_ops.mock.pipeline import upload_mock_event
    for dag_id in ("lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                   "lvalert_orchestrator_handle_superevent", "gw_ops_delayed_actions", RUN_DAG):
        airflow_stack.airflow().wait_for_dag(dag_id, timeout=180)
    client = airflow_stack.gracedb()
    upload = upload_mock_event(airflow_stack.settings, uploads=1, index=0, with_external=False,
                               client=client)
    graceid = upload["graceids"][0]
    superevent_id = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=120,
                             what="superevent of the mock event")
    return {"upload": upload, "graceid": graceid, "superevent_id": superevent_id, "client": client}


def test_mock_event_reaches_pygcn_as_one_valid_preliminary_alert(mock_candidate, receiver):
    sid = mock_candidate["superevent_id"]
    assert sid.startswith("MS"), "an MDC upload makes an MS superevent"
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Preliminary"], timeout=300,
             what=f"preliminary alert of {sid} received by pygcn")
    preliminary = [a for a in alerts_for(receiver, sid) if a[0] == "Preliminary" and a[1] == 1]
    assert len(preliminary) == 1
    payload = preliminary[0][2]
    validate_voevent(payload)
    params = voevent_params(payload)
    assert params["Packet_Type"] == "150"
    assert "/files/bayestar.multiorder.fits" in params["skymap_fits"]  # with its version, e.g. ",0"
    client = mock_candidate["client"]
    # the label is recorded just after the alert went on the wire
    def labels_once_sent():
        found = {e["name"] for e in client.labels(sid).json()["labels"]}
        return found if "GCN_PRELIM_SENT" in found else None

    labels = wait_for(labels_once_sent, timeout=60, what="GCN_PRELIM_SENT")
    assert "EM_READY" in labels
    assert labels & {"SIGNIF_LOCKED", "LOW_SIGNIF_LOCKED"}


def test_sky_map_contains_the_injection_and_products_are_uploaded(mock_candidate, receiver):
    from gw_ops.science.bayestar import header as bayestar_header
    from gw_ops.science.skymap_products import area_deg2, contains
    client, graceid, sid = mock_candidate["client"], mock_candidate["graceid"], mock_candidate["superevent_id"]
    wait_for(lambda: "GCN_PRELIM_SENT" in {e["name"] for e in client.labels(sid).json()["labels"]},
             timeout=300, what="preliminary sent")
    event_labels = {entry["name"] for entry in client.labels(graceid).json()["labels"]}
    assert {"SKYMAP_READY", "PASTRO_READY", "EMBRIGHT_READY"} <= event_labels
    fits = client.files(sid, "bayestar.multiorder.fits").read()
    injection = mock_candidate["upload"]["injection"]
    assert contains(fits, injection["ra_deg"], injection["dec_deg"], credible=0.9)
    assert area_deg2(fits, 0.9) < 100.0
    header = bayestar_header(fits)
    assert header["CREATOR"] == "BAYESTAR" and header["FASTLOC"] is True
    assert header["WALLTIME"] >= header["RUNTIME"] > 0
    assert header["DISTMEAN"] == pytest.approx(injection["distance_mpc"], rel=0.5)
    # The plot and the flattened copy follow the sky map's label at low CPU priority (no alert
    # waits for them), so they may still be on their way when the Preliminary has gone out.
    later_products = {"bayestar.png", "bayestar.fits.gz"}
    wait_for(lambda: later_products <= set(client.files(graceid).json()), timeout=300,
             what="the sky map's plot and flattened copy on the event")
    assert client.files(graceid, "bayestar.fits.gz").read()[:2] == b"\x1f\x8b"  # flattened, gzip
    png = client.files(graceid, "bayestar.png").read()
    assert png.startswith(b"\x89PNG")
    files = client.files(sid).json()
    assert any(name.endswith(".json") and "Preliminary" in name for name in files), files


def test_second_preliminary_follows_after_the_cleanup_timeout(mock_candidate, receiver):
    sid = mock_candidate["superevent_id"]
    labels = {e["name"] for e in mock_candidate["client"].labels(sid).json()["labels"]}
    if "SIGNIF_LOCKED" not in labels:
        # GWCelery sends the second preliminary only for significant candidates
        assert "LOW_SIGNIF_LOCKED" in labels
        return
    wait_for(lambda: len([a for a in alerts_for(receiver, sid) if a[0] == "Preliminary"]) >= 2,
             timeout=180, what="second preliminary")
    serials = [a[1] for a in alerts_for(receiver, sid)]
    assert len(serials) == len(set(serials)), f"an alert was sent twice: {serials}"


def task_state(airflow, run_id, task_id):
    try:
        return plain(airflow.call(airflow.task_instances_api.get_task_instance, RUN_DAG, run_id,
                                  task_id))["state"]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_task(airflow, run_id, task_id, states, timeout=300):
    return wait_for(lambda: (state := task_state(airflow, run_id, task_id)) in states and state,
                    timeout=timeout, interval=0.5, what=f"{task_id} of run {run_id} in {states}")


def test_the_superevent_has_one_run_named_after_it_that_tells_its_story(airflow_stack, mock_candidate):
    airflow = airflow_stack.airflow()
    sid, graceid = mock_candidate["superevent_id"], mock_candidate["graceid"]
    run = wait_for(lambda: [r for r in airflow.runs(RUN_DAG, limit=200) if r["dag_run_id"] == sid],
                   timeout=120, what=f"superevent run {sid}")
    assert len(run) == 1
    run = run[0]
    conf = run["conf"]
    assert conf["superevent_id"] == sid and conf["preferred_event"] == graceid
    assert conf["pipeline"] == "gstlal" and conf["group"] == "CBC" and conf["far"] > 0
    assert conf["gracedb_url"].endswith(f"/superevents/{sid}/view/")
    assert sid in (run.get("note") or "") and graceid in run["note"]
    assert wait_task(airflow, sid, "preliminary_alert", ("success", "failed", "skipped")) == "success"


def task_result(airflow, run_id, task_id):
    """The XCom a task of the run returned, as plain data."""
    import ast

    from airflow_client.client import XComApi
    entry = plain(airflow.call(XComApi(airflow.client).get_xcom_entry, RUN_DAG, task_id, run_id,
                               "return_value"))
    value = entry["value"]
    return ast.literal_eval(value) if isinstance(value, str) else value


def test_the_run_localizes_the_preferred_event_and_annotates_the_superevent(airflow_stack,
                                                                             mock_candidate):
    airflow = airflow_stack.airflow()
    sid, graceid = mock_candidate["superevent_id"], mock_candidate["graceid"]
    assert wait_task(airflow, sid, "localize", ("success", "failed", "skipped")) == "success"
    localized = task_result(airflow, sid, "localize")
    assert localized["graceid"] == graceid and localized["wall_s"] > 0
    assert localized["settings"]["fast"] is True
    assert localized["file_urls"]["bayestar.multiorder.fits"].endswith(
        f"/events/{graceid}/files/bayestar.multiorder.fits")
    assert wait_task(airflow, sid, "annotate", ("success", "failed", "skipped")) == "success"
    annotations = task_result(airflow, sid, "annotate")
    assert set(annotations) == {"p_astro.json", "em_bright.json", "bayestar.png"}
    assert annotations["bayestar.png"].endswith(f"/superevents/{sid}/files/bayestar.png")


def test_advok_sends_initial_and_advno_sends_retraction(airflow_stack, mock_candidate, receiver):
    client, sid = mock_candidate["client"], mock_candidate["superevent_id"]
    airflow = airflow_stack.airflow()
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Preliminary"], timeout=300,
             what="preliminary first")
    # the run asks the advocate (Airflow's Required Actions) ...
    assert wait_task(airflow, sid, "advocate_signoff", ("awaiting_input",)) == "awaiting_input"
    # ... who signs off in GraceDB instead: the orchestrator lane answers the run
    client.create_signoff(sid, "ADV", "OK", "advocate vetting in the end-to-end test")
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Initial"], timeout=120,
             what="initial alert after ADVOK")
    assert wait_task(airflow, sid, "advocate_signoff", ("success", "failed"), timeout=120) == "success"
    assert wait_task(airflow, sid, "initial", ("success", "failed"), timeout=120) == "success"
    assert task_state(airflow, sid, "retraction") == "skipped"
    # both ways of signing off agree: the Required Action, answered, refuses another answer
    with pytest.raises(ApiException) as refused:
        airflow.call(airflow.task_instances_api.update_hitl_detail, RUN_DAG, sid, "advocate_signoff", -1,
                     UpdateHITLDetailPayload(chosen_options=["ADVNO"], params_input={}))
    assert refused.value.status == 409
    client.write_label(sid, "ADVNO")
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Retraction"], timeout=120,
             what="retraction after ADVNO")
    kinds = [a[0] for a in alerts_for(receiver, sid)]
    assert kinds.count("Initial") == 1 and kinds.count("Retraction") == 1
    retraction = next(a[2] for a in alerts_for(receiver, sid) if a[0] == "Retraction")
    validate_voevent(retraction)
    assert voevent_params(retraction)["Packet_Type"] == "164"
    assert len([r for r in airflow.runs(RUN_DAG, limit=200) if r["dag_run_id"] == sid]) == 1
