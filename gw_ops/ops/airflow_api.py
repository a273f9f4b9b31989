"""A small client of Airflow 3's REST API (``/api/v2``) for the CLI, the demo and tests.

It logs in through the simple auth manager's ``/auth/token`` endpoint and triggers or
follows DAG runs.  No Airflow import: it talks HTTP like any user.
"""
from __future__ import annotations

import time
from typing import Any

import httpx

#: Final states of a DAG run.
FINISHED = ("success", "failed")


class AirflowClient:
    """Client of one Airflow API server.

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:8080``.
    username, password : str
        Simple auth manager credentials.
    timeout : float
        Per-request timeout (s).
    """

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.post("/auth/token", json=self._credentials)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Authenticated request; logs in again once when the token expired."""
        response = self._http.request(method, path, headers=self._headers(), **kwargs)
        if response.status_code == 401:
            self._token = None
            response = self._http.request(method, path, headers=self._headers(), **kwargs)
        return response

    def dag_exists(self, dag_id: str) -> bool:
        return self.request("GET", f"/api/v2/dags/{dag_id}").status_code == 200

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> dict:
        """Create a DAG run (``logical_date`` null); a duplicate ``run_id`` answers 409."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        response = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        response.raise_for_status()
        return response.json()

    def run(self, dag_id: str, run_id: str) -> dict:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return response.json()

    def runs(self, dag_id: str, limit: int = 100) -> list[dict]:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                                params={"limit": limit, "order_by": "-start_date"})
        response.raise_for_status()
        return response.json()["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return response.json()["task_instances"]

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
