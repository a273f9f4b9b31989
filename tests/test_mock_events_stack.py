"""Twenty consecutive mock events, every second one with its mock Fermi GRB, through the
running stack: each reaches its Preliminary alert, nothing is dead-lettered, and each
superevent has exactly one run of the ``superevent`` DAG that saw its Preliminary (issue 11:
every second mock event was lost in silence, its message dead-lettered as bad input).

Twenty real (fast) BAYESTAR localizations on the one openmp slot: about ten minutes.
Run under ``flock /tmp/gw-ops-heavy.lock``.
"""
from __future__ import annotations

import time

import pytest

from gw_ops.formats.voevent import voevent_params
from gw_ops.ops.demo import AlertReceiver
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

EVENTS = 20
#: Seconds between uploads: more than RAVEN's GRB-CBC window (-5, +1 s), so each mock GRB
#: can only meet its own superevent.
SPACING_S = 8.0


def test_twenty_consecutive_mock_events_reach_their_preliminary_alerts(airflow_stack):
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.transport import dead_letters
    from gw_ops.transport.redis_client import get_redis

    settings = airflow_stack.settings
    airflow = airflow_stack.airflow()
    for dag_id in ("lvalert_superevents_handle", "lvalert_orchestrator_handle_superevent",
                   "gcn_external_triggers_handle_notice", "superevent"):
        airflow.wait_for_dag(dag_id, timeout=180)
    airflow_stack.wait_gcn_listener()
    redis = get_redis(settings)
    dead_before = {e.source: e.count for e in dead_letters.summary(redis, settings)}
    receiver = AlertReceiver(settings.host, settings.broker_port)
    receiver.start()
    client = airflow_stack.gracedb()
    uploads = []
    for number in range(EVENTS):
        uploads.append(upload_mock_event(settings, uploads=1, index=number % 10,
                                         with_external=number % 2 == 1, client=client))
        time.sleep(SPACING_S)
    graceids = [upload["graceids"][0] for upload in uploads]
    superevents = [wait_for(lambda g=g: client.event(g).json().get("superevent"), timeout=120,
                            what=f"superevent of {g}") for g in graceids]
    assert len(set(superevents)) == EVENTS, "each mock event makes its own superevent"
    assert sum(1 for upload in uploads if upload["external"]) == EVENTS // 2

    def preliminaries():
        sent = {voevent_params(payload).get("GraceID") for _, payload in receiver.received
                if voevent_params(payload).get("AlertType") == "Preliminary"}
        missing = [sid for sid in superevents if sid not in sent]
        return not missing or None

    try:
        wait_for(preliminaries, timeout=1800, interval=2.0, what="a Preliminary for every superevent")
    finally:
        dead_after = {e.source: e.count for e in dead_letters.summary(redis, settings)}
        assert dead_after == dead_before, f"dead letters: {dead_letters.summary(redis, settings)}"
    for sid in superevents:
        state = wait_for(lambda s=sid: airflow.request(
            "GET", f"/api/v2/dags/superevent/dagRuns/{s}/taskInstances/preliminary_alert").json().get("state")
            in ("success", "failed", "skipped") and airflow.request(
            "GET", f"/api/v2/dags/superevent/dagRuns/{s}/taskInstances/preliminary_alert").json()["state"],
            timeout=60, what=f"preliminary_alert of {sid}")
        assert state == "success", sid
