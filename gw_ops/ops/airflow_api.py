"""Airflow's REST API (``/api/v2``) through the official client, ``apache-airflow-client``.

The client is generated from Airflow's OpenAPI document and pinned to Airflow's version.
What it leaves to its user is the login: Airflow 3 wants a JWT, which the auth manager
hands out at ``POST /auth/token`` for a user name and password.  :class:`AirflowApi`
gets one, gives it to the client, and logs in again once when a call answers 401 (the
token expired).  It adds the few waits the CLI, the demo, the tests and the benchmarks
share (``wait_for_dag``, ``wait_run``); everything else is the official client's API
objects (``.dags``, ``.dag_runs``, ``.task_instances_api``, ``.pools``, ``.connections``)
called through :meth:`AirflowApi.call`.

Examples
--------
>>> api = AirflowApi("http://127.0.0.1:8080", "admin", password)       # doctest: +SKIP
>>> api.call(api.pools.get_pools).pools                                # doctest: +SKIP
"""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Any, Callable, TypeVar

import airflow_client.client as airflow_client
from airflow_client.client.exceptions import ApiException, UnauthorizedException

#: Final states of a DAG run.
FINISHED = ("success", "failed")
T = TypeVar("T")

__all__ = ["FINISHED", "AirflowApi", "ApiException", "fetch_token", "plain"]


def fetch_token(base_url: str, username: str, password: str, timeout: float = 30.0) -> str:
    """A JWT from Airflow's ``/auth/token`` (simple auth manager) for these credentials."""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/auth/token", method="POST",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
        return json.load(response)["access_token"]


def plain(model: Any) -> Any:
    """A response model of the client as plain JSON data (enums as their strings)."""
    return json.loads(model.to_json())


class AirflowApi:
    """The official Airflow client, logged in to one API server.

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:8080`` (the API lives under ``/api/v2``).
    username, password : str
        Credentials of the auth manager (the local stack: ``admin`` and its generated password).
    timeout : float
        Per-request timeout (s).
    """

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._credentials = (username, password)
        self.timeout = timeout
        self.configuration = airflow_client.Configuration(host=self.base_url)
        self.client = airflow_client.ApiClient(self.configuration)
        self.dags = airflow_client.DAGApi(self.client)
        self.dag_runs = airflow_client.DagRunApi(self.client)
        self.task_instances_api = airflow_client.TaskInstanceApi(self.client)
        self.pools = airflow_client.PoolApi(self.client)
        self.connections = airflow_client.ConnectionApi(self.client)

    @classmethod
    def for_stack(cls, settings) -> AirflowApi:
        """Logged in to the local stack of ``settings`` as its admin."""
        from gw_ops.ops.state import airflow_login  # not ops.stack: that imports this module
        return cls(settings.airflow_api_url, *airflow_login(settings))

    def login(self) -> None:
        """Get a fresh token for every later call."""
        self.configuration.access_token = fetch_token(self.base_url, *self._credentials, timeout=self.timeout)

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a method of one of the client's API objects, logging in first and again once on 401."""
        kwargs.setdefault("_request_timeout", self.timeout)
        if self.configuration.access_token is None:
            self.login()
        try:
            return method(*args, **kwargs)
        except UnauthorizedException:
            self.login()
            return method(*args, **kwargs)

    # ------------------------------------------------------------------ shared shortcuts
    def dag_exists(self, dag_id: str) -> bool:
        """Whether the DAG processor has parsed ``dag_id``."""
        try:
            self.call(self.dags.get_dag, dag_id)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    #: Waits (s) before the tries of a run with a named ``run_id`` that the server failed (5xx).
    TRIGGER_SERVER_ERROR_WAITS_S = (0.5, 2.0)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> dict:
        """Create a DAG run (``logical_date`` null); a duplicate ``run_id`` raises ApiException 409.

        A named ``run_id`` is tried again after a server error: on the SQLite metadata
        database Airflow's API server can deadlock two run creations until the busy timeout
        fails one (500).  When the failed try did create the run, the next one answers 409
        and the run is returned.  Without a ``run_id`` nothing is tried again (a second try
        could make a second run).
        """
        body = airflow_client.TriggerDAGRunPostBody(logical_date=None, conf=conf or {}, dag_run_id=run_id)
        waits = list(self.TRIGGER_SERVER_ERROR_WAITS_S) if run_id else []
        server_failed = False
        while True:
            try:
                return plain(self.call(self.dag_runs.trigger_dag_run, dag_id, body))
            except ApiException as exc:
                if exc.status == 409 and server_failed:
                    return self.run(dag_id, run_id)
                if not (exc.status and exc.status >= 500 and waits):
                    raise
                server_failed = True
                time.sleep(waits.pop(0))

    def run(self, dag_id: str, run_id: str) -> dict:
        """One DAG run as plain data."""
        return plain(self.call(self.dag_runs.get_dag_run, dag_id, run_id))

    def runs(self, dag_id: str, limit: int = 100) -> list[dict]:
        """The latest DAG runs of ``dag_id``, newest first."""
        response = self.call(self.dag_runs.get_dag_runs, dag_id, limit=limit, order_by=["-start_date"])
        return plain(response)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Task instances of one DAG run as plain data."""
        return plain(self.call(self.task_instances_api.get_task_instances, dag_id, run_id))["task_instances"]

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> None:
        """Wait until the DAG processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dag_exists(dag_id):
                return
            time.sleep(1.0)
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout} s")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict:
        """Wait until a DAG run finishes; returns the run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            time.sleep(0.5)
        raise TimeoutError(f"DAG run {dag_id}/{run_id} not finished after {timeout} s")
