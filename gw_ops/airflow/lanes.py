"""The task every handler DAG runs: drain the handler's lane (see :mod:`gw_ops.transport.streams`).

``run_lane(handler_name)`` is called by the handler DAG's single task.  It resolves the
handler from the registry, works out its streams and message decoding, drains every
waiting message (ordered by the handler's ``sort_key``) and returns a small summary for
XCom.  It fails visibly when a message had to be left pending after persistent
transient failures (the lane's alarm record says why; the message is retried, never
dead-lettered), or when a handler raised an unexpected exception (a bug:
:class:`gw_ops.transport.streams.LaneFailed`; the message stays pending and visible), so
the retry (and the doorbell) pick it up again.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable

from gw_ops.config import Settings
from gw_ops.transport.registry import HandlerSpec
from gw_ops.transport.streams import lane_streams

log = logging.getLogger(__name__)


def message_handler(spec: HandlerSpec) -> Callable:
    """Adapter from a raw stream entry to the registered function's signature."""
    from gw_ops.transport import gcn_notices as gcn
    from gw_ops.transport import lvalert

    if spec.kind == "lvalert":
        def handle_lvalert(message) -> None:
            node = lvalert.node_of_stream(message.stream)
            spec.func(lvalert.decode_message(message.fields.get("payload", b""), node))
        return handle_lvalert

    wanted = set(spec.keys)

    def handle_gcn(message) -> None:
        notice_type, payload, root = gcn.decode_notice(message.fields)
        if notice_type in wanted:
            spec.func(payload, root)
    return handle_gcn


def message_batch_scope(spec: HandlerSpec) -> Callable | None:
    """Adapter of an LVAlert handler's ``batch_scope`` (decoded messages in, see
    :func:`gw_ops.transport.streams.drain`); None for handlers without one."""
    scope = getattr(spec.func, "batch_scope", None)
    if scope is None or spec.kind != "lvalert":
        return None
    from gw_ops.transport import lvalert

    def decoded_scope(batch):
        messages = []
        for message in batch:
            try:
                messages.append(lvalert.decode_message(message.fields.get("payload", b""),
                                                       lvalert.node_of_stream(message.stream)))
            except Exception:  # noqa: BLE001 (its handler call rejects it with the reason)
                continue
        return scope(messages)
    return decoded_scope


def message_sort_key(spec: HandlerSpec) -> Callable | None:
    """Adapter of an LVAlert handler's ``sort_key`` (a function of the decoded message) to
    stream entries; None for handlers without one (the batch keeps arrival order)."""
    sort_key = spec.task_kwargs.get("sort_key")
    if sort_key is None or spec.kind != "lvalert":
        return None
    from gw_ops.transport import lvalert

    def wrapped_sort(message):
        # sort_key sees the decoded LVAlert dict; an undecodable message sorts last
        # (its handler call then rejects it with the reason).
        try:
            node = lvalert.node_of_stream(message.stream)
            return (0, sort_key(lvalert.decode_message(message.fields.get("payload", b""), node)))
        except Exception:  # noqa: BLE001
            return (1, 0)
    return wrapped_sort


def drain_options(spec: HandlerSpec, settings: Settings) -> dict[str, Any]:
    """Keyword arguments of :func:`gw_ops.transport.streams.drain` for a handler's lane:
    its batch order, dead-letter source, linger (``lane_linger_s`` seconds for lanes
    registered with ``linger=True``, else 0), batch scope and ``claim_one``.  One place,
    so the task and the benchmarks that replay a lane drain it alike."""
    return dict(sort_key=message_sort_key(spec),
                source="lvalert" if spec.kind == "lvalert" else "gcn",
                linger_s=settings.lane_linger_s if spec.task_kwargs.get("linger") else 0.0,
                batch_scope=message_batch_scope(spec),
                claim_one=bool(spec.task_kwargs.get("concurrent")))


def run_lane(handler_name: str, consumer: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Drain one handler's lane and return the drain summary.

    Parameters
    ----------
    handler_name : str
        Dotted name of a registered handler.
    consumer : str, optional
        Consumer name (default: host, pid and Airflow run id when known).
    settings : Settings, optional
    """
    from gw_ops.config import get_settings
    from gw_ops.transport.redis_client import get_redis
    from gw_ops.transport.registry import get_handler
    from gw_ops.transport.streams import RedisStreamsTransport

    settings = settings or get_settings()
    spec = get_handler(handler_name)
    client = get_redis(settings)
    consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{os.environ.get('AIRFLOW_CTX_DAG_RUN_ID', '-')}"
    try:
        report = RedisStreamsTransport(client, settings).drain(
            lane_streams(spec, settings), spec.dag_id, consumer, message_handler(spec),
            **drain_options(spec, settings))
    finally:
        client.close()
    summary = report.summary()
    if spec.task_kwargs.get("concurrent"):
        # which drain handled what, when: drains of one lane run side by side
        summary.update(consumer=consumer, spans=[list(span) for span in report.spans])
    log.info("lane %s: %s", spec.dag_id, summary)
    if report.left_pending:
        raise RuntimeError(f"lane {spec.dag_id}: {len(report.left_pending)} messages left pending after "
                           f"transient failures: {report.left_pending[:10]}")
    return summary
