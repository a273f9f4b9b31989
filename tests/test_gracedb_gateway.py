"""The GraceDB gateway: one retry policy and one meaning per helper.

The retry policy is tested with the unmodified ``ligo-gracedb`` client against a tiny
HTTP server in the test that answers with the statuses a troubled GraceDB gives (a fake
server, not a patched client); the helpers against the real local GraceDB service.
"""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from ligo.gracedb.rest import GraceDb

from gw_ops import gracedb_client as gateway
from gw_ops.errors import TransientError, is_transient
from tests.coinc_factory import coinc_xml
from tests.helpers import free_port


class ScriptedServer:
    """An HTTP server answering each request with the next status of ``statuses``
    (the last one repeats); counts the requests."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                status = outer.statuses[min(outer.requests, len(outer.statuses) - 1)]
                outer.requests += 1
                body = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # bound: ready now
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def start(*statuses):
        server = ScriptedServer(statuses)
        servers.append(server)
        client = GraceDb(server.url, force_noauth=True, retries=0)  # the pipeline's settings
        return server, client
    yield start
    for server in servers:
        server.close()


def test_policy_waits_double_and_are_capped():
    assert gateway.RETRY.waits() == [0.5, 1.0, 2.0, 4.0]
    assert gateway.RetryPolicy(tries=7).waits() == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert gateway.ONCE.waits() == []
    assert gateway.RETRY_STATUSES == {408, 409, 429, 500, 502, 503, 504}


@pytest.mark.parametrize("status", sorted(gateway.RETRY_STATUSES))
def test_retryable_status_then_success(scripted, status):
    server, client = scripted(status, status, 200)
    waits = []
    response = gateway.call(client.get, server.url + "events/G1", sleep=waits.append)
    assert gateway.read_json(response) == {"status": 200}
    assert server.requests == 3
    assert waits == [0.5, 1.0]


@pytest.mark.parametrize("status", [500, 503, 409, 408])
def test_exhausted_retries_leave_as_transient(scripted, status):
    server, client = scripted(status)
    waits = []
    with pytest.raises(Exception) as raised:
        gateway.call(client.get, server.url + "events/G1", sleep=waits.append)
    assert is_transient(raised.value)
    assert gateway.http_status(raised.value) == status or \
        isinstance(raised.value, TransientError)
    assert server.requests == 5 and waits == [0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_errors_are_not_retried(scripted, status):
    server, client = scripted(status, 200)
    with pytest.raises(requests.HTTPError) as raised:
        gateway.call(client.get, server.url + "events/G1", sleep=pytest.fail)
    assert server.requests == 1
    assert gateway.http_status(raised.value) == status
    assert not is_transient(raised.value)


def test_connection_refused_is_retried_then_transient():
    client = GraceDb(f"http://127.0.0.1:{free_port()}/api/", force_noauth=True, retries=0)
    waits = []
    with pytest.raises(requests.ConnectionError) as raised:
        gateway.call(client.get, client._service_url + "events/G1", sleep=waits.append)
    assert is_transient(raised.value) and waits == [0.5, 1.0, 2.0, 4.0]


def test_a_graceDB_that_accepts_but_never_answers_is_a_transient_failure(base_settings, tmp_path):
    """ligo-gracedb sends without a timeout: the pipeline's client supplies the settings'
    timeouts, so a hung GraceDB ends in retries and a transient error, not a lane blocked
    for ever."""
    import dataclasses
    import socket

    # the kernel accepts connections into the backlog; nobody ever reads or answers
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/"
        settings = dataclasses.replace(base_settings, state_dir=tmp_path, gracedb_url=url,
                                       gracedb_connect_timeout_s=0.5, gracedb_read_timeout_s=0.5)
        client = gateway.gracedb_client(settings, retries=0)
        waits, outcome = [], {}

        def ask():
            try:
                gateway.call(client.get, url + "events/G1", sleep=waits.append)
            except Exception as exc:  # noqa: BLE001 (inspected below)
                outcome["error"] = exc
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(timeout=120)  # a bound on a hang, not a measurement
        assert not asking.is_alive(), "the request to a GraceDB that never answers still waits"
        assert isinstance(outcome["error"], requests.Timeout) and is_transient(outcome["error"])
        assert waits == [0.5, 1.0, 2.0, 4.0]
    finally:
        silent.close()


def test_a_write_is_tried_once(scripted):
    server, client = scripted(503, 200)
    with pytest.raises(Exception) as raised:
        gateway.write(client.post, server.url + "events/", json={})
    assert server.requests == 1 and is_transient(raised.value)


def test_label_names_accepts_strings_and_dicts():
    assert gateway.label_names(["DQV", {"name": "ADVOK", "creator": "x"}]) == {"DQV", "ADVOK"}
    assert gateway.read_json({"a": 1}) == {"a": 1} and gateway.read_json([1]) == [1]


# --- the helpers against the local GraceDB service -------------------------------------

@pytest.fixture(scope="module")
def event(gracedb_service):
    """A fresh CBC event of the local service: (client, graceid)."""
    client = gracedb_service.client(retries=0)
    gpstime = 1_200_000_000.0 + (uuid.uuid4().int % 10_000) * 100.0
    response = client.create_event("CBC", "gstlal", "coinc.xml", search="AllSky",
                                   filecontents=coinc_xml(gpstime=gpstime, snr=10.0, far=1e-9))
    return client, response.json()["graceid"]


def test_reads(event):
    client, graceid = event
    assert gateway.event(client, graceid)["graceid"] == graceid
    assert "coinc.xml" in gateway.file_names(client, graceid)
    assert all("," not in name for name in gateway.file_names(client, graceid))
    assert gateway.read_file(client, graceid, "coinc.xml").startswith(b"<?xml")
    assert gateway.read_file(client, graceid, "nothing.json", missing_ok=True) is None
    with pytest.raises(requests.HTTPError):
        gateway.read_file(client, graceid, "nothing.json")
    entries = gateway.logs(client, graceid)
    assert entries and all(isinstance(entry, dict) for entry in entries)
    assert gateway.log_comments(client, graceid) == [e.get("comment", "") for e in entries]


def test_ensure_label_is_idempotent(event):
    client, graceid = event
    assert "EM_READY" not in gateway.labels(client, graceid)
    assert gateway.ensure_label(client, graceid, "EM_READY") is True
    assert gateway.ensure_label(client, graceid, "EM_READY") is False
    assert "EM_READY" in gateway.labels(client, graceid)
    # the event JSON lists labels as strings, the labels endpoint as dicts: same names
    assert gateway.label_names(gateway.event(client, graceid)["labels"]) == \
        gateway.labels(client, graceid)


def test_ensure_label_when_a_concurrent_writer_added_it(event):
    """The label appears between the check and the write: GraceDB refuses the
    duplicate, and that is success."""
    client, graceid = event

    class Racing:
        def __init__(self):
            self.first_read = True

        def labels(self, object_id):
            if self.first_read:  # the check sees no label; meanwhile another worker adds it
                self.first_read = False
                client.write_label(object_id, "ADVREQ")
                return {"labels": []}
            return client.labels(object_id)

        def write_label(self, object_id, label):
            return client.write_label(object_id, label)

    assert gateway.ensure_label(Racing(), graceid, "ADVREQ") is False
    assert "ADVREQ" in gateway.labels(client, graceid)


def test_ensure_label_raises_what_retrying_cannot_fix(event):
    client, graceid = event
    with pytest.raises(requests.HTTPError) as raised:  # no such event: 404
        gateway.ensure_label(client, "G" + "9" * 9, "DQV")
    assert gateway.http_status(raised.value) == 404 and not is_transient(raised.value)
    with pytest.raises(NameError):  # the client refuses a label GraceDB does not know
        gateway.ensure_label(client, graceid, "NO_SUCH_LABEL")
