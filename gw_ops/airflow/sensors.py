"""Deferrable sensors on the listeners' streams: they wait in the triggerer, holding no
worker slot (GWCelery held a worker or used ``countdown=`` for such waits).

:class:`LVAlertSensor`
    Wait until an LVAlert message matching a filter arrives, e.g. until superevent X gets
    label Y.  For a label it first checks GraceDB, so a label applied before the sensor
    started counts too.
:class:`GcnNoticeSensor`
    Wait until a GCN notice of given types (and optionally an IVORN fragment) arrives.

Both capture the streams' last ids *before* checking the current state and wait only for
newer entries, so nothing falls between the check and the wait.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk.bases.sensor import BaseSensorOperator

from gw_ops.airflow.triggers import StreamMatchTrigger
from gw_ops.vocabulary import superevent_node


def _last_ids(client, streams: list[str]) -> dict[str, str]:
    """Newest id of each stream ("0-0" for an empty or missing one)."""
    ids = {}
    for stream in streams:
        newest = client.xrevrange(stream, count=1)
        ids[stream] = newest[0][0].decode() if newest else "0-0"
    return ids


class LVAlertSensor(BaseSensorOperator):
    """Wait (deferred, in the triggerer) for an LVAlert message.

    Parameters
    ----------
    uid : str
        GraceDB id of the superevent or event (templated).
    label : str, optional
        Wait until this label is on ``uid`` (templated).
    alert_type : str, optional
        Wait for a message of this type (``new``, ``update``, ``log`` ...).
    nodes : list of str, optional
        Nodes to watch; for a superevent its category's node by default (required for
        G events).
    timeout : float
        Seconds before the sensor fails.

    Returns
    -------
    dict
        The matching message (``None`` fields when the label was already there).
    """

    # not "label": BaseOperator already has a read-only ``label`` property
    template_fields = ("uid", "label_name", "alert_type")

    def __init__(self, *, uid: str, label: str | None = None, alert_type: str | None = None,
                 nodes: list[str] | None = None, timeout: float = 3600.0, **kwargs: Any):
        super().__init__(timeout=timeout, **kwargs)
        self.uid = uid
        self.label_name = label
        self.alert_type = alert_type
        self.nodes = nodes

    def execute(self, context) -> Any:
        from gw_ops.config import get_settings
        from gw_ops.transport.redis_client import get_redis, lvalert_stream

        settings = get_settings()
        nodes = self.nodes or [superevent_node(self.uid)]
        streams = [lvalert_stream(settings, node) for node in nodes]
        client = get_redis(settings)
        after = _last_ids(client, streams)
        if self.label_name and self._label_present(settings):
            return {"uid": self.uid, "label": self.label_name, "already": True}
        match = {"uid": self.uid}
        if self.label_name:
            match["label"] = self.label_name
        if self.alert_type:
            match["alert_type"] = self.alert_type
        self.defer(trigger=StreamMatchTrigger(streams, after, match, kind="lvalert"),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def _label_present(self, settings) -> bool:
        from gw_ops import gracedb_client as gateway

        return self.label_name in gateway.labels(gateway.pipeline_client(settings), self.uid)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        return event["message"]


class GcnNoticeSensor(BaseSensorOperator):
    """Wait (deferred, in the triggerer) for a GCN notice received by the GCN listener.

    Parameters
    ----------
    notice_types : list of str
        ``gcn.NoticeType`` names (templated); empty means any type.
    ivorn_contains : str, optional
        Only notices whose IVORN contains this text (templated).
    timeout : float
        Seconds before the sensor fails.

    Returns
    -------
    dict
        ``notice_type``, ``ivorn`` and the stream id of the notice.
    """

    template_fields = ("notice_types", "ivorn_contains")

    def __init__(self, *, notice_types: list[str] | None = None, ivorn_contains: str | None = None,
                 timeout: float = 3600.0, **kwargs: Any):
        super().__init__(timeout=timeout, **kwargs)
        self.notice_types = notice_types or []
        self.ivorn_contains = ivorn_contains

    def execute(self, context) -> Any:
        from gw_ops.config import get_settings
        from gw_ops.transport.redis_client import gcn_incoming_stream, get_redis

        settings = get_settings()
        streams = [gcn_incoming_stream(settings)]
        after = _last_ids(get_redis(settings), streams)
        match = {"notice_types": list(self.notice_types), "ivorn_contains": self.ivorn_contains}
        self.defer(trigger=StreamMatchTrigger(streams, after, match, kind="gcn"),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        return {key: event[key] for key in ("notice_type", "ivorn", "id")}
