"""The main job end to end through the running stack, with a real BAYESTAR localization:
mock event → superevent → sky map → preliminary alert received by pygcn's own client;
then ADV OK → Initial and ADVNO → Retraction.  (The suite's single real localization.)"""
from __future__ import annotations

import pytest

from gw_ops.formats.voevent import validate_voevent, voevent_params
from gw_ops.ops.demo import AlertReceiver
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


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
                   "lvalert_orchestrator_handle_superevent", "gw_ops_delayed_actions"):
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


def test_advok_sends_initial_and_advno_sends_retraction(mock_candidate, receiver):
    client, sid = mock_candidate["client"], mock_candidate["superevent_id"]
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Preliminary"], timeout=300,
             what="preliminary first")
    client.create_signoff(sid, "ADV", "OK", "advocate vetting in the end-to-end test")
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Initial"], timeout=120,
             what="initial alert after ADVOK")
    client.write_label(sid, "ADVNO")
    wait_for(lambda: [a for a in alerts_for(receiver, sid) if a[0] == "Retraction"], timeout=120,
             what="retraction after ADVNO")
    kinds = [a[0] for a in alerts_for(receiver, sid)]
    assert kinds.count("Initial") == 1 and kinds.count("Retraction") == 1
    retraction = next(a[2] for a in alerts_for(receiver, sid) if a[0] == "Retraction")
    validate_voevent(retraction)
    assert voevent_params(retraction)["Packet_Type"] == "164"
