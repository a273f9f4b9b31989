"""``gw-ops demo``: the main job, one mock candidate carried all the way to a public alert.

1. Bring the local stack up (or reuse a healthy one) and wait until the pipeline's DAGs
   are parsed.
2. Connect pygcn's own VOEvent client (``gcn.voeventclient.listen``, what a GCN user
   runs) to the gw-ops broker.
3. Upload one mock BNS/NSBH coincidence to the local GraceDB as gstlal/MDC.
4. Follow it: superevent created, sky map ready, preliminary alert sent, and the
   preliminary VOEvent received by the pygcn client.
5. Print the timeline, the superevent id, the sky-map PNG path and the Airflow login.
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
#: DAGs the alert path needs.
PIPELINE_DAGS = ("lvalert_superevents_handle", "lvalert_orchestrator_localize_preferred",
                 "lvalert_orchestrator_handle_superevent")


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


def _wait(predicate, timeout: float, interval: float = 0.25):
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
    from gw_ops.mock.pipeline import upload_mock_event
    from gw_ops.ops import stack
    from gw_ops.ops.airflow_api import AirflowApi

    started = time.monotonic()
    running = stack.running_settings(settings)
    if stack.status(running, out=lambda line: None) != 0:
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
    sid = _wait(superevent_id, deadline - time.time())
    if not sid:
        out("no superevent was created in time; see `gw-ops status` and the Airflow UI")
        return 4
    t_superevent = time.time()
    out(f"superevent {sid}")

    def labels(object_id):
        return {entry["name"] for entry in client.labels(object_id).json()["labels"]}

    t_skymap = _wait(lambda: "SKYMAP_READY" in labels(graceid) and time.time(), deadline - time.time(), 0.5)
    t_prelim_sent = _wait(lambda: "GCN_PRELIM_SENT" in labels(sid) and time.time(), deadline - time.time(), 0.5)
    received = _wait(lambda: receiver.preliminary_for(sid), max(1.0, deadline - time.time()))
    if not received:
        out("the preliminary alert did not reach the pygcn client in time")
        return 5
    t_wire = received[0]
    png_path = Path(settings.state_path) / "demo" / f"{sid}.bayestar.png"
    png_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        png_path.write_bytes(client.files(graceid, "bayestar.png").read())
    except Exception as exc:  # noqa: BLE001 (the alert is the demo's result; the PNG is extra)
        png_path = Path(f"(not available: {exc})")
    voevent_path = png_path.with_name(f"{sid}-preliminary.xml")
    voevent_path.write_bytes(received[1])

    out("")
    out(f"timeline of {sid} (seconds after the upload of {graceid}):")
    for label, moment in (("upload", t_upload), ("superevent seen", t_superevent),
                          ("sky map ready (SKYMAP_READY)", t_skymap),
                          ("preliminary sent (GCN_PRELIM_SENT)", t_prelim_sent),
                          ("preliminary VOEvent on the wire (pygcn)", t_wire)):
        when = f"{moment - t_upload:7.1f} s" if moment else "      ?"
        out(f"  {when}  {label}")
    out("")
    out(f"superevent:    {sid}  ({settings.gracedb_api_url}superevents/{sid}/)")
    out(f"sky map PNG:   {png_path}")
    out(f"VOEvent:       {voevent_path}")
    out(f"Airflow UI:    {settings.airflow_api_url}  (user {user}, password {password})")
    out(f"demo took {time.monotonic() - started:.1f} s")
    if not keep_up:
        stack.down(settings, out=out)
    return 0
