"""Prepare Airflow's metadata database: migrate it, create or update the pools and the
connections ``redis_default`` and ``gracedb_default`` (:mod:`gw_ops.airflow.connections`).

Run as ``python -m gw_ops.airflow.setup_db`` by ``gw-ops up`` and by the compose
``airflow-init`` service, with the stack's AIRFLOW__* environment.
"""
from __future__ import annotations


def main() -> None:
    from airflow.utils.db import initdb

    from gw_ops.airflow.connections import ensure_connections
    from gw_ops.airflow.pools import ensure_pools
    from gw_ops.config import get_settings

    initdb()
    for spec in ensure_pools(get_settings()):
        print(f"pool {spec.name}: {spec.slots} slots")
    for conn_id in ensure_connections(get_settings()):
        print(f"connection {conn_id}")


if __name__ == "__main__":
    main()
