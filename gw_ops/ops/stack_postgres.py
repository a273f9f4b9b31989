"""The embedded PostgreSQL of the Celery stack: a server ``up`` initialises in the state folder.

``gw-ops up --executor celery`` keeps Airflow's metadata in PostgreSQL.  When no server
answers at ``postgres_url`` (and ``airflow_db_url`` names no database), ``up`` makes its
own: ``initdb`` once into ``state_dir/postgres`` (superuser ``postgres``, SCRAM password
auth with a password generated into ``secrets.json``), then ``postgres`` in the foreground
as the stack's ``postgres`` component, on 127.0.0.1 only, at ``embedded_postgres_port`` or
a free port, with no Unix socket.  The server's URL replaces ``postgres_url`` in the stack's
recorded settings, so ``status`` checks it and ``down`` stops it (fast shutdown, after every
other component).  The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, the
newest) unless ``postgres_bin_dir`` names others.

PostgreSQL refuses to run as root.  Run by root, its programs start in a new user
namespace without a uid mapping (``unshare --user``): there they are not uid 0, yet the
kernel still sees root, the owner of the 0700 state folder, so the data stays private to
the stack's user as everything else in the state folder.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlsplit

from gw_ops.config import Settings

#: Where Debian's postgresql-<version> packages keep the server programs.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Superuser of the embedded cluster (the role that ``postgres_url`` names).
SUPERUSER = "postgres"
#: Host the embedded server listens on: this machine only.
LISTEN_HOST = "127.0.0.1"
#: Seconds ``stop_server`` waits for a fast shutdown.
STOP_TIMEOUT_S = 30.0
#: Seconds a health check waits for a connection.
CONNECT_TIMEOUT_S = 3


def data_dir(settings: Settings) -> Path:
    """The embedded cluster's data directory (inside the state folder)."""
    return settings.state_path / "postgres"


def bin_dir(settings: Settings) -> Path | None:
    """Folder of ``initdb`` and ``postgres``: ``postgres_bin_dir``, else Debian's newest
    version, else the folder of an ``initdb`` on the PATH; None when there is none (or the
    folder named has no ``initdb``)."""
    if settings.postgres_bin_dir:
        named = Path(settings.postgres_bin_dir)
        return named if (named / "initdb").exists() else None
    debian = [Path(path) for path in glob.glob(DEBIAN_BIN_GLOB) if (Path(path) / "initdb").exists()]
    if debian:
        return max(debian, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` as PostgreSQL accepts it: unchanged, or in a new user namespace when root."""
    return ["unshare", "--user", "--", *argv] if os.geteuid() == 0 else argv


def server_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the host and port of a libpq URL."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = LISTEN_HOST) -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def server_url(password: str, port: int) -> str:
    """libpq URL of the embedded server's ``postgres`` database."""
    return f"postgresql://{SUPERUSER}:{quote(password, safe='')}@{LISTEN_HOST}:{port}/postgres"


def is_embedded(settings: Settings) -> bool:
    """Whether ``postgres_url`` is the embedded server that ``up`` started (see :func:`resolve`)."""
    if settings.executor != "celery" or not settings.embedded_postgres_port or settings.airflow_db_url:
        return False
    parts = urlsplit(settings.postgres_url)
    return parts.hostname == LISTEN_HOST and parts.port == settings.embedded_postgres_port


def resolve(settings: Settings, password: Callable[[], str], out=print) -> tuple[Settings, str | None]:
    """The settings ``up`` runs a Celery stack with, and why it cannot (or None).

    Unchanged when ``airflow_db_url`` names the database or a server answers at
    ``postgres_url``; else pointed at an embedded server (``embedded_postgres_port``, or a
    free port) whose superuser has the password ``password()`` gives (asked only then).
    """
    if settings.executor != "celery" or settings.airflow_db_url or server_answers(settings.postgres_url):
        return settings, None
    if bin_dir(settings) is None:
        return settings, (f"no PostgreSQL answers at {without_password(settings.postgres_url)} and no "
                          "PostgreSQL programs to start one (apt-get install postgresql, or set "
                          "GW_OPS_POSTGRES_BIN_DIR to their folder, or GW_OPS_POSTGRES_URL to a server)")
    port = settings.embedded_postgres_port or free_port()
    out(f"no PostgreSQL answers at {without_password(settings.postgres_url)}; starting an embedded one "
        f"at {LISTEN_HOST}:{port} (data in {data_dir(settings)})")
    return dataclasses.replace(settings, postgres_url=server_url(password(), port),
                               embedded_postgres_port=port), None


def without_password(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def ensure_cluster(settings: Settings, password: str, log_path: Path, out=print) -> bool:
    """Run ``initdb`` into :func:`data_dir` unless a cluster is there; True when made now."""
    data = data_dir(settings)
    if (data / "PG_VERSION").exists():
        return False
    password_file = settings.state_path / "postgres-password.tmp"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    try:
        with open(log_path, "ab") as log:
            subprocess.run(unprivileged([str(bin_dir(settings) / "initdb"), "--pgdata", str(data),
                                         "--username", SUPERUSER, "--pwfile", str(password_file),
                                         "--auth", "scram-sha-256", "--encoding", "UTF8", "--no-locale"]),
                           stdout=log, stderr=subprocess.STDOUT, check=True, umask=0o077, timeout=120)
    finally:
        password_file.unlink(missing_ok=True)
    out(f"initialised a PostgreSQL cluster in {data}")
    return True


def server_command(settings: Settings) -> list[str]:
    """The embedded server in the foreground (the ``postgres`` component's command)."""
    return unprivileged([str(bin_dir(settings) / "postgres"), "-D", str(data_dir(settings)),
                         "-p", str(settings.embedded_postgres_port),
                         "-c", f"listen_addresses={LISTEN_HOST}",
                         # TCP only: a socket path in a deep state folder can pass the 107-byte limit
                         "-c", "unix_socket_directories=",
                         # the scheduler, api-server, triggerer, dag-processor, 4 workers and Flower
                         "-c", "max_connections=200"])


def server_health(settings: Settings) -> tuple[bool, str]:
    """Whether the embedded server accepts a login and answers a query."""
    import psycopg2

    try:
        connection = psycopg2.connect(settings.postgres_url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.Error as exc:
        return False, str(exc).strip()[:80]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
    finally:
        connection.close()
    return True, f"PostgreSQL {version}, data {data_dir(settings)}"


def stop_server(pid: int) -> None:
    """Fast shutdown (SIGINT: sessions ended, a checkpoint, exit) of the server ``pid``;
    returns when it has exited or after :data:`STOP_TIMEOUT_S` (the caller kills what is left)."""
    import psutil

    try:
        server = psutil.Process(pid)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=STOP_TIMEOUT_S)
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass
