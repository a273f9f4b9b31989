"""The alert path through the local GraceDB service (fixture ``gracedb_service``) and the real
Redis: a pre-made tiny sky map stands in for BAYESTAR.  Skipped while the fixture is not
available.  The fixture is expected to yield the session's Settings pointing at the running
service (or an object with a ``settings`` attribute)."""
from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from gw_ops import alerts, orchestrator as orc
from gw_ops.redis_util import voevent_outgoing_stream

SKYMAP = b"SIMPLE  =                    T / tiny pre-made multi-order sky map"


@pytest.fixture
def live(request, redis_client):
    try:
        service = request.getfixturevalue("gracedb_service")
    except pytest.FixtureLookupError:
        pytest.skip("gracedb_service fixture not available yet")
    settings = getattr(service, "settings", service)
    settings = dataclasses.replace(
        settings, key_prefix=settings.key_prefix + uuid.uuid4().hex[:6] + ":")
    from gw_ops.gracedb.client import gracedb_client
    from tests.coinc_factory import coinc_xml
    client = gracedb_client(settings)
    gpstime = 1400000000.25 + (uuid.uuid4().int % 100000)
    event = client.create_event("CBC", "gstlal", "coinc.xml", search="MDC",
                                filecontents=coinc_xml(gpstime=gpstime, snr=12.0, far=1e-9)
                                ).json()
    graceid = event["graceid"]
    for name, contents in (("bayestar.multiorder.fits", SKYMAP),
                           ("p_astro.json", json.dumps({"BNS": 0.9, "NSBH": 0.05, "BBH": 0.0,
                                                        "Terrestrial": 0.05}).encode()),
                           ("em_bright.json", json.dumps({"HasNS": 1.0, "HasRemnant": 1.0,
                                                          "HasMassGap": 0.0}).encode())):
        client.write_log(graceid, f"test {name}", filename=name, filecontents=contents)
    superevent = client.create_superevent(gpstime - 1, gpstime, gpstime + 1, graceid,
                                          category="mdc").json()
    superevent_id = superevent["superevent_id"]

    def deliver(label):
        client.write_label(superevent_id, label)
        message = {"uid": superevent_id, "node": "mdc_superevent", "alert_type": "label_added",
                   "data": {"name": label}, "object": superevent}
        return orc.handle_superevent(message, settings=settings, client=client,
                                     redis_client=redis_client)

    def outgoing():
        return [f for _, f in redis_client.xrange(voevent_outgoing_stream(settings))]

    yield client, superevent_id, deliver, outgoing
    for key in redis_client.scan_iter(match=settings.key_prefix + "*"):
        redis_client.delete(key)


def test_preliminary_initial_retraction_through_local_gracedb(live):
    client, superevent_id, deliver, outgoing = live
    assert deliver("SIGNIF_LOCKED")["status"] == "sent"
    assert deliver("LOW_SIGNIF_LOCKED") is None               # second lock label: no alert
    sent = outgoing()
    assert len(sent) == 1
    alerts.validate_voevent(sent[0][b"xml"])
    files = client.files(superevent_id).json()
    assert f"{superevent_id}-1-Preliminary.xml" in files
    assert "bayestar.multiorder.fits" in files
    labels = {entry["name"] for entry in client.labels(superevent_id).json()["labels"]}
    assert "GCN_PRELIM_SENT" in labels
    assert deliver("ADVOK")["ivorn"].endswith("-2-Initial")
    assert deliver("ADVNO")["ivorn"].endswith("-3-Retraction")
    assert len(outgoing()) == 3
