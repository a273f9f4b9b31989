"""Declare one Airflow DAG per registered handler (``@lvalert.handler``, ``@gcn.handler``).

Each handler DAG has one task, ``drain``, that runs :func:`gw_ops.airflow.lanes.run_lane`
in the handler's pool/queue.  It is scheduled by an asset whose watcher is a
:class:`~gw_ops.airflow.triggers.StreamDoorbellTrigger` on the handler's consumer group;
GCN handler DAGs are also woken by the asset of the :class:`GcnListenerTrigger`, which
fires once per received notice.  Airflow may fold several asset events into one run:
that is harmless, since a run drains everything waiting.

One run per lane at a time (``max_active_runs=1``): a run drains in rounds until its
streams are empty, so a second run could only wait (for the one ``openmp`` slot, for the
``superevent`` pool) and then find nothing.  While a run is active Airflow keeps the
doorbell's asset events queued and folds them into the next run.

Except a ``concurrent`` lane (the localization lane): as many runs at once as its pool
has slots (:func:`lane_max_active_runs`), each drain taking one message at a time, so
each slot of the ``openmp`` pool, on whichever host its worker runs, localizes an event
of its own.  While a message waits untaken the doorbell rings again, which starts the
next run while a slot is free.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

#: Owner shown in the Airflow UI for every gw-ops DAG.
OWNER = "gw-ops"
#: The superevent manager's handler: its lane DAG also starts the superevent runs.
SUPEREVENT_MANAGER = "gw_ops.handlers.superevents.handle"
#: Name of the asset fired by the GCN listener.
GCN_NOTICES_ASSET = "gw_ops.gcn.notices"
#: Asset whose watcher runs the IGWN Alert (Kafka) listener; it never fires (the lanes'
#: doorbells ring for what it writes), it only keeps the listener running.
IGWN_ALERT_ASSET = "gw_ops.kafka.igwn_alert"


def queue_for_pool(pool: str | None) -> str:
    """Celery queue of a task in ``pool``: each gw-ops pool has a worker queue of its name."""
    from gw_ops.airflow.pools import pool_specs
    from gw_ops.config import get_settings

    names = {spec.name for spec in pool_specs(get_settings())}
    return pool if pool in names else "default"


def lane_max_active_runs(spec, settings) -> int:
    """Runs of a lane at once: 1, or the slots of its pool for a ``concurrent`` lane."""
    from gw_ops.airflow.pools import pool_specs

    if not spec.task_kwargs.get("concurrent"):
        return spec.task_kwargs.get("max_active_runs", 1)
    slots = {pool.name: pool.slots for pool in pool_specs(settings)}
    return slots.get(spec.task_kwargs.get("pool"), 1)


def every_minutes(minutes: int):
    """Timetable firing on the clock every ``minutes`` (wall-clock aligned, e.g. :00, :05).

    A cron trigger, not a timedelta: the first run comes at the next aligned time, not
    the moment the stack starts (a mock event at every ``gw-ops up`` would hold the only
    ``openmp`` slot of a small machine).
    """
    from airflow.timetables.trigger import CronTriggerTimetable

    if minutes < 60:
        expression = f"*/{minutes} * * * *"
    else:
        expression = f"0 */{max(1, minutes // 60)} * * *"
    return CronTriggerTimetable(expression, timezone="UTC")


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults of every gw-ops DAG."""
    args = {"owner": OWNER, "retries": 2, "retry_delay": timedelta(seconds=10)}
    args.update(overrides)
    return args


def _doc(spec) -> str:
    doc = (spec.func.__doc__ or "").strip().splitlines()
    summary = doc[0] if doc else spec.name
    what = "LVAlert nodes" if spec.kind == "lvalert" else "GCN notice types"
    return (f"### {spec.dag_id}\n\nHandler `{spec.name}`: {summary}\n\n"
            f"Runs for every message on the {what}: {', '.join(f'`{k}`' for k in spec.keys)}.\n\n"
            "Woken by its doorbell trigger; the `drain` task handles every waiting message "
            "and acknowledges each after success (at-least-once, idempotent handlers).")


def declare_handler_dags() -> dict[str, Any]:
    """Build the handler DAGs from the registry; returns ``{dag_id: DAG}``."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, Asset, AssetWatcher

    from gw_ops.airflow.lanes import run_lane
    from gw_ops.airflow.triggers import GcnListenerTrigger, StreamDoorbellTrigger
    from gw_ops.config import get_settings
    from gw_ops.transport.registry import load_handlers
    from gw_ops.transport.streams import lane_streams

    settings = get_settings()
    gcn_watchers = [AssetWatcher(name="gcn_listener", trigger=GcnListenerTrigger())]
    kafka_lvalert = None
    if settings.gcn_kafka_topics or settings.transport == "kafka":
        from gw_ops.airflow.kafka_triggers import GcnKafkaListenerTrigger, IgwnAlertListenerTrigger
        if settings.gcn_kafka_topics:
            gcn_watchers.append(AssetWatcher(name="gcn_kafka_listener", trigger=GcnKafkaListenerTrigger()))
        if settings.transport == "kafka":
            kafka_lvalert = Asset(name=IGWN_ALERT_ASSET, watchers=[
                AssetWatcher(name="igwn_alert_listener", trigger=IgwnAlertListenerTrigger())])
    gcn_asset = Asset(name=GCN_NOTICES_ASSET, watchers=gcn_watchers)
    dags: dict[str, Any] = {}
    for spec in load_handlers():
        doorbell = Asset(name=f"gw_ops.lane.{spec.dag_id}", watchers=[AssetWatcher(
            name=f"doorbell_{spec.dag_id}",
            trigger=StreamDoorbellTrigger(streams=lane_streams(spec, settings), group=spec.dag_id,
                                          component=spec.kind))])
        schedule = (gcn_asset | doorbell) if spec.kind == "gcn" else doorbell
        if spec.kind == "lvalert" and kafka_lvalert is not None:
            schedule = doorbell | kafka_lvalert
        task_settings = {k: v for k, v in spec.task_kwargs.items()
                         if k in ("pool", "queue", "priority_weight", "execution_timeout")}
        task_settings.setdefault("queue", queue_for_pool(task_settings.get("pool")))
        retries = spec.task_kwargs.get("retries", 2)
        with DAG(dag_id=spec.dag_id, schedule=schedule, doc_md=_doc(spec), catchup=False,
                 tags=["gw-ops", "handler", spec.kind], default_args=default_args(retries=retries),
                 max_active_runs=lane_max_active_runs(spec, settings)) as dag:
            if spec.name == SUPEREVENT_MANAGER:
                # the superevent lane also starts each new superevent's own run
                from gw_ops.airflow.superevent_dag import drain_superevent_lane, extend_superevent_lane
                extend_superevent_lane(PythonOperator(
                    task_id="drain", python_callable=drain_superevent_lane,
                    op_kwargs={"handler_name": spec.name}, **task_settings))
            else:
                PythonOperator(task_id="drain", python_callable=run_lane,
                               op_kwargs={"handler_name": spec.name}, **task_settings)
        dags[spec.dag_id] = dag
    return dags
