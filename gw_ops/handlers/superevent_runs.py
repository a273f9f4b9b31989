"""Hand-over from the superevent lane to the superevent's own DAG run (issue 11).

The superevent manager (:mod:`gw_ops.handlers.superevents`) *requests* one run of the
``superevent`` DAG per superevent it creates, with the superevent's story (id, preferred
event, FAR, pipeline, group, links).  The request is a Redis hash entry written before the
lane acknowledges the message.  Right after it, a background thread of the lane's process
creates the run over Airflow's REST API (:func:`start_run`; run id = superevent id, HTTP
409 = it exists) and marks it started, so the run exists about a second after the
superevent, while the lane keeps draining (a lingering drain ends half a minute later).
When Airflow is out of reach, or the process dies first, the request stays in Redis and
the superevent lane DAG's task after the drain starts it (``skip_when_already_exists``).
So a crash between the GraceDB write and the run start loses nothing (the request waits
in Redis, and a redelivered message re-requests it while the run is not marked started),
and neither a retry nor the two ways of starting ever make a second run (the run id is
the superevent id).

No Airflow import here: the airflow layer (:mod:`gw_ops.airflow.superevent_dag`) reads the
requests.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from gw_ops.config import Settings
from gw_ops.formats.alert_content import INITIAL, RETRACTION
from gw_ops.gracedb_urls import superevent_file_url, superevent_page_url
from gw_ops.rules.alert_policy import (
    LESS_SIGNIFICANT_PRELIMINARY_KEY,
    SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY,
    preliminary_key,
)
from gw_ops.vocabulary import SKYMAP_IMAGE_FILENAME

#: DAG id of the per-superevent run.
SUPEREVENT_DAG_ID = "superevent"
#: Seconds a "run started" marker is kept (after that a redelivery cannot be that old).
STARTED_MARKER_TTL_S = 30 * 86400
#: Seconds to wait for Airflow's API to accept a connection when the lane starts a run
#: (then the task after the drain starts it): a lane never waits long on Airflow.
RUN_START_CONNECT_TIMEOUT_S = 2.0
#: Seconds the lane's drain waits at its end for the run starts still in flight.
RUN_START_DRAIN_WAIT_S = 5.0

log = logging.getLogger(__name__)


def story(settings: Settings, superevent_id: str, event: Mapping[str, Any],
          category: str | None = None) -> dict[str, Any]:
    """The conf of a superevent run: who, what, where to look.

    Parameters
    ----------
    superevent_id : str
    event : dict
        The preferred G event's GraceDB JSON.
    """
    return {"superevent_id": superevent_id, "preferred_event": event.get("graceid"),
            "far": event.get("far"), "pipeline": event.get("pipeline"),
            "group": event.get("group"), "search": event.get("search"),
            "gpstime": event.get("gpstime"), "category": category,
            "gracedb_url": superevent_page_url(settings, superevent_id),
            "skymap_image_url": superevent_file_url(settings, superevent_id, SKYMAP_IMAGE_FILENAME),
            "requested_at": time.time()}


def run_note(conf: Mapping[str, Any]) -> str:
    """Markdown note of a superevent run (shown at the top of the run in the UI)."""
    far = conf.get("far")
    far_text = f"{float(far):.3g} Hz" if far is not None else "?"
    return (f"**{conf['superevent_id']}**: preferred event {conf.get('preferred_event')} "
            f"({conf.get('pipeline')}, {conf.get('group')}, {conf.get('search')}), FAR {far_text}. "
            f"[GraceDB page]({conf.get('gracedb_url')}) · [sky map]({conf.get('skymap_image_url')})")


def _pending_key(settings: Settings) -> str:
    return settings.key("superevent_runs", "pending")


def _started_key(settings: Settings, superevent_id: str) -> str:
    return settings.key("superevent_runs", "started", superevent_id)


def request_run(redis_client, settings: Settings, conf: Mapping[str, Any]) -> bool:
    """Ask for the superevent's run unless it was started; True while it waits to be
    started (asked now, or before and not started yet: a redelivery)."""
    superevent_id = conf["superevent_id"]
    if redis_client.exists(_started_key(settings, superevent_id)):
        return False
    redis_client.hsetnx(_pending_key(settings), superevent_id, json.dumps(conf))
    return True


def pending_runs(redis_client, settings: Settings) -> list[dict[str, Any]]:
    """Requested runs not yet marked started, oldest request first."""
    raw = redis_client.hgetall(_pending_key(settings))
    confs = [json.loads(value) for value in raw.values()]
    return sorted(confs, key=lambda conf: conf.get("requested_at", 0))


def mark_started(redis_client, settings: Settings, superevent_ids: list[str]) -> None:
    """Record that these runs exist (then drop their requests)."""
    if not superevent_ids:
        return
    with redis_client.pipeline() as pipe:
        for superevent_id in superevent_ids:
            pipe.set(_started_key(settings, superevent_id), "1", ex=STARTED_MARKER_TTL_S)
        pipe.hdel(_pending_key(settings), *superevent_ids)
        pipe.execute()


def run_started(redis_client, settings: Settings, superevent_id: str) -> bool:
    """Whether the superevent's run was started (so it may wait for an answer)."""
    return bool(redis_client.exists(_started_key(settings, superevent_id)))


#: Waits (s) before each try of a run start; tries after the first follow a 5xx answer.
RUN_START_SERVER_ERROR_WAITS_S = (0.0, 0.5, 2.0)


def start_run(settings: Settings, conf: Mapping[str, Any], http=None, redis_client=None) -> str:
    """Create the requested superevent run over Airflow's REST API and mark it started.

    Parameters
    ----------
    conf : dict
        The run's :func:`story` (its ``superevent_id`` is the run id).
    http : httpx.Client, optional
        A client logged into Airflow (tests); by default the stack's.
    redis_client : optional
        By default one of its own (this runs in a thread of the lane's process).

    Returns
    -------
    str
        ``created``, ``exists`` (409: started before, by this path or the task after the
        drain), or ``left`` (Airflow out of reach, no Airflow credentials here, or another
        answer): the request stays in Redis for the task after the drain.
    """
    import httpx

    from gw_ops.errors import TransientError

    superevent_id = conf["superevent_id"]
    if http is None:
        passwords = settings.airflow_home / "simple_auth_manager_passwords.json"
        if not passwords.exists():
            log.debug("%s: no Airflow credentials at %s; its run is started after the drain",
                      superevent_id, passwords)
            return "left"
    try:
        with _airflow_calls(settings, http, connect_timeout_s=RUN_START_CONNECT_TIMEOUT_S) as api:
            for wait_s in RUN_START_SERVER_ERROR_WAITS_S:
                # A 5xx is tried again soon: on the SQLite metadata database two runs
                # created at once can deadlock in Airflow's API server until the busy
                # timeout fails one of them ("database is locked", 500).  A run the
                # failed try did create answers 409 (exists) the next time.
                time.sleep(wait_s)
                response = api.post(f"/api/v2/dags/{SUPEREVENT_DAG_ID}/dagRuns",
                                     json={"dag_run_id": superevent_id, "logical_date": None,
                                           "conf": dict(conf), "note": run_note(conf)})
                if response.status_code < 500:
                    break
                log.warning("%s: Airflow answered %s to the run start; trying again",
                            superevent_id, response.status_code)
    except (TransientError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
        # out of reach, a refused login or a bad password file
        log.warning("%s: run not started from the lane (%s); the task after the drain "
                    "starts it", superevent_id, exc)
        return "left"
    if response.status_code not in (200, 409):
        log.warning("%s: Airflow answered %s to the run start (%s); the task after the drain "
                    "starts it", superevent_id, response.status_code, response.text[:200])
        return "left"
    own = redis_client is None
    if own:
        from gw_ops.transport.redis_client import get_redis
        redis_client = get_redis(settings)
    try:
        mark_started(redis_client, settings, [superevent_id])
    finally:
        if own:
            redis_client.close()
    outcome = "created" if response.status_code == 200 else "exists"
    log.info("%s: superevent run %s", superevent_id, outcome)
    return outcome


class _RunStarter:
    """The lane process's background thread that starts requested runs (one at a time,
    in request order), so a lane never waits on Airflow between two messages."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid: int | None = None
        self._in_flight: set[Future] = set()

    def submit(self, settings: Settings, conf: Mapping[str, Any]) -> Future:
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # The starter's HTTP client is imported here, in the lane's thread: imported
                # for the first time inside the starter thread while the lane imports other
                # modules, httpx (and rich, which it pulls in) came out partly initialised
                # (KeyError 'rich.live') and the first starts failed.  Free in an Airflow
                # task, whose SDK has loaded it already.
                import httpx  # noqa: F401
                # a forked task process inherits the pool but not its thread: a new one
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="superevent-run")
                self._pool_pid, self._in_flight = os.getpid(), set()
            future = self._pool.submit(start_run, settings, dict(conf))
            self._in_flight.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            self._in_flight.discard(future)
        if not future.cancelled() and future.exception() is not None:
            # e.g. Redis out of reach while marking it started: the request is still
            # there, and the task after the drain finds the run (skipped as existing)
            log.warning("a superevent run start failed: %r; the task after the drain "
                        "takes the request over", future.exception())

    def wait(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the starts in flight; returns how many still are."""
        with self._lock:
            pending = set(self._in_flight)
        if not pending:
            return 0
        return len(wait(pending, timeout=timeout_s).not_done)


_starter = _RunStarter()


def start_run_soon(settings: Settings, conf: Mapping[str, Any]) -> Future:
    """Start the requested run in the background (:func:`start_run`); the request is in
    Redis already, so nothing is lost when this never happens."""
    return _starter.submit(settings, conf)


def wait_for_run_starts(timeout_s: float = RUN_START_DRAIN_WAIT_S) -> int:
    """Wait for this process's run starts in flight (the end of a drain), at most
    ``timeout_s`` seconds; returns how many are still going (the task after the drain
    sees their requests and starts them, or finds them started)."""
    return _starter.wait(timeout_s)


#: Task of the superevent DAG that asks the advocate (Airflow human-in-the-loop).
SIGNOFF_TASK_ID = "advocate_signoff"


def _airflow_session(settings: Settings, connect_timeout_s: float = 10.0):
    """An ``httpx`` client logged into the stack's Airflow API (simple auth manager admin).

    ``connect_timeout_s``: seconds to wait for a connection (reads wait up to 10 s).
    """
    import httpx

    passwords = json.loads((settings.airflow_home / "simple_auth_manager_passwords.json").read_text())
    http = httpx.Client(base_url=settings.airflow_api_url,
                        timeout=httpx.Timeout(10.0, connect=connect_timeout_s))
    response = http.post("/auth/token", json={"username": "admin", "password": passwords["admin"]})
    response.raise_for_status()
    http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return http


@contextlib.contextmanager
def _airflow_calls(settings: Settings, http=None, connect_timeout_s: float = 10.0):
    """The given Airflow client, or a logged-in session closed after use; Airflow out of
    reach (refused, reset, timed out) leaves as :class:`gw_ops.errors.TransientError`, so
    the lane retries the message instead of failing."""
    import httpx

    from gw_ops.errors import TransientError

    own = http is None
    try:
        # a session logged in already (a request was made): httpx refuses to enter it
        # as a context manager, so it is closed explicitly
        http = http or _airflow_session(settings, connect_timeout_s)
        yield http
    except httpx.TransportError as exc:
        raise TransientError(f"Airflow API at {settings.airflow_api_url} out of reach: {exc}") from exc
    finally:
        if own and http is not None:
            http.close()


def answer_signoff(settings: Settings, superevent_id: str, label: str, log=None, http=None) -> str:
    """Answer the superevent run's advocate signoff with a label that came through GraceDB.

    Both ways of signing off agree: the first answer wins (Airflow answers a second one
    with 409), and a disagreement is logged as a warning.

    ``http``: an ``httpx.Client`` logged into Airflow (tests); by default the stack's.

    Returns
    -------
    str
        ``answered``, ``already answered`` (the same option), ``disagrees`` (the run was
        answered with the other option), or ``not waiting`` (the task has not asked yet:
        it reads the GraceDB labels itself when it starts; or it is over).

    Raises
    ------
    gw_ops.errors.TransientError
        When the task is starting right now (it may have read the labels before this
        one arrived): the lane retries shortly.
    """
    from gw_ops.errors import TransientError

    base = f"/api/v2/dags/{SUPEREVENT_DAG_ID}/dagRuns/{superevent_id}/taskInstances/{SIGNOFF_TASK_ID}"
    with _airflow_calls(settings, http) as http:
        # read first: when the run was answered already (the UI, or an earlier delivery)
        # nothing is written, so a signoff costs Airflow's database at most one write
        detail = http.get(f"{base}/-1/hitlDetails")
        if detail.status_code == 404:
            state = http.get(base)
            if state.status_code == 200 and state.json().get("state") == "running":
                raise TransientError(f"{superevent_id}: signoff task is starting; answer again")
            return "not waiting"
        if detail.status_code != 200:
            raise TransientError(f"{superevent_id}: Airflow answered {detail.status_code}")
        chosen = detail.json().get("chosen_options") or []
        if not chosen:
            response = http.patch(f"{base}/-1/hitlDetails",
                                  json={"chosen_options": [label], "params_input": {}})
            if response.status_code == 200:
                return "answered"
            if response.status_code != 409:
                raise TransientError(f"{superevent_id}: Airflow answered {response.status_code}")
            again = http.get(f"{base}/-1/hitlDetails")  # answered meanwhile
            chosen = (again.json().get("chosen_options") or []) if again.status_code == 200 else []
        if chosen and label not in chosen:
            if log is not None:
                log.warning("%s: GraceDB says %s but the run's signoff chose %s first; the "
                            "alert of %s is recorded by a run of its own", superevent_id, label,
                            chosen, label)
            return "disagrees"
        return "already answered"


#: DAG whose runs record the alerts the superevent run has no task for (Updates, a
#: Preliminary after a new preferred event or a coincidence, an EarlyWarning...).
ALERT_DAG_ID = "superevent_alert"
#: Alert keys the superevent run's own tasks send or log.
KEYS_OF_THE_RUN = frozenset({preliminary_key(1), preliminary_key(2), LESS_SIGNIFICANT_PRELIMINARY_KEY,
                             SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY, INITIAL, RETRACTION})


def alert_run_id(superevent_id: str, key: str) -> str:
    """Deterministic run id of the record of one alert, e.g.
    ``S261201a.Update.p_astro.json.2`` for key ``Update:p_astro.json,2``."""
    slug = re.sub(r"[^A-Za-z0-9_.~+-]+", ".", key).strip(".")
    return f"{superevent_id}.{slug}"


def record_alert_run(settings: Settings, superevent_id: str, result: Mapping[str, Any],
                     http=None, outside_run: bool = False) -> str | None:
    """Start the run that records an alert outside the superevent run's tasks.

    So an operator finds every public alert of a superevent among the runs whose id
    starts with the superevent id.  Idempotent: the run id is derived from the alert key
    (409 when it exists).  Returns the run id, or None for an alert the superevent run
    covers.

    ``outside_run``: record it even when its key is one the run has a task for (a
    Retraction after the run's signoff chose ADVOK: its ``retraction`` task was skipped).
    """
    key = result.get("key") or ""
    if key in KEYS_OF_THE_RUN and not outside_run:
        return None
    run_id = alert_run_id(superevent_id, key)
    conf = {"superevent_id": superevent_id, **{k: result.get(k) for k in
                                               ("key", "serial_number", "ivorn", "status")},
            "gracedb_url": superevent_page_url(settings, superevent_id)}
    note = (f"**{superevent_id}** alert {key}: serial number {result.get('serial_number')}, "
            f"{result.get('ivorn')}. [GraceDB page]({conf['gracedb_url']})")
    with _airflow_calls(settings, http) as http:
        response = http.post(f"/api/v2/dags/{ALERT_DAG_ID}/dagRuns",
                             json={"dag_run_id": run_id, "logical_date": None, "conf": conf,
                                   "note": note})
    if response.status_code not in (200, 409):
        from gw_ops.errors import TransientError
        raise TransientError(f"{run_id}: Airflow answered {response.status_code}: {response.text[:200]}")
    return run_id
