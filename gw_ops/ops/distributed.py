"""The distributed stack: Airflow's CeleryExecutor, one Celery worker per queue.

``gw-ops up --executor celery`` (``executor = "celery"``) runs the stack of
:mod:`gw_ops.ops.stack` with these differences:

* Airflow's metadata database is PostgreSQL: a database of the stack's own on the server at
  ``postgres_url`` (created by ``up``, see :func:`ensure_stack_database`), unless
  ``airflow_db_url`` names one; it is also Celery's result backend.
* The stack's Redis (``redis_url``) is the Celery broker, every Celery key under the
  stack's ``key_prefix`` (kombu's ``global_keyprefix``), so stacks sharing one Redis never
  take each other's tasks.
* One ``airflow celery worker`` per queue of :data:`WORKER_QUEUES`.  A gw-ops pool is also
  the queue of the same name (:func:`gw_ops.airflow.handler_dags.queue_for_pool`); its
  worker has as many task slots as the pool (:func:`worker_concurrency`): 1 for
  ``superevent`` and ``exttrig``; ``default`` has ``celery_default_concurrency``.  The
  ``openmp`` worker has this machine's ``cores // omp_threads``
  (:func:`openmp_worker_concurrency`), and the ``openmp`` pool the sum over every host
  with an ``openmp`` worker (``openmp_pool_slots``): the localization lane runs one drain
  per pool slot, so each worker, wherever it runs, localizes an event of its own.
* A worker that dies in a task (SIGKILL, a lost host) is recovered by Airflow, not by
  Celery: the scheduler fails the task instance once its heartbeat has been missing for
  ``task_heartbeat_timeout_s`` and runs the retry on a live worker, whose drain reclaims
  the messages the dead one left pending.  Celery's late acknowledgement
  (``task_acks_late``, on by default) leaves the dead worker's message in the broker, to
  be handed out again after ``celery_visibility_timeout_s``; by then Airflow's API refuses
  to start that try again (it is no longer queued), so it never runs twice.
* Flower, when ``flower`` is on.

This module is the one definition of the queues, worker concurrencies and Celery settings:
``docker-compose.yaml`` has one ``worker-<queue>`` service per queue with the same
concurrency and the same ``AIRFLOW__CELERY*`` variables, and ``tests/test_compose.py``
checks that the two agree.

Celery records, for every task, the worker that ran it and its queue in the result backend
(``result_extended``: table ``celery_taskmeta``, joined to Airflow's ``task_instance`` on
``external_executor_id``), which is how an operator (and the tests) see where work ran.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from gw_ops.airflow.pools import EXTTRIG_POOL, OPENMP_POOL, SUPEREVENT_POOL, pool_specs
from gw_ops.config import Settings

#: Airflow's default queue (``[operators] default_queue``): tasks outside the gw-ops pools.
DEFAULT_QUEUE = "default"
#: Every Celery queue of gw-ops, each served by its own worker.
WORKER_QUEUES: tuple[str, ...] = (DEFAULT_QUEUE, SUPEREVENT_POOL, EXTTRIG_POOL, OPENMP_POOL)
#: Celery settings beyond Airflow's defaults (``[celery] extra_celery_config``): keep the
#: worker and queue of every task in the result backend.
EXTRA_CELERY_CONFIG: dict[str, object] = {"result_extended": True}
#: Seconds a health check waits for a worker's answer to ping.
PING_TIMEOUT_S = 2.0


def worker_service(queue: str) -> str:
    """Name of the worker of ``queue``: its component in ``gw-ops status``, its compose service."""
    return f"worker-{queue}"


def worker_concurrency(settings: Settings, queue: str) -> int:
    """Task slots of the worker of ``queue`` on this machine: ``celery_default_concurrency``
    for ``default``, :func:`openmp_worker_concurrency` for ``openmp``, else the pool's slots."""
    if queue == DEFAULT_QUEUE:
        return settings.celery_default_concurrency
    if queue == OPENMP_POOL:
        return openmp_worker_concurrency(settings)
    slots = {spec.name: spec.slots for spec in pool_specs(settings)}
    return slots[queue]


def openmp_worker_concurrency(settings: Settings) -> int:
    """Slots of the ``openmp`` worker on this machine: ``celery_openmp_concurrency``, else its
    cores // ``omp_threads``, at least 1.

    The ``openmp`` pool has ``openmp_pool_slots`` slots, the sum over every host's
    ``openmp`` worker (0: this machine's worker alone); raise it when a host is added, or
    the pool, not the new worker, limits how many localizations run at once.
    """
    return settings.celery_openmp_concurrency or max(1, (os.cpu_count() or 1) // settings.omp_threads_effective)


def worker_node(queue: str) -> str:
    """Celery node name of the worker of ``queue`` on this machine (``openmp@host``)."""
    return f"{queue}@{socket.gethostname()}"


def total_concurrency(settings: Settings) -> int:
    """Task slots of all workers together (the scheduler's ``parallelism`` on this stack),
    the ``openmp`` workers of other hosts included (the ``openmp`` pool counts them)."""
    openmp_slots = {spec.name: spec.slots for spec in pool_specs(settings)}[OPENMP_POOL]
    return sum(max(worker_concurrency(settings, queue), openmp_slots) if queue == OPENMP_POOL
               else worker_concurrency(settings, queue) for queue in WORKER_QUEUES)


def worker_arguments(settings: Settings, queue: str) -> list[str]:
    """Arguments of ``airflow`` that run the worker of ``queue`` in this stack.

    ``--skip-serve-logs``: the stack's log server (:mod:`gw_ops.ops.log_server`) serves the
    log folder that all workers on this machine share, bound to ``settings.host`` only.
    """
    return ["celery", "worker", "--queues", queue,
            "--concurrency", str(worker_concurrency(settings, queue)),
            "--celery-hostname", worker_node(queue), "--skip-serve-logs"]


def flower_arguments(settings: Settings) -> list[str]:
    """Arguments of ``airflow`` that run Flower on ``settings.host:flower_port``."""
    return ["celery", "flower", "--hostname", settings.host, "--port", str(settings.flower_port)]


def celery_key_prefix(settings: Settings) -> str:
    """Prefix of every key Celery writes in the broker (under the stack's ``key_prefix``)."""
    return settings.key("celery", "")


def broker_transport_options(settings: Settings) -> dict[str, object]:
    """Celery's Redis transport options of this stack."""
    return {"global_keyprefix": celery_key_prefix(settings),
            "visibility_timeout": int(settings.celery_visibility_timeout_s)}


def result_backend_url(settings: Settings) -> str:
    """Celery's result backend: the metadata database, through SQLAlchemy (``db+``)."""
    return "db+" + settings.airflow_sql_alchemy_conn


def celery_airflow_env(settings: Settings) -> dict[str, str]:
    """``AIRFLOW__*`` variables of every Airflow process of a Celery stack.

    The broker is ``settings.redis_url`` as given: :mod:`gw_ops.ops.stack` passes the
    settings of the Redis it actually uses.
    """
    options = broker_transport_options(settings)
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": settings.redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend_url(settings),
        "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps(EXTRA_CELERY_CONFIG),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": str(options["global_keyprefix"]),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(options["visibility_timeout"]),
        # a task lost with its killed worker is failed and retried after this (module docstring)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(int(settings.task_heartbeat_timeout_s)),
    }


def airflow_executable() -> str:
    """The ``airflow`` command of this virtualenv."""
    return str(Path(sys.executable).parent / "airflow")


# --------------------------------------------------------------------------- health
def _control_app(settings: Settings):
    """A Celery app that only talks to this stack's workers (ping), never runs tasks."""
    from celery import Celery

    app = Celery("gw-ops-control", broker=settings.redis_url, set_as_current=False)
    app.conf.broker_transport_options = broker_transport_options(settings)
    app.conf.broker_connection_retry_on_startup = False
    return app


def worker_health(settings: Settings, queue: str) -> tuple[bool, str]:
    """Whether the worker of ``queue`` answers a Celery ping; the detail names queue and slots."""
    node = worker_node(queue)
    app = _control_app(settings)
    try:
        replies = app.control.ping(destination=[node], timeout=PING_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 (broker down: unhealthy, say why)
        return False, f"ping failed: {str(exc)[:60]}"
    finally:
        app.close()
    answered = any(node in reply for reply in replies)
    state = "answers ping" if answered else "no answer to ping"
    return answered, f"{node}, queue {queue}, {worker_concurrency(settings, queue)} slots, {state}"


def flower_health(settings: Settings) -> tuple[bool, str]:
    """Whether Flower answers its health check."""
    import urllib.request

    url = f"http://{settings.host}:{settings.flower_port}/healthcheck"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local URL)
            return response.status == 200, f"HTTP {response.status} at {url}"
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)[:80]


# --------------------------------------------------------------------------- PostgreSQL
def refuse_reason(settings: Settings) -> str | None:
    """Why ``up`` cannot start a Celery stack with these settings, or None."""
    if not settings.airflow_sql_alchemy_conn.startswith("postgresql"):
        return (f"the Celery executor needs PostgreSQL as Airflow's metadata database (Celery's "
                f"result backend and several schedulers' locks), not {settings.airflow_sql_alchemy_conn!r}")
    return None


def ensure_stack_database(settings: Settings, fresh_state: bool, out=print) -> bool:
    """Create the stack's own PostgreSQL database when ``airflow_db_url`` names none.

    A database of the derived name (see ``airflow_postgres_db``) found when the state folder
    is new belonged to a stack whose state folder (secrets, Fernet key) was deleted: it is
    dropped and made again.  A database named by the settings is never dropped.  Returns
    False (after saying why) when the server does not answer.
    """
    if settings.airflow_db_url:
        return True
    import psycopg2
    from psycopg2 import sql

    name = settings.airflow_postgres_db_name
    try:
        connection = psycopg2.connect(settings.postgres_url, connect_timeout=5)
    except psycopg2.Error as exc:
        out(f"refusing to start: no PostgreSQL answers at {settings.postgres_url} "
            f"({str(exc).strip()[:120]}); the Celery stack keeps Airflow's metadata there. "
            "Start one, or set GW_OPS_POSTGRES_URL / --db.")
        return False
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = cursor.fetchone() is not None
            if exists and fresh_state and not settings.airflow_postgres_db:
                out(f"new state folder: dropping PostgreSQL database {name} left by an earlier stack")
                cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
                exists = False
            if not exists:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                out(f"created PostgreSQL database {name} for Airflow's metadata")
    finally:
        connection.close()
    return True


def drop_stack_database(settings: Settings) -> bool:
    """Drop the stack's own database (derived name only); True when one was dropped."""
    if settings.airflow_db_url or settings.airflow_postgres_db:
        return False
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(settings.postgres_url, connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            name = settings.airflow_postgres_db_name
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                return False
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            return True
    finally:
        connection.close()


def ensure_database(database_url: str, out=print) -> bool:
    """Create the PostgreSQL database ``database_url`` names if it does not exist (connecting
    to the ``postgres`` database of the same server, as the same user); True when created."""
    from urllib.parse import urlsplit

    import psycopg2
    from psycopg2 import sql

    from gw_ops.config import postgres_database_url

    name = urlsplit(database_url).path.lstrip("/")
    server = postgres_database_url(database_url, "postgres")
    connection = psycopg2.connect(server, connect_timeout=10)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is not None:
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            out(f"created PostgreSQL database {name}")
            return True
    finally:
        connection.close()


def prepare_deployment(settings: Settings, out=print) -> None:
    """What a distributed deployment needs once before its services start (compose's
    ``airflow-init`` runs ``gw-ops prepare``): Airflow's metadata database migrated with the
    pools and connections (:mod:`gw_ops.airflow.setup_db`, reading the process's
    ``AIRFLOW__*`` variables), the local GraceDB's PostgreSQL database, and the pipeline's
    GraceDB account with its netrc file, and the Airflow admin's password file (the password
    generated once into ``secrets.json`` and printed the first time).  Idempotent."""
    from gw_ops.airflow import setup_db
    from gw_ops.local_gracedb.auth import ensure_service_credentials
    from gw_ops.ops.state import ensure_airflow_password

    setup_db.main()
    if settings.gracedb_sql_url.startswith("postgresql"):
        ensure_database(settings.gracedb_sql_url, out)
    login, _ = ensure_service_credentials(settings)
    out(f"GraceDB service account {login} ready (netrc {settings.state_path / 'netrc'})")
    password, created = ensure_airflow_password(settings)
    where = settings.airflow_home / "simple_auth_manager_passwords.json"
    if created:
        out(f"Airflow admin password (user admin; kept in {settings.state_path / 'secrets.json'}, "
            f"shown once): {password}")
    else:
        out(f"Airflow admin password unchanged ({where})")
