"""The health DAG's rule (pure) and the delayed actions (real Redis)."""
from __future__ import annotations

import pytest

from gw_ops.airflow.maintenance import listener_problems
from gw_ops.transport.delayed import next_due, queue_key, run_due, schedule

NOW = 1_800_000_000.0


@pytest.mark.parametrize("records,problem", [
    ({"gcn": {"state": "connected", "since": "0", "updated": repr(NOW - 10)}}, None),
    ({"gcn": {}}, "never started"),
    ({"gcn": {"state": "disconnected", "since": repr(NOW - 600), "updated": repr(NOW - 1)}},
     "disconnected for 600 s"),
    ({"gcn": {"state": "disconnected", "since": repr(NOW - 100), "updated": repr(NOW - 1)}}, None),
    ({"lvalert": {"state": "connected", "since": "0", "updated": repr(NOW - 900)}}, "no heartbeat for 900 s"),
])
def test_listener_down_longer_than_the_threshold_is_a_problem(records, problem):
    problems = listener_problems(records, NOW, down_alarm_s=300)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_delayed_action_runs_once_when_due_and_is_not_postponed(fresh_prefix_settings, redis_client):
    settings = fresh_prefix_settings
    assert schedule(redis_client, settings, "second_preliminary", {"superevent_id": "S1"}, NOW)
    # a redelivered message schedules it again: kept once, with the first due time
    assert not schedule(redis_client, settings, "second_preliminary", {"superevent_id": "S1"}, NOW + 500)
    assert next_due(redis_client, settings) == NOW
    with pytest.raises(ValueError):
        schedule(redis_client, settings, "rm -rf", {}, NOW)
    assert run_due(redis_client, settings, now=NOW - 1) == {"done": 0, "retried": 0, "dead_lettered": 0}
    assert redis_client.zcard(queue_key(settings)) == 1


def test_failing_delayed_action_is_dead_lettered(fresh_prefix_settings, redis_client):
    from gw_ops.transport.redis_client import deadletter_stream
    settings = fresh_prefix_settings
    # the superevent does not exist and GraceDB is not reachable on this port: a
    # connection error is transient, so the action is retried later, not lost
    import dataclasses
    settings = dataclasses.replace(settings, gracedb_url="http://127.0.0.1:9/api/")
    schedule(redis_client, settings, "second_preliminary", {"superevent_id": "S1"}, NOW)
    counts = run_due(redis_client, settings, now=NOW)
    assert counts["retried"] == 1 and next_due(redis_client, settings) > NOW
    # an action whose arguments are wrong fails permanently: dead-lettered at once
    schedule(redis_client, settings, "mock_signoff", {"no_such_argument": 1}, NOW)
    counts = run_due(redis_client, settings, now=NOW)
    assert counts["dead_lettered"] == 1
    assert redis_client.xlen(deadletter_stream(settings, "delayed")) == 1


@pytest.mark.parametrize("records,problem", [
    ({"lane:gw_ops_superevents": {"state": "retrying", "since": repr(NOW - 600), "updated": repr(NOW - 600),
                                  "detail": "ConnectionError: GraceDB refused"}}, "retrying for 600 s"),
    ({"lane:gw_ops_superevents": {"state": "retrying", "since": repr(NOW - 10), "updated": repr(NOW - 10)}}, None),
    ({"lane:gw_ops_superevents": {"state": "failing", "since": repr(NOW - 1), "updated": repr(NOW - 1),
                                  "detail": "KeyError"}}, "failing"),
    ({"lane:gw_ops_superevents": {"state": "ok", "since": "0", "updated": "0"}}, None),
])
def test_lane_alarms_are_problems_of_the_health_dag(records, problem):
    problems = listener_problems(records, NOW, down_alarm_s=300)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_delayed_action_waits_out_an_outage_of_any_length(fresh_prefix_settings, redis_client, monkeypatch):
    """Transient failures never count toward dead-lettering; the backoff is capped; an alarm shows."""
    import dataclasses
    # the action reads its settings from the environment: nothing listens on port 9
    monkeypatch.setenv("GW_OPS_GRACEDB_URL", "http://127.0.0.1:9/api/")
    import gw_ops.gracedb_client as gracedb_client
    # the delayed actions' own backoff is tested, not the gateway's ladder inside each
    # attempt (7.5 s of waits a try, 90 s for this test): one quick retry
    monkeypatch.setattr(gracedb_client, "RETRY", gracedb_client.RetryPolicy(tries=2, first_wait_s=0.05))

    from gw_ops.transport import delayed
    from gw_ops.transport.redis_client import deadletter_stream, read_health
    settings = dataclasses.replace(fresh_prefix_settings, gracedb_url="http://127.0.0.1:9/api/")
    schedule(redis_client, settings, "second_preliminary", {"superevent_id": "S1"}, NOW)
    now, waits = NOW, []
    for _ in range(12):  # far more than the 5 attempts that used to dead-letter it
        assert run_due(redis_client, settings, now=now) == {"done": 0, "retried": 1, "dead_lettered": 0}
        due = next_due(redis_client, settings)
        waits.append(due - now)
        now = due
    assert redis_client.xlen(deadletter_stream(settings, "delayed")) == 0
    assert waits == sorted(waits) and max(waits) == delayed.RETRY_CAP_S, waits
    alarm = read_health(redis_client, settings, "delayed")
    assert alarm["state"] == "retrying" and "second_preliminary" in alarm["detail"], alarm


def test_lane_alarm_in_redis_fails_the_health_dag_and_shows_in_status(fresh_prefix_settings, redis_client):
    from gw_ops.airflow.maintenance import check_listeners
    from gw_ops.ops.stack import status
    from gw_ops.transport.redis_client import record_health
    settings = fresh_prefix_settings
    for listener in ("lvalert", "gcn", "broker"):
        record_health(redis_client, settings, listener, "connected", "fine")
    record_health(redis_client, settings, "lane:gw_ops_superevents", "failing", "KeyError: 'uid'")
    with pytest.raises(RuntimeError, match="lane:gw_ops_superevents: failing"):
        check_listeners(settings)
    lines: list[str] = []
    status(settings, out=lines.append)
    assert any(line.startswith("ALARM lane:gw_ops_superevents failing") and "KeyError" in line
               for line in lines), lines
    record_health(redis_client, settings, "lane:gw_ops_superevents", "ok", "")
    assert "lane:gw_ops_superevents" in check_listeners(settings)

def test_dead_letters_raise_the_alarm_until_acknowledged(fresh_prefix_settings, redis_client):
    from gw_ops.airflow.maintenance import check_dead_letters
    from gw_ops.transport import dead_letters
    from gw_ops.transport.redis_client import dead_letter

    settings = fresh_prefix_settings
    assert check_dead_letters(settings) == {}
    assert dead_letters.status_lines(dead_letters.summary(redis_client, settings)) == ["dead letters   none"]
    dead_letter(redis_client, settings, "lvalert:lvalert_superevents_handle", "no event object", b"{}")
    dead_letter(redis_client, settings, "gcn:gcn_external_triggers_handle", "unknown notice type", b"<x/>")
    dead_letter(redis_client, settings, "gcn:gcn_external_triggers_handle", "not XML", b"junk")
    entries = {entry.source: entry for entry in dead_letters.summary(redis_client, settings)}
    assert (entries["gcn"].count, entries["gcn"].new) == (2, 2)
    assert entries["gcn"].last_reason == "gcn:gcn_external_triggers_handle: not XML"
    assert (entries["lvalert"].count, entries["lvalert"].new) == (1, 1)
    with pytest.raises(RuntimeError, match="gcn: 2 new dead letter"):
        check_dead_letters(settings)
    lines = dead_letters.status_lines(list(entries.values()))
    assert any("gcn" in line and "2 new (ALARM)" in line and "not XML" in line for line in lines)
    assert dead_letters.acknowledge(redis_client, settings) == {"gcn": 2, "lvalert": 1}
    assert check_dead_letters(settings) == {"gcn": 2, "lvalert": 1}
    # a new one after the acknowledgement raises the alarm again
    dead_letter(redis_client, settings, "lvalert:lvalert_superevents_handle", "bad JSON", b"{")
    with pytest.raises(RuntimeError, match="lvalert: 1 new dead letter.*bad JSON"):
        check_dead_letters(settings)
