"""Kafka security settings: read once, spelled for each client library, never printed."""

import pytest

from infrastructure.kafka.security import KafkaSecurity, KafkaSecurityError


def test_plaintext_by_default():
    s = KafkaSecurity.from_env({})
    assert s.protocol == "PLAINTEXT" and s.principal is None and s.env() == {}
    assert s.librdkafka() == {"security.protocol": "PLAINTEXT"}
    assert s.kafka_python() == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_for_both_libraries_and_the_event_store(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    s = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
                                "KAFKA_SASL_USERNAME": "node", "KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert (s.protocol, s.sasl_mechanism, s.principal) == ("SASL_PLAINTEXT", "SCRAM-SHA-512", "User:node")
    assert s.librdkafka() == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
                              "sasl.username": "node", "sasl.password": "s3cret"}
    assert s.kafka_python()["sasl_plain_password"] == "s3cret"
    assert KafkaSecurity.from_env(s.env()) == s  # carried into an eventsourcing application's environment
    assert "s3cret" not in repr(s)


def test_settings_that_cannot_work_are_refused_before_connecting(tmp_path):
    with pytest.raises(KafkaSecurityError, match="username and password"):
        KafkaSecurity(protocol="SASL_SSL")
    with pytest.raises(KafkaSecurityError, match="unknown"):
        KafkaSecurity(protocol="KERBEROS")
    with pytest.raises(KafkaSecurityError, match="not a file"):
        KafkaSecurity(protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))
