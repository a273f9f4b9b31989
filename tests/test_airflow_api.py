"""gw-ops' Airflow REST client against a tiny scripted HTTP server (a fake server, the
official client unmodified): a named run the server failed to create (500, as Airflow's
API server answers when SQLite's busy timeout breaks its deadlock) is tried again."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gw_ops.ops.airflow_api import AirflowApi, ApiException

RUN = {"dag_run_id": "S261201z", "dag_id": "superevent", "state": "queued", "run_type": "manual",
       "run_after": "2026-12-01T00:00:00Z", "logical_date": None, "conf": {}, "note": None,
       "queued_at": None, "start_date": None, "end_date": None, "data_interval_start": None,
       "data_interval_end": None, "last_scheduling_decision": None, "triggered_by": "rest_api",
       "triggering_user_name": "admin", "bundle_version": None, "dag_versions": [],
       "dag_display_name": "superevent", "duration": None, "partition_key": None}


@pytest.fixture
def scripted_airflow():
    posts: list[int] = []
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/auth/token":
                return self._send(201, {"access_token": "token"})
            status = answers.pop(0)
            posts.append(status)
            return self._send(status, RUN if status == 200 else {"detail": "scripted"})

        def do_GET(self):  # noqa: N802
            return self._send(200, RUN)

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = AirflowApi(f"http://127.0.0.1:{server.server_address[1]}", "admin", "pw")
    api.TRIGGER_SERVER_ERROR_WAITS_S = (0.01, 0.01)
    yield api, answers, posts
    server.shutdown()
    server.server_close()


def test_a_named_run_the_server_failed_is_tried_again_and_found_existing(scripted_airflow):
    api, answers, posts = scripted_airflow
    answers[:] = [500, 409]
    assert api.trigger("superevent", run_id="S261201z")["dag_run_id"] == "S261201z"
    assert posts == [500, 409]


def test_a_run_without_an_id_is_not_tried_again_and_a_plain_duplicate_is_an_error(scripted_airflow):
    api, answers, posts = scripted_airflow
    answers[:] = [500]
    with pytest.raises(ApiException) as raised:
        api.trigger("superevent")
    assert raised.value.status == 500 and posts == [500]
    answers[:] = [409]
    with pytest.raises(ApiException) as raised:
        api.trigger("superevent", run_id="S261201z")
    assert raised.value.status == 409
