"""Integrity of the local GraceDB (issue 12, items 6 and 7), over real HTTP.

``confirm_as_gw`` takes only the superevent's own GW name; files stay inside the
files folder; an upload whose LVAlert cannot be published is still answered 201, so
a retrying client never duplicates it; event files with impossible times or FARs are
refused; the database and files are private.
"""
from __future__ import annotations

import dataclasses
import stat

import pytest
import requests
from ligo.gracedb.exceptions import HTTPError

from gw_ops.local_gracedb import auth
from gw_ops.ops.processes import stop_process_group
from tests.fixtures.gracedb import DATA, start_gracedb
from tests.helpers import free_port

COINC = (DATA / "coinc_G211117.xml").read_bytes()
T0 = 1340000000.0  # 2022-06-23 UTC: a day no other test file uses


def coinc(end_time: str = "1135136350", far: str = "3.332628572265315e-11") -> bytes:
    return COINC.replace(b"1135136350,", f"{end_time},".encode()).replace(
        b"3.332628572265315e-11", far.encode())


def status_of(call) -> int:
    try:
        return call().status_code
    except HTTPError as exc:
        return exc.response.status_code


@pytest.fixture(scope="module")
def client(gracedb_service):
    return gracedb_service.client(retries=0)


def new_superevent(client, t0: float) -> str:
    graceid = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                  filecontents=coinc(str(int(t0)))).json()["graceid"]
    return client.create_superevent(t0 - 1, t0, t0 + 1, graceid).json()["superevent_id"]


def test_confirm_as_gw_takes_only_the_superevents_own_gw_name(gracedb_service, client):
    first, second = new_superevent(client, T0), new_superevent(client, T0 + 100)
    files_root = gracedb_service.settings.gracedb_files_path
    outside_before = sorted(p.name for p in files_root.parent.iterdir())
    url = gracedb_service.url + f"superevents/{first}/confirm-as-gw/"
    for bad in ("..", second, "GW220623", f"GW{first[1:7]}_250000", "GW000101_000000",
                f"MGW{first[1:7]}_000000"):
        assert status_of(lambda bad=bad: client.post(url, json={"gw_id": bad})) == 400, bad
    assert client.superevent(first).json()["gw_id"] is None
    confirmed = client.post(url, json={"gw_id": f"GW{first[1:7]}_123456"}).json()
    assert confirmed["gw_id"] == f"GW{first[1:7]}_123456"
    taken = gracedb_service.url + f"superevents/{second}/confirm-as-gw/"
    assert status_of(lambda: client.post(taken, json={"gw_id": confirmed["gw_id"]})) == 400
    # both superevents keep answering, by id and by GW name
    assert client.superevent(second).json()["superevent_id"] == second
    assert client.superevent(confirmed["gw_id"]).json()["superevent_id"] == first
    # a log written through the GW name lands in the superevent's own folder
    client.write_log(confirmed["gw_id"], "file via gw name", filename="note.txt",
                     filecontents=b"inside")
    assert (files_root / first / "note.txt,0").read_bytes() == b"inside"
    assert sorted(p.name for p in files_root.parent.iterdir()) == outside_before
    assert not (files_root / confirmed["gw_id"]).exists()


@pytest.mark.parametrize("end_time, far, reason", [
    ("1135136350", "nan", "far"),
    ("1135136350", "inf", "far"),
    ("1135136350", "-1", "far"),
    ("1000000000000000", "3.3e-11", "gpstime"),
])
def test_impossible_event_values_are_refused(gracedb_service, client, end_time, far, reason):
    count = client.num_events()
    with pytest.raises(HTTPError) as refused:
        client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                            filecontents=coinc(end_time, far))
    assert refused.value.response.status_code == 400
    assert reason in refused.value.response.json()["detail"]
    assert client.num_events() == count


def test_impossible_superevent_times_are_refused(client):
    graceid = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                  filecontents=coinc(str(int(T0 + 200)))).json()["graceid"]
    for times in ((1e15 - 1, 1e15, 1e15 + 1), (-10.0, -9.0, -8.0)):
        assert status_of(lambda times=times: client.create_superevent(*times, graceid)) == 400
    assert status_of(lambda: client.post(client.links["superevents"], json={
        "t_start": "nan", "t_0": "nan", "t_end": "nan", "preferred_event": graceid})) == 400


@pytest.fixture(scope="module")
def redis_down_service(base_settings, tmp_path_factory):
    """A GraceDB whose Redis does not answer (nothing listens on its port)."""
    state = tmp_path_factory.mktemp("gracedb-redis-down")
    settings = dataclasses.replace(base_settings, state_dir=state, gracedb_port=free_port(),
                                   gracedb_url="", gracedb_files_dir="", gracedb_db_url="",
                                   redis_url=f"redis://127.0.0.1:{free_port()}/0")
    service = start_gracedb(settings, state / "gracedb.log")
    yield service
    stop_process_group(service.process)


def test_upload_answered_after_commit_even_when_lvalert_fails(redis_down_service):
    client = redis_down_service.client(retries=0)
    response = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                    filecontents=coinc())
    assert response.status_code == 201  # was 500 after the commit: retries duplicated it
    assert client.num_events() == 1
    assert "waits in the outbox" in redis_down_service.log_path.read_text()
    second = client.write_log(response.json()["graceid"], "still answered")
    assert second.status_code == 201
    assert requests.get(redis_down_service.url, timeout=5).status_code == 200


def test_state_files_are_private(gracedb_service, client):
    client.write_log(client.create_event("CBC", "gstlal", "coinc.xml",
                                         filecontents=coinc()).json()["graceid"],
                     "a file", filename="f.txt", filecontents=b"x")
    state = auth.gracedb_state_dir(gracedb_service.settings)
    if gracedb_service.settings.gracedb_sql_url.startswith("sqlite"):  # else PostgreSQL's own
        assert stat.S_IMODE((state / "gracedb.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    exposed = [str(path) for path in [state, *state.rglob("*")]
               if stat.S_IMODE(path.stat().st_mode) & 0o077]
    assert exposed == []
