"""The node's topics and the Kafka settings used to create them."""

from __future__ import annotations

from infrastructure.kafka.admin import TopicSpec
from infrastructure.kafka.recorders import EVENTS_TOPIC_CONFIG
from infrastructure.kafka.settings import KafkaSettings
from infrastructure.settings import Settings

# Inbound and control keep the broker's retention: once a batch is committed its
# effect is in the events topic. Rejections are kept for audit like the events.
INBOUND_TOPIC_CONFIG: dict[str, str] = {}
REJECTED_TOPIC_CONFIG = dict(EVENTS_TOPIC_CONFIG)


def store_settings(c: Settings) -> KafkaSettings:
    """The settings the node's topics are created with (``ensure_topics``): its clients' security, and
    the replication factor and ``min.insync.replicas`` of ``PARSEC_KAFKA_REPLICATION_FACTOR`` /
    ``PARSEC_KAFKA_MIN_INSYNC_REPLICAS``."""
    k = c.kafka
    return KafkaSettings(bootstrap_servers=k.bootstrap, events_topic=c.events_topic, partitions=c.partitions,
                         timeout=c.kafka_timeout, security=k.security, replication_factor=k.replication_factor,
                         min_insync_replicas=k.min_insync_replicas)


def node_topic_specs(c: Settings) -> list[TopicSpec]:
    n = c.partitions
    return [
        TopicSpec(c.events_topic, n, EVENTS_TOPIC_CONFIG),
        TopicSpec(c.inbound_topic, n, INBOUND_TOPIC_CONFIG),
        TopicSpec(c.control_topic, n, INBOUND_TOPIC_CONFIG),
        TopicSpec(c.rejected_topic, n, REJECTED_TOPIC_CONFIG),
    ]
