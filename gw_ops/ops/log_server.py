"""Airflow's task and trigger log servers, bound to the stack's host only.

Airflow 3.3's scheduler and triggerer start their log servers (``airflow serve-logs``)
on every interface (``host=""`` in ``airflow.utils.serve_logs.core``; no setting changes
it), so the logs of every task would answer from any machine that reaches this one.  The
local stack therefore runs the scheduler and triggerer with ``--skip-serve-logs`` and this
process instead: Airflow's own log-server application (JWT-checked, serving the log
folder) on ``[logging] worker_log_server_port`` and ``trigger_log_server_port``, bound to
``settings.host`` (127.0.0.1 by default).

The API server fetches logs of running and deferred tasks from
``http://<hostname>:<port>``; :func:`stack_hostname` (the stack's ``[core]
hostname_callable``) makes that hostname ``settings.host``.

Run as ``python -m gw_ops.ops.log_server`` with the stack's Airflow environment.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal


def stack_hostname() -> str:
    """Host name Airflow records for tasks and triggerers of the local stack: its bind address."""
    return os.environ.get("GW_OPS_HOST", "127.0.0.1")


async def _serve(host: str, ports: list[int]) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        # Each uvicorn server would take SIGTERM for itself, and only the last one would
        # stop: one handler below stops both.
        def capture_signals(self):
            return contextlib.nullcontext()

    servers = [Server(uvicorn.Config("airflow.utils.serve_logs.log_server:get_app", factory=True,
                                     host=host, port=port, log_config=None, access_log=False))
               for port in ports]

    def stop(signum, frame) -> None:
        for server in servers:
            server.should_exit = True
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    from airflow.configuration import conf

    from gw_ops.config import get_settings

    settings = get_settings()
    ports = [conf.getint("logging", "worker_log_server_port"), conf.getint("logging", "trigger_log_server_port")]
    print(f"Airflow log servers on {settings.host}:{ports[0]} (tasks) and {settings.host}:{ports[1]} (triggers)",
          flush=True)
    asyncio.run(_serve(settings.host, ports))


if __name__ == "__main__":
    main()
