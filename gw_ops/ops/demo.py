"""``gw-ops demo``: the main job, one mock candidate carried all the way to a public alert.

1. Bring the local stack up (or reuse a healthy one) and wait until the pipeline's DAGs
   are parsed.
2. Connect pygcn's own VOEvent client (``gcn.voeventclient.listen``, what a GCN user
   runs) to the gw-ops broker.
3. Upload one mock BNS/NSBH coincidence to the local GraceDB as gstlal/MDC.
4. Follow it: superevent created, sky map ready, preliminary alert sent, and the
   preliminary VOEvent received by the pygcn client.
5. Print the timeline, the superevent id, its GraceDB page, the Airflow page of its run
   (the ``superevent`` DAG's run named after it) with its tasks' states, the sky-map PNG
   path and the Airflow login.  Exit status 6 when that run is missing.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gw_ops.config import Settings

#: Seconds the demo waits for the alert before giving up.
DEMO_TIMEOUT_S = 170.0
#: Seconds the demo waits, after the alert, for the sky-map plot.
PNG_TIMEOUT_S = 60.0
#: DAGs the alert path needs (and the one run per superevent).
PIPELINE_DAGS = ("lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                 "lvalert_orchestrator_handle_superevent", "superevent")
#: Seconds the demo waits, after the alert, for the superevent's run to be listed.
SUPEREVENT_RUN_WAIT_S = 60.0


@dataclass
class AlertReceiver:
    """pygcn's VOEvent client in a background thread, keeping what it receives."""

    host: str
    port: int
    received: list[tuple[float, bytes]] = field(default_factory=list)

    def start(self) -> None:
        import gcn.voeventclient

        def handler(payload, root):
            self.received.append((time.time(), payload))

        log = logging.getLogger("gw_ops.ops.demo.pygcn")
        log.setLevel(logging.WARNING)
        thread = threading.Thread(target=gcn.voeventclient.listen, daemon=True, name="pygcn-listen",
                                  kwargs={"host": self.host, "port": self.port, "handler": handler,
                                          "ivorn": "ivo://gw-ops/demo", "max_reconnect_timeout": 2,
                                          "log": log})
        thread.start()

    def preliminary_for(self, superevent_id: str) -> tuple[float, bytes] | None:
        """The first Preliminary VOEvent of ``superevent_id`` received, with its arrival time."""
        from gw_ops.formats.voevent import voevent_params

        for arrived, payload in self.received:
            try:
                params = voevent_params(payload)
            except Exception:  # noqa: BLE001 (other traffic)
                continue
            if params.get("GraceID") == superevent_id and params.get("AlertType") == "Preliminary":
                return arrived, payload
        return None


def superevent_run_url(settings: Settings, superevent_id: str) -> str:
    """The Airflow UI page of a superevent's run (run id = superevent id)."""
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    return f"{settings.airflow_api_url}/dags/{SUPEREVENT_DAG_ID}/runs/{superevent_id}"


def _superevent_run(airflow, superevent_id: str) -> dict | None:
    """The superevent's run as plain data, or None while it does not exist."""
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    from gw_ops.ops.airflow_api import ApiException

    try:
        return airflow.run(SUPEREVENT_DAG_ID, superevent_id)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _unix(timestamp: str | None) -> float | None:
    from datetime import datetime
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() if timestamp else None


def _file_or_none(client, graceid: str, filename: str) -> bytes | None:
    """A file of a GraceDB event, or None while it does not exist."""
    try:
        return client.files(graceid, filename).read()
    except Exception:  # noqa: BLE001 (404 until it is uploaded)
        return None


def wait_until(predicate, timeout: float, interval: float = 0.25):
    """Call ``predicate()`` until it returns something true, and return that.

    Parameters
    ----------
    predicate : callable
        No arguments; a true answer ends the wait.
    timeout : float
        Seconds to keep asking (monotonic clock).
    interval : float
        Seconds between calls.

    Returns
    -------
    object or None
        The first true answer, or None when ``timeout`` passed first.  Exceptions of
        ``predicate`` are not caught.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def run(settings: Settings, keep_up: bool = True, out=print) -> int:
    """Run the demo; returns an exit status (0 when the alert reached the pygcn client)."""
    from gw_ops.gracedb_client import gracedb_client
    from gw_ops.gracedb_urls import superevent_page_url
    from gw_ops.handlers.superevent_runs import SUPEREVENT_DAG_ID
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops import stack
    from gw_ops.ops.airflow_api import AirflowApi

    started = time.monotonic()
    running = stack.running_settings(settings)
    if stack.status(running, out=lambda line: None) != 0:
        if stack.running_components(settings):
            # A stack is up but not (yet) healthy (just started, or a component restarting):
            # wait for it rather than start a second one, which `up` refuses.
            if not wait_until(lambda: stack.status(running, out=lambda line: None) == 0, stack.UP_TIMEOUT_S, 1.0):
                out("the running stack is not healthy (see below, and `gw-ops down` to start afresh):")
                stack.status(running, out=out)
                return 1
        else:
            code = stack.up(settings, out=out)
            if code:
                return code
    settings = stack.running_settings(settings)
    user, password = stack.airflow_login(settings)
    airflow = AirflowApi(settings.airflow_api_url, user, password)
    for dag_id in PIPELINE_DAGS:
        airflow.wait_for_dag(dag_id, timeout=120)
    out(f"stack ready after {time.monotonic() - started:.1f} s ({settings.executor} executor)")

    receiver = AlertReceiver(settings.host, settings.broker_port)
    receiver.start()
    client = gracedb_client(settings)
    upload = upload_mock_event(settings, uploads=1, with_external=False, client=client)
    t_upload = upload["uploaded_at"][0]
    graceid = upload["graceids"][0]
    out(f"uploaded mock event {upload['name']} as {graceid} (gstlal/MDC, GPS {upload['gps_time']:.3f})")

    def superevent_id():
        return client.event(graceid).json().get("superevent")

    deadline = t_upload + DEMO_TIMEOUT_S
    sid = wait_until(superevent_id, deadline - time.time())
    if not sid:
        out("no superevent was created in time; see `gw-ops status` and the Airflow UI")
        return 4
    t_superevent = time.time()
    out(f"superevent {sid}")

    def labels(object_id):
        return {entry["name"] for entry in client.labels(object_id).json()["labels"]}

    t_skymap = wait_until(lambda: "SKYMAP_READY" in labels(graceid) and time.time(), deadline - time.time(), 0.5)
    t_prelim_sent = wait_until(lambda: "GCN_PRELIM_SENT" in labels(sid) and time.time(), deadline - time.time(), 0.5)
    received = wait_until(lambda: receiver.preliminary_for(sid), max(1.0, deadline - time.time()))
    if not received:
        out("the preliminary alert did not reach the pygcn client in time")
        return 5
    t_wire = received[0]
    demo_dir = Path(settings.state_path) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    voevent_path = demo_dir / f"{sid}-preliminary.xml"
    voevent_path.write_bytes(received[1])
    # The plot is made after the alert, at low priority (no alert waits for it).
    png_path = demo_dir / f"{sid}.bayestar.png"
    png = wait_until(lambda: _file_or_none(client, graceid, "bayestar.png"), PNG_TIMEOUT_S, 0.5)
    if png:
        png_path.write_bytes(png)
    else:  # the alert is the demo's result; the PNG is extra
        png_path = Path(f"(not made within {PNG_TIMEOUT_S:.0f} s of the alert)")

    run = wait_until(lambda: _superevent_run(airflow, sid), SUPEREVENT_RUN_WAIT_S, 0.5)
    t_run = _unix(run.get("queued_at")) if run else None

    out("")
    out(f"timeline of {sid} (seconds after the upload of {graceid}):")
    for label, moment in sorted((("upload", t_upload), ("superevent seen", t_superevent),
                                 (f"superevent run {sid} created", t_run),
                                 ("sky map ready (SKYMAP_READY)", t_skymap),
                                 ("preliminary sent (GCN_PRELIM_SENT)", t_prelim_sent),
                                 ("preliminary VOEvent on the wire (pygcn)", t_wire)),
                                key=lambda item: item[1] or float("inf")):
        when = f"{moment - t_upload:7.1f} s" if moment else "      ?"
        out(f"  {when}  {label}")
    out("")
    out(f"superevent:    {sid}  ({settings.gracedb_api_url}superevents/{sid}/)")
    out(f"GraceDB page:  {superevent_page_url(settings, sid)}")
    out(f"its run:       {superevent_run_url(settings, sid)}")
    if run:
        tasks = {ti["task_id"]: ti.get("state") for ti in airflow.task_instances(SUPEREVENT_DAG_ID, sid)}
        out("               " + ", ".join(f"{task} {state or 'waiting'}" for task, state in tasks.items()))
    out(f"sky map PNG:   {png_path}")
    out(f"VOEvent:       {voevent_path}")
    out(f"Airflow UI:    {settings.airflow_api_url}  (user {user}, password {password})")
    out(f"demo took {time.monotonic() - started:.1f} s")
    if not run:
        out(f"no run of the {SUPEREVENT_DAG_ID} DAG named {sid} within {SUPEREVENT_RUN_WAIT_S:.0f} s; "
            "see the lvalert_superevents_handle runs in the Airflow UI")
    if not keep_up:
        stack.down(settings, out=out)
    return 0 if run else 6
