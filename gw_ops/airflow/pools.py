"""The Airflow pools of gw-ops, declared once.

``superevent`` (1 slot)
    Superevents are created and updated serially, as GWCelery's superevent worker does.
``exttrig`` (1 slot)
    External triggers are handled serially.
``openmp`` (N slots)
    BAYESTAR localizations and volume renderings, each with ``omp_threads`` OpenMP
    threads, so N = cores // threads (at least 1) keeps the CPUs busy but not oversubscribed.

The same names are the Celery queues of the distributed stack (docker-compose.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass

from gw_ops.config import Settings

SUPEREVENT_POOL = "superevent"
EXTTRIG_POOL = "exttrig"
OPENMP_POOL = "openmp"


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def pool_specs(settings: Settings) -> list[PoolSpec]:
    """Every pool with its size for these settings."""
    return [
        PoolSpec(SUPEREVENT_POOL, 1, "serial superevent manager lane"),
        PoolSpec(EXTTRIG_POOL, 1, "serial external-trigger lane"),
        PoolSpec(OPENMP_POOL, settings.openmp_pool_size,
                 f"BAYESTAR and volume plots, {settings.omp_threads_effective} OpenMP threads each"),
    ]


def ensure_pools(settings: Settings) -> list[PoolSpec]:
    """Create or update the pools in Airflow's metadata database (needs DB access)."""
    from airflow.models.pool import Pool

    specs = pool_specs(settings)
    for spec in specs:
        Pool.create_or_update_pool(name=spec.name, slots=spec.slots, description=spec.description,
                                   include_deferred=False)
    return specs
