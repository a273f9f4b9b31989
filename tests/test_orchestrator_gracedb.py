"""The alert path through the local GraceDB service (fixture ``gracedb_service``) and the
real Redis: one VOEvent per alert, even when redelivered, raced or cut off half-way.

Each test gets its own MDC superevent of two uploaded MDC events (coinc.xml), each with a
pre-made tiny sky map, p_astro.json and em_bright.json standing in for BAYESTAR and the
classifiers, and its own Redis key prefix (outgoing stream, alert records, delayed
actions).  Superevent labels and files are written through the real client and the
LVAlert messages the service publishes for them are handed to the orchestrator.
Dropped connections are simulated in the test's own client only
(:class:`tests.test_superevents_handle.RecordingGraceDb`).

Over 400 lines because every scenario shares the ``live`` superevent fixture and its
helpers; splitting it would copy them or move them to conftest for one module.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import uuid

import pytest
import requests

from gw_ops.formats import alert_content, json_alert, voevent
from gw_ops.handlers import alert_sender, localization
from gw_ops.handlers import orchestrator as orc
from gw_ops.rules import alert_policy as policy
from gw_ops.transport.delayed import next_due
from gw_ops.transport.redis_client import voevent_outgoing_stream
from tests.coinc_factory import coinc_xml
from tests.fixtures.gracedb import last_lvalert_id, read_lvalerts
from tests.test_superevents_handle import recording_client

SKYMAP = b"SIMPLE  =                    T / tiny pre-made multi-order sky map"
PASTRO = {"BNS": 0.9, "NSBH": 0.05, "BBH": 0.0, "Terrestrial": 0.05}
EMBRIGHT = {"HasNS": 1.0, "HasRemnant": 0.9, "HasMassGap": 0.0}
NODE = "mdc_superevent"

#: GPS times of this module: [1.2e9, 1.25e9), 10^4 s apart (other modules use other ranges).
_GPS = itertools.count(1_200_000_000.1 + (uuid.uuid4().int % 5_000) * 10_000.0, 10_000.0)


@pytest.fixture
def settings(gracedb_service, redis_client):
    """The service's settings with a Redis key prefix of this test's own."""
    base = gracedb_service.settings
    own = dataclasses.replace(base, key_prefix=base.key_prefix + uuid.uuid4().hex[:8] + ":")
    yield own
    for key in redis_client.scan_iter(match=own.key_prefix + "*", count=1000):
        redis_client.delete(key)


def messages_after(redis_client, service, node, after, uid):
    """LVAlert messages of ``uid`` on ``node`` published after stream id ``after``."""
    return [dict(m, node=node) for m in read_lvalerts(redis_client, service.settings, node, after)
            if m["uid"] == uid]


@dataclasses.dataclass
class Live:
    """One MDC superevent in the local GraceDB and the Redis the orchestrator writes."""

    service: object
    settings: object
    client: object
    redis: object
    superevent_id: str
    preferred: str
    other: str

    def _published(self, write, alert_type, match):
        """Do ``write`` and return the one LVAlert message of that kind it published."""
        after = last_lvalert_id(self.redis, self.service.settings, NODE)
        write()
        found = [m for m in messages_after(self.redis, self.service, NODE, after,
                                           self.superevent_id)
                 if m["alert_type"] == alert_type and match(m["data"])]
        assert len(found) == 1, found
        return found[0]

    def label(self, name):
        """Add a superevent label; its ``label_added`` message."""
        return self._published(lambda: self.client.write_label(self.superevent_id, name),
                               "label_added", lambda data: data["name"] == name)

    def label_message(self, name):
        """A ``label_added`` message of a label already on the superevent (e.g. the
        ``LOW_SIGNIF_LOCKED`` the orchestrator adds itself before a significant alert)."""
        assert name in self.labels()
        return {"uid": self.superevent_id, "alert_type": "label_added",
                "data": {"name": name}, "object": {"superevent_id": self.superevent_id},
                "node": NODE}

    def upload(self, filename, contents):
        """Upload a superevent file; its ``log`` message."""
        return self._published(
            lambda: self.client.write_log(self.superevent_id, "PE", filename=filename,
                                          filecontents=contents),
            "log", lambda data: data["filename"] == filename)

    def deliver(self, message, client=None):
        return orc.handle_superevent(message, settings=self.settings,
                                     client=client or self.client, redis_client=self.redis)

    def outgoing(self):
        return [f for _, f in self.redis.xrange(voevent_outgoing_stream(self.settings))]

    def versions(self, filename, object_id=None):
        """Contents of every version of a file, oldest first."""
        object_id = object_id or self.superevent_id
        listing = self.client.files(object_id).json()
        numbers = sorted(int(key.rsplit(",", 1)[1]) for key in listing
                         if key.rsplit(",", 1)[0] == filename and "," in key)
        return [self.client.files(object_id, f"{filename},{n}").read() for n in numbers]

    def uploaded(self, suffix):
        """Names of the files uploaded to the superevent, in log order, ending in ``suffix``."""
        return [entry["filename"] for entry in self.client.logs(self.superevent_id).json()["log"]
                if entry["filename"].endswith(suffix)]

    def labels(self):
        return [entry["name"] for entry in
                self.client.labels(self.superevent_id).json()["labels"]]


def upload_mdc_event(client, gpstime, far):
    """An MDC CBC event with its pre-made sky map and classifications; its graceid."""
    graceid = client.create_event(
        "CBC", "gstlal", "coinc.xml", search="MDC",
        filecontents=coinc_xml(gpstime=gpstime, snr=12.0, far=far, masses=(1.4, 1.3))
    ).json()["graceid"]
    for name, contents in (("bayestar.multiorder.fits", SKYMAP + graceid.encode()),
                           ("p_astro.json", json.dumps(PASTRO).encode()),
                           ("em_bright.json", json.dumps(EMBRIGHT).encode()),
                           ("bayestar.png", b"PNG of " + graceid.encode()),
                           ("p_astro.png", b"p_astro PNG of " + graceid.encode())):
        client.write_log(graceid, f"test {name}", filename=name, filecontents=contents)
    return graceid


@pytest.fixture
def live(gracedb_service, settings, redis_client):
    client = gracedb_service.client()
    gpstime = next(_GPS)
    preferred = upload_mdc_event(client, gpstime, far=1e-9)
    other = upload_mdc_event(client, gpstime, far=1e-12)
    superevent_id = client.create_superevent(gpstime - 1, gpstime, gpstime + 1, preferred,
                                             category="mdc").json()["superevent_id"]
    client.add_event_to_superevent(superevent_id, other)
    return Live(gracedb_service, settings, client, redis_client, superevent_id, preferred,
                other)


def ivorn(live, serial, alert_type):
    return f"ivo://gwnet/LVC#{live.superevent_id}-{serial}-{alert_type}"


# --- superevent alerts ------------------------------------------------------------------

def test_preliminary_initial_retraction_through_local_gracedb(live):
    assert live.deliver(live.label("SIGNIF_LOCKED"))["status"] == "sent"
    # the orchestrator froze the preferred event before the significant alert (GWCelery)
    assert "LOW_SIGNIF_LOCKED" in live.labels()
    assert live.deliver(live.label_message("LOW_SIGNIF_LOCKED")) is None  # no second alert
    sent = live.outgoing()
    assert len(sent) == 1
    voevent.validate_voevent(sent[0][b"xml"])
    files = live.client.files(live.superevent_id).json()
    assert f"{live.superevent_id}-1-Preliminary.xml" in files
    assert "bayestar.multiorder.fits" in files
    assert "GCN_PRELIM_SENT" in live.labels()
    assert live.deliver(live.label("ADVOK"))["ivorn"].endswith("-2-Initial")
    assert live.deliver(live.label("ADVNO"))["ivorn"].endswith("-3-Retraction")
    assert len(live.outgoing()) == 3


def test_preliminary_path_sends_once(live):
    sid = live.superevent_id
    anonymous = live.service.anonymous_client()
    with pytest.raises(Exception, match="404"):  # not public before its first alert
        anonymous.superevent(sid)
    locked = live.label("SIGNIF_LOCKED")
    result = live.deliver(locked)
    assert result["status"] == "sent" and result["serial_number"] == 1
    sent = live.outgoing()
    assert len(sent) == 1
    assert sent[0][b"ivorn"] == ivorn(live, 1, "Preliminary").encode()
    xml = sent[0][b"xml"]
    voevent.validate_voevent(xml)
    params = voevent.voevent_params(xml)
    assert params["skymap_fits"] == (
        f"{live.settings.gracedb_api_url}superevents/{sid}/files/bayestar.multiorder.fits,0")
    assert params["BNS"] == "0.9" and params["HasRemnant"] == "0.9"
    assert params["Significant"] == "1" and params["Pipeline"] == "gstlal"
    # files copied from the preferred event, notice + JSON + circular recorded in GraceDB
    assert live.versions("bayestar.multiorder.fits") == [SKYMAP + live.preferred.encode()]
    assert live.uploaded(".xml") == [f"{sid}-1-Preliminary.xml"]
    assert live.versions(f"{sid}-1-Preliminary.xml") == [xml]
    (alert_json,) = live.versions(f"{sid}-1-Preliminary.json")
    alert = json.loads(alert_json)
    assert alert["alert_type"] == "PRELIMINARY" and alert["event"]["pipeline"] == "gstlal"
    assert live.uploaded(".circular.txt")
    assert "GCN_PRELIM_SENT" in live.labels()
    # the alert made the superevent public: anonymous readers see it and the sent notice
    assert anonymous.superevent(sid).json()["superevent_id"] == sid
    assert f"{sid}-1-Preliminary.xml" in anonymous.files(sid).json()
    # the preferred event's images reach the superevent after the alert, never before it
    assert live.versions("bayestar.png") == [b"PNG of " + live.preferred.encode()]
    assert live.versions("p_astro.png") == [b"p_astro PNG of " + live.preferred.encode()]
    log_order = [entry["filename"] for entry in live.client.logs(sid).json()["log"]]
    assert log_order.index("bayestar.png") > log_order.index(f"{sid}-1-Preliminary.xml")
    # the same message again (redelivery), and the other lock label: no second alert
    assert live.deliver(locked) is None
    assert live.deliver(live.label_message("LOW_SIGNIF_LOCKED")) is None
    assert len(live.outgoing()) == 1
    assert live.versions("bayestar.multiorder.fits") == [SKYMAP + live.preferred.encode()]
    assert live.uploaded(".xml") == [f"{sid}-1-Preliminary.xml"]
    assert next_due(live.redis, live.settings) is not None  # second Preliminary pending


def test_initial_update_retraction_sequence(live):
    sid = live.superevent_id
    live.deliver(live.label("SIGNIF_LOCKED"))
    # a new sky map before the Initial alert: the Initial carries it, no Update
    assert live.deliver(live.upload("Bilby.multiorder.fits", b"pe")) is None
    advok = live.label("ADVOK")
    initial = live.deliver(advok)
    assert initial["ivorn"] == ivorn(live, 2, "Initial")
    params = voevent.voevent_params(live.outgoing()[-1][b"xml"])
    assert params["AlertType"] == "Initial" and params["Pkt_Ser_Num"] == "2"
    assert params["skymap_fits"].endswith("/Bilby.multiorder.fits,0")
    assert live.deliver(advok) is None
    # a newer sky map after the Initial alert: one Update per file version
    new_skymap = live.upload("Bilby.multiorder.fits", b"pe2")
    assert new_skymap["data"]["file_version"] == 1
    update = live.deliver(new_skymap)
    assert update["ivorn"] == ivorn(live, 3, "Update")
    assert voevent.voevent_params(live.outgoing()[-1][b"xml"])["skymap_fits"].endswith(",1")
    assert live.deliver(new_skymap) is None
    advno = live.label("ADVNO")
    retraction = live.deliver(advno)
    assert retraction["ivorn"] == ivorn(live, 4, "Retraction")
    xml = live.outgoing()[-1][b"xml"]
    voevent.validate_voevent(xml)
    assert b'cite="retraction"' in xml and f"{sid}-1-Preliminary".encode() in xml
    assert live.deliver(advno) is None and live.deliver(advok) is None
    assert [f[b"ivorn"].decode().rsplit("-", 1)[-1] for f in live.outgoing()] == [
        "Preliminary", "Initial", "Update", "Retraction"]
    assert [name.split("-", 2)[2] for name in live.uploaded(".xml")] == [
        "Preliminary.xml", "Initial.xml", "Update.xml", "Retraction.xml"]


def test_retraction_without_earlier_alert_sends_nothing(live):
    assert live.deliver(live.label("ADVNO")) is None
    assert live.outgoing() == []
    assert live.uploaded(".xml") == []


def test_early_warning_then_preliminary(live):
    assert live.deliver(live.label("EARLY_WARNING"))["ivorn"].endswith("-1-EarlyWarning")
    assert live.deliver(live.label("SIGNIF_LOCKED"))["ivorn"].endswith("-2-Preliminary")
    xml = live.outgoing()[-1][b"xml"]
    assert b'cite="supersedes"' in xml
    assert f"{live.superevent_id}-1-EarlyWarning".encode() in xml


def test_second_preliminary_reselects_preferred_event(live):
    live.deliver(live.label("SIGNIF_LOCKED"))
    # the superevent manager switches the preferred event (the service derives the FAR)
    live.client.update_superevent(live.superevent_id, preferred_event=live.other)
    kwargs = dict(settings=live.settings, client=live.client, redis_client=live.redis)
    second = orc.second_preliminary(live.superevent_id, **kwargs)
    assert second["ivorn"] == ivorn(live, 2, "Preliminary")
    params = voevent.voevent_params(live.outgoing()[-1][b"xml"])
    assert float(params["FAR"]) == pytest.approx(1e-12)
    assert params["skymap_fits"].endswith("bayestar.multiorder.fits,1")
    assert live.versions("bayestar.multiorder.fits") == [SKYMAP + live.preferred.encode(),
                                                         SKYMAP + live.other.encode()]
    assert orc.second_preliminary(live.superevent_id, **kwargs) is None
    assert len(live.outgoing()) == 2


def _uploads(filename):
    """A ``drop`` rule: the write_log request that uploads ``filename``."""
    def rule(name, kwargs):
        upload = (kwargs.get("files") or {}).get("upload")
        return name == "write_log" and upload is not None and upload[0] == filename
    return rule


def crash_at_notice_upload(live, when):
    """Deliver ``SIGNIF_LOCKED`` through a client whose connection drops ``when``
    (``before``/``after``) the notice upload, after the VOEvent went out; returns the
    message (to redeliver) and the notice's file name."""
    notice = f"{live.superevent_id}-1-Preliminary.xml"
    uploads_notice = _uploads(notice)
    crashing = recording_client(live.service,
                                drop=lambda name, kw: when if uploads_notice(name, kw) else None)
    locked = live.label("SIGNIF_LOCKED")
    with pytest.raises(requests.ConnectionError):
        live.deliver(locked, client=crashing)
    assert len(live.outgoing()) == 1
    return locked, notice


def test_crash_after_append_is_completed_by_redelivery(live):
    locked, notice = crash_at_notice_upload(live, "before")
    assert live.uploaded("Preliminary.xml") == []
    result = live.deliver(locked)                             # at-least-once redelivery
    assert result["status"] == "completed" and result["serial_number"] == 1
    assert len(live.outgoing()) == 1
    assert live.versions(notice) == [live.outgoing()[0][b"xml"]]  # the very VOEvent, once
    assert "GCN_PRELIM_SENT" in live.labels()
    assert live.versions("bayestar.multiorder.fits") == [SKYMAP + live.preferred.encode()]


def test_connection_lost_after_the_notice_upload_sends_nothing_twice(live):
    """GraceDB stored the notice but the sender never heard back: nothing is sent or
    recorded twice on redelivery."""
    locked, notice = crash_at_notice_upload(live, "after")
    xml = live.outgoing()[0][b"xml"]
    assert live.versions(notice) == [xml]
    assert live.deliver(locked) is None
    assert len(live.outgoing()) == 1
    assert live.versions(notice) == [xml]
    assert live.versions("bayestar.multiorder.fits") == [SKYMAP + live.preferred.encode()]


@pytest.mark.parametrize("when", ["before", "after"])
def test_redelivery_after_a_crash_finishes_the_preliminary_bookkeeping(live, when):
    locked, _ = crash_at_notice_upload(live, when)
    live.deliver(locked)
    assert "GCN_PRELIM_SENT" in live.labels()
    assert next_due(live.redis, live.settings) is not None  # second Preliminary pending


def test_concurrent_deliveries_send_one_alert(live):
    # send_alert imports gw_ops.vtp.broker lazily; a running worker did that long ago, and
    # four threads importing it at once for the first time can trip over each other
    import gw_ops.vtp.broker  # noqa: F401
    live.client.write_label(live.superevent_id, "SIGNIF_LOCKED")
    decision = policy.decide_on_label("SIGNIF_LOCKED", [], [])
    clients = [live.service.client() for _ in range(4)]  # one per worker, as in the lanes
    start = threading.Barrier(len(clients))
    results, errors = [], []

    def worker(client):
        start.wait()
        try:
            results.append(alert_sender.send_alert(decision, live.superevent_id,
                                                   settings=live.settings,
                                                   client=client, redis_client=live.redis))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(live.outgoing()) == 1
    assert [r["status"] for r in results].count("sent") == 1
    assert {r["serial_number"] for r in results} == {1}
    assert "GCN_PRELIM_SENT" in live.labels()


def test_categories_not_handled_are_ignored(live):
    production_only = dataclasses.replace(live.settings, superevent_categories=("production",))
    message = live.label("SIGNIF_LOCKED")
    assert orc.handle_superevent(message, settings=production_only, client=live.client,
                                 redis_client=live.redis) is None
    assert live.outgoing() == []
    assert live.uploaded(".xml") == []


# --- per-G-event products -------------------------------------------------------------

def test_handle_cbc_event_uploads_each_product_once(gracedb_service, settings, redis_client):
    client = gracedb_service.client()
    node = "cbc_gstlal"
    after = last_lvalert_id(redis_client, gracedb_service.settings, node)
    graceid = client.create_event(
        "CBC", "gstlal", "coinc.xml", search="AllSky",
        filecontents=coinc_xml(gpstime=next(_GPS), snr=12.0, far=1e-9, masses=(1.4, 1.3))
    ).json()["graceid"]
    (new,) = messages_after(redis_client, gracedb_service, node, after, graceid)
    assert new["alert_type"] == "new"
    calls, em_bright_args = [], []

    def localize(coinc, psd, omp_threads):
        assert coinc.startswith(b"<?xml") and psd == b"psd"  # the files GraceDB holds
        calls.append("localize")
        return b"FITS"

    def em_bright(m1, m2, s1, s2):
        em_bright_args.append((m1, m2, s1, s2))
        return {"HasNS": 1.0, "HasRemnant": 1.0, "HasMassGap": 0.0}

    chart_inputs, niceness = [], {}

    def own_niceness():
        import os
        import threading
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def classification_plots(probabilities, properties):
        chart_inputs.append((probabilities, properties))
        niceness["charts"] = own_niceness()
        return {"p_astro.png": b"PASTRO-PNG", "em_bright.png": b"EMBRIGHT-PNG"}

    def localize(coinc, psd, omp_threads, _localize=localize):
        niceness["localize"] = own_niceness()
        return _localize(coinc, psd, omp_threads)

    def plot_allsky(fits):
        niceness["plot"] = own_niceness()
        return b"PNG"

    products = {
        "localize": localize,
        "classification_plots": classification_plots,
        "plot_allsky": plot_allsky,
        "flatten": lambda fits: b"FLAT",
        "p_astro": lambda event: {"BNS": 1.0, "NSBH": 0.0, "BBH": 0.0, "Terrestrial": 0.0},
        "em_bright": em_bright,
    }
    kwargs = dict(settings=settings, client=client, redis_client=redis_client,
                  products=products)
    assert localization.handle_cbc_event(new, **kwargs) == []          # no PSD yet
    after = last_lvalert_id(redis_client, gracedb_service.settings, node)
    client.write_log(graceid, "psd", filename="psd.xml.gz", filecontents=b"psd")
    (psd_log,) = messages_after(redis_client, gracedb_service, node, after, graceid)
    assert psd_log["alert_type"] == "log" and psd_log["data"]["filename"] == "psd.xml.gz"
    # cheap classifications first, the sky map (which completes the event) next, plots last
    assert localization.handle_cbc_event(psd_log, **kwargs) == [
        "p_astro.json", "em_bright.json", "bayestar.multiorder.fits", "bayestar.png",
        "bayestar.fits.gz", "p_astro.png", "em_bright.png"]
    # the charts show the classification the event holds
    assert chart_inputs == [({"BNS": 1.0, "NSBH": 0.0, "BBH": 0.0, "Terrestrial": 0.0},
                             {"HasNS": 1.0, "HasRemnant": 1.0, "HasMassGap": 0.0})]
    assert client.files(graceid, "p_astro.png").read() == b"PASTRO-PNG"
    labels = {entry["name"] for entry in client.labels(graceid).json()["labels"]}
    assert labels == {"SKYMAP_READY", "PASTRO_READY", "EMBRIGHT_READY"}
    assert localization.handle_cbc_event(psd_log, **kwargs) == []      # redelivery: nothing again
    assert calls == ["localize"]
    # what follows the sky map's label yields the CPU to the alert's tasks (Linux: per thread)
    assert niceness["plot"] == niceness["charts"] == min(
        19, niceness["localize"] + settings.sky_map_products_niceness) > niceness["localize"]
    assert json.loads(client.files(graceid, "em_bright.json").read())["HasNS"] == 1.0
    assert client.files(graceid, "bayestar.multiorder.fits").read() == b"FITS"
    (masses,) = em_bright_args  # from the event's SingleInspiral rows
    assert masses == pytest.approx((1.4, 1.3, 0.0, 0.0), abs=1e-6)
    listing = client.files(graceid).json()
    assert "bayestar.multiorder.fits,1" not in listing and "em_bright.json,1" not in listing
    # the record the superevent run's localize task reports: event, settings, wall time, files
    record = json.loads(redis_client.get(localization.localization_record_key(settings, graceid)))
    assert record["graceid"] == graceid and record["wall_s"] >= 0.0
    assert record["settings"] == localization.bayestar_settings(settings)
    assert record["files"] == ["p_astro.json", "em_bright.json", "bayestar.multiorder.fits",
                               "bayestar.png", "bayestar.fits.gz", "p_astro.png", "em_bright.png"]


def test_images_made_after_the_alert_still_reach_the_superevent(live):
    """The plots are made at low priority and can come after the Preliminary: the
    localization lane then copies them to the superevent itself (preferred event only)."""
    sid = live.superevent_id
    assert live.deliver(live.label("SIGNIF_LOCKED"))["status"] == "sent"
    images_before = live.versions("bayestar.png")  # copied after the alert
    assert live.versions("em_bright.png") == []     # not made before the alert
    fits = live.client.files(live.preferred, "bayestar.multiorder.fits").read()
    products = {"plot_allsky": lambda data: b"late PNG", "flatten": lambda data: b"FLAT",
                "classification_plots": lambda p, e: {"p_astro.png": b"late chart",
                                                      "em_bright.png": b"late em chart"}}
    for graceid in (live.other, live.preferred):
        localization._after_sky_map(live.client, graceid, set(), fits, dict(products),
                                    live.settings)
    assert live.versions("bayestar.png") == [*images_before, b"late PNG"]
    assert live.versions("em_bright.png") == [b"late em chart"]
    log_order = [entry["filename"] for entry in live.client.logs(sid).json()["log"]]
    assert log_order.index("em_bright.png") > log_order.index(f"{sid}-1-Preliminary.xml")


def test_alert_rejected_by_the_schema_is_not_sent(live, monkeypatch):
    """Issue 13: a JSON alert igwn-gwalert-schema rejects stops before anything is
    published (nothing on the outgoing stream, nothing recorded), with the reason."""
    from gw_ops.formats.schema import AlertSchemaError

    monkeypatch.setitem(json_alert.JSON_ALERT_TYPES, alert_content.PRELIMINARY, "PRELIM")
    with pytest.raises(AlertSchemaError, match="alert_type"):
        live.deliver(live.label("SIGNIF_LOCKED"))
    assert live.outgoing() == []
    assert live.uploaded(".xml") == []


def test_significant_alert_reselects_the_preferred_event_ignoring_the_lock(live):
    """Issue 13 (GWCelery 2.5's orchestrator): before a significant Preliminary the
    preferred event is re-selected among all G events although LOW_SIGNIF_LOCKED froze
    it; the alert then carries the new preferred event's sky map."""
    for label in ("PASTRO_READY", "EMBRIGHT_READY", "SKYMAP_READY"):  # `other` is complete
        live.client.write_label(live.other, label)
    live.client.write_label(live.superevent_id, "LOW_SIGNIF_LOCKED")
    assert live.client.superevent(live.superevent_id).json()["preferred_event"] == live.preferred
    assert live.deliver(live.label("SIGNIF_LOCKED"))["status"] == "sent"
    assert live.client.superevent(live.superevent_id).json()["preferred_event"] == live.other
    assert live.versions("bayestar.multiorder.fits")[-1] == SKYMAP + live.other.encode()


def test_early_warning_freezes_the_preferred_event(live):
    """Issue 13 item 5: an EarlyWarning alert adds LOW_SIGNIF_LOCKED first."""
    assert "LOW_SIGNIF_LOCKED" not in live.labels()
    assert live.deliver(live.label("EARLY_WARNING"))["ivorn"].endswith("-1-EarlyWarning")
    assert "LOW_SIGNIF_LOCKED" in live.labels()
    # the lock's own message sends nothing while EARLY_WARNING is there
    assert live.deliver(live.label_message("LOW_SIGNIF_LOCKED")) is None


def test_less_significant_candidate_gets_a_second_less_significant_preliminary(live):
    """GWCelery 2.5: a less-significant Preliminary is followed by a second one after the
    clean-up timeout unless the candidate was raised meanwhile."""
    first = live.deliver(live.label("LOW_SIGNIF_LOCKED"))
    assert first["key"] == policy.LESS_SIGNIFICANT_PRELIMINARY_KEY
    assert voevent.voevent_params(live.outgoing()[0][b"xml"])["Significant"] == "0"
    assert next_due(live.redis, live.settings) is not None
    second = orc.second_preliminary(live.superevent_id, settings=live.settings,
                                    client=live.client, redis_client=live.redis,
                                    follows=policy.LESS_SIGNIFICANT_PRELIMINARY_KEY)
    assert second["key"] == policy.SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY
    assert second["serial_number"] == 2
    # once raised (ADVREQ), no second less-significant alert would be due
    assert policy.decide_second_preliminary(
        {"LOW_SIGNIF_LOCKED", "ADVREQ"}, {policy.LESS_SIGNIFICANT_PRELIMINARY_KEY},
        follows=policy.LESS_SIGNIFICANT_PRELIMINARY_KEY) is None
