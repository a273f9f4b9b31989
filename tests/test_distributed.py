"""The distributed stack's definition without starting it (gw_ops.ops.distributed): which
processes a Celery stack has, their settings, the PostgreSQL database ``up`` makes, and what
``up`` refuses.  The stack itself runs in tests/test_celery_stack.py."""
from __future__ import annotations

import os

import psycopg2
import pytest

from gw_ops.airflow.pools import pool_specs
from gw_ops.config import get_settings
from gw_ops.ops import distributed, stack, stack_postgres
from tests.helpers import free_port

TEST_POSTGRES_URL = os.environ.get("GW_OPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def celery_settings(tmp_path, **overrides):
    return get_settings(env={}, state_dir=tmp_path / "state", executor="celery",
                        **{"postgres_url": TEST_POSTGRES_URL, **overrides})


def test_celery_stack_has_one_worker_per_queue_and_flower_the_local_stack_none(tmp_path):
    local = get_settings(env={}, state_dir=tmp_path / "state")
    celery = celery_settings(tmp_path)
    workers = {distributed.worker_service(queue) for queue in distributed.WORKER_QUEUES}
    assert workers == {"worker-default", "worker-superevent", "worker-exttrig", "worker-openmp"}
    enabled_local = {c.name for c in stack.COMPONENTS if c.enabled(local)}
    enabled_celery = {c.name for c in stack.COMPONENTS if c.enabled(celery)}
    assert not enabled_local & (workers | {"flower"})
    assert enabled_celery == enabled_local | workers | {"flower"}
    without_flower = celery_settings(tmp_path, flower=False)
    assert "flower" not in {c.name for c in stack.COMPONENTS if c.enabled(without_flower)}


def test_worker_slots_are_the_pool_slots(tmp_path):
    # the openmp pool counts the openmp workers of every host (3 slots: another host has
    # one); this machine's openmp worker has its cores // omp_threads
    settings = celery_settings(tmp_path, omp_threads=1, openmp_pool_slots=3, celery_default_concurrency=5)
    local_slots = max(1, os.cpu_count() or 1)
    assert {spec.name: spec.slots for spec in pool_specs(settings)}["openmp"] == 3
    assert distributed.worker_concurrency(settings, "openmp") == local_slots
    assert distributed.worker_concurrency(settings, "superevent") == 1
    assert distributed.worker_concurrency(settings, "exttrig") == 1
    assert distributed.worker_concurrency(settings, "default") == 5
    words = distributed.worker_arguments(settings, "openmp")
    assert words[words.index("--queues") + 1] == "openmp" and words[words.index("--concurrency") + 1] == str(local_slots)
    assert "--skip-serve-logs" in words  # the stack's log server serves every worker's logs


def test_every_queue_a_dag_task_names_has_a_worker(tmp_path):
    from tests.test_dag_integrity import parse_dag_folder
    report = parse_dag_folder(tmp_path)
    used = {queue for info in report["dags"].values() for queue in info["queues"]}
    assert used and used <= set(distributed.WORKER_QUEUES), used - set(distributed.WORKER_QUEUES)


def test_airflow_processes_of_a_celery_stack_use_its_redis_and_postgres(tmp_path):
    settings = celery_settings(tmp_path, redis_url="redis://127.0.0.1:6391/0", key_prefix="gwx:")
    env = stack.airflow_env(settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6391/0"
    # Celery's keys under the stack's prefix: stacks sharing a Redis never take each other's tasks
    assert env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] == "gwx:celery:"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://postgres@127.0.0.1:5432/gw_ops_")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) >= distributed.total_concurrency(settings)
    local_env = stack.airflow_env(get_settings(env={}, state_dir=tmp_path / "state"))
    assert local_env["AIRFLOW__CORE__EXECUTOR"] == "gw_ops.airflow.executor.WarmLocalExecutor"
    assert not any(key.startswith("AIRFLOW__CELERY") for key in local_env)


def test_airflow_on_sqlite_waits_out_a_locked_database_on_postgresql_no_such_argument(tmp_path):
    """The SQLite metadata database's busy timeout (setting airflow_sqlite_busy_timeout_s)
    reaches Airflow's own engine; PostgreSQL gets no SQLite driver argument."""
    import subprocess
    import sys
    local = get_settings(env={}, state_dir=tmp_path / "state", airflow_sqlite_busy_timeout_s=42.0)
    env = {**os.environ, **stack.airflow_env(local)}
    (tmp_path / "state" / "airflow").mkdir(parents=True)
    probe = ("from airflow import settings; settings.configure_orm(); "
             "print(settings.engine.raw_connection().driver_connection.execute('PRAGMA busy_timeout').fetchone()[0])")
    shown = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert shown.stdout.split()[-1:] == ["42000"], shown.stderr[-2000:]  # milliseconds
    celery_env = stack.airflow_env(celery_settings(tmp_path))
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in celery_env


def test_each_state_folder_gets_its_own_database_unless_one_is_named(tmp_path):
    first = celery_settings(tmp_path / "a")
    second = celery_settings(tmp_path / "b")
    assert first.airflow_postgres_db_name != second.airflow_postgres_db_name
    named = celery_settings(tmp_path, airflow_db_url="postgresql+psycopg2://u@db.example/airflow")
    assert named.airflow_sql_alchemy_conn == "postgresql+psycopg2://u@db.example/airflow"
    with pytest.raises(ValueError, match="unknown executor"):
        get_settings(env={"GW_OPS_EXECUTOR": "kubernetes"})


def test_up_refuses_a_celery_stack_on_sqlite_before_starting_anything(tmp_path):
    settings = celery_settings(tmp_path, airflow_db_url=f"sqlite:///{tmp_path}/airflow.db",
                               redis_url=f"redis://127.0.0.1:{free_port()}/0")
    said = []
    assert stack.up(settings, out=said.append) == 2
    assert any("needs PostgreSQL" in line for line in said), said
    assert not list((settings.state_path / "run").glob("*.json"))


def database_exists(name: str) -> bool:
    with psycopg2.connect(TEST_POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None


def test_up_creates_the_stacks_database_keeps_it_and_drops_one_left_by_a_deleted_state(tmp_path):
    settings = celery_settings(tmp_path)
    name = settings.airflow_postgres_db_name
    said = []
    try:
        assert distributed.ensure_stack_database(settings, fresh_state=True, out=said.append)
        assert database_exists(name) and any("created" in line for line in said)
        with psycopg2.connect(settings.airflow_sql_alchemy_conn.replace("+psycopg2", "")) as connection:
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE kept (x int)")
        # the same stack again: its data stay
        assert distributed.ensure_stack_database(settings, fresh_state=False, out=said.append)
        with psycopg2.connect(settings.airflow_sql_alchemy_conn.replace("+psycopg2", "")) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass('kept')")
                assert cursor.fetchone()[0] == "kept"
        # a new state folder at the same path: the old database (other Fernet key) is dropped
        assert distributed.ensure_stack_database(settings, fresh_state=True, out=said.append)
        assert any("dropping" in line for line in said)
        with psycopg2.connect(settings.airflow_sql_alchemy_conn.replace("+psycopg2", "")) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass('kept')")
                assert cursor.fetchone()[0] is None
    finally:
        distributed.drop_stack_database(settings)
    assert not database_exists(name)


def test_up_says_so_when_no_postgresql_answers(tmp_path):
    settings = celery_settings(tmp_path, postgres_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    said = []
    assert not distributed.ensure_stack_database(settings, fresh_state=True, out=said.append)
    assert "no PostgreSQL answers" in said[0]


# --- the embedded PostgreSQL (gw_ops.ops.stack_postgres) -------------------------------
def test_up_points_a_celery_stack_at_an_embedded_postgresql_only_when_none_answers(tmp_path):
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = celery_settings(tmp_path, postgres_url=nobody)
    assert "postgres" not in {c.name for c in stack.COMPONENTS if c.enabled(settings)}
    said = []
    embedded, problem = stack._resolve_postgres(settings, said.append)
    assert problem is None and stack_postgres.is_embedded(embedded)
    port = embedded.embedded_postgres_port
    assert embedded.postgres_url.startswith("postgresql://postgres:")
    assert embedded.postgres_url.endswith(f"@127.0.0.1:{port}/postgres")
    password = stack.load_secrets(embedded)["postgres_password"]
    assert password in embedded.postgres_url and not any(password in line for line in said)
    assert f"starting an embedded one at 127.0.0.1:{port}" in said[0]
    # the embedded server comes first, so `up` starts it before the database is made
    assert [c.name for c in stack.COMPONENTS if c.enabled(embedded)][0] == "postgres"
    assert embedded.airflow_sql_alchemy_conn.startswith(f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}/gw_ops_")
    # a chosen port is kept
    fixed, _ = stack._resolve_postgres(celery_settings(tmp_path, postgres_url=nobody, embedded_postgres_port=port),
                                       said.append)
    assert fixed.embedded_postgres_port == port
    # the machine's server answers: used as it is; a named database is never replaced
    for kept in (celery_settings(tmp_path), celery_settings(tmp_path, postgres_url=nobody,
                                                            airflow_db_url="postgresql+psycopg2://x@h/db")):
        assert stack._resolve_postgres(kept, said.append) == (kept, None)
        assert not stack_postgres.is_embedded(kept)
    # PostgreSQL's programs found: Debian's newest version, or the folder named
    assert (stack_postgres.bin_dir(settings) / "initdb").exists()
    named = celery_settings(tmp_path, postgres_bin_dir=str(stack_postgres.bin_dir(settings)))
    assert stack_postgres.bin_dir(named) == stack_postgres.bin_dir(settings)


def test_settings_names_the_embedded_postgresql_the_running_stack_uses(tmp_path):
    """`gw-ops settings` shows the configured GW_OPS_POSTGRES_URL and says which server the
    running stack really uses when `up` started an embedded one (its password hidden)."""
    import json

    from click.testing import CliRunner

    from gw_ops.ops.cli import main
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = celery_settings(tmp_path, postgres_url=nobody)
    embedded, _ = stack._resolve_postgres(settings, print)
    stack.private_dir(settings.state_path)
    # what `up` records of the stack it starts
    (settings.state_path / "stack.json").write_text(json.dumps(embedded.as_env()))
    env = {"GW_OPS_STATE_DIR": str(settings.state_path), "GW_OPS_EXECUTOR": "celery",
           "GW_OPS_POSTGRES_URL": nobody}
    shown = CliRunner().invoke(main, ["settings"], env=env)
    assert shown.exit_code == 0, shown.output
    password = stack.load_secrets(embedded)["postgres_password"]
    assert f"GW_OPS_POSTGRES_URL = {nobody}   [" in shown.output
    port = embedded.embedded_postgres_port
    assert (f"the running stack uses its embedded PostgreSQL at postgresql://postgres:***@127.0.0.1:"
            f"{port}/postgres") in shown.output, shown.output
    assert password not in shown.output


def test_up_refuses_when_no_postgresql_answers_and_none_can_be_started(tmp_path, monkeypatch):
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = celery_settings(tmp_path, postgres_url=nobody, postgres_bin_dir=str(tmp_path / "none"),
                               redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert stack_postgres.bin_dir(settings) is None
    assert stack._resolve_postgres(settings, print)[1].startswith(f"no PostgreSQL answers at {nobody}")
    monkeypatch.setattr(stack_postgres, "DEBIAN_BIN_GLOB", str(tmp_path / "lib" / "*" / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert stack_postgres.bin_dir(celery_settings(tmp_path)) is None
    said = []
    assert stack.up(settings, out=said.append) == 2
    assert any("apt-get install postgresql" in line for line in said), said
    assert not list((settings.state_path / "run").glob("*.json"))


def test_embedded_postgresql_initialised_started_checked_and_stopped_cleanly(tmp_path):
    """initdb, the ``postgres`` component, the stack's database on it, ``status``, ``down``
    (fast shutdown), and a second start that keeps the data (about 5 s)."""
    base = celery_settings(tmp_path, postgres_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                           redis_url=f"redis://127.0.0.1:{free_port()}/0")
    said = []
    settings, _ = stack._resolve_postgres(base, said.append)
    component = next(c for c in stack.COMPONENTS if c.name == "postgres")
    log = stack.log_dir(settings) / "postgres.log"
    try:
        for round_ in (1, 2):
            stack.private_dir(stack.log_dir(settings))
            assert stack._prepare_embedded_postgres(settings, fresh_state=False, out=said.append)
            record = stack.start_component(settings, component)
            assert stack._wait_healthy(settings, [component], 60, said.append), log.read_text()[-2000:]
            assert distributed.ensure_stack_database(settings, fresh_state=False, out=said.append)
            with psycopg2.connect(settings.airflow_sql_alchemy_conn.replace("+psycopg2", "")) as connection:
                with connection.cursor() as cursor:
                    if round_ == 1:
                        cursor.execute("CREATE TABLE kept (x int)")
                    cursor.execute("SELECT to_regclass('kept')")
                    assert cursor.fetchone()[0] == "kept"
            connection.close()
            lines = []
            stack.status(settings, out=lines.append)
            line = next(line for line in lines if line.startswith("postgres "))
            assert " running " in line and " healthy " in line and "PostgreSQL 1" in line, line
            assert stack.down(settings, out=said.append) == 0
            assert not stack.pid_alive(record["pid"])
            assert log.read_text().rstrip().endswith("database system is shut down"), log.read_text()[-1000:]
        assert sum("initialised a PostgreSQL cluster" in line for line in said) == 1, said
        data = stack_postgres.data_dir(settings)
        assert data.is_dir() and data.stat().st_mode & 0o077 == 0
        # the password never lands in the logs
        password = stack.load_secrets(settings)["postgres_password"]
        for path in stack.log_dir(settings).iterdir():
            assert password not in path.read_text(), path
    finally:
        stack.down(settings, out=said.append)


@pytest.mark.slow
def test_gw_ops_prepare_migrates_airflow_creates_pools_and_the_gracedb_database_twice(tmp_path):
    """What compose's airflow-init runs, against this machine's PostgreSQL (idempotent)."""
    import json
    import subprocess
    import sys
    import uuid

    from cryptography.fernet import Fernet

    from gw_ops.config import postgres_database_url
    from tests.helpers import REPO_ROOT

    suffix = uuid.uuid4().hex[:8]
    airflow_url = postgres_database_url(TEST_POSTGRES_URL, f"gwtest_airflow_{suffix}", "psycopg2")
    gracedb_url = postgres_database_url(TEST_POSTGRES_URL, f"gwtest_gracedb_{suffix}", "psycopg2")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GW_OPS_", "AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "GW_OPS_STATE_DIR": str(tmp_path / "state"),
                "GW_OPS_GRACEDB_DB_URL": gracedb_url, "GW_OPS_OPENMP_POOL_SLOTS": "3"})
    try:
        distributed.ensure_database(airflow_url)  # compose's postgres service makes this one
        outputs = []
        for _ in range(2):
            result = subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", "prepare"], env=env, cwd=REPO_ROOT,
                                    capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
            outputs.append(result.stdout)
        assert "pool openmp: 3 slots" in result.stdout
        # the admin password: printed by the first run only (compose: `docker compose logs
        # airflow-init`), kept for the api-server in the state folder's airflow/ (0600)
        passwords = tmp_path / "state" / "airflow" / "simple_auth_manager_passwords.json"
        password = json.loads(passwords.read_text())["admin"]
        said = [line for line in outputs[0].splitlines() if line.startswith("Airflow admin password (user admin;")]
        assert len(said) == 1 and said[0].endswith(f": {password}"), outputs[0]
        assert password not in outputs[1] and "Airflow admin password unchanged" in outputs[1]
        assert passwords.stat().st_mode & 0o077 == 0
        assert database_exists(f"gwtest_gracedb_{suffix}")
        with psycopg2.connect(airflow_url.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT pool, slots FROM slot_pool")
            pools = dict(cursor.fetchall())
        assert pools["openmp"] == 3 and pools["superevent"] == 1 and pools["exttrig"] == 1
        netrc = tmp_path / "state" / "netrc"
        assert " login gw-ops password " in netrc.read_text() and netrc.stat().st_mode & 0o077 == 0
    finally:
        connection = psycopg2.connect(TEST_POSTGRES_URL)
        connection.autocommit = True  # DROP DATABASE runs outside a transaction
        with connection.cursor() as cursor:
            for name in (f"gwtest_airflow_{suffix}", f"gwtest_gracedb_{suffix}"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


def test_a_failed_initdb_is_reported_not_raised(tmp_path):
    programs = tmp_path / "bin"
    programs.mkdir()
    (programs / "initdb").write_text("#!/bin/sh\necho 'initdb: error: disk full' >&2\nexit 1\n")
    (programs / "initdb").chmod(0o755)
    settings = celery_settings(tmp_path, postgres_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                               postgres_bin_dir=str(programs))
    settings, problem = stack._resolve_postgres(settings, print)
    assert problem is None and stack_postgres.is_embedded(settings)
    stack.private_dir(stack.log_dir(settings))
    said = []
    assert not stack._prepare_embedded_postgres(settings, fresh_state=True, out=said.append)
    assert said[-1].startswith("initdb failed") and "postgres-initdb.log" in said[-1]
    assert "disk full" in (stack.log_dir(settings) / "postgres-initdb.log").read_text()
    assert not (stack_postgres.data_dir(settings) / "PG_VERSION").exists()
