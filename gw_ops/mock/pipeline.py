"""The mock-event challenge: a realistic CBC candidate uploaded as if by a search pipeline.

GWCelery's playground uploads a mock event every hour to exercise the whole alert path
(its "first2years" task).  gw-ops does the same from the ``gw_ops_mock_event`` DAG and
from ``gw-ops demo``:

1. a bundled BNS/NSBH coincidence (:mod:`gw_ops.mock.events`) is shifted to now and
   uploaded as pipeline gstlal, search MDC (``mock_event_uploads`` times, with jitter,
   as the playground does), each followed by its ``psd.xml.gz``;
2. after ``vetting_timeout_s`` a delayed action signs the superevent off, ADV OK or
   ADV NO at random (4 in 5 OK), so Initial and Retraction alerts are exercised too;
3. every second mock event also gets a mock Fermi GBM notice 0.5 s before the merger,
   published through the VOEvent broker, so RAVEN finds a coincidence.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any

from gw_ops.config import Settings, get_settings

log = logging.getLogger(__name__)

#: Fraction of mock superevents signed off ADV OK (the rest ADV NO).
ADVOK_FRACTION = 0.8
#: Offset (s) of the mock GRB from the merger: inside RAVEN's GRB-CBC window [-5, +1] s.
MOCK_GRB_OFFSET_S = -0.5
#: Error radius (deg) of the mock GRB position.
MOCK_GRB_ERROR_DEG = 5.0


def upload_mock_event(settings: Settings | None = None, *, uploads: int | None = None,
                      index: int | str | None = None, with_external: bool | None = None,
                      rng: random.Random | None = None, client=None) -> dict[str, Any]:
    """Upload one mock CBC event (and its PSD) to GraceDB; schedule its vetting signoff.

    Parameters
    ----------
    settings : Settings, optional
    uploads : int, optional
        Uploads of the same signal (default ``settings.mock_event_uploads``).
    index : int or str, optional
        Bundled event to use (random by default).
    with_external : bool, optional
        Publish a mock GRB too (default: every second mock event).
    rng : random.Random, optional
    client : ligo.gracedb.rest.GraceDb, optional

    Returns
    -------
    dict
        ``graceids`` (in upload order), ``gps_time`` (s), ``uploaded_at`` (Unix s of each
        upload), ``injection`` (ra_deg, dec_deg, distance_mpc) and ``external`` (trigger
        id or None).
    """
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.mock.events import jittered_uploads, load_mock_event
    from gw_ops.transport.delayed import schedule
    from gw_ops.transport.redis_client import get_redis

    settings = settings or get_settings()
    rng = rng or random.Random()
    client = client or gracedb_client(settings)
    redis_client = get_redis(settings)
    event = load_mock_event(index if index is not None else "random", rng=rng)
    count = uploads or settings.mock_event_uploads
    coincs = [event.coinc_xml] if count == 1 else jittered_uploads(event, count, rng)
    graceids, uploaded_at = [], []
    for coinc in coincs:
        response = client.create_event(group=event.group, pipeline=event.pipeline, filename="coinc.xml",
                                       search=event.search, filecontents=coinc)
        graceid = response.json()["graceid"]
        client.write_log(graceid, "strain PSD", filename="psd.xml.gz", filecontents=event.psd_xml_gz,
                         tag_name=["psd"])
        graceids.append(graceid)
        uploaded_at.append(time.time())
    log.info("mock event %s uploaded as %s", event.name, ", ".join(graceids))
    schedule(redis_client, settings, "mock_signoff", {"graceid": graceids[0]},
             time.time() + settings.vetting_timeout_s)
    sequence = redis_client.incr(settings.key("mock", "sequence"))
    external = None
    if with_external if with_external is not None else sequence % 2 == 0:
        external = publish_mock_grb(settings, event, redis_client)
    return {"graceids": graceids, "gps_time": event.gps_time, "uploaded_at": uploaded_at,
            "name": event.name, "external": external,
            "injection": {"ra_deg": event.injection.ra_deg, "dec_deg": event.injection.dec_deg,
                          "distance_mpc": event.injection.distance_mpc}}


def publish_mock_grb(settings: Settings, event, redis_client) -> str:
    """Send a mock Fermi GBM notice for ``event`` through the VOEvent broker; return its id."""
    from gw_ops.mock.notices import make_mock_grb_notice
    from gw_ops.vtp.broker import append_voevent

    trigger_id = f"mock{int(event.gps_time)}"
    notice = make_mock_grb_notice(trigger_id, event.gps_time + MOCK_GRB_OFFSET_S,
                                  event.injection.ra_deg, event.injection.dec_deg, MOCK_GRB_ERROR_DEG)
    append_voevent(redis_client, settings, notice)
    return trigger_id


def mock_signoff(graceid: str, settings: Settings | None = None, client=None) -> str | None:
    """The vetting of a mock event's superevent: ADV OK or ADV NO at random (a delayed action).

    The choice is seeded by the superevent id, so a retried action signs off the same way.
    Returns the status given, or None when the event is in no superevent or already signed off.
    """
    from gw_ops.gracedb_client import gracedb_client

    settings = settings or get_settings()
    client = client or gracedb_client(settings)
    superevent_id = client.event(graceid).json().get("superevent")
    if not superevent_id:
        log.warning("mock signoff: %s is in no superevent", graceid)
        return None
    existing = client.signoffs(superevent_id).json().get("signoffs", [])
    if any(s["signoff_type"] == "ADV" for s in existing):
        return None
    status = "OK" if random.Random(superevent_id).random() < ADVOK_FRACTION else "NO"
    client.create_signoff(superevent_id, "ADV", status, "mock vetting of an MDC event by gw-ops")
    return status
