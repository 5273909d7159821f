"""The event store's settings (:class:`KafkaSettings`), read from an eventsourcing ``Environment``.

The connection and security settings they carry are :mod:`infrastructure.kafka_access`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infrastructure.kafka.codec import MAX_RECORD_BYTES
from infrastructure.kafka_access import (
    PLAINTEXT,
    RECONNECT_BACKOFF_MAX_MS,
    KafkaSecurity,
    check_replication,
    topic_configs,
)

try:  # librdkafka: the default writer client when installed (see KAFKA_CLIENT)
    import confluent_kafka as ck
except ImportError:  # pragma: no cover - confluent-kafka is a dependency
    ck = None

if TYPE_CHECKING:
    from eventsourcing.utils import Environment

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_PARTITIONS = 4
DEFAULT_TIMEOUT = 12.0

# The client library of the transactional writer (KAFKA_CLIENT). Reads always
# use kafka-python's consumer.
CLIENT_CONFLUENT = "confluent"
CLIENT_KAFKA_PYTHON = "kafka-python"
_CLIENT_ALIASES = {
    "confluent": CLIENT_CONFLUENT,
    "confluent-kafka": CLIENT_CONFLUENT,
    "confluent_kafka": CLIENT_CONFLUENT,
    "librdkafka": CLIENT_CONFLUENT,
    "kafka-python": CLIENT_KAFKA_PYTHON,
    "kafka_python": CLIENT_KAFKA_PYTHON,
    "kafkapython": CLIENT_KAFKA_PYTHON,
}


def default_client() -> str:
    """confluent-kafka when it is installed (librdkafka produces ~8x faster
    than kafka-python on the node's hot path), else kafka-python."""
    return CLIENT_CONFLUENT if ck is not None else CLIENT_KAFKA_PYTHON


def _topic_safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]", "_", name)


@dataclass(frozen=True)
class KafkaSettings:
    """Settings read from an eventsourcing ``Environment`` (so per-application
    prefixes such as ``BANK_KAFKA_EVENTS_TOPIC`` work)."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    events_topic: str = "parsec.events"
    snapshots_topic: str = "parsec.events.snapshots"
    tracking_topic: str = "parsec.events.tracking"
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    # the topic config min.insync.replicas of the topics this store creates (None: the broker's default)
    min_insync_replicas: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    transaction_timeout_ms: int = 15000
    transactional_id_prefix: str = "parsec"
    owned_partitions: tuple[int, ...] | None = None  # None: all partitions
    create_topics: bool = True
    # Read (index) only the owned partitions of the primary topic: a node's
    # per-partition writer needs no one else's events.
    read_owned_only: bool = False
    # Writer client: "confluent" (librdkafka) or "kafka-python".
    client: str = field(default_factory=default_client)
    # The largest record the writer sends (a larger one is RecordTooLargeError before sending).
    max_record_bytes: int = MAX_RECORD_BYTES
    # How every client of this store authenticates (security protocol, SASL, TLS).
    security: KafkaSecurity = PLAINTEXT

    KEYS = (
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_EVENTS_TOPIC",
        "KAFKA_SNAPSHOTS_TOPIC",
        "KAFKA_TRACKING_TOPIC",
        "KAFKA_PARTITIONS",
        "KAFKA_REPLICATION_FACTOR",
        "KAFKA_MIN_INSYNC_REPLICAS",
        "KAFKA_TIMEOUT",
        "KAFKA_TRANSACTION_TIMEOUT_MS",
        "KAFKA_MAX_RECORD_BYTES",
        "KAFKA_TRANSACTIONAL_ID_PREFIX",
        "KAFKA_OWNED_PARTITIONS",
        "CREATE_TABLE",
        "KAFKA_READ_OWNED_ONLY",
        "KAFKA_CLIENT",
    )

    @classmethod
    def from_env(cls, env: Environment) -> KafkaSettings:
        def get(key: str) -> str | None:
            value = env.get(key)
            return value.strip() if value is not None and value.strip() else None

        bootstrap = get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP
        default_events = "parsec." + _topic_safe((env.name or "app").lower()) + ".events"
        events_topic = get("KAFKA_EVENTS_TOPIC") or default_events
        try:
            partitions = int(get("KAFKA_PARTITIONS") or DEFAULT_PARTITIONS)
            replication = int(get("KAFKA_REPLICATION_FACTOR") or -1)
            insync = int(get("KAFKA_MIN_INSYNC_REPLICAS") or 0) or None
            timeout = float(get("KAFKA_TIMEOUT") or DEFAULT_TIMEOUT)
            tx_timeout = int(get("KAFKA_TRANSACTION_TIMEOUT_MS") or 15000)
            max_record = int(get("KAFKA_MAX_RECORD_BYTES") or MAX_RECORD_BYTES)
            owned_str = get("KAFKA_OWNED_PARTITIONS")
            owned = (
                None
                if owned_str is None or owned_str.lower() == "all"
                else tuple(sorted({int(p) for p in owned_str.split(",")}))
            )
        except ValueError as e:
            msg = f"Invalid Kafka setting in environment: {e}"
            raise OSError(msg) from None
        if partitions < 1:
            msg = f"KAFKA_PARTITIONS must be >= 1, got {partitions}"
            raise OSError(msg)
        if timeout <= 0:
            msg = f"KAFKA_TIMEOUT must be > 0, got {timeout}"
            raise OSError(msg)
        try:
            check_replication(replication, insync)
        except ValueError as e:
            raise OSError(str(e)) from None
        create = (get("CREATE_TABLE") or "t").lower() not in ("f", "false", "n", "no", "0")
        read_owned_only = (get("KAFKA_READ_OWNED_ONLY") or "n").lower() in ("t", "true", "y", "yes", "1")
        client_str = get("KAFKA_CLIENT")
        if client_str is None:
            client = default_client()
        else:
            client = _CLIENT_ALIASES.get(client_str.lower(), "")
            if not client:
                msg = f"KAFKA_CLIENT must be 'confluent' or 'kafka-python', got {client_str!r}"
                raise OSError(msg)
            if client == CLIENT_CONFLUENT and ck is None:
                msg = "KAFKA_CLIENT=confluent but confluent-kafka is not installed (pip install confluent-kafka)"
                raise OSError(msg)
        return cls(
            bootstrap_servers=bootstrap,
            events_topic=events_topic,
            snapshots_topic=get("KAFKA_SNAPSHOTS_TOPIC") or events_topic + ".snapshots",
            tracking_topic=get("KAFKA_TRACKING_TOPIC") or events_topic + ".tracking",
            partitions=partitions,
            replication_factor=replication,
            min_insync_replicas=insync,
            timeout=timeout,
            transaction_timeout_ms=tx_timeout,
            transactional_id_prefix=get("KAFKA_TRANSACTIONAL_ID_PREFIX") or "parsec",
            owned_partitions=owned,
            create_topics=create,
            read_owned_only=read_owned_only,
            client=client,
            max_record_bytes=max_record,
            security=KafkaSecurity.from_env(get),
        )

    @property
    def timeout_ms(self) -> int:
        return int(self.timeout * 1000)

    def client_kwargs(self) -> dict[str, Any]:
        t = self.timeout_ms
        return {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "request_timeout_ms": max(t, 5000),
            "bootstrap_timeout_ms": t,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
            **self.security.kafka_python(),
        }

    def topic_configs(self, configs: Mapping[str, str] | None) -> dict[str, str]:
        """The configs a topic is created with: its own, plus ``min.insync.replicas`` when set."""
        return topic_configs(configs, self.min_insync_replicas)
