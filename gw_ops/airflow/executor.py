"""The local stack's executor: Airflow's LocalExecutor with the alert path's modules pre-imported.

Airflow 3's LocalExecutor forks its worker processes from the scheduler when it starts,
and each worker forks one supervised process per task (``os.fork`` in the Task SDK's
supervisor).  A module imported before those forks is already imported in every task
process.  Measured on the 2-core machine: importing ``ligo.skymap.bayestar`` costs
2.4 s in a fresh process, ligo.p_astro 0.3-0.9 s, Airflow's Task SDK and the standard
provider another second (part of every task's "DAG file parse").  Every task start on the
alert path paid this, three times in a row between the upload and the preliminary alert.

:class:`WarmLocalExecutor` imports the modules named by the setting
``task_preload_modules`` in the scheduler, once, before it forks its workers (the copies
are shared copy-on-write).  Only imports: no threads, OpenMP regions, sockets or clients
are created before the fork, so nothing that is unsafe across ``fork`` is inherited.

A module that fails to import is logged and skipped: the task that needs it then imports
it itself (and fails there, visibly, if it really is missing).
"""
from __future__ import annotations

import importlib
import logging
import time

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)


def preload_modules(modules: tuple[str, ...]) -> dict[str, float]:
    """Import ``modules`` now; return the seconds each import took (failed ones left out).

    Parameters
    ----------
    modules : tuple of str
        Dotted module names.
    """
    took: dict[str, float] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 (a preload is an optimisation, never a failure)
            log.warning("not preloaded for task processes: %s (%s: %s)", name, type(exc).__name__, exc)
            continue
        took[name] = time.perf_counter() - started
    return took


class WarmLocalExecutor(LocalExecutor):
    """LocalExecutor whose task processes start with ``task_preload_modules`` imported.

    Set as ``AIRFLOW__CORE__EXECUTOR=gw_ops.airflow.executor.WarmLocalExecutor`` by
    ``gw-ops up`` (:func:`gw_ops.ops.stack.airflow_env`).  Needs the ``fork`` start method
    (Airflow's ``mp_start_method``, set to ``fork`` by ``gw-ops up``): with ``spawn`` or
    ``forkserver`` the workers would not inherit the imports (nothing breaks, the tasks
    are only as slow as before).
    """

    def start(self) -> None:
        from gw_ops.config import get_settings

        started = time.perf_counter()
        took = preload_modules(get_settings().task_preload_modules)
        log.info("preloaded %d modules for task processes in %.1f s", len(took),
                 time.perf_counter() - started)
        super().start()
