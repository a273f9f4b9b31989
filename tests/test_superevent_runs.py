"""Hand-over from the superevent lane to the superevent run (issue 11): each superevent
asks for its run exactly once, and a GraceDB signoff answers the run's Required Action."""
from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from gw_ops.errors import TransientError
from gw_ops.handlers import superevent_runs as runs
from gw_ops.rules.alert_policy import SIGNOFF_NOT_ASKED, SIGNOFF_WAIT, decide_signoff
from tests.test_superevents_handle import (  # noqa: F401
    client,
    gps,
    handle,
    lane,
    new_messages,
    upload,
)


def test_a_new_superevent_asks_for_its_run_once(gracedb_service, client, lane, gps, redis_client):  # noqa: F811
    settings = gracedb_service.settings
    graceid = upload(client, gps, far=2e-9)
    message = new_messages(lane, [graceid])[graceid]
    outcome = handle(client, message, gracedb_service)
    assert outcome.action == "created"
    sid = outcome.superevent_id
    pending = {conf["superevent_id"]: conf for conf in runs.pending_runs(redis_client, settings)}
    conf = pending[sid]
    assert conf["preferred_event"] == graceid
    assert (conf["pipeline"], conf["group"], conf["far"]) == ("gstlal", "CBC", 2e-9)
    assert conf["gracedb_url"].endswith(f"/superevents/{sid}/view/")
    assert conf["skymap_image_url"].endswith(f"/superevents/{sid}/files/bayestar.png")
    note = runs.run_note(conf)
    assert sid in note and graceid in note and "2e-09 Hz" in note
    # a redelivery asks again only while the run is not started; never twice
    handle(client, message, gracedb_service)
    assert [c["superevent_id"] for c in runs.pending_runs(redis_client, settings)].count(sid) == 1
    runs.mark_started(redis_client, settings, [sid])
    assert runs.run_started(redis_client, settings, sid)
    assert sid not in {c["superevent_id"] for c in runs.pending_runs(redis_client, settings)}
    handle(client, message, gracedb_service)
    assert sid not in {c["superevent_id"] for c in runs.pending_runs(redis_client, settings)}


def test_a_request_lost_with_a_crash_after_create_is_made_again(gracedb_service, client, lane, gps,  # noqa: F811
                                                                  redis_client):
    settings = gracedb_service.settings
    graceid = upload(client, gps)
    message = new_messages(lane, [graceid])[graceid]
    sid = handle(client, message, gracedb_service).superevent_id
    redis_client.hdel(settings.key("superevent_runs", "pending"), sid)  # "crashed before asking"
    assert handle(client, message, gracedb_service).action == "unchanged"
    assert sid in {c["superevent_id"] for c in runs.pending_runs(redis_client, settings)}


def test_run_requests_of_the_lane_open_no_new_redis_connection(fresh_prefix_settings, monkeypatch):
    """The lane calls handle() without a Redis client: its run requests go through the
    process's shared client instead of a new connection each (about 8 ms on the hot path)."""
    from gw_ops.handlers import superevents
    from gw_ops.transport import redis_client as redis_module

    settings = fresh_prefix_settings
    shared = redis_module.shared_redis(settings)
    assert redis_module.shared_redis(settings) is shared

    def no_new_client(*args, **kwargs):
        raise AssertionError("a run request opened a Redis client of its own")
    monkeypatch.setattr(redis_module, "get_redis", no_new_client)
    monkeypatch.setattr(runs, "start_run_soon", lambda settings, conf: None)
    for sid, graceid in (("S261201d", "G7"), ("S261201e", "G8")):
        superevents._request_run(None, settings, sid, {"graceid": graceid, "far": 1e-9,
                                                       "pipeline": "gstlal", "group": "CBC"}, "production")
    assert {conf["superevent_id"] for conf in runs.pending_runs(shared, settings)} == {"S261201d", "S261201e"}
    assert shared.ping()  # still open: the request did not close the shared client


def start_story(settings, sid="S261201b"):
    return runs.story(settings, sid, {"graceid": "G1", "far": 1e-9, "pipeline": "gstlal",
                                      "group": "CBC", "search": "AllSky"}, "production")


@pytest.mark.parametrize("status,outcome", [(200, "created"), (409, "exists")])
def test_the_lane_starts_the_requested_run_at_once(fresh_prefix_settings, redis_client, status, outcome):
    settings = fresh_prefix_settings
    conf = start_story(settings)
    assert runs.request_run(redis_client, settings, conf)
    posted = []

    def reply(request):
        posted.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(status, json={})
    http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(reply))
    assert runs.start_run(settings, conf, http=http, redis_client=redis_client) == outcome
    [(method, path, body)] = posted
    assert (method, path) == ("POST", "/api/v2/dags/superevent/dagRuns")
    assert body["dag_run_id"] == "S261201b" and body["conf"]["preferred_event"] == "G1"
    assert "S261201b" in body["note"]
    # created (or there already): the task after the drain has nothing left to start
    assert runs.run_started(redis_client, settings, "S261201b")
    assert runs.pending_runs(redis_client, settings) == []
    assert not runs.request_run(redis_client, settings, conf)  # a redelivery asks no more


def test_a_server_error_of_the_run_start_is_tried_again(fresh_prefix_settings, redis_client, monkeypatch):
    """On SQLite Airflow's API server may fail one of two runs created at once (500, the
    database lock); the start is tried again, and 409 then means the run exists."""
    settings = fresh_prefix_settings
    conf = start_story(settings)
    runs.request_run(redis_client, settings, conf)
    monkeypatch.setattr(runs, "RUN_START_SERVER_ERROR_WAITS_S", (0.0, 0.01, 0.01))
    answers = [500, 409]

    def reply(request):
        return httpx.Response(answers.pop(0), json={})
    http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(reply))
    assert runs.start_run(settings, conf, http=http, redis_client=redis_client) == "exists"
    assert answers == [] and runs.run_started(redis_client, settings, "S261201b")


@pytest.mark.parametrize("failure", ["refused", "status 500", "no credentials"])
def test_a_run_the_lane_could_not_start_stays_requested(fresh_prefix_settings, redis_client, failure):
    settings = fresh_prefix_settings
    conf = start_story(settings)
    runs.request_run(redis_client, settings, conf)

    def reply(request):
        if failure == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(500, json={})
    http = (None if failure == "no credentials"
            else httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(reply)))
    assert runs.start_run(settings, conf, http=http, redis_client=redis_client) == "left"
    assert not runs.run_started(redis_client, settings, "S261201b")
    assert [c["superevent_id"] for c in runs.pending_runs(redis_client, settings)] == ["S261201b"]
    # a redelivery asks again (and the lane tries to start it again)
    assert runs.request_run(redis_client, settings, conf)


def test_the_lane_starts_runs_in_the_background_and_the_drain_waits_for_them(fresh_prefix_settings,
                                                                             redis_client, monkeypatch,
                                                                             tmp_path):
    settings = dataclasses.replace(fresh_prefix_settings, state_dir=tmp_path)  # its own Airflow home
    conf = start_story(settings)
    runs.request_run(redis_client, settings, conf)
    monkeypatch.setattr(runs, "_airflow_session", lambda settings, connect_timeout_s: airflow(
        {("POST", "/dags/superevent/dagRuns"): (200, {})})[0])
    (settings.airflow_home).mkdir(parents=True, exist_ok=True)
    (settings.airflow_home / "simple_auth_manager_passwords.json").write_text('{"admin": "x"}')
    future = runs.start_run_soon(settings, conf)
    assert runs.wait_for_run_starts(timeout_s=10.0) == 0
    assert future.result() == "created"
    assert runs.run_started(redis_client, settings, "S261201b")


def airflow(responses):
    """An httpx client answering the signoff calls from ``{(method, path tail): (status, json)}``."""
    calls = []

    def reply(request):
        calls.append((request.method, request.url.path))
        for (method, tail), (status, body) in responses.items():
            if request.method == method and request.url.path.endswith(tail):
                return httpx.Response(status, json=body)
        return httpx.Response(500, json={})
    return httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(reply)), calls


@pytest.mark.parametrize("responses,expected,patched", [
    ({("GET", "/hitlDetails"): (200, {"chosen_options": []}), ("PATCH", "/hitlDetails"): (200, {})},
     "answered", True),
    # answered in the UI first: read, nothing written
    ({("GET", "/hitlDetails"): (200, {"chosen_options": ["ADVOK"]})}, "already answered", False),
    ({("GET", "/hitlDetails"): (200, {"chosen_options": ["ADVNO"]})}, "disagrees", False),
    ({("GET", "/hitlDetails"): (404, {}), ("GET", "/advocate_signoff"): (200, {"state": "success"})},
     "not waiting", False),
])
def test_gracedb_signoff_answers_the_required_action(base_settings, responses, expected, patched):
    http, calls = airflow(responses)
    assert runs.answer_signoff(base_settings, "S261201a", "ADVOK", http=http) == expected
    base = "/api/v2/dags/superevent/dagRuns/S261201a/taskInstances/advocate_signoff"
    assert calls[0] == ("GET", f"{base}/-1/hitlDetails")
    assert (("PATCH", f"{base}/-1/hitlDetails") in calls) is patched


def test_a_concurrent_answer_wins(base_settings):
    answers = iter([{"chosen_options": []}, {"chosen_options": ["ADVNO"]}])
    calls = []

    def reply(request):
        calls.append(request.method)
        if request.method == "PATCH":
            return httpx.Response(409, json={})
        return httpx.Response(200, json=next(answers))
    http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(reply))
    assert runs.answer_signoff(base_settings, "S261201a", "ADVOK", http=http) == "disagrees"
    assert calls == ["GET", "PATCH", "GET"]


def test_a_signoff_task_starting_right_now_is_answered_again_later(base_settings):
    http, _ = airflow({("GET", "/hitlDetails"): (404, {}),
                       ("GET", "/advocate_signoff"): (200, {"state": "running"})})
    with pytest.raises(TransientError):
        runs.answer_signoff(base_settings, "S261201a", "ADVOK", http=http)


def test_an_alert_outside_the_run_gets_a_run_of_its_own(base_settings):
    assert runs.alert_run_id("S261201a", "Update:p_astro.json,2") == "S261201a.Update.p_astro.json.2"
    http, calls = airflow({("POST", "/dags/superevent_alert/dagRuns"): (409, {})})
    result = {"key": "Update:p_astro.json,2", "serial_number": 4, "ivorn": "ivo://x#S261201a-4-Update",
              "status": "sent"}
    assert runs.record_alert_run(base_settings, "S261201a", result, http=http) == \
        "S261201a.Update.p_astro.json.2"  # 409: recorded before, by a redelivery
    assert calls == [("POST", "/api/v2/dags/superevent_alert/dagRuns")]
    # the superevent run has tasks for these
    assert runs.record_alert_run(base_settings, "S261201a", {"key": "Initial"}, http=http) is None
    http, _ = airflow({})
    with pytest.raises(TransientError):
        runs.record_alert_run(base_settings, "S261201a", result, http=http)


def test_a_retraction_after_the_run_chose_advok_gets_a_run_of_its_own(base_settings):
    http, calls = airflow({("POST", "/dags/superevent_alert/dagRuns"): (200, {})})
    retraction = {"key": "Retraction", "serial_number": 5, "ivorn": "ivo://x#S261201a-5-Retraction"}
    assert runs.record_alert_run(base_settings, "S261201a", retraction, http=http) is None
    assert runs.record_alert_run(base_settings, "S261201a", retraction, http=http,
                                 outside_run=True) == "S261201a.Retraction"
    assert calls == [("POST", "/api/v2/dags/superevent_alert/dagRuns")]


def test_airflow_out_of_reach_is_transient(base_settings):
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)
    http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(refuse))
    with pytest.raises(TransientError):
        runs.answer_signoff(base_settings, "S261201a", "ADVOK", http=http)
    with pytest.raises(TransientError):
        runs.record_alert_run(base_settings, "S261201a", {"key": "Update:x.fits,1"}, http=http)


def test_the_lane_logs_in_then_answers_with_the_same_client(base_settings, monkeypatch):
    # the session logs in first (a request), so it must not be entered as a context
    # manager afterwards (httpx refuses to open a used client); it is closed after use
    opened = []

    def session(settings, connect_timeout_s):
        http, _ = airflow({("POST", "/auth/token"): (200, {"access_token": "t"}),
                           ("GET", "/hitlDetails"): (200, {"chosen_options": []}),
                           ("PATCH", "/hitlDetails"): (200, {}),
                           ("POST", "/dags/superevent_alert/dagRuns"): (200, {})})
        http.post("/auth/token", json={})
        opened.append(http)
        return http
    monkeypatch.setattr(runs, "_airflow_session", session)
    assert runs.answer_signoff(base_settings, "S261201a", "ADVNO") == "answered"
    assert runs.record_alert_run(base_settings, "S261201a", {"key": "Update:x.fits,1"}) == \
        "S261201a.Update.x.fits.1"
    assert len(opened) == 2 and all(http.is_closed for http in opened)


@pytest.fixture(scope="module")
def superevent_dag():
    from gw_ops.airflow.handler_dags import default_args
    from gw_ops.airflow.superevent_dag import declare_superevent_dag

    return declare_superevent_dag(default_args())


@pytest.mark.parametrize("labels,decision,branch", [
    ({"ADVREQ"}, SIGNOFF_WAIT, None),                        # asked: the Required Action waits
    ({"ADVREQ", "ADVOK"}, "ADVOK", "initial"),
    ({"ADVREQ", "ADVNO"}, "ADVNO", "retraction"),
    ({"ADVREQ", "ADVOK", "ADVNO"}, "ADVNO", "retraction"),   # a Retraction is final
    ({"ADVOK"}, "ADVOK", "initial"),                         # answered without being asked
    ({"SIGNIF_LOCKED", "GCN_PRELIM_SENT"}, SIGNOFF_NOT_ASKED, None),
    (set(), SIGNOFF_NOT_ASKED, None),
])
def test_the_signoff_branches_on_the_advocates_answer(superevent_dag, labels, decision, branch):
    assert decide_signoff(labels) == decision
    signoff = superevent_dag.get_task(runs.SIGNOFF_TASK_ID)
    # the same branch whether the answer is chosen in Airflow or read from GraceDB's labels
    assert set(signoff.options) == {"ADVOK", "ADVNO"}
    assert signoff.downstream_task_ids == {"initial", "retraction"}
    if branch is not None:
        assert signoff.options_mapping[decision] == branch


def test_the_superevent_run_declares_the_alert_lifecycle(superevent_dag):
    assert superevent_dag.dag_id == runs.SUPEREVENT_DAG_ID
    assert superevent_dag.get_task("preliminary_alert").downstream_task_ids == \
        {"second_preliminary", runs.SIGNOFF_TASK_ID}
    # runs wait days for their advocate: Airflow's default of 16 active runs would queue newer ones
    assert superevent_dag.max_active_runs >= 1000
