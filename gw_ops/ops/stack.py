"""The local stack: start, check and stop every gw-ops component as background processes.

Why one module of about 710 lines: start order, health checks and stop are one
lifecycle over :data:`COMPONENTS`; the embedded Redis and PostgreSQL, the state folder,
the log server and the Celery stack's definition (:mod:`gw_ops.ops.distributed`) are
already modules of their own.

``gw-ops up`` starts the components of :data:`COMPONENTS` in order and waits until
each one is healthy; ``gw-ops status`` prints one line per component; ``gw-ops down``
stops what ``up`` started (by pid and process group, plus any descendant that left the
group) and verifies that nothing is left.  Adding a service is one :class:`Component`
entry.

State lives in ``settings.state_path`` (mode 0700; every component runs with umask 077,
so its files, ``airflow/airflow.db`` and the GraceDB database included, are private)::

    run/<component>.json   pid, process group, command, address of a started component
    logs/<component>.log   its output
    stack.json             the effective settings of the running stack (e.g. the embedded
                           Redis URL), read back by status/down/demo
    secrets.json           the Airflow admin password, JWT secret and Fernet key (0600)
    airflow/               AIRFLOW_HOME (airflow.cfg is not used: everything is set
                           through AIRFLOW__* variables built by :func:`airflow_env`)
    redis/                 data of the embedded Redis (append-only file)
    postgres/              data of the embedded PostgreSQL (Celery stack, when none answers;
                           :mod:`gw_ops.ops.stack_postgres`)

``up`` records the absolute state folder in :func:`gw_ops.config.state_record_path`, so
``status``, ``down`` and the rest find the running stack from any working folder.

With ``executor = "celery"`` (``gw-ops up --executor celery``) the same lifecycle runs the
distributed stack: PostgreSQL metadata database (the machine's server, or one started in the
state folder: :mod:`gw_ops.ops.stack_postgres`), one Celery worker per queue and Flower
(:mod:`gw_ops.ops.distributed`).

Redis must be durable: ``up`` refuses a Redis without persistence (see
:func:`check_redis_durable`) unless ``GW_OPS_ALLOW_VOLATILE_REDIS=1``.

Airflow processes get no ``GW_OPS_REDIS_URL``/``GW_OPS_GRACEDB_URL``: ``up`` writes those
values into the Airflow connections ``redis_default`` and ``gracedb_default``, which tasks
and triggers then read (:mod:`gw_ops.airflow.connections`).  Services outside Airflow
(GraceDB, broker) get every setting as a variable.

This module is over 400 lines because it is one lifecycle (up, status, down, restart)
over one table of components; the state folder (:mod:`gw_ops.ops.state`), the Redis checks
(:mod:`gw_ops.ops.stack_redis`), the log server and the REST client live apart.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gw_ops.config import CONNECTION_SETTINGS, ENV_PREFIX, Settings, get_settings
from gw_ops.ops import distributed, stack_postgres
from gw_ops.ops.stack_redis import (
    check_redis_durable,
    delete_prefix_keys,
    durable_redis_command,
    embedded_redis_command,
    redis_answers,
)
from gw_ops.ops.state import (
    airflow_login,
    ensure_airflow_password,
    load_secrets,
    log_dir,
    private_dir,
    record_state_dir,
    run_dir,
)

__all__ = ["COMPONENTS", "Component", "airflow_env", "airflow_login", "check_redis_durable",
           "connection_settings", "delete_prefix_keys", "down", "durable_redis_command",
           "ensure_airflow_password", "load_secrets", "log_dir", "private_dir", "record_state_dir",
           "redis_answers", "restart", "run_dir", "running_settings", "start_component", "status", "up"]

#: Repository root: ``dags/`` and ``plugins/`` are found beside the package.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds ``up`` waits for all components to become healthy.
UP_TIMEOUT_S = 120.0
#: Seconds ``down`` waits after SIGTERM before SIGKILL.
STOP_GRACE_S = 15.0
#: Seconds a health request may take (a busy API server answers in well under a second idle,
#: but a loaded 2-core machine has taken over 2 s).
HEALTH_TIMEOUT_S = 5.0
#: umask of every process the stack starts: what they create is readable by its owner only.
STACK_UMASK = 0o077
#: Variables of connection-backed settings, kept out of Airflow processes (see module doc).
CONNECTION_VARIABLES = tuple(ENV_PREFIX + name.upper() for name in CONNECTION_SETTINGS)


# --------------------------------------------------------------------------- helpers
def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_ok(url: str, timeout: float = HEALTH_TIMEOUT_S) -> tuple[bool, str]:
    """GET ``url``; healthy when it answers 2xx."""
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (local URL)
            return 200 <= response.status < 300, f"HTTP {response.status}"
    except Exception as exc:  # noqa: BLE001 (any failure means unhealthy)
        return False, str(exc)[:80]


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment of every Airflow process of the local stack (and of tasks they run).

    Every ``GW_OPS_*`` setting except :data:`CONNECTION_VARIABLES`: Redis and GraceDB come
    from the Airflow connections there.
    """
    home = settings.airflow_home
    secret_values = load_secrets(settings)
    passwords_file = home / "simple_auth_manager_passwords.json"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # LocalExecutor that forks its task processes with the alert path's heavy modules
        # already imported (2.4 s of ligo.skymap per task otherwise); fork is what makes
        # the workers inherit them (Python 3.14 changes the default to forkserver).
        "AIRFLOW__CORE__EXECUTOR": "gw_ops.airflow.executor.WarmLocalExecutor",
        "AIRFLOW__CORE__MP_START_METHOD": "fork",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_api_url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_values["airflow_jwt_secret"],
        # One Fernet key for every process: left empty, Airflow writes a generated key into
        # airflow.cfg at first start, and processes that started before that file existed
        # cannot read trigger arguments that the others encrypted.
        "AIRFLOW__CORE__FERNET_KEY": secret_values["airflow_fernet_key"],
        # Log servers of workers and the triggerer: per-stack ports, so stacks can coexist;
        # served by gw_ops.ops.log_server on settings.host only, under that host name.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.airflow_worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(settings.airflow_trigger_log_port),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "gw_ops.ops.log_server.stack_hostname",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__HOST": settings.host,
        "AIRFLOW__API__BASE_URL": settings.airflow_api_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.airflow_sql_alchemy_conn,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # New and changed DAG files show up within seconds, not the 5 min default.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        # Low latency: the scheduler loops often and starts queued work at once.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__TRIGGERER__CAPACITY": "100",
        # A task whose worker died is failed and retried after this (see the setting).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(int(settings.task_heartbeat_timeout_s)),
        "NETRC": str(settings.state_path / "netrc"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.airflow_sql_alchemy_conn.startswith("sqlite"):
        # the busy timeout of the SQLite metadata database (gw_ops.airflow.metadata_db)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "gw_ops.airflow.metadata_db.SQLITE_CONNECT_ARGS"
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "gw_ops.airflow.metadata_db.SQLITE_CONNECT_ARGS"
    if settings.executor == "celery":
        env.update(distributed.celery_airflow_env(settings))
        # The scheduler queues at most this many tasks at once: every worker slot may be busy.
        env["AIRFLOW__CORE__PARALLELISM"] = str(max(settings.airflow_parallelism,
                                                     distributed.total_concurrency(settings)))
    env.update({k: v for k, v in settings.as_env().items() if k not in CONNECTION_VARIABLES})
    return env


# --------------------------------------------------------------------------- components
@dataclass(frozen=True)
class Component:
    """One background process of the local stack.

    Attributes
    ----------
    name : str
        Short name, also the file name of its pid record and log.
    command : callable
        ``command(settings) -> argv``.
    port : callable
        ``port(settings) -> int | None``: the TCP port it listens on (checked free first).
    health : callable
        ``health(settings) -> (healthy, detail)``.
    enabled : callable
        ``enabled(settings) -> bool``; a disabled component is neither started nor shown.
    airflow : bool
        An Airflow process: started with :func:`airflow_env` (connection-backed settings
        left to the connections); the others get every setting as a variable.
    more_ports : callable
        ``more_ports(settings) -> tuple of int``: other ports it listens on (checked free too).
    supervised : bool
        Started under :mod:`gw_ops.ops.supervise`, which starts it again when it exits on
        its own (the Airflow services, which exit when their database fails them).
    """

    name: str
    command: Callable[[Settings], list[str]]
    port: Callable[[Settings], int | None]
    health: Callable[[Settings], tuple[bool, str]]
    enabled: Callable[[Settings], bool] = lambda settings: True
    airflow: bool = False
    more_ports: Callable[[Settings], tuple[int, ...]] = lambda settings: ()
    supervised: bool = False

    def address(self, settings: Settings) -> str:
        port = self.port(settings)
        return f"{settings.host}:{port}" if port else "-"


def _gw_ops(*args: str) -> Callable[[Settings], list[str]]:
    return lambda settings: [sys.executable, "-m", "gw_ops.ops.cli", *args]


def _module(name: str) -> Callable[[Settings], list[str]]:
    return lambda settings: [sys.executable, "-m", name]


def _airflow(*args: str) -> Callable[[Settings], list[str]]:
    return lambda settings: [str(Path(sys.executable).parent / "airflow"), *args]


def _celery(settings: Settings) -> bool:
    return settings.executor == "celery"


def _celery_worker(queue: str) -> Component:
    """The Celery worker of ``queue`` (see :mod:`gw_ops.ops.distributed`)."""
    return Component(distributed.worker_service(queue),
                     lambda s: [distributed.airflow_executable(), *distributed.worker_arguments(s, queue)],
                     lambda s: None, lambda s: distributed.worker_health(s, queue),
                     enabled=_celery, airflow=True)


def _airflow_health(part: str) -> Callable[[Settings], tuple[bool, str]]:
    """Health of one Airflow part from the API server's monitor endpoint."""
    def check(settings: Settings) -> tuple[bool, str]:
        import urllib.request
        url = f"{settings.airflow_api_url}/api/v2/monitor/health"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:  # noqa: S310
                report = json.load(response)
        except Exception as exc:  # noqa: BLE001
            return False, str(exc)[:80]
        if part == "api-server":
            ok = report.get("metadatabase", {}).get("status") == "healthy"
            return ok, f"metadatabase {report.get('metadatabase', {}).get('status')}"
        key = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}[part]
        entry = report.get(key) or {}
        return entry.get("status") == "healthy", f"heartbeat {entry.get('latest_' + key + '_heartbeat') or entry.get('latest_scheduler_heartbeat') or 'none'}"
    return check


def _broker_health(settings: Settings) -> tuple[bool, str]:
    from gw_ops.transport.redis_client import get_redis, read_health
    try:
        record = read_health(get_redis(settings, socket_timeout=2), settings, "broker")
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)[:80]
    listening = _port_open(settings.host, settings.broker_port)
    return listening, f"listening, {record.get('detail', 'no record')}" if listening else "not listening"


def _log_server_health(settings: Settings) -> tuple[bool, str]:
    ports = (settings.airflow_worker_log_port, settings.airflow_trigger_log_port)
    listening = [port for port in ports if _port_open(settings.host, port)]
    return len(listening) == len(ports), f"listening on {settings.host}:{','.join(map(str, listening)) or '-'}"


def _kafka_health(settings: Settings) -> tuple[bool, str]:
    from gw_ops.transport.kafka_client import wait_ready
    try:
        wait_ready(settings.local_kafka_bootstrap, timeout_s=HEALTH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)[:80]
    return True, "answers metadata requests"


def _tansu_command(settings: Settings) -> list[str]:
    from gw_ops.ops.tansu import tansu_command
    return tansu_command(settings.host, settings.kafka_port)


def _local_kafka(settings: Settings) -> bool:
    """transport = kafka with the IGWN Alert broker left to the stack (a local tansu)."""
    return settings.transport == "kafka" and not settings.igwn_alert_bootstrap


def _prepare_kafka_topics(settings: Settings) -> None:
    """Create the local broker's topics before any listener subscribes."""
    from gw_ops.handlers.kafka_alerts import targets
    from gw_ops.transport.kafka import lvalert_nodes
    from gw_ops.transport.kafka_client import ensure_topics
    topics = [f"{settings.igwn_alert_group}.{node}" for node in lvalert_nodes(settings)]
    topics += [t for t in settings.gcn_kafka_topics if not settings.gcn_kafka_bootstrap]
    topics += [t.topic for t in targets(settings) if t.server == settings.local_kafka_bootstrap]
    ensure_topics(settings.local_kafka_bootstrap, topics)


COMPONENTS: tuple[Component, ...] = (
    # The Celery stack's own PostgreSQL when none answers at postgres_url (gw_ops.ops.stack_postgres).
    Component("postgres", stack_postgres.server_command, lambda s: s.embedded_postgres_port,
              stack_postgres.server_health, enabled=stack_postgres.is_embedded),
    Component("kafka", _tansu_command, lambda s: s.kafka_port, _kafka_health, enabled=_local_kafka),
    Component("redis", embedded_redis_command, lambda s: s.embedded_redis_port,
              lambda s: (redis_answers(s.redis_url), s.redis_url),
              enabled=lambda s: s.redis_url.startswith(f"redis://{s.host}:{s.embedded_redis_port}")),
    Component("gracedb", _gw_ops("gracedb", "serve"), lambda s: s.gracedb_port,
              lambda s: _http_ok(s.gracedb_api_url)),
    Component("broker", _gw_ops("broker"), lambda s: s.broker_port, _broker_health),
    Component("api-server", _airflow("api-server"), lambda s: s.airflow_port,
              _airflow_health("api-server"), airflow=True, supervised=True),
    # Airflow's own log servers would bind every interface: see gw_ops.ops.log_server.
    Component("log-server", _module("gw_ops.ops.log_server"), lambda s: s.airflow_worker_log_port,
              lambda s: _log_server_health(s), airflow=True,
              more_ports=lambda s: (s.airflow_trigger_log_port,)),
    Component("scheduler", _airflow("scheduler", "--skip-serve-logs"), lambda s: None,
              _airflow_health("scheduler"), airflow=True, supervised=True),
    Component("dag-processor", _airflow("dag-processor"), lambda s: None, _airflow_health("dag-processor"),
              airflow=True, supervised=True),
    Component("triggerer", _airflow("triggerer", "--skip-serve-logs"), lambda s: None,
              _airflow_health("triggerer"), airflow=True, supervised=True),
    # The Celery stack only (executor = celery): one worker per queue, and Flower.
    *(_celery_worker(queue) for queue in distributed.WORKER_QUEUES),
    Component("flower", lambda s: [distributed.airflow_executable(), *distributed.flower_arguments(s)],
              lambda s: s.flower_port, distributed.flower_health,
              enabled=lambda s: _celery(s) and s.flower, airflow=True),
)


def _record_path(settings: Settings, component: Component) -> Path:
    return run_dir(settings) / f"{component.name}.json"


def read_record(settings: Settings, component: Component) -> dict | None:
    """The pid record of a started component, or None."""
    path = _record_path(settings, component)
    return json.loads(path.read_text()) if path.exists() else None


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_component(settings: Settings, component: Component, env: dict[str, str] | None = None) -> dict:
    """Start one component in its own process group and record its pid.

    ``env`` defaults to :func:`_child_env` for the component (Airflow or not).
    """
    env = env if env is not None else _child_env(settings, airflow=component.airflow)
    private_dir(run_dir(settings))
    private_dir(log_dir(settings))
    log = open(log_dir(settings) / f"{component.name}.log", "ab")
    argv = component.command(settings)
    if component.supervised:
        argv = [sys.executable, "-m", "gw_ops.ops.supervise", "--name", component.name,
                "--record", str(_record_path(settings, component)), "--", *argv]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=REPO_ROOT, umask=STACK_UMASK)
    record = {"pid": proc.pid, "pgid": proc.pid, "argv": argv, "address": component.address(settings),
              "started": time.time()}
    _record_path(settings, component).write_text(json.dumps(record))
    return record


# --------------------------------------------------------------------------- effective settings
def _stack_file(settings: Settings) -> Path:
    return settings.state_path / "stack.json"


def running_settings(settings: Settings) -> Settings:
    """Settings of the running stack (as ``up`` resolved them), else ``settings`` itself."""
    path = _stack_file(settings)
    if not path.exists():
        return settings
    env = {**json.loads(path.read_text())}
    return get_settings(env=env, state_dir=settings.state_path)


def _child_env(settings: Settings, airflow: bool = True) -> dict[str, str]:
    """Environment of a started process: :func:`airflow_env`, plus, for a process outside
    Airflow (``airflow=False``), the connection-backed settings as variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and not k.startswith("AIRFLOW")}
    env.update(airflow_env(settings))
    if not airflow:
        env.update(settings.as_env())
    return env


def _refuse_taken_ports(settings: Settings, components: list[Component]) -> list[str]:
    problems = []
    for component in components:
        for port in (component.port(settings), *component.more_ports(settings)):
            if port and _port_open(settings.host, port):
                problems.append(f"{component.name}: port {settings.host}:{port} is taken by another "
                                f"process; free it or choose another port (see `gw-ops settings`)")
    return problems


def prepare_airflow(settings: Settings) -> None:
    """Migrate the metadata database, create or update the pools and the connections
    ``redis_default`` and ``gracedb_default`` (one process, which alone gets the
    connection-backed settings as variables: it writes them into the connections)."""
    private_dir(settings.airflow_home)
    sqlite_prefix = "sqlite:///"
    if settings.airflow_sql_alchemy_conn.startswith(sqlite_prefix):
        # SQLite creates a missing database file with the process's umask; made here, it is
        # 0600 whatever umask started `up`, and an older file is made private too.
        database = Path(settings.airflow_sql_alchemy_conn[len(sqlite_prefix):])
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        database.chmod(0o600)
        use_write_ahead_log(database)
    subprocess.run([sys.executable, "-m", "gw_ops.airflow.setup_db"], env=_child_env(settings, airflow=False),
                   check=True, cwd=REPO_ROOT, umask=STACK_UMASK,
                   stdout=open(log_dir(settings) / "airflow-setup.log", "ab"), stderr=subprocess.STDOUT)


def use_write_ahead_log(database: Path) -> str:
    """Put a SQLite database in write-ahead-log mode (kept in the file); returns the mode.

    In SQLite's default rollback-journal mode a writer cannot commit while any other
    connection reads, so the scheduler, triggerer, API server and DAG processor of the
    local stack queue behind each other's reads.  With the write-ahead log readers never
    block the writer nor the writer the readers; writers still take turns (the busy
    timeout covers that).  Added after "database is locked" killed the scheduler and the
    triggerer in a loaded test run; it does not remove the API server's deadlock of two
    concurrent run creations (see the setting ``airflow_sqlite_busy_timeout_s``), which
    the same runs also met.
    """
    import sqlite3
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]


def running_components(settings: Settings) -> list[Component]:
    """The stack's components whose recorded process is alive (healthy or not)."""
    return [c for c in COMPONENTS if (r := read_record(running_settings(settings), c)) and pid_alive(r["pid"])]


def up(settings: Settings, out=print) -> int:
    """Start the whole local stack and wait until it is healthy.  Returns an exit status.

    0 healthy, 1 already running, 2 refused before starting anything (a taken port, a
    volatile Redis), 3 not healthy in time (what was started is stopped again).
    """
    private_dir(settings.state_path)
    private_dir(log_dir(settings))
    started_at = time.monotonic()
    # A new state folder means a new GraceDB: Redis data left under this prefix by an
    # earlier stack (alert records, streams, delayed actions) belongs to the discarded one.
    fresh_state = not (settings.state_path / "secrets.json").exists()
    running = running_components(settings)
    if running:
        out(f"already running: {', '.join(c.name for c in running)} (use `gw-ops status` or `gw-ops down`)")
        return 1
    if not redis_answers(settings.redis_url):
        embedded_url = f"redis://{settings.host}:{settings.embedded_redis_port}/0"
        out(f"no Redis answers at {settings.redis_url}; starting an embedded one at {embedded_url} "
            f"(append-only file in {settings.state_path / 'redis'})")
        settings = dataclasses.replace(settings, redis_url=embedded_url)
    elif not check_redis_durable(settings, out):
        return 2
    settings, postgres_problem = _resolve_postgres(settings, out)
    components = [c for c in COMPONENTS if c.enabled(settings)]
    problems = _refuse_taken_ports(settings, components)
    if _celery(settings) and (reason := postgres_problem or distributed.refuse_reason(settings)):
        problems.append(reason)
    if problems:
        for problem in problems:
            out(f"refusing to start: {problem}")
        return 2
    _stack_file(settings).write_text(json.dumps(settings.as_env(), indent=1))
    record_state_dir(settings)
    password, first_time = ensure_airflow_password(settings)
    from gw_ops.local_gracedb.auth import ensure_service_credentials
    ensure_service_credentials(settings)

    redis_component = [c for c in components if c.name in ("postgres", "redis", "kafka")]
    for component in redis_component:
        if component.name == "postgres" and not _prepare_embedded_postgres(settings, fresh_state, out):
            down(settings, out)
            return 3
        start_component(settings, component)
        if not _wait_healthy(settings, [component], UP_TIMEOUT_S, out) or (
                component.name == "redis" and not check_redis_durable(settings, out)):
            down(settings, out)
            return 3
    from gw_ops.transport.redis_client import get_redis
    from gw_ops.transport.streams import ensure_lane_groups
    if fresh_state:
        stale = delete_prefix_keys(get_redis(settings), settings.key_prefix)
        if stale:
            out(f"new state folder: deleted {stale} Redis keys under {settings.key_prefix!r} "
                "left by an earlier stack")
    ensure_lane_groups(get_redis(settings), settings)
    if _local_kafka(settings):
        _prepare_kafka_topics(settings)
    if _celery(settings) and not distributed.ensure_stack_database(settings, fresh_state, out):
        down(settings, out)
        return 2
    prepare_airflow(settings)
    for component in components:
        if component not in redis_component:
            start_component(settings, component)
    if not _wait_healthy(settings, components, UP_TIMEOUT_S, out):
        out("the stack did not become healthy; logs are in " + str(log_dir(settings)))
        out("stopping what was started")
        down(settings, out)
        return 3
    elapsed = time.monotonic() - started_at
    out(f"gw-ops stack healthy in {elapsed:.1f} s")
    out(f"Airflow UI: {settings.airflow_api_url}  user admin")
    if first_time:
        out(f"admin password (shown once; kept in {settings.state_path / 'secrets.json'}): {password}")
    out(f"GraceDB: {settings.gracedb_api_url}   VOEvent broker: {settings.host}:{settings.broker_port}")
    if _celery(settings):
        workers = ", ".join(f"{queue} ({distributed.worker_concurrency(settings, queue)})"
                            for queue in distributed.WORKER_QUEUES)
        out(f"CeleryExecutor on {settings.airflow_postgres_db_name if not settings.airflow_db_url else 'the given DB'}"
            f" (PostgreSQL); Celery workers per queue (slots): {workers}")
        if settings.flower:
            out(f"Flower: http://{settings.host}:{settings.flower_port}/")
    return 0


def _resolve_postgres(settings: Settings, out) -> tuple[Settings, str | None]:
    """A Celery stack's settings with ``postgres_url`` pointed at an embedded server when
    none answers there (see :func:`gw_ops.ops.stack_postgres.resolve`), and why it cannot
    start (or None)."""
    if not _celery(settings):
        return settings, None
    return stack_postgres.resolve(settings, lambda: load_secrets(settings)["postgres_password"], out)


def _prepare_embedded_postgres(settings: Settings, fresh_state: bool, out) -> bool:
    """initdb the embedded server's cluster unless there is one; False (after saying why)
    when initdb failed.  A cluster found beside a new ``secrets.json`` has a superuser
    password nobody knows any more: it is made again."""
    import shutil
    data = stack_postgres.data_dir(settings)
    if fresh_state and data.exists():
        out(f"new state folder: removing the PostgreSQL cluster {data} left by an earlier stack")
        shutil.rmtree(data)
    log = log_dir(settings) / "postgres-initdb.log"
    try:
        stack_postgres.ensure_cluster(settings, load_secrets(settings)["postgres_password"], log, out)
    except (OSError, subprocess.SubprocessError) as exc:
        out(f"initdb failed ({exc}); see {log}")
        return False
    return True


def _wait_healthy(settings: Settings, components: list[Component], timeout: float, out) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(components)
    while pending and time.monotonic() < deadline:
        for component in list(pending):
            record = read_record(settings, component)
            if record and not pid_alive(record["pid"]):
                out(f"{component.name} exited; see {log_dir(settings) / (component.name + '.log')}")
                return False
            if component.health(settings)[0]:
                pending.remove(component)
        time.sleep(0.5)
    for component in pending:
        out(f"{component.name} not healthy after {timeout:.0f} s: {component.health(settings)[1]}")
    return not pending


def _process_tree(pid: int) -> list:
    import psutil
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def down(settings: Settings, out=print) -> int:
    """Stop every started component (whole process groups and descendants) and verify.

    SIGTERM goes to every component's process group and descendants at once (descendants
    that started their own session included); whatever is still alive after
    :data:`STOP_GRACE_S` gets SIGKILL.  Returns 1 if any process survives.
    """
    settings = running_settings(settings)
    stopping = [(c, r) for c in reversed(COMPONENTS) if (r := read_record(settings, c))]
    if not stopping:
        out(f"nothing was running (state folder {settings.state_path})")
        _stack_file(settings).unlink(missing_ok=True)
        return 0
    alive = {component.name for component, record in stopping if pid_alive(record["pid"])}
    # the embedded PostgreSQL last, with a clean (fast) shutdown, once its clients are gone
    still = _stop_records([record for component, record in stopping if component.name != "postgres"])
    for component, record in stopping:
        if component.name == "postgres":
            stack_postgres.stop_server(record["pid"])
            still += _stop_records([record])
    for component, record in stopping:
        _record_path(settings, component).unlink(missing_ok=True)
        if component.name in alive:
            out(f"stopped {component.name} (pid {record['pid']})")
        else:
            out(f"{component.name} was not running (pid {record['pid']} had exited); record removed")
    if not alive:
        out(f"nothing was running (state folder {settings.state_path})")
    if still:
        out(f"processes still running: {still}")
        return 1
    _stack_file(settings).unlink(missing_ok=True)
    return 0


def _stop_records(records: list[dict]) -> list[int]:
    """Stop the process groups and descendants of pid records; return pids that survived.

    SIGTERM to all at once, SIGKILL to whatever is alive after :data:`STOP_GRACE_S`.
    """
    import psutil
    every_process = []
    for record in records:
        tree = _process_tree(record["pid"])
        _signal_group(record["pgid"], signal.SIGTERM)
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        every_process.extend(tree)
    _, alive = psutil.wait_procs(every_process, timeout=STOP_GRACE_S)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    for record in records:
        _signal_group(record["pgid"], signal.SIGKILL)
    _, still = psutil.wait_procs(alive, timeout=5)
    return [proc.pid for proc in still]


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def restart(settings: Settings, name: str, out=print) -> int:
    """Stop one component (SIGTERM, then SIGKILL) and start it again with the stack's settings."""
    settings = running_settings(settings)
    component = next((c for c in COMPONENTS if c.name == name), None)
    if component is None:
        out(f"unknown component {name!r}; one of {', '.join(c.name for c in COMPONENTS)}")
        return 2
    record = read_record(settings, component)
    if record:
        _stop_records([record])
    start_component(settings, component)
    if not _wait_healthy(settings, [component], UP_TIMEOUT_S, out):
        return 3
    out(f"restarted {component.name}")
    return 0


def status(settings: Settings, out=print) -> int:
    """Print one line per component; exit status 0 when everything is running and healthy."""
    settings = running_settings(settings)
    all_ok = True
    for component in COMPONENTS:
        if not component.enabled(settings):
            continue
        record = read_record(settings, component)
        alive = bool(record) and pid_alive(record["pid"])
        healthy, detail = component.health(settings) if alive else (False, "not started")
        all_ok &= healthy
        state = "running" if alive else "stopped"
        pid = record["pid"] if record else "-"
        if record and record.get("restarts"):
            detail += (f"  (restarted {record['restarts']} times, last after exit status "
                       f"{record['last_exit']}, {time.time() - record['last_restart']:.0f} s ago)")
        out(f"{component.name:<17} {state:<8} pid {pid!s:<8} {component.address(settings):<22} "
            f"{'healthy' if healthy else 'UNHEALTHY'}  {detail}")
    for listener in ("lvalert", "gcn"):
        try:
            from gw_ops.transport.redis_client import get_redis, read_health
            record = read_health(get_redis(settings, socket_timeout=2), settings, listener)
        except Exception:  # noqa: BLE001
            record = {}
        if record:
            last = record.get("last_message")
            age = f"{time.time() - float(last):.0f} s ago" if last else "never"
            out(f"listener {listener:<5} {record.get('state', '?'):<12} last message {age}  {record.get('detail', '')}")
        else:
            out(f"listener {listener:<5} no record yet")
    try:  # lanes waiting out an outage, or failing on a bug (gw_ops.transport.streams.drain)
        from gw_ops.airflow.maintenance import alarm_records
        from gw_ops.transport.redis_client import get_redis
        for name, record in alarm_records(get_redis(settings, socket_timeout=2), settings).items():
            if record.get("state") != "ok":
                out(f"ALARM {name} {record.get('state')} since {time.time() - float(record['since']):.0f} s: "
                    f"{record.get('detail', '')}")
    except Exception:  # noqa: BLE001 - Redis down is reported above
        pass
    try:  # the dead-letter alarm (issue 11): a count per source, what is new, the last reason
        from gw_ops.transport import dead_letters
        from gw_ops.transport.redis_client import get_redis
        for line in dead_letters.status_lines(dead_letters.summary(get_redis(settings, socket_timeout=2),
                                                                   settings)):
            out(line)
    except Exception as exc:  # noqa: BLE001 (status must print the rest)
        out(f"dead letters   unknown ({type(exc).__name__})")
    return 0 if all_ok else 1


def connection_settings(settings: Settings) -> tuple[dict[str, str], str]:
    """Connection-backed settings of the running stack, read through its REST API.

    Returns ``({setting: value}, note)``: empty with a note saying why when no stack runs
    in ``settings.state_path`` or its API does not answer.
    """
    from gw_ops.airflow.connections import gracedb_url_from_fields, redis_url_from_fields
    from gw_ops.config import CONNECTION_SETTINGS
    from gw_ops.ops.airflow_api import AirflowApi, plain

    running = running_settings(settings)
    if not _stack_file(settings).exists():
        return {}, f"(no stack runs in {settings.state_path}: Airflow connections not read)"
    try:
        api = AirflowApi.for_stack(running)
        found = {name: plain(api.call(api.connections.get_connection, conn_id))
                 for name, conn_id in CONNECTION_SETTINGS.items()}
    except Exception as exc:  # noqa: BLE001 (the stack may be stopping; say so)
        return {}, f"(the Airflow API of the stack in {settings.state_path} did not answer: {str(exc)[:120]})"
    return {"redis_url": redis_url_from_fields(found["redis_url"]),
            "gracedb_url": gracedb_url_from_fields(found["gracedb_url"])}, ""
