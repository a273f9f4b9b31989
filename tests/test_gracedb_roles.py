"""Roles in the local GraceDB (issue 12, item 4a), through the real client and real HTTP.

Pipelines upload events; the robot writes superevents, labels, logs and VOEvents;
advocates sign off; an ordinary account reads and writes log comments; anonymous
callers read public data only.  Every refused change answers 403 (401/404 for
anonymous) and leaves no trace: no row, no LVAlert.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from ligo.gracedb.exceptions import HTTPError
from ligo.gracedb.rest import GraceDb

from gw_ops.local_gracedb import auth
from gw_ops.transport.redis_client import lvalert_stream
from tests.fixtures.gracedb import DATA
from tests.helpers import REPO_ROOT

COINC = (DATA / "coinc_G211117.xml").read_bytes()
T0 = 1330000000.0  # 2022-03-01 UTC: a day no other test file uses


def coinc_at(gpstime: float) -> bytes:
    return COINC.replace(b"1135136350,", f"{int(gpstime)},".encode())


def account(service, name: str, roles: tuple[str, ...]) -> GraceDb:
    """A client of a new account ``name`` with ``roles``."""
    password = auth.add_user(service.settings, name, roles)
    client = GraceDb(service.url, force_noauth=True, retries=0)
    client.headers["Authorization"] = "Basic " + base64.b64encode(
        f"{name}:{password}".encode()).decode()
    return client


def status_of(call) -> int:
    try:
        return call().status_code
    except HTTPError as exc:
        return exc.response.status_code


@pytest.fixture(scope="module")
def accounts(gracedb_service):
    return {"member": account(gracedb_service, "ordinary.member", ()),
            "pipeline": account(gracedb_service, "pipeline.only", ("pipeline",)),
            "robot": account(gracedb_service, "robot.only", ("robot",)),
            "advocate": account(gracedb_service, "advocate.only", ("advocate",))}


@pytest.fixture(scope="module")
def world(gracedb_service, accounts):
    """A G event, a superevent with a sky-map log and a VOEvent, made by the right roles."""
    graceid = accounts["pipeline"].create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                                filecontents=coinc_at(T0)).json()["graceid"]
    robot = accounts["robot"]
    sid = robot.create_superevent(T0 - 1, T0, T0 + 1, graceid).json()["superevent_id"]
    robot.write_log(sid, "sky map", filename="bayestar.fits", filecontents=b"SIMPLE")
    robot.write_label(sid, "ADVREQ")
    robot.create_voevent(sid, "preliminary", skymap_type="bayestar",
                         skymap_filename="bayestar.fits")
    return {"graceid": graceid, "sid": sid}


def stream_lengths(redis_client, settings) -> dict[str, int]:
    return {node: redis_client.xlen(lvalert_stream(settings, node))
            for node in ("superevent", "cbc_gstlal")}


def test_ordinary_account_cannot_change_what_alerts_depend_on(gracedb_service, accounts, world,
                                                              redis_client):
    member, sid, graceid = accounts["member"], world["sid"], world["graceid"]
    before = stream_lengths(redis_client, gracedb_service.settings)
    refused = {
        "create event": lambda: member.create_event("CBC", "gstlal", "coinc.xml",
                                                    filecontents=coinc_at(T0 + 5)),
        "create superevent": lambda: member.create_superevent(T0 - 1, T0, T0 + 1, graceid),
        "update superevent": lambda: member.update_superevent(sid, t_0=T0 + 0.5),
        "sign off": lambda: member.create_signoff(sid, "ADV", "OK", "forged"),
        "confirm as GW": lambda: member.confirm_superevent_as_gw(sid),
        "write VOEvent": lambda: member.create_voevent(sid, "initial", skymap_type="bayestar",
                                                       skymap_filename="bayestar.fits"),
        "apply label": lambda: member.write_label(sid, "EM_Selected"),
        "apply ADVOK": lambda: member.write_label(sid, "ADVOK"),
        "delete label": lambda: member.remove_label(sid, "ADVREQ"),
        "upload file": lambda: member.write_log(sid, "x", filename="bayestar.fits",
                                                filecontents=b"FORGED"),
        "expose": lambda: member.modify_permissions(sid, "expose"),
    }
    answers = {what: status_of(call) for what, call in refused.items()}
    assert answers == {what: 403 for what in refused}
    # reading and plain comments are what an ordinary account does
    assert member.superevent(sid).json()["labels"] == ["ADVREQ"]
    assert member.write_log(graceid, "looked at it").status_code == 201
    after = stream_lengths(redis_client, gracedb_service.settings)
    assert after["superevent"] == before["superevent"]
    assert member.signoffs(sid).json()["signoffs"] == []
    assert [v["N"] for v in member.voevents(sid).json()["voevents"]] == [1]
    assert not member.superevent(sid).json()["gw_id"]


def test_pipeline_uploads_events_only(accounts, world):
    pipeline = accounts["pipeline"]
    event = pipeline.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                  filecontents=coinc_at(T0 + 10)).json()
    assert event["submitter"] == "pipeline.only"
    assert pipeline.write_log(event["graceid"], "psd", filename="psd.xml.gz",
                              filecontents=b"psd").status_code == 201
    assert status_of(lambda: pipeline.create_superevent(
        T0 + 9, T0 + 10, T0 + 11, event["graceid"])) == 403
    assert status_of(lambda: pipeline.write_label(world["sid"], "EM_READY")) == 403
    assert status_of(lambda: pipeline.create_event(
        "CBC", "gstlal", "coinc.xml", filecontents=coinc_at(T0 + 12), labels=["ADVOK"])) == 403


def test_robot_writes_superevents_labels_logs_voevents_but_never_signs_off(accounts, world):
    robot, sid = accounts["robot"], world["sid"]
    assert robot.write_label(sid, "EM_Selected").status_code == 201
    assert robot.remove_label(sid, "EM_Selected").status_code == 204
    assert robot.update_superevent(sid, t_end=T0 + 1.5).json()["t_end"] == T0 + 1.5
    assert status_of(lambda: robot.create_signoff(sid, "ADV", "OK", "robot")) == 403
    assert status_of(lambda: robot.write_label(sid, "ADVOK")) == 403
    assert status_of(lambda: robot.create_event("CBC", "gstlal", "coinc.xml",
                                                filecontents=coinc_at(T0 + 20))) == 403
    external = robot.create_event("External", "Fermi", "fermi.xml", search="GRB",
                                  filecontents=(DATA / "fermi-test.xml").read_bytes())
    assert external.status_code == 201 and external.json()["graceid"].startswith("E")


def test_advocate_signs_off(accounts, world, gracedb_service):
    advocate, sid = accounts["advocate"], world["sid"]
    assert status_of(lambda: advocate.create_superevent(T0 - 1, T0, T0 + 1, world["graceid"])) == 403
    assert status_of(lambda: advocate.write_label(sid, "EM_Selected")) == 403
    signoff = advocate.create_signoff(sid, "ADV", "OK", "vetted").json()
    assert signoff["submitter"] == "advocate.only"
    labels = set(advocate.superevent(sid).json()["labels"])
    assert "ADVOK" in labels and "ADVREQ" not in labels
    assert advocate.remove_label(sid, "ADVOK").status_code == 204
    assert advocate.write_label(sid, "ADVNO").status_code == 201


def test_anonymous_reads_public_data_only(gracedb_service, accounts, world):
    anonymous = GraceDb(gracedb_service.url, force_noauth=True, retries=0)
    robot, sid, graceid = accounts["robot"], world["sid"], world["graceid"]
    assert anonymous.ping().status_code == 200
    hidden = {
        "event": lambda: anonymous.event(graceid),
        "event files": lambda: anonymous.files(graceid),
        "event log": lambda: anonymous.logs(graceid),
        "superevent": lambda: anonymous.superevent(sid),
        "superevent labels": lambda: anonymous.labels(sid),
    }
    assert {what: status_of(call) for what, call in hidden.items()} == {w: 404 for w in hidden}
    assert list(anonymous.events()) == []
    assert sid not in {s["superevent_id"] for s in anonymous.superevents(f"{T0 - 5} .. {T0 + 5}")}
    assert status_of(lambda: anonymous.write_log(sid, "spam")) == 401

    robot.modify_permissions(sid, "expose")
    public_log = robot.write_log(sid, "public sky map", filename="public.fits",
                                 filecontents=b"PUBLIC", tag_name=["public"]).json()
    assert anonymous.superevent(sid).json()["superevent_id"] == sid
    assert [s["superevent_id"] for s in anonymous.superevents(f"{T0 - 5} .. {T0 + 5}")] == [sid]
    assert anonymous.labels(sid).json()["labels"] == robot.labels(sid).json()["labels"] != []
    assert [v["N"] for v in anonymous.voevents(sid).json()["voevents"]] == [1]
    assert [e["N"] for e in anonymous.logs(sid).json()["log"]] == [public_log["N"]]
    assert anonymous.files(sid, "public.fits").read() == b"PUBLIC"
    assert set(anonymous.files(sid).json()) == {"public.fits", "public.fits,0"}
    assert status_of(lambda: anonymous.files(sid, "bayestar.fits")) == 404
    assert status_of(lambda: anonymous.signoffs(sid)) == 404
    assert status_of(lambda: anonymous.event(graceid)) == 404
    robot.modify_permissions(sid, "hide")
    assert status_of(lambda: anonymous.superevent(sid)) == 404


def test_adduser_role_option(gracedb_service):
    result = subprocess.run(
        [sys.executable, "-m", "gw_ops.ops.cli", "gracedb", "adduser", "ada.advocate",
         "--role", "advocate"], env={**os.environ, **gracedb_service.settings.as_env()},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "(advocate)" in result.stdout
    users = json.loads(auth.users_path(gracedb_service.settings).read_text())["users"]
    assert users["ada.advocate"]["roles"] == ["advocate"]
    assert users[auth.SERVICE_ACCOUNT]["roles"] == sorted(auth.SERVICE_ROLES)
    refused = subprocess.run(
        [sys.executable, "-m", "gw_ops.ops.cli", "gracedb", "adduser", "x", "--role", "admin"],
        env={**os.environ, **gracedb_service.settings.as_env()},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "admin" in refused.stderr
