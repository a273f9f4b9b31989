"""A GraceDB outage under the superevent lane loses nothing (issue 12 item 2), real processes.

The campaign: GraceDB down for 240 s, transient failures counted toward
``lvalert_max_deliveries``, 10 of 26 events dead-lettered and never grouped.  Here a
private ``gw-ops gracedb serve`` is SIGKILLed after the uploads, the superevent lane drains
many more times than ``lvalert_max_deliveries`` while it is down, then GraceDB starts again
on the same database and the next drain groups every event.
"""
from __future__ import annotations

import dataclasses
import os
import random
import signal

from gw_ops.handlers import superevents as se
from gw_ops.transport import lvalert
from gw_ops.transport.redis_client import deadletter_stream, lvalert_stream, read_health
from gw_ops.transport.streams import drain, ensure_group, lane_health_component
from tests.fixtures.gracedb import start_gracedb
from tests.helpers import free_port
from tests.test_superevents_gracedb import superevents_near, upload

GROUP = "faults_superevents"


def test_graceDB_outage_longer_than_max_deliveries_loses_no_event(fresh_prefix_settings, redis_client,
                                                                  tmp_path, monkeypatch):
    import gw_ops.gracedb_client as gracedb_client
    import gw_ops.transport.streams as streams_module
    monkeypatch.setattr(streams_module, "TRANSIENT_RETRY_WAITS_S", (0.05,))
    # What is tested is the lane's count of deliveries across drains, not the gateway's own
    # ladder (0.5 + 1 + 2 + 4 s per call, which made this test 5 minutes long): one retry.
    monkeypatch.setattr(gracedb_client, "RETRY", gracedb_client.RetryPolicy(tries=2, first_wait_s=0.05))
    settings = dataclasses.replace(fresh_prefix_settings, state_dir=tmp_path / "state",
                                   gracedb_port=free_port(), gracedb_url="", gracedb_files_dir="",
                                   gracedb_db_url="", lvalert_claim_idle_s=0, lvalert_max_deliveries=2)
    streams = [lvalert_stream(settings, node) for node in se.NODES]
    for stream in streams:
        ensure_group(redis_client, stream, GROUP, "0")
    service = start_gracedb(settings, tmp_path / "gracedb.log")
    client = service.client()
    gps = 1_400_000_000.0 + random.randrange(1, 400_000) * 1000.0
    graceids = [upload(client, gps + 0.1 * n, snr=9.0 + n) for n in range(6)]

    def handle(message):
        node = lvalert.node_of_stream(message.stream)
        se.handle(lvalert.decode_message(message.fields["payload"], node), client=client, settings=settings)

    os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait(10)
    outage_drains = settings.lvalert_max_deliveries * 3
    try:
        for run in range(outage_drains):
            report = drain(redis_client, settings, streams, GROUP, f"outage{run}", handle)
            assert report.left_pending and not report.dead_lettered and not report.handled, report.summary()
        alarm = read_health(redis_client, settings, lane_health_component(GROUP))
        assert alarm["state"] == "retrying" and "Connection" in alarm["detail"], alarm
        waiting = len(report.left_pending)
        service = start_gracedb(settings, tmp_path / "gracedb.log")  # same database
        report = drain(redis_client, settings, streams, GROUP, "after", handle)
        assert not report.dead_lettered and not report.left_pending and len(report.handled) == waiting
        (superevent,) = superevents_near(client, gps)
        assert sorted(superevent["gw_events"]) == sorted(graceids)
    finally:
        if service.process.poll() is None:
            os.killpg(service.process.pid, signal.SIGTERM)
            service.process.wait(20)
    assert redis_client.xlen(deadletter_stream(settings, "lvalert")) == 0
    assert read_health(redis_client, settings, lane_health_component(GROUP))["state"] == "ok"
    print(f"GraceDB SIGKILL, {outage_drains} drains during the outage (max_deliveries "
          f"{settings.lvalert_max_deliveries}): {len(graceids)} events in, {len(graceids)} grouped, "
          "0 dead letters")
