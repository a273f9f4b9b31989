"""Where settings come from: precedence, Airflow connections, the state folder found from any
working folder, Redis persistence; and the CLI commands that show them, run as subprocesses
from another folder (no Airflow stack needed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gw_ops.config import find_state_dir, resolve_settings, state_record_path
from tests.helpers import REPO_ROOT, free_port


# --------------------------------------------------------------------------- precedence
def test_each_value_says_where_it_came_from():
    settings, sources = resolve_settings(env={"GW_OPS_PRESET": "local", "GW_OPS_GRACEDB_PORT": "9000"},
                                         broker_port=9100)
    assert (settings.gracedb_port, sources["gracedb_port"]) == (9000, "GW_OPS_GRACEDB_PORT")
    assert (settings.plot_volume, sources["plot_volume"]) == (False, "preset local")
    assert (settings.broker_port, sources["broker_port"]) == (9100, "option")
    assert (settings.lvalert_max_deliveries, sources["lvalert_max_deliveries"]) == (3, "default")


def test_connection_values_sit_between_variables_and_preset():
    connections = {"redis_url": "redis://10.0.0.5:6380/2", "gracedb_url": "https://gracedb.example/api/"}
    settings, sources = resolve_settings(env={"GW_OPS_PRESET": "playground"}, connections=connections)
    assert settings.redis_url == "redis://10.0.0.5:6380/2"
    assert sources["redis_url"] == "Airflow connection redis_default"
    # the connection wins over the playground preset's GraceDB ...
    assert (settings.gracedb_url, sources["gracedb_url"]) == ("https://gracedb.example/api/",
                                                              "Airflow connection gracedb_default")
    # ... and a GW_OPS_ variable wins over the connection
    settings, sources = resolve_settings(env={"GW_OPS_REDIS_URL": "redis://127.0.0.1:7000/0"},
                                         connections=connections)
    assert (settings.redis_url, sources["redis_url"]) == ("redis://127.0.0.1:7000/0", "GW_OPS_REDIS_URL")
    with pytest.raises(ValueError, match="not a connection-backed setting"):
        resolve_settings(env={}, connections={"broker_port": 1})


def test_installed_reader_is_used_only_with_the_process_environment(monkeypatch):
    from gw_ops import config
    monkeypatch.setattr(config, "_connection_reader", lambda: {"redis_url": "redis://10.1.1.1:6379/0"})
    monkeypatch.delenv("GW_OPS_REDIS_URL", raising=False)
    assert config.get_settings().redis_url == "redis://10.1.1.1:6379/0"
    assert config.get_settings(env={}).redis_url == "redis://127.0.0.1:6379/0"  # exactly that env


def test_connections_round_trip_the_settings():
    from gw_ops.airflow.connections import (
        connection_fields,
        gracedb_url_from_fields,
        redis_url_from_fields,
    )
    settings, _ = resolve_settings(env={}, redis_url="redis://user:p%40ss@10.0.0.7:6390/3",
                                   gracedb_url="https://gracedb-playground.ligo.org/api/")
    fields = connection_fields(settings)
    assert fields["redis_default"]["conn_type"] == "redis" and fields["gracedb_default"]["conn_type"] == "http"
    assert json.loads(fields["redis_default"]["extra"]) == {"db": 3}
    assert redis_url_from_fields(fields["redis_default"]) == "redis://user:p%40ss@10.0.0.7:6390/3"
    assert gracedb_url_from_fields(fields["gracedb_default"]) == "https://gracedb-playground.ligo.org/api/"
    local, _ = resolve_settings(env={}, gracedb_port=8123)
    assert gracedb_url_from_fields(connection_fields(local)["gracedb_default"]) == "http://127.0.0.1:8123/api/"


def test_redis_url_read_as_the_redis_hook_reads_the_connection():
    """The URL tasks use is what the provider's RedisHook would connect to (db, password, ssl)."""
    from airflow.providers.redis.hooks.redis import RedisHook
    from airflow.sdk import Connection

    from gw_ops.airflow.connections import redis_url_from_hook

    conn = Connection(conn_id="redis_default", conn_type="redis", host="10.2.3.4", port=6391,
                      password="s3cret", extra=json.dumps({"db": 4}))
    hook = RedisHook(redis_conn_id="redis_default")
    hook.get_connection = lambda conn_id: conn
    assert redis_url_from_hook(hook) == "redis://:s3cret@10.2.3.4:6391/4"


def test_connections_are_not_read_outside_a_task_or_trigger():
    from gw_ops.airflow.connections import in_airflow_runtime, read_connection_settings
    assert not in_airflow_runtime()
    assert read_connection_settings() == {}


# --------------------------------------------------------------------------- state folder
def test_state_folder_found_in_a_parent_then_from_the_record(tmp_path):
    project = tmp_path / "project"
    (project / ".gw-ops").mkdir(parents=True)
    (project / "sub" / "deeper").mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert find_state_dir(project / "sub" / "deeper", env) == (project / ".gw-ops", f"found in {project}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_state_dir(elsewhere, env) is None
    record = state_record_path(env)
    record.parent.mkdir(parents=True)
    record.write_text(f"{tmp_path / 'recorded'}\n")
    assert find_state_dir(elsewhere, env) is None  # recorded folder gone: not used
    (tmp_path / "recorded").mkdir()
    assert find_state_dir(elsewhere, env) == (tmp_path / "recorded", f"recorded by gw-ops up in {record}")


def cli(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``gw-ops ARGS`` as a subprocess in ``cwd`` (this tree's package on PYTHONPATH)."""
    return subprocess.run([sys.executable, "-m", "gw_ops.ops.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout,
                          env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                                  env.get("PYTHONPATH")]))})


def plain_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GW_OPS_", "AIRFLOW"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return env


def test_settings_command_shows_values_in_force_and_their_sources(tmp_path):
    env = {**plain_env(tmp_path), "GW_OPS_BROKER_PORT": "8111"}
    result = cli("settings", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "GW_OPS_BROKER_PORT = 8111   [GW_OPS_BROKER_PORT]" in lines
    assert "GW_OPS_PLOT_VOLUME = False   [preset local]" in lines  # not the built-in True
    assert "GW_OPS_LVALERT_MAX_DELIVERIES = 3   [default]" in lines
    assert f"GW_OPS_STATE_DIR = {tmp_path / '.gw-ops'}   [default]" in lines
    assert "Airflow connections not read" in result.stdout  # no stack there


def test_down_with_nothing_running_says_so(tmp_path):
    state = tmp_path / "state"
    result = cli("down", cwd=tmp_path, env={**plain_env(tmp_path), "GW_OPS_STATE_DIR": str(state)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"nothing was running (state folder {state})"


def test_down_reports_a_component_that_had_already_exited(tmp_path):
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state / "run" / "broker.json").write_text(json.dumps({"pid": dead.pid, "pgid": dead.pid, "argv": [],
                                                           "address": "-", "started": 0}))
    result = cli("down", cwd=tmp_path, env={**plain_env(tmp_path), "GW_OPS_STATE_DIR": str(state)})
    assert result.returncode == 0, result.stderr
    assert f"broker was not running (pid {dead.pid} had exited); record removed" in result.stdout
    assert f"nothing was running (state folder {state})" in result.stdout
    assert not (state / "run" / "broker.json").exists()


# --------------------------------------------------------------------------- Redis persistence
@pytest.mark.parametrize(("config", "durable"), [
    ({"appendonly": "yes", "appendfsync": "everysec", "save": ""}, True),
    ({"appendonly": "no", "save": ""}, False),
    ({"appendonly": "no", "save": "3600 1 300 100 60 10000"}, False),   # a lone write waits 1 h
    ({"appendonly": "no", "save": "300 100 60 1"}, True),               # every write within 60 s
    ({"appendonly": "no", "save": "900 1"}, False),
])
def test_persistence_verdict(config, durable):
    from gw_ops.transport.redis_client import persistence

    class FakeRedis:
        def config_get(self, name):
            return {name: config.get(name, "")}
    verdict, detail = persistence(FakeRedis(), rdb_max_window_s=300)
    assert verdict is durable, detail


def test_up_refuses_a_volatile_redis_and_accepts_it_when_told(tmp_path):
    """Against a real volatile redis-server: refused; with GW_OPS_ALLOW_VOLATILE_REDIS=1 the
    check passes (with a warning) and up goes on to its next check, a taken port here, so
    nothing of a stack is started."""
    import socket

    from tests.fixtures.redis_server import redis_server

    with redis_server(tmp_path / "volatile-redis", durable=False) as url, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        state = tmp_path / "state"
        env = {**plain_env(tmp_path), "GW_OPS_STATE_DIR": str(state), "GW_OPS_REDIS_URL": url,
               "GW_OPS_GRACEDB_PORT": str(taken.getsockname()[1]), "GW_OPS_AIRFLOW_PORT": str(free_port()),
               "GW_OPS_BROKER_PORT": str(free_port())}
        refused = cli("up", cwd=tmp_path, env=env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"refusing to start: the Redis at {url} does not keep its data" in refused.stdout
        assert "appendonly no, save ''" in refused.stdout
        assert "GW_OPS_ALLOW_VOLATILE_REDIS=1" in refused.stdout
        accepted = cli("up", cwd=tmp_path, env={**env, "GW_OPS_ALLOW_VOLATILE_REDIS": "1"})
        assert accepted.returncode == 2, accepted.stdout + accepted.stderr
        assert f"WARNING: the Redis at {url} is volatile" in accepted.stdout
        assert "is taken by another process" in accepted.stdout
        assert not list((state / "run").glob("*.json")), "nothing may be started"


def test_state_folder_is_private(tmp_path):
    from gw_ops.ops.stack import private_dir
    folder = private_dir(tmp_path / "state" / "inner")
    assert folder.stat().st_mode & 0o777 == 0o700
