"""Benchmark of external-trigger handling and RAVEN against a local GraceDB.

Starts its own ``gw-ops gracedb serve`` (own state folder, free port, own Redis key
prefix, removed at the end) and prints:

* notice handled -> external event visible in GraceDB: latency from calling the
  handler until ``create_event`` has returned (then checked with a read), and the full
  handler time (event, notice log, sky map, EXT_SKYMAP_READY, RAVEN search), p50/p95
  over N notices (Fermi GBM-style, 5 deg error, no coincidence);
* coincidence found -> recorded: RAVEN search and recording for a GRB 0.5 s before a
  CBC superevent (EM_COINC, em_type, coincidence_far.json), from the external side and
  from the superevent side, p50/p95.

The handler is called directly (the broker -> Airflow path is measured elsewhere).

Usage::

    .venv/bin/python benchmarks/bench_exttrig.py [--notices 100] [--coincidences 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1e3 for s in seconds]
    return (f"{name:<58s} n={len(ms):3d}  p50 {percentile(ms, 0.5):7.1f} ms  "
            f"p95 {percentile(ms, 0.95):7.1f} ms  max {max(ms):7.1f} ms  "
            f"mean {statistics.fmean(ms):7.1f} ms")


class CreateTimer:
    """Client proxy that records when ``create_event``/``replace_event`` returned."""

    def __init__(self, client):
        self._client = client
        self.visible_at: float | None = None

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name in ("create_event", "replace_event"):
            def timed(*args, **kwargs):
                response = attribute(*args, **kwargs)
                self.visible_at = time.perf_counter()
                return response
            return timed
        return attribute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=100)
    parser.add_argument("--coincidences", type=int, default=20)
    args = parser.parse_args()

    import redis

    from gw_ops.config import get_settings
    from gw_ops.handlers import raven
    from gw_ops.handlers.external_triggers import process_notice
    from gw_ops.mock.notices import make_mock_grb_notice
    from gw_ops.ops.processes import stop_process_group
    from tests.coinc_factory import coinc_xml
    from tests.fixtures.gracedb import start_gracedb
    from tests.helpers import free_port

    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    state = Path(tempfile.mkdtemp(prefix="bench-exttrig-"))
    settings = get_settings(env={}, state_dir=state, key_prefix=prefix,
                            gracedb_port=free_port())
    service = start_gracedb(settings, state / "gracedb.log")
    settings = service.settings
    try:
        client = service.client()
        # warm up imports (astropy, healpy, ligo.skymap) outside the measurement
        process_notice(make_mock_grb_notice("warmup", 1300000000.0, 10, 10, 5.0,
                                            role="observation"), client=client,
                       settings=settings)

        visible, handled = [], []
        for number in range(args.notices):
            payload = make_mock_grb_notice(f"{number + 1}", 1300001000.0 + 100 * number,
                                           (7.0 * number) % 360, -60 + (number % 120),
                                           5.0, role="observation")
            timer = CreateTimer(client)
            start = time.perf_counter()
            graceid = process_notice(payload, client=timer, settings=settings)
            end = time.perf_counter()
            assert client.event(graceid).json()["graceid"] == graceid
            visible.append(timer.visible_at - start)
            handled.append(end - start)

        ext_side, se_side = [], []
        for number in range(args.coincidences):
            # external side: superevent first, then the GRB (a production notice, not a
            # rehearsal: mock notices are MDC by default and pair only with MDC superevents)
            t_gw = 1350000000.0 + 1000 * number
            event = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                       filecontents=coinc_xml(gpstime=t_gw, snr=12.0,
                                                              far=1e-9)).json()
            sid = client.create_superevent(t_gw - 1, t_gw, t_gw + 1,
                                          event["graceid"]).json()["superevent_id"]
            graceid = process_notice(make_mock_grb_notice(f"c{number}", t_gw - 0.5, 30, 30, 5.0,
                                                          role="observation", mdc=False),
                                     client=client, settings=settings, run_raven=False)
            start = time.perf_counter()
            found = raven.search_for_external(client, graceid, settings)
            ext_side.append(time.perf_counter() - start)
            assert found and client.superevent(sid).json()["em_type"] == graceid

            # superevent side: GRB first, then the superevent's creation alert
            t_gw += 500
            graceid = process_notice(make_mock_grb_notice(f"s{number}", t_gw - 0.5, 30, 30, 5.0,
                                                          role="observation", mdc=False),
                                     client=client, settings=settings)
            event = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                       filecontents=coinc_xml(gpstime=t_gw, snr=12.0,
                                                              far=1e-9)).json()
            superevent = client.create_superevent(t_gw - 1, t_gw, t_gw + 1,
                                                 event["graceid"]).json()
            message = {"uid": superevent["superevent_id"], "alert_type": "new",
                       "data": superevent, "object": superevent, "node": "superevent"}
            start = time.perf_counter()
            found = raven.handle_superevent_message(message, client=client, settings=settings)
            se_side.append(time.perf_counter() - start)
            assert [c.external_id for c in found] == [graceid]

        print(f"local GraceDB at {settings.gracedb_api_url} (SQLite), sky maps up to order "
              f"{settings.ext_skymap_max_order}")
        print(summary("notice handled -> external event visible in GraceDB", visible))
        print(summary("notice handled -> event + sky map + RAVEN search done", handled))
        print(summary("coincidence found -> recorded (external side)", ext_side))
        print(summary("coincidence found -> recorded (superevent alert side)", se_side))
    finally:
        stop_process_group(service.process)
        store = redis.Redis.from_url(settings.redis_url)
        for key in store.scan_iter(match=prefix + "*", count=1000):
            store.delete(key)


if __name__ == "__main__":
    main()
