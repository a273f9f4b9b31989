"""Stopping a child process group: the one way the ops layer and the tests end what they started.

Every long-lived child (tansu, a ``gw-ops`` command under test, a Celery worker) is started
with ``start_new_session=True`` so that its own children (forked workers, serve loops) share
its process group; stopping the group, not the pid, leaves no orphan behind.
"""
from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Send ``sig`` to the process group led by ``proc``, then SIGKILL if it outlives ``timeout_s``.

    Parameters
    ----------
    proc : subprocess.Popen
        A process started with ``start_new_session=True`` (it leads its own group).
    sig : int
        First signal (default SIGTERM: a clean shutdown).
    timeout_s : float
        Seconds to wait after each signal.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout_s)
    except ProcessLookupError:  # the group ended between poll() and killpg()
        pass
