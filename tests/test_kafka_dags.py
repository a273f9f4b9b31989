"""The Kafka listeners are declared with the handler DAGs only when the settings ask for them."""
from __future__ import annotations

from gw_ops.airflow.handler_dags import GCN_NOTICES_ASSET, IGWN_ALERT_ASSET, declare_handler_dags


def watcher_triggers(dag) -> dict[str, list[str]]:
    """``{asset name: [trigger class names]}`` of a DAG's schedule."""
    found = {}
    pending = [dag.timetable.asset_condition]
    while pending:
        node = pending.pop()
        if hasattr(node, "objects"):  # AssetAny / AssetAll
            pending.extend(node.objects)
        else:
            found[node.name] = [type(w.trigger).__name__ for w in node.watchers]
    return found


def test_redis_transport_declares_no_kafka_listener(monkeypatch):
    monkeypatch.delenv("GW_OPS_TRANSPORT", raising=False)
    monkeypatch.delenv("GW_OPS_GCN_KAFKA_TOPICS", raising=False)
    monkeypatch.setenv("GW_OPS_PRESET", "local")
    for dag in declare_handler_dags().values():
        for triggers in watcher_triggers(dag).values():
            assert not any("Kafka" in name or "IgwnAlert" in name for name in triggers)


def test_kafka_transport_declares_both_listeners(monkeypatch):
    monkeypatch.setenv("GW_OPS_PRESET", "local")
    monkeypatch.setenv("GW_OPS_TRANSPORT", "kafka")
    monkeypatch.setenv("GW_OPS_GCN_KAFKA_TOPICS", "gcn.classic.voevent.FERMI_GBM_FLT_POS")
    dags = declare_handler_dags()
    lvalert_dags = [d for dag_id, d in dags.items() if dag_id.startswith("lvalert_")]
    gcn_dags = [d for dag_id, d in dags.items() if dag_id.startswith("gcn_")]
    assert lvalert_dags and gcn_dags
    for dag in lvalert_dags:
        assert watcher_triggers(dag)[IGWN_ALERT_ASSET] == ["IgwnAlertListenerTrigger"]
    for dag in gcn_dags:
        assert watcher_triggers(dag)[GCN_NOTICES_ASSET] == ["GcnListenerTrigger", "GcnKafkaListenerTrigger"]


def test_health_dag_watches_the_kafka_listeners_when_they_run(fresh_prefix_settings, redis_client):
    import dataclasses

    import pytest

    from gw_ops.airflow.maintenance import check_listeners
    from gw_ops.transport.redis_client import record_health

    for name in ("lvalert", "gcn", "broker"):
        record_health(redis_client, fresh_prefix_settings, name, "connected", "test")
    assert set(check_listeners(fresh_prefix_settings)) == {"lvalert", "gcn", "broker"}
    on_kafka = dataclasses.replace(fresh_prefix_settings, transport="kafka",
                                   gcn_kafka_topics=("gcn.classic.voevent.SNEWS",))
    with pytest.raises(RuntimeError, match="igwn_alert: no health record"):
        check_listeners(on_kafka)
    record_health(redis_client, on_kafka, "igwn_alert", "connected", "test")
    record_health(redis_client, on_kafka, "gcn_kafka", "disconnected", "broker down")
    redis_client.hset(on_kafka.key("health", "gcn_kafka"), "since", "0")  # down for ages
    with pytest.raises(RuntimeError, match="gcn_kafka: disconnected"):
        check_listeners(on_kafka)
