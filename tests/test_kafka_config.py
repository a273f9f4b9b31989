"""Kafka credentials from hop's auth.toml: the confluent-kafka settings hop/adc derive."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest

from gw_ops.config import get_settings
from gw_ops.transport.kafka_config import (
    KafkaAuthError,
    auth_config,
    consumer_config,
    producer_config,
)

AUTH = """
[[auth]]
username = "gwops-scimma"
password = "scimma-secret"
hostname = "kafka.scimma.org"
protocol = "SASL_SSL"
mechanism = "SCRAM_SHA_512"
ssl_ca_location = "/etc/ca.pem"

[[auth]]
username = "gcn-client-id"
password = "gcn-client-secret"
hostname = "kafka.gcn.nasa.gov"
token_endpoint = "https://auth.gcn.nasa.gov/oauth2/token"
ssl_ca_location = "/etc/ca.pem"
"""


@pytest.fixture
def auth_file(tmp_path):
    path = tmp_path / "auth.toml"
    path.write_text(AUTH)
    os.chmod(path, 0o600)
    return path


def settings_with(**changes):
    return dataclasses.replace(get_settings(env={}), **changes)


def test_scram_entry_chosen_by_hostname(auth_file):
    conf = auth_config(settings_with(kafka_auth_file=str(auth_file)), "kafka.scimma.org:9092")
    assert conf == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                    "ssl.ca.location": "/etc/ca.pem", "sasl.username": "gwops-scimma",
                    "sasl.password": "scimma-secret"}


def test_gcn_entry_is_oidc_client_credentials(auth_file):
    conf = auth_config(settings_with(kafka_auth_file=str(auth_file)), "kafka.gcn.nasa.gov:9092")
    assert conf["sasl.mechanism"] == "OAUTHBEARER" and conf["sasl.oauthbearer.method"] == "oidc"
    assert conf["sasl.oauthbearer.client.id"] == "gcn-client-id"
    assert conf["sasl.oauthbearer.client.secret"] == "gcn-client-secret"
    assert conf["sasl.oauthbearer.token.endpoint.url"] == "https://auth.gcn.nasa.gov/oauth2/token"
    assert "sasl.username" not in conf


def test_unsafe_permissions_and_unknown_hosts_are_refused(auth_file):
    settings = settings_with(kafka_auth_file=str(auth_file))
    with pytest.raises(KafkaAuthError, match="0 credentials"):
        auth_config(settings, "kafka.example.org:9092")
    os.chmod(auth_file, 0o644)
    with pytest.raises(KafkaAuthError, match="chmod 600"):
        auth_config(settings, "kafka.scimma.org:9092")


def test_no_auth_file_means_plaintext_and_consumers_commit_by_hand():
    settings = settings_with()
    conf = consumer_config(settings, "127.0.0.1:9092", "gw-ops-lvalert")
    assert "security.protocol" not in conf and "sasl.password" not in conf
    assert conf["enable.auto.commit"] is False and conf["group.id"] == "gw-ops-lvalert"
    assert conf["session.timeout.ms"] == 6000 and conf["auto.offset.reset"] == "earliest"
    assert producer_config(settings, "127.0.0.1:9092")["acks"] == "all"


def test_production_preset_points_at_scimma_and_gcn():
    settings = get_settings(env={"GW_OPS_PRESET": "production"})
    assert settings.transport == "kafka"
    assert settings.igwn_alert_servers == "kafka.scimma.org:9092" and settings.igwn_alert_group == "gracedb"
    assert settings.gcn_kafka_servers == "kafka.gcn.nasa.gov:9092"
    assert "gcn.classic.voevent.FERMI_GBM_GND_POS" in settings.gcn_kafka_topics
    playground = get_settings(env={"GW_OPS_PRESET": "playground"})
    assert playground.igwn_alert_group == "gracedb-playground"
    assert get_settings(env={}).transport == "redis"


def test_airflow_connection_wins_over_the_auth_file(auth_file, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SCIMMA_KAFKA", json.dumps({
        "conn_type": "generic", "login": "from-airflow", "password": "airflow-secret",
        "extra": {"mechanism": "SCRAM-SHA-256", "protocol": "SASL_PLAINTEXT"}}))
    settings = settings_with(kafka_auth_file=str(auth_file),
                             kafka_airflow_connections=("kafka.scimma.org=scimma_kafka",))
    assert auth_config(settings, "kafka.scimma.org:9092") == {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "from-airflow", "sasl.password": "airflow-secret"}
    # other hosts still come from the file
    assert auth_config(settings, "kafka.gcn.nasa.gov:9092")["sasl.oauthbearer.client.id"] == "gcn-client-id"
