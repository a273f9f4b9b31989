"""The local GraceDB service through the real ``ligo-gracedb`` client, real HTTP and real Redis."""
from __future__ import annotations

import base64
import dataclasses
import os
import stat
import threading

import pytest
import requests
from ligo.gracedb.exceptions import HTTPError
from ligo.gracedb.rest import GraceDb

from gw_ops.formats.voevent import validate_voevent
from gw_ops.local_gracedb import auth
from gw_ops.local_gracedb.constants import suffix_letters
from gw_ops.ops.processes import stop_process_group
from gw_ops.transport.redis_client import lvalert_stream
from tests.fixtures.gracedb import DATA, last_lvalert_id, read_lvalerts, start_gracedb
from tests.helpers import free_port

COINC = (DATA / "coinc_G211117.xml").read_bytes()
GPSTIME = 1135136350.647757924


def coinc_at(gpstime: float) -> bytes:
    """The test coinc.xml moved to another end time (to keep tests' superevents apart)."""
    seconds, nanoseconds = int(gpstime), int(round((gpstime % 1) * 1e9))
    return COINC.replace(b"1135136350,", f"{seconds},".encode()).replace(
        b"647757924", f"{nanoseconds:09d}".encode())


@pytest.fixture(scope="module")
def client(gracedb_service):
    return gracedb_service.client()


def new_event(client, gpstime=GPSTIME, group="CBC", pipeline="gstlal", search="AllSky", **kwargs):
    return client.create_event(group, pipeline, "coinc.xml", search=search,
                               filecontents=coinc_at(gpstime), **kwargs).json()


def stream_length(redis_client, settings, node):
    return redis_client.xlen(lvalert_stream(settings, node))


# --- API root, ids, events -------------------------------------------------------------------

def test_api_root_is_anonymous_and_complete(gracedb_service):
    response = requests.get(gracedb_service.url, timeout=5)
    assert response.status_code == 200
    anonymous = gracedb_service.anonymous_client()
    assert anonymous.ping().status_code == 200
    for attribute in ("links", "templates", "groups", "pipelines", "searches", "allowed_labels",
                      "superevent_categories", "voevent_types", "signoff_types", "signoff_statuses"):
        assert getattr(anonymous, attribute)
    assert {"EM_READY", "ADVREQ", "SIGNIF_LOCKED", "RAVEN_ALERT", "DQV"} <= set(anonymous.allowed_labels)


def test_create_cbc_event_extracts_coinc_attributes(client, gracedb_service, redis_client):
    event = new_event(client)
    assert event["graceid"].startswith("G")
    assert event["group"] == "CBC" and event["pipeline"] == "gstlal" and event["search"] == "AllSky"
    assert event["gpstime"] == pytest.approx(GPSTIME, abs=1e-6)
    assert event["far"] == pytest.approx(3.332628572265315e-11)
    assert event["instruments"] == "H1,L1"
    coinc = event["extra_attributes"]["CoincInspiral"]
    assert coinc["snr"] == pytest.approx(11.71034723464594)
    assert coinc["mchirp"] == pytest.approx(9.554778099060059)
    singles = event["extra_attributes"]["SingleInspiral"]
    assert {s["ifo"] for s in singles} == {"H1", "L1"}
    assert all("mass1" in s and "mass2" in s for s in singles)
    assert event["offline"] is False and event["labels"] == []
    assert client.event(event["graceid"]).json()["gpstime"] == event["gpstime"]
    # the 'new' alert is on both GraceDB nodes of the event
    for node in ("cbc_gstlal", "cbc_gstlal_allsky"):
        news = [m for m in read_lvalerts(redis_client, gracedb_service.settings, node)
                if m["uid"] == event["graceid"]]
        assert news[0]["alert_type"] == "new"
        assert news[0]["object"]["graceid"] == event["graceid"]
    # the uploaded file is stored as version 0
    assert client.files(event["graceid"], "coinc.xml").read() == coinc_at(GPSTIME)


def test_event_id_letters_and_global_counter(client):
    ids = [new_event(client, search="MDC")["graceid"],
           new_event(client, group="Test", search="AllSky")["graceid"],
           client.create_event("External", "Fermi", "fermi.xml", search="GRB",
                               filecontents=(DATA / "fermi-test.xml").read_bytes()).json()["graceid"],
           new_event(client)["graceid"]]
    assert [i[0] for i in ids] == ["M", "T", "E", "G"]
    numbers = [int(i[1:]) for i in ids]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4


def test_burst_and_external_events(client):
    burst = client.create_event("Burst", "CWB", "trigger.txt", search="AllSky",
                                filecontents=(DATA / "burst-cwb.txt").read_bytes()).json()
    assert burst["gpstime"] == pytest.approx(1042312876.509)
    assert burst["instruments"] == "L1,H1"
    assert burst["extra_attributes"]["MultiBurst"]["central_freq"] == pytest.approx(1392.169556)
    grb = client.create_event("External", "Fermi", "fermi.xml", search="GRB",
                              filecontents=(DATA / "fermi-test.xml").read_bytes()).json()
    assert grb["graceid"].startswith("E")
    assert grb["extra_attributes"]["GRB"]["ra"] == pytest.approx(345.99)


def test_replace_event_and_query(client, gracedb_service, redis_client):
    event = new_event(client, gpstime=1200000000.25)
    graceid = event["graceid"]
    before = last_lvalert_id(redis_client, gracedb_service.settings, "cbc_gstlal")
    client.replace_event(graceid, "coinc.xml", filecontents=coinc_at(1200000001.5))
    assert client.event(graceid).json()["gpstime"] == pytest.approx(1200000001.5)
    updates = read_lvalerts(redis_client, gracedb_service.settings, "cbc_gstlal", after=before)
    assert [m["alert_type"] for m in updates] == ["update"]
    assert client.files(graceid).json().keys() >= {"coinc.xml", "coinc.xml,0", "coinc.xml,1"}
    found = list(client.events("gpstime: 1200000001 .. 1200000002"))
    assert [e["graceid"] for e in found] == [graceid]
    assert client.num_events("1200000001 .. 1200000002 gstlal") == 1
    client.write_label(graceid, "DQV")
    assert [e["graceid"] for e in client.events("1200000000 .. 1200000002 DQV")] == [graceid]


# --- logs, files, tags, labels -----------------------------------------------------------------

def test_logs_files_versions_and_tags(client):
    graceid = new_event(client)["graceid"]
    first = client.write_log(graceid, "p_astro", filename="p_astro.json",
                             filecontents=b'{"BBH": 0.9}', tag_name=["p_astro", "public"]).json()
    second = client.write_log(graceid, "p_astro again", filename="p_astro.json",
                              filecontents=b'{"BBH": 0.95}').json()
    assert first["file_version"] == 0 and second["file_version"] == 1
    assert first["tag_names"] == ["p_astro", "public"]
    assert client.files(graceid, "p_astro.json").read() == b'{"BBH": 0.95}'
    assert client.files(graceid, "p_astro.json,0").read() == b'{"BBH": 0.9}'
    assert client.files(graceid, "p_astro.json,1").read() == b'{"BBH": 0.95}'
    listing = client.files(graceid).json()
    assert {"p_astro.json", "p_astro.json,0", "p_astro.json,1"} <= set(listing)
    logs = client.logs(graceid).json()["log"]
    assert [entry["comment"] for entry in logs][-2:] == ["p_astro", "p_astro again"]
    assert client.logs(graceid, first["N"]).json()["comment"] == "p_astro"
    client.add_tag(graceid, second["N"], "sky_loc")
    assert [t["name"] for t in client.tags(graceid, second["N"]).json()["tags"]] == ["sky_loc"]
    client.remove_tag(graceid, second["N"], "sky_loc")
    assert client.tags(graceid, second["N"]).json()["tags"] == []
    with pytest.raises(HTTPError) as missing:
        client.files(graceid, "nothing.txt")
    assert missing.value.response.status_code == 404


def test_labels_on_events_and_superevents(client, gracedb_service, redis_client):
    graceid = new_event(client)["graceid"]
    client.write_label(graceid, "EM_READY")
    assert [label["name"] for label in client.labels(graceid).json()["labels"]] == ["EM_READY"]
    with pytest.raises(HTTPError) as duplicate:
        client.write_label(graceid, "EM_READY")
    assert duplicate.value.response.status_code == 400
    client.remove_label(graceid, "EM_READY")
    assert client.labels(graceid).json()["labels"] == []
    with pytest.raises(HTTPError) as absent:
        client.remove_label(graceid, "EM_READY")
    assert absent.value.response.status_code == 404
    alerts = [m["alert_type"] for m in read_lvalerts(redis_client, gracedb_service.settings,
                                                      "cbc_gstlal") if m["uid"] == graceid]
    assert alerts == ["new", "label_added", "label_removed"]


# --- superevents -----------------------------------------------------------------------------

def test_superevent_lifecycle(client, gracedb_service, redis_client):
    t0 = 1300000000.5
    preferred = new_event(client, gpstime=t0)["graceid"]
    other = new_event(client, gpstime=t0 + 0.1)["graceid"]
    before = last_lvalert_id(redis_client, gracedb_service.settings, "superevent")
    superevent = client.create_superevent(t0 - 1, t0, t0 + 1, preferred, labels=["EM_Selected"]).json()
    sid = superevent["superevent_id"]
    assert sid.startswith("S210317")  # GPS 1300000000 is 2021-03-17 07:06 UTC
    assert superevent["category"] == "Production"
    assert superevent["preferred_event"] == preferred
    assert superevent["preferred_event_data"]["graceid"] == preferred
    assert superevent["far"] == pytest.approx(3.332628572265315e-11)
    assert superevent["gw_events"] == [preferred] and superevent["labels"] == ["EM_Selected"]
    assert client.event(preferred).json()["superevent"] == sid

    client.add_event_to_superevent(sid, other)
    client.update_superevent(sid, preferred_event=other, t_end=t0 + 2)
    updated = client.superevent(sid).json()
    assert updated["preferred_event"] == other and updated["t_end"] == t0 + 2
    assert set(updated["gw_events"]) == {preferred, other}
    client.update_superevent(sid, preferred_event=preferred)
    client.remove_event_from_superevent(sid, other)
    assert client.superevent(sid).json()["gw_events"] == [preferred]
    events = client.get(gracedb_service.url + f"superevents/{sid}/events/").json()["events"]
    assert [e["graceid"] for e in events] == [preferred]

    client.write_label(sid, "ADVREQ")
    signoff = client.create_signoff(sid, "ADV", "OK", "looks good").json()
    assert signoff["status"] == "OK" and signoff["signoff_type"] == "ADV"
    assert [s["signoff_type"] for s in client.signoffs(sid).json()["signoffs"]] == ["ADV"]
    assert set(client.superevent(sid).json()["labels"]) == {"EM_Selected", "ADVOK"}

    client.write_log(sid, "sky map", filename="bayestar.multiorder.fits", filecontents=b"SIMPLE",
                     tag_name=["sky_loc"])
    voevent = client.create_voevent(sid, "preliminary", skymap_type="bayestar",
                                    skymap_filename="bayestar.multiorder.fits", BNS=0.9,
                                    NSBH=0.05, BBH=0.0, Terrestrial=0.05, ProbHasNS=0.99,
                                    ProbHasRemnant=0.9).json()
    assert voevent["voevent_type"] == "PR" and voevent["N"] == 1
    assert voevent["ivorn"] == f"ivo://gwnet/LVC#{sid}-1-Preliminary"
    xml = client.files(sid, voevent["filename"]).read()
    assert b'name="Packet_Type" value="150"' in xml and sid.encode() in xml
    assert validate_voevent(xml) == voevent["ivorn"]  # the pipeline's builder: schema-valid
    assert [v["N"] for v in client.voevents(sid).json()["voevents"]] == [1]

    confirmed = client.confirm_superevent_as_gw(sid).json()
    assert confirmed["gw_id"].startswith("GW210317_")
    with pytest.raises(HTTPError) as again:
        client.confirm_superevent_as_gw(sid)
    assert again.value.response.status_code == 400

    types = [m["alert_type"] for m in read_lvalerts(redis_client, gracedb_service.settings,
                                                     "superevent", after=before) if m["uid"] == sid]
    assert types == ["new", "event_added", "update", "update", "event_removed", "label_added",
                     "signoff_created", "label_removed", "label_added", "log", "voevent",
                     "confirmed_as_gw"]


def test_superevent_queries(client):
    t0 = 1310000000.0
    production = new_event(client, gpstime=t0)["graceid"]
    mdc = new_event(client, gpstime=t0, search="MDC")["graceid"]
    test = new_event(client, gpstime=t0, group="Test")["graceid"]
    s_p = client.create_superevent(t0 - 1, t0, t0 + 1, production).json()["superevent_id"]
    s_m = client.create_superevent(t0 - 1, t0, t0 + 1, mdc, category="mdc").json()["superevent_id"]
    s_t = client.create_superevent(t0 - 1, t0, t0 + 1, test, category="test").json()["superevent_id"]
    assert (s_p[:1], s_m[:2], s_t[:2]) == ("S", "MS", "TS")
    client.write_label(s_m, "GCN_PRELIM_SENT")

    def ids(query):
        return {s["superevent_id"] for s in client.superevents(query)}
    assert ids(f"t_0: {t0 - 5} .. {t0 + 5}") == {s_p, s_m, s_t}
    assert ids(f"{t0 - 5} .. {t0 + 5} category: MDC") == {s_m}
    assert ids(f"{t0 - 5} .. {t0 + 5} category: Test") == {s_t}
    assert ids(f"{t0 - 5} .. {t0 + 5} GCN_PRELIM_SENT") == {s_m}
    assert ids(f"{t0 - 5} .. {t0 + 5} ~GCN_PRELIM_SENT") == {s_p, s_t}
    assert ids(f"preferred_event: {production}") == {s_p}
    assert ids(f"preferred_event: {mdc[0]}{mdc[1:]} .. {mdc[0]}{mdc[1:]}") == {s_m}
    with pytest.raises(HTTPError) as bad:
        list(client.superevents("nonsense_term"))
    assert bad.value.response.status_code == 400


def test_superevent_ids_are_unique_under_concurrency(gracedb_service):
    t0 = 1320000000.0  # 2021-11-03 UTC: a day no other test uses
    setup = gracedb_service.client()
    preferred = [new_event(setup, gpstime=t0 + i)["graceid"] for i in range(8)]
    results, errors = [None] * 8, []

    def create(index):
        try:
            own_client = gracedb_service.client()
            results[index] = own_client.create_superevent(
                t0 + index - 0.5, t0 + index, t0 + index + 0.5, preferred[index]).json()["superevent_id"]
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(results) == [f"S211103{letter}" for letter in "abcdefgh"]


def test_suffix_letters_sequence():
    assert [suffix_letters(n) for n in (1, 2, 26, 27, 28, 52, 53, 702, 703)] == \
        ["a", "b", "z", "aa", "ab", "az", "ba", "zz", "aaa"]


# --- credentials ---------------------------------------------------------------------------------

def test_writes_need_valid_credentials(gracedb_service, client, redis_client):
    graceid = new_event(client)["graceid"]
    settings = gracedb_service.settings
    length = stream_length(redis_client, settings, "cbc_gstlal")
    anonymous = gracedb_service.anonymous_client(retries=0)
    wrong = GraceDb(gracedb_service.url, force_noauth=True, retries=0)
    wrong.headers["Authorization"] = "Basic " + base64.b64encode(b"gw-ops:wrong").decode()
    for refused in (anonymous, wrong):
        with pytest.raises(HTTPError) as denied:
            refused.write_label(graceid, "DQV")
        assert denied.value.response.status_code == 401
        with pytest.raises(HTTPError):
            refused.create_event("CBC", "gstlal", "coinc.xml", filecontents=COINC)
    # anonymous callers read public data only (events never are: 404, as if absent), and
    # wrong credentials are refused even on reads (as GraceDB does)
    with pytest.raises(HTTPError) as hidden:
        anonymous.event(graceid)
    assert hidden.value.response.status_code == 404
    with pytest.raises(HTTPError) as wrong_read:
        wrong.event(graceid)
    assert wrong_read.value.response.status_code == 401
    assert client.labels(graceid).json()["labels"] == []
    assert stream_length(redis_client, settings, "cbc_gstlal") == length


def test_bearer_tokens_issued_by_the_service(gracedb_service, client):
    token = client.post(gracedb_service.url + "token/").json()
    bearer = GraceDb(gracedb_service.url, force_noauth=True)
    bearer.headers["Authorization"] = f"Bearer {token['access_token']}"
    graceid = new_event(bearer)["graceid"]
    assert client.event(graceid).json()["submitter"] == auth.SERVICE_ACCOUNT
    forged = GraceDb(gracedb_service.url, force_noauth=True, retries=0)
    forged.headers["Authorization"] = "Bearer " + token["access_token"][:-4] + "AAAA"
    with pytest.raises(HTTPError) as denied:
        forged.write_label(graceid, "DQV")
    assert denied.value.response.status_code == 401


def test_service_credentials_files(gracedb_service):
    settings = gracedb_service.settings
    first = auth.ensure_service_credentials(settings)
    assert auth.ensure_service_credentials(settings) == first  # idempotent
    for path in (auth.netrc_path(settings), auth.users_path(settings)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first[1] not in auth.users_path(settings).read_text()  # only the hash is stored
    assert f"login {first[0]} password {first[1]}" in auth.netrc_path(settings).read_text()


def test_added_user_writes_through_netrc(gracedb_service, tmp_path, monkeypatch):
    password = auth.add_user(gracedb_service.settings, "albert.einstein", roles=["pipeline"])
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(f"machine 127.0.0.1 login albert.einstein password {password}\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    person = GraceDb(gracedb_service.url, force_noauth=True)
    graceid = new_event(person)["graceid"]
    assert person.event(graceid).json()["submitter"] == "albert.einstein"


# --- bad input ---------------------------------------------------------------------------------

def _raw_post(client, url, **kwargs):
    """POST through the real client's session, past its own argument checks."""
    return client.post(url, **kwargs)


@pytest.mark.parametrize("fields, content, reason", [
    ({"group": "CBC", "pipeline": "gstlal"}, b"<LIGO_LW><Table", "malformed XML"),
    ({"group": "CBC", "pipeline": "gstlal"}, b"<LIGO_LW></LIGO_LW>", "coinc_inspiral"),
    ({"group": "CBC", "pipeline": "gstlal"},
     b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b"<LIGO_LW>&x;</LIGO_LW>", "entit"),
    ({"group": "Nope", "pipeline": "gstlal"}, COINC, "group"),
    ({"group": "CBC", "pipeline": "nope"}, COINC, "pipeline"),
    ({"group": "CBC", "pipeline": "gstlal", "search": "Nope"}, COINC, "search"),
    ({"group": "CBC", "pipeline": "gstlal", "labels": "NOT_A_LABEL"}, COINC, "label"),
])
def test_bad_event_uploads_store_and_publish_nothing(gracedb_service, client, redis_client,
                                                     fields, content, reason):
    settings = gracedb_service.settings
    count = client.num_events()
    length = stream_length(redis_client, settings, "cbc_gstlal")
    with pytest.raises(HTTPError) as bad:
        _raw_post(client, client.links["events"], data=fields,
                  files={"eventFile": ("coinc.xml", content, "application/xml")})
    assert bad.value.response.status_code == 400
    assert reason.lower() in bad.value.response.json()["detail"].lower()
    assert client.num_events() == count
    assert stream_length(redis_client, settings, "cbc_gstlal") == length


def test_bad_requests_on_existing_objects(gracedb_service, client, redis_client):
    graceid = new_event(client)["graceid"]
    url = gracedb_service.url
    length = stream_length(redis_client, gracedb_service.settings, "cbc_gstlal")
    cases = [
        (client.put, f"{url}events/{graceid}/labels/NOT_A_LABEL", {}, 400),
        (client.post, f"{url}superevents/S000101zz/labels/", {"data": {"name": "DQV"}}, 404),
        (client.get, f"{url}superevents/S000101zz/", {}, 404),
        (client.get, f"{url}events/G999999999", {}, 404),
        (client.post, f"{url}superevents/", {"data": b"{not json",
                                             "headers": {"Content-Type": "application/json"}}, 400),
        (client.post, f"{url}superevents/", {"data": {"t_start": 1, "t_0": 2, "t_end": 3,
                                                      "preferred_event": "G999999999"}}, 400),
        (client.post, f"{url}superevents/", {"data": {"t_start": "x", "t_0": 2, "t_end": 3,
                                                      "preferred_event": graceid}}, 400),
        (client.post, f"{url}events/{graceid}/log/", {"data": {"comment": "x", "label": "NOPE"}}, 400),
    ]
    for method, target, kwargs, status in cases:
        with pytest.raises(HTTPError) as bad:
            method(target, **kwargs)
        assert bad.value.response.status_code == status, target
        assert bad.value.response.json()["detail"]
    assert client.labels(graceid).json()["labels"] == []
    assert stream_length(redis_client, gracedb_service.settings, "cbc_gstlal") == length


@pytest.fixture(scope="module")
def small_upload_service(base_settings, tmp_path_factory):
    """A second service whose upload limit is 4 kB."""
    state = tmp_path_factory.mktemp("gracedb-small")
    settings = dataclasses.replace(base_settings, state_dir=state, gracedb_port=free_port(),
                                   gracedb_max_upload_bytes=4096, gracedb_url="")
    service = start_gracedb(settings, state / "gracedb.log")
    yield service
    stop_process_group(service.process)


def test_uploads_over_the_limit_are_refused(small_upload_service, redis_client):
    client = small_upload_service.client(retries=0)
    graceid = client.create_event("Burst", "CWB", "t.txt", filecontents=(
        DATA / "burst-cwb.txt").read_bytes()[:3000]).json()["graceid"]
    before = client.logs(graceid).json()["numRows"]
    for size in (5000, 200_000):
        with pytest.raises(HTTPError) as big:
            client.write_log(graceid, "too big", filename="big.bin", filecontents=os.urandom(size))
        assert big.value.response.status_code == 413
    assert client.logs(graceid).json()["numRows"] == before
    assert "big.bin" not in client.files(graceid).json()


# --- LVAlert delivery ----------------------------------------------------------------------------

def test_lvalert_messages_in_commit_order(gracedb_service, client, redis_client):
    settings = gracedb_service.settings
    before = last_lvalert_id(redis_client, settings, "cbc_gstlal")
    graceid = new_event(client)["graceid"]
    expected = ["new"]
    for index in range(10):
        client.write_log(graceid, f"message {index}")
        expected.append("log")
        if index % 3 == 0:
            client.write_label(graceid, ["DQV", "INJ", "PE_READY", "HIGH_PASTRO"][index // 3])
            expected.append("label_added")
    messages = [m for m in read_lvalerts(redis_client, settings, "cbc_gstlal", after=before)
                if m["uid"] == graceid]
    assert [m["alert_type"] for m in messages] == expected
    comments = [m["data"]["comment"] for m in messages if m["alert_type"] == "log"]
    assert comments == [f"message {i}" for i in range(10)]
    assert set(messages[0]) >= {"uid", "alert_type", "data", "object", "id"}


def test_failed_publish_keeps_the_commit_and_is_delivered_later(base_settings, tmp_path,
                                                                redis_client):
    """A change committed while Redis is unreachable is answered (no 500 after a commit, so
    a retrying client cannot duplicate it); its message stays in the outbox and reaches the
    stream, in order, once Redis answers again."""
    import redis as redis_module
    from sqlalchemy import func, select

    from gw_ops.local_gracedb.db import Outbox
    from gw_ops.local_gracedb.outbox import AlertPublisher
    from gw_ops.local_gracedb.store import Store

    settings = dataclasses.replace(base_settings, state_dir=tmp_path,
                                   key_prefix=base_settings.key_prefix + "outbox:")
    dead = redis_module.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    store = Store(settings, AlertPublisher(settings, dead))
    with store.write() as tx:
        tx.alert(["cbc_gstlal"], "G1", "new", {"n": 1}, {})
    assert store.publishing is False
    with store.write() as tx:  # while Redis is failing, writes do not wait on it
        tx.alert(["cbc_gstlal"], "G1", "log", {"n": 2}, {})
    with store.read() as session:
        assert session.execute(select(func.count(Outbox.id))).scalar() == 2
    store.publisher.redis = redis_client  # Redis is back: the background retry sends them
    assert store.drain_outbox() == 2 and store.publishing is True
    with store.write() as tx:
        tx.alert(["cbc_gstlal"], "G1", "log", {"n": 3}, {})
    messages = read_lvalerts(redis_client, settings, "cbc_gstlal")
    assert [m["data"]["n"] for m in messages] == [1, 2, 3]
    assert store.outbox_counts() == {"pending": 0, "dead_letters": 0}
    # a rolled-back change publishes nothing
    with pytest.raises(RuntimeError):
        with store.write() as tx:
            tx.alert(["cbc_gstlal"], "G1", "log", {"n": 4}, {})
            raise RuntimeError("handler failed")
    assert len(read_lvalerts(redis_client, settings, "cbc_gstlal")) == 3
