"""Prepare Airflow's metadata database: migrate it and create or update the pools.

Run as ``python -m gw_ops.airflow.setup_db`` by ``gw-ops up`` and by the compose
``airflow-init`` service, with the stack's AIRFLOW__* environment.
"""
from __future__ import annotations


def main() -> None:
    from airflow.utils.db import initdb

    from gw_ops.airflow.pools import ensure_pools
    from gw_ops.config import get_settings

    initdb()
    for spec in ensure_pools(get_settings()):
        print(f"pool {spec.name}: {spec.slots} slots")


if __name__ == "__main__":
    main()
