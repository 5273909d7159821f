"""Topics Parsec creates take PARSEC_KAFKA_REPLICATION_FACTOR and PARSEC_KAFKA_MIN_INSYNC_REPLICAS
(on the single test broker: factor 1, min.insync.replicas 1, set on the topic itself)."""

from __future__ import annotations

import uuid

import confluent_kafka.admin as ck_admin

from domain.application import ChannelService
from infrastructure.node.send import Sender
from infrastructure.settings import Settings


def _topic_level(bootstrap: str, topic: str) -> dict[str, str]:
    """The configs set on the topic itself (not the broker's defaults)."""
    admin = ck_admin.AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.describe_configs([ck_admin.ConfigResource("topic", topic)]).values()
    return {name: e.value for name, e in future.result(10).items()
            if e.source == ck_admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value}


def _replicas(bootstrap: str, topic: str) -> int:
    admin = ck_admin.AdminClient({"bootstrap.servers": bootstrap})
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions[0].replicas)


def _node_config(bootstrap: str, t: str, **kw: object) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, events_topic=f"{t}.events", inbound_topic=f"{t}.inbound",
                      control_topic=f"{t}.control", rejected_topic=f"{t}.rejected", partitions=2, **kw)


def test_node_topics_and_the_event_store_take_min_insync_replicas(kafka_bootstrap):
    t = f"test.repl.{uuid.uuid4().hex[:8]}"
    plain = _node_config(kafka_bootstrap, f"{t}.plain")
    Sender(plain).close()  # unset: nothing on the topic, the broker's default applies
    assert "min.insync.replicas" not in _topic_level(kafka_bootstrap, plain.inbound_topic)

    config = _node_config(kafka_bootstrap, t, kafka_replication_factor=1, kafka_min_insync_replicas=1)
    Sender(config).close()  # creates the node's four topics
    for topic in (config.events_topic, config.inbound_topic, config.control_topic, config.rejected_topic):
        assert _topic_level(kafka_bootstrap, topic)["min.insync.replicas"] == "1"
        assert _replicas(kafka_bootstrap, topic) == 1
    # the event store opened with the config's env creates its topics the same way
    app = ChannelService(env={**config.store_env(None), "KAFKA_EVENTS_TOPIC": f"{t}.store"})
    try:
        app.recorder  # noqa: B018
        assert _topic_level(kafka_bootstrap, f"{t}.store")["min.insync.replicas"] == "1"
    finally:
        app.close()
