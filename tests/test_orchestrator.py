"""Alert state machine: pure decision tables, and the send path against an in-memory
GraceDB double plus the real Redis (one VOEvent per alert, even when redelivered)."""
from __future__ import annotations

import json
import threading

import pytest

from gw_ops import alerts, orchestrator as orc
from gw_ops.redis_util import voevent_outgoing_stream

P1, P2 = orc.preliminary_key(1), orc.preliminary_key(2)


# --- pure decisions -------------------------------------------------------------------

@pytest.mark.parametrize("label, labels, sent, expected", [
    ("SIGNIF_LOCKED", set(), set(), (alerts.PRELIMINARY, P1)),
    ("LOW_SIGNIF_LOCKED", set(), set(), (alerts.PRELIMINARY, P1)),
    ("SIGNIF_LOCKED", set(), {P1}, None),                     # same label twice: one alert
    ("SIGNIF_LOCKED", set(), {alerts.INITIAL}, None),
    ("SIGNIF_LOCKED", {"DQV"}, set(), None),
    ("EARLY_WARNING", set(), set(), (alerts.EARLY_WARNING, alerts.EARLY_WARNING)),
    ("EARLY_WARNING", set(), {alerts.EARLY_WARNING}, None),
    ("EARLY_WARNING", set(), {P1}, None),                     # too late for early warning
    ("ADVOK", set(), {P1}, (alerts.INITIAL, alerts.INITIAL)),
    ("ADVOK", set(), {P1, alerts.INITIAL}, None),
    ("ADVNO", set(), {P1}, (alerts.RETRACTION, alerts.RETRACTION)),
    ("ADVNO", {"DQV"}, {P1}, (alerts.RETRACTION, alerts.RETRACTION)),
    ("ADVNO", set(), set(), None),                            # nothing public to retract
    ("ADVNO", set(), {P1, alerts.RETRACTION}, None),
    ("ADVOK", set(), {P1, alerts.RETRACTION}, None),          # nothing after a retraction
    ("EM_READY", set(), set(), None),
    ("ADVREQ", set(), set(), None),
])
def test_decide_on_label(label, labels, sent, expected):
    decision = orc.decide_on_label(label, labels, sent)
    assert (decision and (decision.alert_type, decision.key)) == expected


@pytest.mark.parametrize("labels, sent, due", [
    ({"SIGNIF_LOCKED"}, {P1}, True),
    ({"LOW_SIGNIF_LOCKED"}, {P1}, False),                     # low significance: one only
    ({"SIGNIF_LOCKED"}, set(), False),
    ({"SIGNIF_LOCKED"}, {P1, P2}, False),
    ({"SIGNIF_LOCKED"}, {P1, alerts.INITIAL}, False),
    ({"SIGNIF_LOCKED"}, {P1, alerts.RETRACTION}, False),
    ({"SIGNIF_LOCKED", "DQV"}, {P1}, False),
])
def test_decide_second_preliminary(labels, sent, due):
    decision = orc.decide_second_preliminary(labels, sent)
    assert bool(decision) == due
    if due:
        assert decision.key == P2 and decision.alert_type == alerts.PRELIMINARY


@pytest.mark.parametrize("filename, version, sent, expected_key", [
    ("Bilby.multiorder.fits", 0, {P1, alerts.INITIAL}, "Update:Bilby.multiorder.fits,0"),
    ("p_astro.json", 2, {P1, alerts.INITIAL}, "Update:p_astro.json,2"),
    ("em_bright.json", 1, {P1, alerts.INITIAL}, "Update:em_bright.json,1"),
    ("Bilby.multiorder.fits", 0, {P1}, None),                 # before Initial: no update
    ("Bilby.multiorder.fits", 0, {P1, alerts.INITIAL, "Update:Bilby.multiorder.fits,0"}, None),
    ("Bilby.multiorder.fits", 0, {P1, alerts.INITIAL, alerts.RETRACTION}, None),
    ("bayestar.png", 0, {P1, alerts.INITIAL}, None),
    ("S230518h-2-Initial.xml", 0, {P1, alerts.INITIAL}, None),
    (None, None, {P1, alerts.INITIAL}, None),
])
def test_decide_on_file(filename, version, sent, expected_key):
    decision = orc.decide_on_file(filename, version, set(), sent)
    assert (decision and decision.key) == expected_key


def test_significance_and_serials():
    assert orc.is_significant({"SIGNIF_LOCKED"})
    assert not orc.is_significant({"LOW_SIGNIF_LOCKED"})
    assert orc.is_significant({"ADVOK"})
    assert orc.next_serial_number([]) == 1
    assert orc.next_serial_number([1, 3, 2]) == 4


def test_sent_alerts_from_logs():
    logs = [
        {"filename": "bayestar.multiorder.fits", "comment": "copied"},
        {"filename": "S1-1-Preliminary.xml", "comment": "Sent ... [alert key Preliminary-1]"},
        {"filename": "MS230101a-2-Preliminary.xml", "comment": "uploaded by hand"},
        {"filename": "MS230101a-3-Initial.xml", "comment": ""},
        {"filename": "MS230101a-4-Update.xml", "comment": "[alert key Update:x.fits,0]"},
        {"filename": "MS230101a-1-Preliminary.json", "comment": "[alert key Preliminary-1]"},
        {"comment": "no file"},
    ]
    assert orc.sent_alerts_from_logs(logs) == {P1: 2, alerts.INITIAL: 3, "Update:x.fits,0": 4}


def test_localization_order_puts_preferred_events_first():
    messages = [{"uid": f"G{i}", "object": {"superevent": "S1"}} for i in range(16)]
    messages.insert(3, {"uid": "G99", "object": {}})           # not in a superevent yet
    messages.append({"uid": "G5", "object": {"superevent": "S1"}})  # duplicate delivery
    order = [m["uid"] for m in orc.localization_order(messages, {"S1": "G11"})]
    assert order[0] == "G11"
    assert order[1] == "G99"
    assert order.count("G5") == 1 and len(order) == 17
    assert order[2:] == [f"G{i}" for i in range(16) if i != 11]
    skipped = orc.localization_order(messages, {"S1": "G11"}, skip_superseded=True)
    assert [m["uid"] for m in skipped] == ["G11", "G99"]
    assert orc.localization_order(["G1", "G2"], {"S": "G2"}) == ["G2", "G1"]


# --- in-memory GraceDB double (the subset of ligo-gracedb's GraceDb the orchestrator uses)

class Response:
    def __init__(self, body=None, content=b""):
        self._body, self._content = body, content

    def json(self):
        return self._body

    def read(self):
        return self._content


class FakeGraceDb:
    """Superevents and events with labels, versioned files and log entries."""

    api = "http://127.0.0.1:8090/api/"

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.log_entries: dict[str, list] = {}
        self.file_store: dict[str, dict[str, list[bytes]]] = {}
        self.labels_: dict[str, list[str]] = {}
        self.fail_next_upload_of: str | None = None
        self.lock = threading.Lock()

    def add(self, object_id, obj, files=None, labels=()):
        self.objects[object_id] = obj
        self.log_entries[object_id], self.file_store[object_id] = [], {}
        self.labels_[object_id] = list(labels)
        for name, contents in (files or {}).items():
            self.write_log(object_id, "initial", filename=name, filecontents=contents)

    # reads
    def superevent(self, superevent_id):
        return Response(dict(self.objects[superevent_id],
                             labels=list(self.labels_[superevent_id])))

    def event(self, graceid):
        return Response(self.objects[graceid])

    def labels(self, object_id, label=""):
        return Response({"labels": [{"name": n} for n in self.labels_[object_id]]})

    def logs(self, object_id):
        return Response({"log": [dict(e) for e in self.log_entries[object_id]]})

    def files(self, object_id, filename=""):
        versions = self.file_store[object_id]
        if not filename:
            listing = {}
            for name, contents in versions.items():
                listing[name] = f"{self.api}{object_id}/files/{name}"
                for n in range(len(contents)):
                    listing[f"{name},{n}"] = f"{self.api}{object_id}/files/{name},{n}"
            return Response(listing)
        name, _, version = filename.partition(",")
        return Response(content=versions[name][int(version) if version else -1])

    # writes
    def write_log(self, object_id, message, filename=None, filecontents=None, tag_name=(),
                  **kwargs):
        with self.lock:
            if filename and filename == self.fail_next_upload_of:
                self.fail_next_upload_of = None
                raise ConnectionError("GraceDB went away")
            entry = {"N": len(self.log_entries[object_id]) + 1, "comment": message,
                     "filename": filename or "", "file_version": None}
            if filename:
                versions = self.file_store[object_id].setdefault(filename, [])
                versions.append(bytes(filecontents))
                entry["file_version"] = len(versions) - 1
            self.log_entries[object_id].append(entry)
        return Response(entry)

    def write_label(self, object_id, label):
        with self.lock:
            if label in self.labels_[object_id]:
                raise RuntimeError("label exists")
            self.labels_[object_id].append(label)

    def uploaded(self, object_id, suffix):
        return [entry["filename"] for entry in self.log_entries[object_id]
                if entry["filename"].endswith(suffix)]


SKYMAP = b"SIMPLE  =                    T / tiny pre-made multi-order sky map"
PASTRO = {"BNS": 0.9, "NSBH": 0.05, "BBH": 0.0, "Terrestrial": 0.05}
EMBRIGHT = {"HasNS": 1.0, "HasRemnant": 0.9, "HasMassGap": 0.0}


def make_gracedb(superevent_id="MS230518h", labels=()):
    db = FakeGraceDb()
    for graceid, far in (("M100", 1e-9), ("M101", 1e-12)):
        db.add(graceid, {"graceid": graceid, "group": "CBC", "pipeline": "gstlal",
                         "search": "MDC", "instruments": "H1,L1", "far": far,
                         "gpstime": 1368449966.1, "superevent": superevent_id},
               files={"bayestar.multiorder.fits": SKYMAP + graceid.encode(),
                      "p_astro.json": json.dumps(PASTRO).encode(),
                      "em_bright.json": json.dumps(EMBRIGHT).encode()})
    db.add(superevent_id, {"superevent_id": superevent_id, "preferred_event": "M100",
                           "t_0": 1368449966.1, "far": 1e-9, "category": "MDC"},
           labels=labels)
    return db


@pytest.fixture
def env(fresh_prefix_settings, redis_client):
    db = make_gracedb()

    def deliver(label=None, *, log=None):
        message = {"uid": "MS230518h", "node": "mdc_superevent",
                   "alert_type": "label_added" if label else "log",
                   "data": {"name": label} if label else log, "object": {}}
        if label:
            db.labels_["MS230518h"].append(label)
        return orc.handle_superevent(message, settings=fresh_prefix_settings, client=db,
                                     redis_client=redis_client)

    def outgoing():
        entries = redis_client.xrange(voevent_outgoing_stream(fresh_prefix_settings))
        return [fields for _, fields in entries]

    return db, deliver, outgoing, fresh_prefix_settings, redis_client


def test_preliminary_path_sends_once(env):
    db, deliver, outgoing, settings, redis_client = env
    result = deliver("SIGNIF_LOCKED")
    assert result["status"] == "sent" and result["serial_number"] == 1
    sent = outgoing()
    assert len(sent) == 1
    assert sent[0][b"ivorn"] == b"ivo://gwnet/LVC#MS230518h-1-Preliminary"
    xml = sent[0][b"xml"]
    alerts.validate_voevent(xml)
    params = alerts.voevent_params(xml)
    assert params["skymap_fits"] == (
        "http://127.0.0.1:8090/api/superevents/MS230518h/files/bayestar.multiorder.fits,0")
    assert params["BNS"] == "0.9" and params["HasRemnant"] == "0.9"
    assert params["Significant"] == "1" and params["Pipeline"] == "gstlal"
    # files copied from the preferred event, notice + JSON + circular recorded in GraceDB
    assert db.file_store["MS230518h"]["bayestar.multiorder.fits"] == [SKYMAP + b"M100"]
    assert db.uploaded("MS230518h", ".xml") == ["MS230518h-1-Preliminary.xml"]
    assert db.file_store["MS230518h"]["MS230518h-1-Preliminary.xml"] == [xml]
    alert = json.loads(db.file_store["MS230518h"]["MS230518h-1-Preliminary.json"][0])
    assert alert["alert_type"] == "PRELIMINARY" and alert["event"]["pipeline"] == "gstlal"
    assert db.uploaded("MS230518h", ".circular.txt")
    assert "GCN_PRELIM_SENT" in db.labels_["MS230518h"]
    # the same label again (redelivery), and the other lock label: no second alert
    assert deliver("SIGNIF_LOCKED") is None
    assert deliver("LOW_SIGNIF_LOCKED") is None
    assert len(outgoing()) == 1
    assert db.file_store["MS230518h"]["bayestar.multiorder.fits"] == [SKYMAP + b"M100"]


def test_initial_update_retraction_sequence(env):
    db, deliver, outgoing, settings, redis_client = env
    deliver("SIGNIF_LOCKED")
    # a new sky map before the Initial alert: the Initial carries it, no Update
    db.write_log("MS230518h", "PE", filename="Bilby.multiorder.fits", filecontents=b"pe")
    assert deliver(log={"filename": "Bilby.multiorder.fits", "file_version": 0}) is None
    initial = deliver("ADVOK")
    assert initial["ivorn"] == "ivo://gwnet/LVC#MS230518h-2-Initial"
    params = alerts.voevent_params(outgoing()[-1][b"xml"])
    assert params["AlertType"] == "Initial" and params["Pkt_Ser_Num"] == "2"
    assert params["skymap_fits"].endswith("/Bilby.multiorder.fits,0")
    assert deliver("ADVOK") is None
    # a newer sky map after the Initial alert: one Update per file version
    db.write_log("MS230518h", "PE", filename="Bilby.multiorder.fits", filecontents=b"pe2")
    log_message = {"filename": "Bilby.multiorder.fits", "file_version": 1}
    update = deliver(log=log_message)
    assert update["ivorn"] == "ivo://gwnet/LVC#MS230518h-3-Update"
    assert alerts.voevent_params(outgoing()[-1][b"xml"])["skymap_fits"].endswith(",1")
    assert deliver(log=log_message) is None
    retraction = deliver("ADVNO")
    assert retraction["ivorn"] == "ivo://gwnet/LVC#MS230518h-4-Retraction"
    xml = outgoing()[-1][b"xml"]
    alerts.validate_voevent(xml)
    assert b'cite="retraction"' in xml and b"MS230518h-1-Preliminary" in xml
    assert deliver("ADVNO") is None and deliver("ADVOK") is None
    assert [f[b"ivorn"].decode().rsplit("-", 1)[-1] for f in outgoing()] == [
        "Preliminary", "Initial", "Update", "Retraction"]


def test_retraction_without_earlier_alert_sends_nothing(env):
    db, deliver, outgoing, *_ = env
    assert deliver("ADVNO") is None
    assert outgoing() == []


def test_early_warning_then_preliminary(env):
    db, deliver, outgoing, *_ = env
    assert deliver("EARLY_WARNING")["ivorn"].endswith("-1-EarlyWarning")
    assert deliver("SIGNIF_LOCKED")["ivorn"].endswith("-2-Preliminary")
    xml = outgoing()[-1][b"xml"]
    assert b'cite="supersedes"' in xml and b"MS230518h-1-EarlyWarning" in xml


def test_second_preliminary_reselects_preferred_event(env):
    db, deliver, outgoing, settings, redis_client = env
    deliver("SIGNIF_LOCKED")
    db.objects["MS230518h"]["preferred_event"] = "M101"   # the superevent manager switched
    db.objects["MS230518h"]["far"] = 1e-12
    kwargs = dict(settings=settings, client=db, redis_client=redis_client)
    second = orc.second_preliminary("MS230518h", **kwargs)
    assert second["ivorn"] == "ivo://gwnet/LVC#MS230518h-2-Preliminary"
    params = alerts.voevent_params(outgoing()[-1][b"xml"])
    assert params["FAR"] == "1e-12"
    assert params["skymap_fits"].endswith("bayestar.multiorder.fits,1")
    assert db.file_store["MS230518h"]["bayestar.multiorder.fits"][-1] == SKYMAP + b"M101"
    assert orc.second_preliminary("MS230518h", **kwargs) is None
    assert len(outgoing()) == 2


def test_crash_after_append_is_completed_by_redelivery(env):
    db, deliver, outgoing, *_ = env
    db.fail_next_upload_of = "MS230518h-1-Preliminary.xml"
    with pytest.raises(ConnectionError):
        deliver("SIGNIF_LOCKED")
    assert len(outgoing()) == 1 and db.uploaded("MS230518h", "Preliminary.xml") == []
    result = deliver("SIGNIF_LOCKED")                         # at-least-once redelivery
    assert result["status"] == "completed"
    assert len(outgoing()) == 1
    assert db.file_store["MS230518h"]["MS230518h-1-Preliminary.xml"] == [outgoing()[0][b"xml"]]
    assert "GCN_PRELIM_SENT" in db.labels_["MS230518h"]


def test_concurrent_deliveries_send_one_alert(env):
    db, deliver, outgoing, settings, redis_client = env
    db.labels_["MS230518h"].append("SIGNIF_LOCKED")
    decision = orc.decide_on_label("SIGNIF_LOCKED", [], [])
    results = []

    def worker():
        results.append(orc.send_alert(decision, "MS230518h", settings=settings, client=db,
                                      redis_client=redis_client))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outgoing()) == 1
    assert sorted(r["status"] for r in results).count("sent") == 1
    assert {r["serial_number"] for r in results} == {1}


def test_categories_not_handled_are_ignored(env):
    db, deliver, outgoing, settings, redis_client = env
    import dataclasses
    production_only = dataclasses.replace(settings, superevent_categories=("production",))
    message = {"uid": "MS230518h", "alert_type": "label_added",
               "data": {"name": "SIGNIF_LOCKED"}, "object": {}}
    assert orc.handle_superevent(message, settings=production_only, client=db,
                                 redis_client=redis_client) is None
    assert outgoing() == []


def test_handler_is_registered_for_superevent_nodes():
    spec = orc.handle_superevent.handler_spec
    assert set(spec.keys) == {"superevent", "mdc_superevent", "test_superevent"}
    assert spec.task_kwargs["priority_weight"] > 1


# --- per-G-event products -------------------------------------------------------------

def test_handle_cbc_event_uploads_each_product_once(fresh_prefix_settings, redis_client):
    db = FakeGraceDb()
    db.add("G1", {"graceid": "G1", "group": "CBC", "pipeline": "gstlal", "extra_attributes": {
        "SingleInspiral": [{"mass1": 1.4, "mass2": 1.3, "spin1z": 0.0, "spin2z": 0.0}]}},
        files={"coinc.xml": b"<coinc/>"})
    calls = []
    products = {
        "localize": lambda coinc, psd, omp_threads: calls.append("localize") or b"FITS",
        "plot_allsky": lambda fits: b"PNG",
        "p_astro": lambda event: {"BNS": 1.0, "NSBH": 0.0, "BBH": 0.0, "Terrestrial": 0.0},
        "em_bright": lambda m1, m2, s1, s2: {"HasNS": 1.0, "HasRemnant": 1.0,
                                             "HasMassGap": 0.0},
    }
    kwargs = dict(settings=fresh_prefix_settings, client=db, redis_client=redis_client,
                  products=products)
    new = {"uid": "G1", "alert_type": "new", "data": {}, "object": {}}
    assert orc.handle_cbc_event(new, **kwargs) == []          # no PSD yet
    db.write_log("G1", "psd", filename="psd.xml.gz", filecontents=b"psd")
    psd_log = {"uid": "G1", "alert_type": "log", "data": {"filename": "psd.xml.gz"}}
    assert orc.handle_cbc_event(psd_log, **kwargs) == [
        "bayestar.multiorder.fits", "bayestar.png", "p_astro.json", "em_bright.json"]
    assert set(db.labels_["G1"]) == {"SKYMAP_READY", "PASTRO_READY", "EMBRIGHT_READY"}
    assert orc.handle_cbc_event(psd_log, **kwargs) == []      # redelivery: nothing again
    assert calls == ["localize"]
    assert json.loads(db.file_store["G1"]["em_bright.json"][0])["HasNS"] == 1.0
