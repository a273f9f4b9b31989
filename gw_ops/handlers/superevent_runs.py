"""Hand-over from the superevent lane to the superevent's own DAG run (issue 11).

The superevent manager (:mod:`gw_ops.handlers.superevents`) *requests* one run of the
``superevent`` DAG per superevent it creates, with the superevent's story (id, preferred
event, FAR, pipeline, group, links).  The request is a Redis hash entry written before the
lane acknowledges the message; the superevent lane DAG's next task starts the run (run id =
superevent id, ``skip_when_already_exists``) and then marks it started.  So a crash between
the GraceDB write and the run start loses nothing (the request waits in Redis, and a
redelivered message re-requests it while the run is not marked started), and a retry never
makes a second run (the run id is the superevent id).

No Airflow import here: the airflow layer (:mod:`gw_ops.airflow.superevent_dag`) reads the
requests.
"""
from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Mapping
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
    """Ask for the superevent's run unless it was started; True when newly requested."""
    superevent_id = conf["superevent_id"]
    if redis_client.exists(_started_key(settings, superevent_id)):
        return False
    return bool(redis_client.hsetnx(_pending_key(settings), superevent_id, json.dumps(conf)))


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


#: Task of the superevent DAG that asks the advocate (Airflow human-in-the-loop).
SIGNOFF_TASK_ID = "advocate_signoff"


def _airflow_session(settings: Settings):
    """An ``httpx`` client logged into the stack's Airflow API (simple auth manager admin)."""
    import httpx

    passwords = json.loads((settings.airflow_home / "simple_auth_manager_passwords.json").read_text())
    http = httpx.Client(base_url=settings.airflow_api_url, timeout=10.0)
    response = http.post("/auth/token", json={"username": "admin", "password": passwords["admin"]})
    response.raise_for_status()
    http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return http


@contextlib.contextmanager
def _airflow_calls(settings: Settings, http=None):
    """The given Airflow client, or a logged-in session closed after use; Airflow out of
    reach (refused, reset, timed out) leaves as :class:`gw_ops.errors.TransientError`, so
    the lane retries the message instead of failing."""
    import httpx

    from gw_ops.errors import TransientError

    own = http is None
    try:
        # a session logged in already (a request was made): httpx refuses to enter it
        # as a context manager, so it is closed explicitly
        http = http or _airflow_session(settings)
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
