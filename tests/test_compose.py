"""docker-compose.yaml agrees with the code (no Docker engine runs here, so we check the file):
every queue a task names has a worker, the pools are created by airflow-init, services
wait for healthy Redis and PostgreSQL, all Airflow processes share one JWT secret, secrets
come only from the environment (.env) and Flower is off by default.  The file is also
checked by Debian's ``docker-compose config`` and against the compose-spec JSON schema
that the same package ships; both checks are shown to fail on a broken file."""
from __future__ import annotations

import copy
import glob
import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import REPO_ROOT
from tests.test_dag_integrity import parse_dag_folder

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [name for name, svc in SERVICES.items() if name not in ("postgres", "redis")]


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def worker_queues() -> dict[str, set[str]]:
    queues = {}
    for name, service in SERVICES.items():
        words = command_text(service).split()
        if "celery" in words and "worker" in words:
            queues[name] = set(words[words.index("--queues") + 1].split(","))
    return queues


def test_every_queue_named_by_a_task_has_a_worker(tmp_path):
    report = parse_dag_folder(tmp_path)
    used = {queue for info in report["dags"].values() for queue in info["queues"]}
    served = set().union(*worker_queues().values())
    assert used, "no DAG task found"
    assert used <= served, f"queues without a worker: {used - served}"
    assert {"default", "openmp", "superevent", "exttrig"} <= served


def test_serial_queues_run_one_task_at_a_time_and_openmp_is_limited():
    for name, queues in worker_queues().items():
        words = command_text(SERVICES[name]).split()
        if queues & {"superevent", "exttrig"}:
            assert words[words.index("--concurrency") + 1] == "1", name
    openmp = next(svc for name, svc in SERVICES.items() if "openmp" in worker_queues().get(name, ()))
    assert "OMP_NUM_THREADS" in openmp["environment"] and "cpus" in openmp


# --- one definition: gw_ops.ops.distributed (what `gw-ops up --executor celery` runs) ------
def with_defaults(text: str) -> str:
    """``text`` with every ``${NAME:-default}`` replaced by its default, as compose does
    when the variable is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(text))


def compose_settings():
    """The gw-ops settings the compose services run with (the GW_OPS_* variables of
    x-airflow-common, defaults filled in)."""
    from gw_ops.config import get_settings
    env = COMPOSE["x-airflow-common"]["environment"]
    return get_settings(env={k: with_defaults(v) for k, v in env.items() if k.startswith("GW_OPS_")})


def test_compose_workers_are_the_distributed_stacks_queues_with_the_same_concurrency():
    from gw_ops.ops.distributed import WORKER_QUEUES, worker_concurrency, worker_service
    settings = compose_settings()
    assert settings.executor == "celery"
    assert {name for name in SERVICES if name.startswith("worker-")} == {worker_service(q) for q in WORKER_QUEUES}
    for queue in WORKER_QUEUES:
        words = with_defaults(command_text(SERVICES[worker_service(queue)])).split()
        assert words[:3] == ["airflow", "celery", "worker"], words
        assert words[words.index("--queues") + 1] == queue
        # the same number as the openmp pool that airflow-init creates from these settings
        assert int(words[words.index("--concurrency") + 1]) == worker_concurrency(settings, queue), queue


def test_compose_celery_variables_are_the_distributed_stacks():
    from gw_ops.ops.distributed import celery_airflow_env
    env = COMPOSE["x-airflow-common"]["environment"]
    ours = celery_airflow_env(compose_settings())
    assert set(ours) <= set(env), f"missing in compose: {set(ours) - set(env)}"
    # URLs name other hosts in compose; everything else must be equal
    for key, value in ours.items():
        if not key.endswith(("BROKER_URL", "RESULT_BACKEND")):
            assert str(env[key]) == value, key
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")


def test_no_service_relies_on_dumb_init_that_the_image_lacks():
    assert "DUMB_INIT" not in COMPOSE_TEXT
    assert "dumb-init" not in (REPO_ROOT / "Dockerfile").read_text()


def test_airflow_init_prepares_the_databases_through_the_code_not_inline_scripts():
    # gw-ops prepare = gw_ops.ops.distributed.prepare_deployment: setup_db (pools from
    # gw_ops.airflow.pools, connections), the GraceDB database, the service account
    assert SERVICES["airflow-init"]["command"] == ["gw-ops", "prepare"]
    for name, service in SERVICES.items():
        text = command_text(service)
        assert "<<" not in text and "python -" not in text, f"{name} runs an inline script"
        assert "postgresql" not in text, f"{name} has a database URL in its command"
    env = COMPOSE["x-airflow-common"]["environment"]
    assert env["GW_OPS_GRACEDB_DB_URL"].endswith("@postgres/gracedb")


def test_services_depend_on_healthy_redis_and_postgres():
    for service in ("redis", "postgres"):
        assert "healthcheck" in SERVICES[service]
    for name in AIRFLOW_SERVICES:
        if name == "airflow-cli":  # a debug shell, run by hand after the stack is up
            continue
        depends = SERVICES[name].get("depends_on", {})
        assert depends.get("redis", {}).get("condition") == "service_healthy", name
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
        if name != "airflow-init":
            assert depends.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
            assert "healthcheck" in SERVICES[name], f"{name} has no healthcheck"


def test_airflow_processes_share_executor_jwt_secret_and_build_from_the_repo():
    common = COMPOSE["x-airflow-common"]
    assert common["build"]["context"] == "."
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    for name in AIRFLOW_SERVICES:
        service_env = SERVICES[name].get("environment", env)
        assert service_env.get("AIRFLOW__API_AUTH__JWT_SECRET") == env["AIRFLOW__API_AUTH__JWT_SECRET"], name
        # the log servers of workers and triggerer check tokens signed with [api] secret_key
        assert service_env.get("AIRFLOW__API__SECRET_KEY") == env["AIRFLOW__API__SECRET_KEY"], name
    expected = {"gracedb", "broker", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                "airflow-triggerer", "flower", "airflow-init"}
    assert expected <= set(SERVICES)


# --- secrets and exposure (issue 12 item 7) ----------------------------------------------
COMPOSE_TEXT = (REPO_ROOT / "docker-compose.yaml").read_text()
SECRET_VARIABLES = ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY")
DUMMY_ENV = {"POSTGRES_PASSWORD": "dummy0pass", "AIRFLOW_FERNET_KEY": "dummy-fernet",
             "AIRFLOW_JWT_SECRET": "dummy-jwt", "AIRFLOW_API_SECRET_KEY": "dummy-api-key"}


def test_secrets_are_required_variables_without_defaults():
    references = re.findall(r"\$\{(\w+)([^}]*)\}", COMPOSE_TEXT)
    secret_refs = [(name, rest) for name, rest in references
                   if any(word in name for word in ("SECRET", "PASSWORD", "FERNET", "KEY"))]
    assert {name for name, _ in secret_refs} == set(SECRET_VARIABLES)
    for name, rest in secret_refs:
        assert rest.startswith(":?"), f"${{{name}{rest}}} must be required (:?), with no default"
    # no credential written in the file itself
    assert "airflow:airflow@" not in COMPOSE_TEXT and "password=airflow" not in COMPOSE_TEXT
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    example = (REPO_ROOT / ".env.example").read_text()
    for name in SECRET_VARIABLES:
        assert re.search(rf"^{name}=$", example, re.M), f".env.example must list {name} empty"
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_debug_cli_is_off_by_default_and_services_run_as_the_chosen_uid():
    assert SERVICES["airflow-cli"]["profiles"] == ["debug"]
    assert SERVICES["airflow-cli"]["entrypoint"] == ["airflow"]
    common = COMPOSE["x-airflow-common"]
    assert common["user"] == "${AIRFLOW_UID:-50000}:0"
    # the image is built for the same uid, which then owns /data (the named volume)
    assert common["build"]["args"]["AIRFLOW_UID"] == "${AIRFLOW_UID:-50000}"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "ARG AIRFLOW_UID" in dockerfile and '--uid "${AIRFLOW_UID}"' in dockerfile


def test_dags_plugins_and_logs_are_mounted_where_airflow_reads_them():
    common = COMPOSE["x-airflow-common"]
    env = common["environment"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) if volume.count(":") == 2 else volume.split(":", 1)
                  for volume in common["volumes"])
    assert mounts["./dags"] == env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert mounts["./plugins"] == env["AIRFLOW__CORE__PLUGINS_FOLDER"]
    # Airflow's base_log_folder default: AIRFLOW_HOME/logs of the image
    home = re.search(r"AIRFLOW_HOME=(\S+)", (REPO_ROOT / "Dockerfile").read_text()).group(1)
    assert mounts["./logs"] == f"{home}/logs"
    assert mounts["gw-ops-data"] == env["GW_OPS_STATE_DIR"]
    assert "logs/" in (REPO_ROOT / ".gitignore").read_text().split()


def test_admin_password_is_made_by_airflow_init_where_the_api_server_reads_it():
    settings = compose_settings()
    env = COMPOSE["x-airflow-common"]["environment"]
    # prepare_deployment writes it (gw_ops.ops.state.ensure_airflow_password) into the volume
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        settings.airflow_home / "simple_auth_manager_passwords.json")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert "docker compose logs airflow-init" in COMPOSE_TEXT


def test_public_gracedb_url_and_broker_allow_list_suit_the_compose_network():
    from gw_ops.gracedb_urls import gracedb_home_url, superevent_page_url
    from gw_ops.vtp.broker import address_allowed, parse_allow_list
    settings = compose_settings()
    internal = settings.gracedb_api_url
    assert internal.startswith("http://gracedb:")  # a service name: right for the pipeline only
    public = settings.gracedb_public_api_url
    assert public.split("/")[2].split(":")[0] not in SERVICES, "public URL names a container"
    assert public.split(":")[-1].split("/")[0] == SERVICES["gracedb"]["ports"][0].split(":")[0]
    assert superevent_page_url(settings, "S1").startswith(public.removesuffix("api/"))
    assert gracedb_home_url(settings) == public.removesuffix("api/")
    # the alert sender's VOEvents and JSON alerts: EventPage and sky-map URL
    from gw_ops.handlers.alert_sender import _event_page, _file_url
    assert _event_page(settings, "S1") == "http://localhost:8090/superevents/S1/view/"
    assert _file_url(settings, "S1", "bayestar.multiorder.fits", 0).startswith(public)
    # without a public URL they follow the API root the pipeline uses, as before
    from gw_ops.config import get_settings
    plain = get_settings(env={"GW_OPS_GRACEDB_URL": "https://gracedb.example/api/"})
    assert plain.gracedb_public_api_url == "https://gracedb.example/api/"
    assert _event_page(plain, "S1") == "https://gracedb.example/superevents/S1/view/"
    # the triggerer's GCN listener reaches the broker from Docker's default networks
    networks = parse_allow_list(settings.broker_allow)
    for peer in ("127.0.0.1", "172.17.0.5", "172.20.0.3", "192.168.16.4"):
        assert address_allowed(peer, networks), peer
    assert not address_allowed("8.8.8.8", networks)
    assert settings.gcn_server_list == ("broker:8099",)
    # authors (gw-ops gcn publish) only from inside the broker's own container
    assert all(network.is_loopback for network in parse_allow_list(settings.broker_authors))


def test_flower_is_off_by_default_and_never_published_to_all_interfaces():
    flower = SERVICES["flower"]
    assert flower.get("profiles") == ["flower"]
    for port in flower.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port


def docker_compose_config(env: dict[str, str], text: str | None = None) -> subprocess.CompletedProcess:
    """``docker-compose config`` of docker-compose.yaml (or of ``text``, from standard input)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("Debian's docker-compose is not installed: apt-get install docker-compose "
                    "(.ci/run installs it)")
    source = "-" if text is not None else str(REPO_ROOT / "docker-compose.yaml")
    # from standard input, relative paths (./dags, build .) resolve against the project folder
    folder = ["--project-directory", str(REPO_ROOT)] if text is not None else []
    return subprocess.run([binary, "-f", source, *folder, "config"], input=text,
                          env={"PATH": "/usr/bin:/bin", **env}, cwd="/", capture_output=True,
                          text=True, timeout=60)


def test_docker_compose_config_is_valid_with_secrets_and_refuses_without():
    result = docker_compose_config(DUMMY_ENV)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    env = rendered["services"]["airflow-scheduler"]["environment"]
    assert rendered["services"]["worker-openmp"]["command"][-1] == "1"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "dummy-jwt"
    assert env["AIRFLOW__CORE__FERNET_KEY"] == "dummy-fernet"
    assert env["AIRFLOW__API__SECRET_KEY"] == "dummy-api-key"
    assert rendered["services"]["flower"]["profiles"] == ["flower"]  # not started by default
    for name in SECRET_VARIABLES:
        missing = docker_compose_config({k: v for k, v in DUMMY_ENV.items() if k != name})
        assert missing.returncode != 0 and f"set {name}" in missing.stderr, (name, missing.stderr)


def test_docker_compose_config_gives_the_openmp_pool_and_worker_the_same_slots():
    result = docker_compose_config({**DUMMY_ENV, "GW_OPS_OPENMP_POOL_SLOTS": "3",
                                    "GW_OPS_CELERY_DEFAULT_CONCURRENCY": "6"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["worker-openmp"]["command"][-1] == "3"
    assert services["worker-default"]["command"][-1] == "6"
    for name in ("airflow-init", "worker-openmp", "airflow-scheduler"):
        assert services[name]["environment"]["GW_OPS_OPENMP_POOL_SLOTS"] == "3", name


def test_docker_compose_config_refuses_a_broken_file():
    broken = COMPOSE_TEXT.replace("    restart: always\n", "    restart_policy: always\n", 1)
    assert broken != COMPOSE_TEXT
    result = docker_compose_config(DUMMY_ENV, broken)
    assert result.returncode != 0 and "restart_policy" in result.stderr, result.stderr
    assert docker_compose_config(DUMMY_ENV, COMPOSE_TEXT).returncode == 0


# --- the compose-spec JSON schema ------------------------------------------------------
#: Where Debian's docker-compose (1.29, Apache-2.0) keeps the compose-spec schema it
#: validates with; .ci/run installs the package.
COMPOSE_SPEC_GLOB = "/usr/lib/python3*/dist-packages/compose/config/compose_spec.json"
#: compose's "duration" format: Go durations such as 10s, 1m30s, 500ms (not ISO 8601).
COMPOSE_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|\u00b5s|ms|s|m|h))+$")


def compose_spec_validator():
    """A validator of the compose-spec schema, with compose's own "duration" format."""
    import jsonschema

    paths = sorted(glob.glob(COMPOSE_SPEC_GLOB))
    if not paths:
        pytest.fail(f"no compose-spec schema at {COMPOSE_SPEC_GLOB}: apt-get install docker-compose "
                    "(.ci/run installs it)")
    schema = json.loads(open(paths[-1]).read())
    # its $schema ("...draft/2019-09/schema#") is that draft, which jsonschema does not
    # recognise with the trailing "#": say it outright
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("duration")(lambda value: not isinstance(value, str) or bool(COMPOSE_DURATION.match(value)))
    return jsonschema.Draft201909Validator(schema, format_checker=formats)


def schema_errors(document: dict) -> list[str]:
    return [f"{error.json_path}: {error.message}" for error in compose_spec_validator().iter_errors(document)]


def test_compose_file_and_its_rendering_follow_the_compose_spec_schema():
    assert schema_errors(COMPOSE) == []
    result = docker_compose_config(DUMMY_ENV)
    assert result.returncode == 0, result.stderr
    assert schema_errors(yaml.safe_load(result.stdout)) == []


def test_compose_spec_schema_finds_the_faults_of_a_broken_file():
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["redis"]["restart_policy"] = "always"          # no such key
    broken["services"]["postgres"]["healthcheck"]["interval"] = "ten seconds"  # not a duration
    broken["services"]["flower"]["profiles"] = "flower"                # a list, not a string
    errors = "\n".join(schema_errors(broken))
    assert "services.redis" in errors and "restart_policy" in errors, errors
    assert "services.postgres.healthcheck.interval" in errors, errors
    assert "services.flower.profiles" in errors, errors


def test_local_gracedb_writes_the_public_url_into_the_voevents_it_makes(base_settings, tmp_path):
    """The compose file's GraceDB is reached as http://gracedb:8090/ inside the network; the
    VOEvents it builds carry GW_OPS_GRACEDB_PUBLIC_URL, and its API answers keep the
    address the client used."""
    import dataclasses

    from lxml import etree

    from gw_ops.ops.processes import stop_process_group
    from tests.fixtures.gracedb import start_gracedb
    from tests.helpers import free_port
    from tests.pages_world import make_superevent

    public = "https://gracedb.example.org/api/"
    settings = dataclasses.replace(base_settings, state_dir=tmp_path / "state", gracedb_port=free_port(),
                                   gracedb_url="", gracedb_db_url="", gracedb_files_dir="",
                                   gracedb_public_url=public)
    service = start_gracedb(settings, tmp_path / "gracedb.log")
    try:
        sid, _ = make_superevent(service, 1_300_000_000.0, voevent=True)
        client = service.client()
        voevent = client.voevents(sid).json()["voevents"][0]
        xml = client.files(sid, voevent["filename"]).read()
        params = {p.get("name"): p.get("value") for p in etree.fromstring(
            xml, etree.XMLParser(resolve_entities=False, no_network=True)).iter("Param")}
        assert params["EventPage"] == f"https://gracedb.example.org/superevents/{sid}/view/"
        assert params["skymap_fits"] == f"{public}superevents/{sid}/files/bayestar.multiorder.fits"
        assert voevent["file"].startswith(settings.gracedb_api_url), voevent
    finally:
        stop_process_group(service.process)
