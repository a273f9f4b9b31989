"""The ``superevent`` DAG: one run per superevent, run id = superevent id (issue 11).

The run is the operator's view of one candidate's alert lifecycle, and it carries the
steps that wait for time or for people:

``localize``
    Waits (deferred) until the preferred event was localized, then logs which event,
    BAYESTAR's settings and wall time, and the files uploaded, with their links (the record
    of :func:`gw_ops.handlers.localization.record_localization`).  BAYESTAR itself runs in
    the openmp lane, where the alert path needs it.  Skipped for a Burst candidate (its
    pipeline brings its sky map) and when no localization comes within an hour.
``annotate``
    Beside the Preliminary: waits (deferred) until the superevent carries p_astro,
    em_bright and the sky-map image (copied with its first alert), then logs them with
    their links; red when they are overdue, skipped when no alert ever goes out.
``preliminary_alert``
    Waits (deferred, in the triggerer) until the first Preliminary alert (significant or
    less-significant) is out, then logs its type, serial number and IVORN.  The Preliminary itself is sent by the lanes the
    moment the preferred event is localized and locked (the openmp lane localizes, the
    superevent lane locks, the orchestrator lane sends): that path is the latency-critical
    one and stays a chain of drained streams (no loss, no duplicate).
``second_preliminary``
    Deferred until ``preliminary_cleanup_timeout_s`` after the first Preliminary (no
    worker slot held), then sends the second Preliminary when the policy says so
    (:func:`gw_ops.rules.alert_policy.decide_second_preliminary`) and logs it.
``advocate_signoff``
    Airflow human-in-the-loop task (Required Actions: ADVOK / ADVNO).  Answered in the UI,
    or by the orchestrator lane when the label arrives through GraceDB; both agree (the
    first answer wins, Airflow refuses the second with 409).  If the label is already on
    the superevent when the task starts, it branches at once.
``initial`` / ``retraction``
    Write the chosen label to GraceDB (idempotent) and send the alert it calls for, then
    log type, serial number and IVORN.

The run is started from inside the superevent lane's drain, right after the superevent
manager requests it (:func:`gw_ops.handlers.superevent_runs.start_run`, over Airflow's
REST API); a request left over (Airflow out of reach, a crash) is started by the lane
DAG's task after the drain (:func:`extend_superevent_lane`): a mapped
``TriggerDagRunOperator`` over the requests still pending, ``skip_when_already_exists=True``;
the run's first task marks the request done too.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import BaseOperator

from gw_ops.handlers.superevent_runs import SIGNOFF_TASK_ID, SUPEREVENT_DAG_ID

log = logging.getLogger(__name__)

#: Longest wait (s) for the first Preliminary before the run's alert steps are skipped
#: (a superevent below the alert thresholds never gets one).
PRELIMINARY_WAIT_S = 3600.0
#: Runs of the ``superevent`` DAG active at once.  A run waits up to two days for its
#: advocate; Airflow's default (16) would leave newer candidates' runs queued, not started.
SUPEREVENT_RUNS_ACTIVE_MAX = 1000
#: Longest wait for the advocate (then the signoff task fails red).
ADVOCATE_RESPONSE_TIMEOUT = timedelta(days=2)


def _superevent_id(context) -> str:
    return context["dag_run"].run_id


def _log_alert(result: dict[str, Any] | None, what: str) -> None:
    if result is None:
        log.info("%s: no alert due", what)
        return
    from gw_ops.rules.alert_policy import type_of_key

    log.info("%s: alert type %s, serial number %s, IVORN %s (%s)", what,
             type_of_key(result.get("key", "?")), result.get("serial_number"),
             result.get("ivorn"), result.get("status", "sent"))


def recorded_alert(superevent_id: str, key: str) -> dict[str, Any] | None:
    """The alert with ``key`` when it was sent already (by a lane or a delayed action)."""
    from gw_ops.config import get_settings
    from gw_ops.formats.alert_content import ivorn
    from gw_ops.handlers.alert_sender import alert_record_key
    from gw_ops.rules.alert_policy import type_of_key
    from gw_ops.transport.redis_client import get_redis

    settings = get_settings()
    client = get_redis(settings)
    try:
        record = client.hget(alert_record_key(settings, superevent_id), f"key:{key}")
    finally:
        client.close()
    if record is None:
        return None
    serial = int(record.decode().split()[0])
    return {"key": key, "serial_number": serial, "status": "already sent",
            "ivorn": ivorn(superevent_id, serial, type_of_key(key))}


def tell_story(conf: dict[str, Any]) -> None:
    """Log who the run is about (first lines of the first task's log)."""
    log.info("superevent %s: preferred event %s, FAR %s Hz, pipeline %s, group %s, search %s",
             conf.get("superevent_id"), conf.get("preferred_event"), conf.get("far"),
             conf.get("pipeline"), conf.get("group"), conf.get("search"))
    log.info("GraceDB page: %s ; sky map: %s", conf.get("gracedb_url"), conf.get("skymap_image_url"))


#: BAYESTAR localizes CBC candidates only (a Burst pipeline uploads its own sky map).
LOCALIZED_GROUP = "CBC"
#: Seconds after the first alert that a superevent's annotations may take (the images are
#: made at low CPU priority, after the alert): then ``annotate`` turns red.
ANNOTATIONS_WAIT_S = 900.0


class LocalizeOperator(BaseOperator):
    """Wait, deferred, until the superevent's preferred event was localized; log how.

    The run's first task: it tells the run's story and marks the run started.
    """

    def execute(self, context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from gw_ops.airflow.triggers import LocalizationRecordTrigger

        superevent_id = _superevent_id(context)
        conf = context["dag_run"].conf or {}
        tell_story(conf)
        mark_run_started(superevent_id)
        if conf.get("group") != LOCALIZED_GROUP:
            raise AirflowSkipException(f"{superevent_id}: a {conf.get('group')} candidate; its "
                                       "pipeline brings its sky map (BAYESTAR localizes CBC only)")
        log.info("%s: waiting up to %.0f s for the localization of its preferred event %s",
                 superevent_id, PRELIMINARY_WAIT_S, conf.get("preferred_event"))
        self.defer(trigger=LocalizationRecordTrigger(superevent_id, conf.get("preferred_event"),
                                                     time.time() + PRELIMINARY_WAIT_S),
                   method_name="execute_complete")

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from gw_ops.config import get_settings
        from gw_ops.gracedb_urls import event_file_url

        superevent_id = _superevent_id(context)
        if event.get("timed_out"):
            raise AirflowSkipException(f"{superevent_id}: its preferred event was not localized "
                                       f"within {PRELIMINARY_WAIT_S:.0f} s")
        record = dict(event["record"])
        settings = get_settings()
        graceid = record["graceid"]
        log.info("%s: BAYESTAR localized %s; settings: %s", superevent_id, graceid,
                 ", ".join(f"{k}={v}" for k, v in (record.get("settings") or {}).items()))
        wall_s = record.get("wall_s")
        log.info("%s: BAYESTAR wall time %s s, done at %s", superevent_id,
                 f"{wall_s:.1f}" if wall_s is not None else "?",
                 datetime.fromtimestamp(record.get("localized_at", 0), timezone.utc).isoformat())
        record["file_urls"] = {name: event_file_url(settings, graceid, name)
                               for name in record.get("files") or []}
        for url in record["file_urls"].values():
            log.info("%s: attached to %s: %s", superevent_id, graceid, url)
        return record


class AnnotateOperator(BaseOperator):
    """Wait, deferred, until the superevent carries its annotations; log them with links.

    Skipped when no first alert comes (then nothing is copied to the superevent); failed
    when some annotation is still missing ``ANNOTATIONS_WAIT_S`` after the alert.
    """

    def __init__(self, *, alert_keys: tuple[str, ...], filenames: tuple[str, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.alert_keys = tuple(alert_keys)
        self.filenames = tuple(filenames)

    def execute(self, context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from gw_ops.airflow.triggers import AnnotationsTrigger

        superevent_id = _superevent_id(context)
        conf = context["dag_run"].conf or {}
        if conf.get("group") != LOCALIZED_GROUP:
            raise AirflowSkipException(f"{superevent_id}: p_astro and em_bright are made for "
                                       "CBC candidates only")
        log.info("%s: waiting for its first alert, then for %s on it", superevent_id,
                 ", ".join(self.filenames))
        self.defer(trigger=AnnotationsTrigger(superevent_id, list(self.alert_keys),
                                              list(self.filenames),
                                              time.time() + PRELIMINARY_WAIT_S, ANNOTATIONS_WAIT_S),
                   method_name="execute_complete")

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, str]:
        from airflow.sdk.exceptions import AirflowException, AirflowSkipException

        from gw_ops.config import get_settings
        from gw_ops.gracedb_urls import superevent_file_url

        superevent_id = _superevent_id(context)
        if event.get("timed_out"):
            raise AirflowSkipException(f"{superevent_id}: no alert within {PRELIMINARY_WAIT_S:.0f} s, "
                                       "so no annotations are copied to it")
        settings = get_settings()
        links = {name: superevent_file_url(settings, superevent_id, name) for name in event["present"]}
        for url in links.values():
            log.info("%s: annotation %s", superevent_id, url)
        if event["missing"]:
            raise AirflowException(f"{superevent_id}: {', '.join(event['missing'])} still missing "
                                   f"{ANNOTATIONS_WAIT_S:.0f} s after its first alert")
        return links


class AlertSentOperator(BaseOperator):
    """Wait, deferred, until the first of the superevent's alerts ``keys`` was sent; log it.

    Skipped (with its downstream) when none comes within ``timeout_s``.
    """

    def __init__(self, *, keys: tuple[str, ...], timeout_s: float = PRELIMINARY_WAIT_S, **kwargs: Any):
        super().__init__(**kwargs)
        self.keys = tuple(keys)
        self.timeout_s = timeout_s

    def execute(self, context) -> Any:
        from gw_ops.airflow.triggers import AlertRecordTrigger

        superevent_id = _superevent_id(context)
        log.info("%s: waiting up to %.0f s for its first Preliminary (%s)", superevent_id,
                 self.timeout_s, " or ".join(self.keys))
        self.defer(trigger=AlertRecordTrigger(superevent_id, list(self.keys), time.time() + self.timeout_s),
                   method_name="execute_complete")

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from gw_ops.formats.alert_content import ivorn
        from gw_ops.rules.alert_policy import type_of_key

        superevent_id = _superevent_id(context)
        if event.get("timed_out"):
            raise AirflowSkipException(f"{superevent_id}: no Preliminary alert within "
                                       f"{self.timeout_s:.0f} s (below the alert thresholds?)")
        alert_type = type_of_key(event["key"])
        sent_at = int(event["stream_id"].split("-")[0]) / 1000.0
        result = {"key": event["key"], "alert_type": alert_type, "serial_number": event["serial_number"],
                  "ivorn": ivorn(superevent_id, event["serial_number"], alert_type),
                  "sent_at": sent_at}
        log.info("%s: alert %s: type %s, serial number %s, IVORN %s, appended for the broker at %s",
                 superevent_id, event["key"], alert_type, result["serial_number"], result["ivorn"],
                 datetime.fromtimestamp(sent_at, timezone.utc).isoformat())
        return result


class SecondPreliminaryOperator(BaseOperator):
    """Wait, deferred, until ``preliminary_cleanup_timeout_s`` after the first Preliminary,
    then send the second one when the policy calls for it (the delayed action of the
    orchestrator may have sent it first: then it is logged)."""

    def execute(self, context) -> Any:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from gw_ops.config import get_settings

        first = context["ti"].xcom_pull(task_ids="preliminary_alert") or {}
        due = datetime.fromtimestamp(float(first.get("sent_at", 0))
                                     + get_settings().preliminary_cleanup_timeout_s, timezone.utc)
        log.info("second Preliminary due at %s", due.isoformat())
        if due > datetime.now(timezone.utc):
            self.defer(trigger=DateTimeTrigger(moment=due), method_name="execute_complete")
        return self.execute_complete(context, None)

    def execute_complete(self, context, event: Any) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from gw_ops.handlers.orchestrator import second_preliminary
        from gw_ops.rules.alert_policy import (
            LESS_SIGNIFICANT_PRELIMINARY_KEY,
            SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY,
            preliminary_key,
        )

        superevent_id = _superevent_id(context)
        first = (context["ti"].xcom_pull(task_ids="preliminary_alert") or {}).get("key")
        less_significant = first == LESS_SIGNIFICANT_PRELIMINARY_KEY
        follows = LESS_SIGNIFICANT_PRELIMINARY_KEY if less_significant else None
        second_key = SECOND_LESS_SIGNIFICANT_PRELIMINARY_KEY if less_significant else preliminary_key(2)
        result = (second_preliminary(superevent_id, follows=follows)
                  or recorded_alert(superevent_id, second_key))
        if result is None:
            raise AirflowSkipException(f"{superevent_id}: no second Preliminary due "
                                       "(less significant, vetted, raised, retracted or vetoed)")
        _log_alert(result, f"{superevent_id} second Preliminary")
        return result


class AdvocateSignoffOperator(HITLBranchOperator):
    """The advocate's ADVOK / ADVNO as an Airflow Required Action.

    A label already on the superevent (signed off through GraceDB before this task
    started) answers it at once; a superevent without ``ADVREQ`` needs no signoff (skipped).
    """

    def execute(self, context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from gw_ops import gracedb_client as gateway
        from gw_ops.config import get_settings
        from gw_ops.rules.alert_policy import SIGNOFF_NOT_ASKED, SIGNOFF_WAIT, decide_signoff

        superevent_id = _superevent_id(context)
        decision = decide_signoff(gateway.labels(gateway.pipeline_client(get_settings()), superevent_id))
        if decision == SIGNOFF_NOT_ASKED:
            raise AirflowSkipException(f"{superevent_id}: no advocate signoff requested (no ADVREQ)")
        if decision != SIGNOFF_WAIT:
            log.info("%s: already signed off through GraceDB: %s", superevent_id, decision)
            return self.do_branch(context, [self.options_mapping[decision]])
        log.info("%s: waiting for the advocate (Required Actions in Airflow, or ADVOK / ADVNO "
                 "in GraceDB)", superevent_id)
        return super().execute(context)


def send_after_signoff(label: str, **context) -> dict[str, Any] | None:
    """Write the advocate's label to GraceDB and send the alert it calls for."""
    from gw_ops.formats import alert_content
    from gw_ops.handlers.orchestrator import alert_for_label
    from gw_ops.vocabulary import ADVOK

    superevent_id = _superevent_id(context)
    key = alert_content.INITIAL if label == ADVOK else alert_content.RETRACTION
    # sent now, or already by the orchestrator lane when the label came through GraceDB
    result = alert_for_label(superevent_id, label) or recorded_alert(superevent_id, key)
    _log_alert(result, f"{superevent_id} {label}")
    return result


def declare_superevent_dag(default_args: dict[str, Any]):
    """The ``superevent`` DAG (run id = superevent id, started by the superevent lane).

    ``default_args``: task defaults of every gw-ops DAG
    (:func:`gw_ops.airflow.handler_dags.default_args`).
    """
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, TriggerRule

    from gw_ops.rules.alert_policy import LESS_SIGNIFICANT_PRELIMINARY_KEY, preliminary_key
    from gw_ops.vocabulary import (
        ADVNO,
        ADVOK,
        EMBRIGHT_FILENAME,
        PASTRO_FILENAME,
        SKYMAP_IMAGE_FILENAME,
    )

    with DAG(dag_id=SUPEREVENT_DAG_ID, schedule=None, catchup=False,
             max_active_runs=SUPEREVENT_RUNS_ACTIVE_MAX,
             tags=["gw-ops", "superevent"], default_args=default_args,
             doc_md=__doc__) as dag:
        first_alerts = (preliminary_key(1), LESS_SIGNIFICANT_PRELIMINARY_KEY)
        localize = LocalizeOperator(task_id="localize")
        # a Burst candidate (localize skipped) still has its Preliminary and annotations
        annotate = AnnotateOperator(task_id="annotate", alert_keys=first_alerts,
                                    filenames=(PASTRO_FILENAME, EMBRIGHT_FILENAME, SKYMAP_IMAGE_FILENAME),
                                    trigger_rule=TriggerRule.NONE_FAILED)
        preliminary = AlertSentOperator(task_id="preliminary_alert", keys=first_alerts,
                                        trigger_rule=TriggerRule.NONE_FAILED)
        second = SecondPreliminaryOperator(task_id="second_preliminary")
        signoff = AdvocateSignoffOperator(
            task_id=SIGNOFF_TASK_ID, subject="Advocate signoff of {{ dag_run.run_id }}",
            body="Preferred event {{ dag_run.conf.preferred_event }} ({{ dag_run.conf.pipeline }}, "
                 "FAR {{ dag_run.conf.far }} Hz). [GraceDB page]({{ dag_run.conf.gracedb_url }}), "
                 "[sky map]({{ dag_run.conf.skymap_image_url }}). ADVOK sends the Initial alert, "
                 "ADVNO the Retraction.",
            options=[ADVOK, ADVNO], options_mapping={ADVOK: "initial", ADVNO: "retraction"},
            response_timeout=ADVOCATE_RESPONSE_TIMEOUT, retries=0)
        initial = PythonOperator(task_id="initial", python_callable=send_after_signoff,
                                 op_kwargs={"label": ADVOK})
        retraction = PythonOperator(task_id="retraction", python_callable=send_after_signoff,
                                    op_kwargs={"label": ADVNO})
        localize >> [preliminary, annotate]
        preliminary >> [second, signoff]
        signoff >> [initial, retraction]
    return dag


def log_alert_record(**context) -> dict[str, Any]:
    """The one task of a ``superevent_alert`` run: say which alert it records."""
    conf = context["dag_run"].conf or {}
    log.info("%s: alert %s, serial number %s, IVORN %s (%s); GraceDB page %s",
             conf.get("superevent_id"), conf.get("key"), conf.get("serial_number"),
             conf.get("ivorn"), conf.get("status"), conf.get("gracedb_url"))
    return conf


def declare_alert_record_dag(default_args: dict[str, Any]):
    """The ``superevent_alert`` DAG: one run per alert sent outside the superevent run
    (run id ``<superevent id>.<alert key>``), started by the orchestrator lane."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    from gw_ops.handlers.superevent_runs import ALERT_DAG_ID

    with DAG(dag_id=ALERT_DAG_ID, schedule=None, catchup=False, max_active_runs=None,
             tags=["gw-ops", "superevent"], default_args=default_args,
             doc_md="### superevent_alert\n\nOne run per public alert that the `superevent` run "
                    "has no task for (an Update, a Preliminary after a new preferred event or a "
                    "coincidence...): run id `<superevent id>.<alert key>`, e.g. "
                    "`S261201a.Update.p_astro.json.2`. Search the runs by the superevent id to "
                    "find every alert of a candidate.") as dag:
        PythonOperator(task_id="alert", python_callable=log_alert_record)
    return dag


def drain_superevent_lane(handler_name: str) -> list[dict[str, Any]]:
    """The superevent lane's drain (its summary is logged), then the runs its superevents
    asked for: the XCom the ``start_superevent_runs`` task maps over."""
    from gw_ops.airflow.lanes import run_lane
    from gw_ops.config import get_settings
    from gw_ops.handlers import superevent_runs
    from gw_ops.transport.redis_client import get_redis

    run_lane(handler_name)
    # most runs were started from the lane right after their request; the rest (Airflow
    # out of reach, a start still in flight) are started by the next task
    still_starting = superevent_runs.wait_for_run_starts()
    if still_starting:
        log.warning("%d superevent run starts still in flight after the drain", still_starting)
    settings = get_settings()
    client = get_redis(settings)
    try:
        pending = superevent_runs.pending_runs(client, settings)
    finally:
        client.close()
    log.info("superevent runs to start: %s", [conf["superevent_id"] for conf in pending])
    return [{"trigger_run_id": conf["superevent_id"], "conf": conf,
             "note": superevent_runs.run_note(conf)} for conf in pending]


def mark_run_started(superevent_id: str) -> None:
    """Record that the superevent's run exists (called by its first task), so the lane
    stops asking for it; until then a lane run asks again, which Airflow skips
    (``skip_when_already_exists``)."""
    from gw_ops.config import get_settings
    from gw_ops.handlers import superevent_runs
    from gw_ops.transport.redis_client import get_redis

    settings = get_settings()
    client = get_redis(settings)
    try:
        superevent_runs.mark_started(client, settings, [superevent_id])
    finally:
        client.close()


def extend_superevent_lane(drain) -> None:
    """Add to the superevent lane DAG: start each requested superevent run exactly once.

    ``drain`` is the lane's drain task, whose callable must be :func:`drain_superevent_lane`.
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    start = TriggerDagRunOperator.partial(
        task_id="start_superevent_runs", trigger_dag_id=SUPEREVENT_DAG_ID,
        skip_when_already_exists=True, wait_for_completion=False, logical_date=None,
        queue=drain.queue,
        retries=2,
    ).expand_kwargs(drain.output)
    drain >> start
