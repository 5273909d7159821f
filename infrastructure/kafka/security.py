"""The Kafka security settings (kept in :mod:`infrastructure.kafka_access`, which imports no Kafka client,
so that the configuration can be read without loading one)."""

from infrastructure.kafka_access import (
    MECHANISMS,
    PLAINTEXT,
    PROTOCOLS,
    KafkaAccess,
    KafkaSecurity,
    KafkaSecurityError,
)

__all__ = ["MECHANISMS", "PLAINTEXT", "PROTOCOLS", "KafkaAccess", "KafkaSecurity", "KafkaSecurityError"]
