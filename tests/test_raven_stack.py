"""Issue 13's done criterion through the running stack: a GRB coincident with a
less-significant GW candidate (FAR 1e-6 Hz) raises it to significant.

The CBC event's data products (sky map, p_astro, em_bright) are uploaded by the test, so
no BAYESTAR run is needed (the event has no PSD file, so the localization lane leaves
it alone); the GRB notice goes through the VOEvent broker like a real one.  Expected,
as GWCelery 2.5.0 does it:

1. complete and less-significant (FAR <= 2/day): ``LOW_SIGNIF_LOCKED`` and a
   less-significant Preliminary (``Significant`` 0);
2. the GRB notice: an external event, RAVEN's joint FAR passes (FAR x 5 x 4 below
   1/30 days with the sky maps), ``RAVEN_ALERT`` and ``HIGH_PROFILE`` on the superevent,
   ``RAVEN_ALERT`` on the GRB event and last on the G event;
3. the superevent manager takes ``RAVEN_ALERT`` as significant: ``ADVREQ``,
   ``SIGNIF_LOCKED``; the orchestrator sends a significant Preliminary (``Significant``
   1) naming the GRB.
"""
from __future__ import annotations

import json
import uuid

import pytest

from gw_ops.formats.voevent import validate_voevent, voevent_params
from gw_ops.ops.demo import AlertReceiver
from tests.coinc_factory import coinc_xml
from tests.helpers import wait_for

pytestmark = pytest.mark.stack

RA, DEC = 120.0, 30.0


@pytest.fixture(scope="module")
def receiver(airflow_stack):
    receiver = AlertReceiver(airflow_stack.settings.host, airflow_stack.settings.broker_port)
    receiver.start()
    return receiver


def alerts_of(receiver, superevent_id):
    found = []
    for _, payload in list(receiver.received):
        try:
            params = voevent_params(payload)
        except Exception:  # noqa: BLE001 (other traffic on the broker)
            continue
        if params.get("GraceID") == superevent_id:
            found.append((params, payload))
    return found


def labels(client, object_id):
    return {entry["name"] for entry in client.labels(object_id).json()["labels"]}


def gw_skymap() -> bytes:
    """A multi-order sky map centred on (RA, DEC), written as BAYESTAR writes them."""
    from gw_ops.science import ext_skymaps
    table = ext_skymaps.make_external_skymap(RA, DEC, 5.0, "Swift", max_order=6)
    return ext_skymaps.write_skymap_bytes(table, {"objid": "test", "instruments": {"H1", "L1"}})


def test_raven_coincidence_raises_a_less_significant_candidate(airflow_stack, receiver,
                                                               tmp_path):
    for dag_id in ("lvalert_superevents_handle", "lvalert_orchestrator_handle_superevent",
                   "lvalert_external_triggers_handle_superevent",
                   "gcn_external_triggers_handle_notice"):
        airflow_stack.airflow().wait_for_dag(dag_id, timeout=180)
    airflow_stack.wait_gcn_listener()
    client = airflow_stack.gracedb()
    t_gw = 1400000000.0 + (uuid.uuid4().int % 10**7) * 1000.0  # apart from other tests

    # a complete, less-significant CBC candidate
    graceid = client.create_event(
        "CBC", "gstlal", "coinc.xml", search="AllSky",
        filecontents=coinc_xml(gpstime=t_gw, snr=9.0, far=1e-6)).json()["graceid"]
    sid = wait_for(lambda: client.event(graceid).json().get("superevent"), timeout=180,
                   what="superevent of the GW event")
    assert sid.startswith("S")
    products = (("bayestar.multiorder.fits", gw_skymap(), "PASTRO_READY"),
                ("p_astro.json", json.dumps({"BNS": 0.9, "NSBH": 0.05, "BBH": 0.0,
                                             "Terrestrial": 0.05}).encode(), "EMBRIGHT_READY"),
                ("em_bright.json", json.dumps({"HasNS": 1.0, "HasRemnant": 1.0,
                                               "HasMassGap": 0.0}).encode(), "SKYMAP_READY"))
    for filename, contents, _ in products:
        client.write_log(graceid, "test data product", filename=filename, filecontents=contents)
    for _, _, label in products:
        client.write_label(graceid, label)

    def less_significant_preliminary():
        return [p for p, _ in alerts_of(receiver, sid)
                if p["AlertType"] == "Preliminary" and p["Significant"] == "0"]
    wait_for(less_significant_preliminary, timeout=240, what="less-significant preliminary")
    assert "LOW_SIGNIF_LOCKED" in labels(client, sid)
    assert "SIGNIF_LOCKED" not in labels(client, sid)

    # a GRB 0.5 s after the merger, where the GW sky map is
    from gw_ops.mock.notices import make_mock_grb_notice
    notice = tmp_path / "grb.xml"
    notice.write_bytes(make_mock_grb_notice(f"raven{uuid.uuid4().hex[:8]}", t_gw + 0.5, RA, DEC,
                                            3.0, role="observation", mdc=False))
    published = airflow_stack.gw_ops("gcn", "publish", str(notice))
    assert published.returncode == 0, published.stdout + published.stderr

    def significant_preliminary():
        return [(p, x) for p, x in alerts_of(receiver, sid)
                if p["AlertType"] == "Preliminary" and p["Significant"] == "1"]
    (params, payload), *_ = wait_for(significant_preliminary, timeout=300,
                                     what="significant preliminary after RAVEN_ALERT")
    validate_voevent(payload)
    superevent_labels = labels(client, sid)
    assert {"RAVEN_ALERT", "HIGH_PROFILE", "ADVREQ", "SIGNIF_LOCKED", "EM_COINC"} <= \
        superevent_labels
    assert "RAVEN_ALERT" in labels(client, graceid)
    superevent = client.superevent(sid).json()
    assert superevent["em_type"] and "RAVEN_ALERT" in labels(client, superevent["em_type"])
    assert superevent["space_coinc_far"] is not None
    # the joint FAR x 5 x 4 passed the significant threshold
    assert superevent["space_coinc_far"] * 20 <= 1 / (30 * 86400)
    assert params["Pipeline"] == "gstlal"
    assert params["External_Observatory"] == "Fermi"  # the alert names the coincident GRB
    # one less-significant and one significant Preliminary, distinct serial numbers
    serials = [int(p["Pkt_Ser_Num"]) for p, _ in alerts_of(receiver, sid)]
    assert len(serials) == len(set(serials)) >= 2
