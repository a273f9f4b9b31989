"""The superevent run's ``localize`` and ``annotate`` tasks (issue 11): where they sit in the
run, and the deferred waits (triggers) they hand to the triggerer."""
from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from gw_ops.airflow import triggers
from gw_ops.handlers import localization

pytest.importorskip("airflow.triggers.base")

SID = "S261201c"


@pytest.fixture(scope="module")
def superevent_dag():
    from gw_ops.airflow.handler_dags import default_args
    from gw_ops.airflow.superevent_dag import declare_superevent_dag

    return declare_superevent_dag(default_args())


def test_localize_comes_first_and_annotate_runs_beside_the_preliminary(superevent_dag):
    localize = superevent_dag.get_task("localize")
    assert localize.upstream_task_ids == set()
    assert localize.downstream_task_ids == {"preliminary_alert", "annotate"}
    annotate = superevent_dag.get_task("annotate")
    assert annotate.downstream_task_ids == set()  # the alerts never wait for the annotations
    # a Burst candidate (localize skipped: its pipeline brings the sky map) still gets both
    assert annotate.trigger_rule == superevent_dag.get_task("preliminary_alert").trigger_rule == "none_failed"
    assert set(superevent_dag.task_ids) == {"localize", "annotate", "preliminary_alert",
                                            "second_preliminary", "advocate_signoff", "initial",
                                            "retraction"}


def first_event(trigger, timeout_s: float = 10.0) -> dict:
    async def consume():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(asyncio.wait_for(consume(), timeout_s))


@pytest.fixture
def trigger_settings(fresh_prefix_settings, monkeypatch):
    monkeypatch.setattr(triggers, "_settings", lambda: fresh_prefix_settings)
    return fresh_prefix_settings


def record(graceid, superevent_id):
    return {"graceid": graceid, "superevent_id": superevent_id, "wall_s": 12.5,
            "settings": {"fast": True}, "localized_at": time.time(),
            "files": ["bayestar.multiorder.fits", "bayestar.png"]}


def test_localization_trigger_fires_with_the_superevents_localization(trigger_settings, redis_client):
    localization.record_localization(redis_client, trigger_settings, record("G2", SID))
    trigger = triggers.LocalizationRecordTrigger(SID, "G1", time.time() + 10, poll_s=0.05)
    # the event localized for the superevent wins over the preferred event of the request
    assert first_event(trigger) == {"record": record("G2", SID) | {"localized_at": pytest.approx(
        time.time(), abs=60)}, "timed_out": False}
    path, kwargs = trigger.serialize()
    assert path == "gw_ops.airflow.triggers.LocalizationRecordTrigger"
    assert kwargs["preferred_event"] == "G1" and kwargs["superevent_id"] == SID


def test_localization_trigger_finds_an_event_localized_before_its_superevent(trigger_settings,
                                                                            redis_client):
    localization.record_localization(redis_client, trigger_settings, record("G3", None))
    event = first_event(triggers.LocalizationRecordTrigger(SID, "G3", time.time() + 10, poll_s=0.05))
    assert event["record"]["graceid"] == "G3"


def test_localization_trigger_gives_up_at_its_deadline(trigger_settings):
    assert first_event(triggers.LocalizationRecordTrigger(SID, "G4", time.time() + 0.3, poll_s=0.05)) == \
        {"timed_out": True}


def record_alert(redis_client, settings, key="Preliminary-1", serial=1):
    from gw_ops.handlers.alert_sender import alert_record_key
    redis_client.hset(alert_record_key(settings, SID), f"key:{key}", f"{serial} {int(time.time() * 1000)}-0")


@pytest.fixture
def superevent_files(monkeypatch):
    """GraceDB's file listing of the superevent, as the test sets it (versions included)."""
    from gw_ops import gracedb_client as gateway
    listing: set[str] = set()
    monkeypatch.setattr(gateway, "pipeline_client", lambda settings: object())
    monkeypatch.setattr(gateway, "file_names", lambda client, object_id: set(listing))
    return listing


ANNOTATIONS = ["p_astro.json", "em_bright.json", "bayestar.png"]


def test_annotations_trigger_waits_for_the_alert_then_for_the_files(trigger_settings, redis_client,
                                                                    superevent_files):
    record_alert(redis_client, trigger_settings)
    superevent_files.update({"p_astro.json,0", "em_bright.json,0", "bayestar.png,1", "x.json"})
    event = first_event(triggers.AnnotationsTrigger(SID, ["Preliminary-1"], ANNOTATIONS,
                                                    time.time() + 10, files_wait_s=10, poll_s=0.05,
                                                    files_poll_s=0.05))
    assert event == {"timed_out": False, "alert_key": "Preliminary-1", "present": sorted(ANNOTATIONS),
                     "missing": []}


def test_annotations_trigger_names_what_is_still_missing(trigger_settings, redis_client, superevent_files):
    record_alert(redis_client, trigger_settings)
    superevent_files.add("p_astro.json,0")
    event = first_event(triggers.AnnotationsTrigger(SID, ["Preliminary-1"], ANNOTATIONS,
                                                    time.time() + 10, files_wait_s=0.3, poll_s=0.05,
                                                    files_poll_s=0.05))
    assert event["present"] == ["p_astro.json"]
    assert event["missing"] == ["bayestar.png", "em_bright.json"]


def test_annotations_trigger_ends_without_an_alert(trigger_settings, superevent_files):
    event = first_event(triggers.AnnotationsTrigger(SID, ["Preliminary-1"], ANNOTATIONS,
                                                    time.time() + 0.3, files_wait_s=10, poll_s=0.05))
    assert event == {"timed_out": True, "phase": "alert"}


def context_of(conf=None):
    return {"dag_run": SimpleNamespace(run_id=SID, conf=conf or {}), "ti": None}


def test_localize_logs_the_event_bayestar_settings_wall_time_and_file_links(superevent_dag, caplog):
    task = superevent_dag.get_task("localize")
    with caplog.at_level("INFO"):
        result = task.execute_complete(context_of(), {"record": record("G5", SID), "timed_out": False})
    assert result["graceid"] == "G5" and result["wall_s"] == 12.5
    assert result["file_urls"]["bayestar.png"].endswith("/events/G5/files/bayestar.png")
    text = caplog.text
    assert "BAYESTAR localized G5" in text and "fast=True" in text and "wall time 12.5 s" in text
    assert "/events/G5/files/bayestar.multiorder.fits" in text


def test_a_candidate_never_localized_skips_localize(superevent_dag):
    from airflow.sdk.exceptions import AirflowSkipException
    task = superevent_dag.get_task("localize")
    with pytest.raises(AirflowSkipException):
        task.execute_complete(context_of(), {"timed_out": True})


def test_annotate_links_the_files_and_is_red_when_some_are_overdue(superevent_dag):
    from airflow.sdk.exceptions import AirflowException, AirflowSkipException
    task = superevent_dag.get_task("annotate")
    links = task.execute_complete(context_of(), {"timed_out": False, "present": ANNOTATIONS,
                                                 "missing": []})
    assert links["bayestar.png"].endswith(f"/superevents/{SID}/files/bayestar.png")
    with pytest.raises(AirflowException, match="em_bright.json still missing"):
        task.execute_complete(context_of(), {"timed_out": False, "present": ["p_astro.json"],
                                             "missing": ["em_bright.json"]})
    with pytest.raises(AirflowSkipException):
        task.execute_complete(context_of(), {"timed_out": True, "phase": "alert"})


def test_a_burst_candidate_skips_localize_and_annotate(superevent_dag, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    from gw_ops.airflow import superevent_dag as module
    monkeypatch.setattr(module, "mark_run_started", lambda superevent_id: None)
    for task_id in ("localize", "annotate"):
        with pytest.raises(AirflowSkipException, match="CBC"):
            superevent_dag.get_task(task_id).execute(context_of({"group": "Burst"}))


def test_the_record_is_json(trigger_settings, redis_client):
    localization.record_localization(redis_client, trigger_settings, record("G6", SID))
    stored = redis_client.get(localization.localization_record_key(trigger_settings, "G6"))
    assert json.loads(stored)["files"] == ["bayestar.multiorder.fits", "bayestar.png"]
    assert redis_client.get(localization.localized_event_key(trigger_settings, SID)) == b"G6"
