"""Driver arguments of the local stack's SQLite metadata database, for Airflow's
``[database] sql_alchemy_connect_args`` (and ``_async``), which name a dict by import path.

Only the busy timeout: how long a statement waits for another connection's write lock
before it fails with "database is locked" (why it stays at 5 s: the setting's
documentation).  The value is the setting
``airflow_sqlite_busy_timeout_s``, which the stack passes to its Airflow processes as
``GW_OPS_AIRFLOW_SQLITE_BUSY_TIMEOUT_S``; it is read from the environment here, without
:func:`gw_ops.config.get_settings`, because Airflow imports this module while it is
still configuring itself.
"""
from __future__ import annotations

import os

from gw_ops.config import Settings


def _busy_timeout_s() -> float:
    """The busy timeout (s) from the environment, else the setting's default."""
    default = Settings.__dataclass_fields__["airflow_sqlite_busy_timeout_s"].default
    return float(os.environ.get("GW_OPS_AIRFLOW_SQLITE_BUSY_TIMEOUT_S") or default)


#: ``sqlite3.connect`` (and aiosqlite) keyword arguments: ``timeout`` in seconds.
SQLITE_CONNECT_ARGS: dict[str, float] = {"timeout": _busy_timeout_s()}
