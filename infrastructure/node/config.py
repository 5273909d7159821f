"""A node's settings: topics, consumer group, reorder window, timers.

Flags win over environment variables (``PARSEC_*``), which win over the
defaults here. The events topic defaults to the event store's own default for
the ``parsec`` application (what ``PARSEC_EVENT_STORE=kafka`` reads), so the
read models and ``parsec balances`` follow what a node writes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from eventsourcing.utils import Environment

from domain.addresses import parse_eth_address
from infrastructure.config import DEFAULT_KAFKA_BOOTSTRAP
from infrastructure.kafka import KafkaSettings
from infrastructure.kafka_access import PLAINTEXT, KafkaAccess, KafkaSecurity


def default_events_topic(environ: dict[str, str] | None = None) -> str:
    env = dict(os.environ if environ is None else environ)
    return KafkaSettings.from_env(Environment("parsec", env)).events_topic


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class NodeConfig:
    bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    events_topic: str = field(default_factory=default_events_topic)
    inbound_topic: str = "parsec.inbound"
    control_topic: str = "parsec.control"
    rejected_topic: str = "parsec.rejected"
    partitions: int = 4  # used when the node creates the topics
    group: str = "parsec-node"
    node_id: str = field(default_factory=_default_node_id)
    window: int = 64  # n: transactions held per channel to restore order
    max_wait: int = 30  # seconds a held transaction waits for its predecessors
    tick_interval: float = 1.0  # seconds between timer passes (window expiry) per partition
    timeout_check_interval: float = 5.0  # seconds between checkpoint-timeout passes
    max_poll_records: int = 2000
    session_timeout_ms: int = 10000
    # Static membership (KIP-345, ``group.instance.id``): a node restarted under the same id takes
    # its partitions back at once, without a rebalance. Empty: a dynamic member. ``from_env`` uses
    # ``parsec-node-<node id>`` when the node id is given (a stable name); the default id is
    # host-pid, which a restart changes, and a static member that goes away for good keeps its
    # partitions until its session times out (it does not leave the group on close).
    group_instance_id: str = ""
    kafka_timeout: float = 12.0
    # The ownership watchdog: a node that owns fewer partitions than it should while some
    # partitions of the inbound/control topics have no owner in the group for this many seconds
    # rejoins the group (0: off). See Node._watch_ownership.
    rejoin_unowned_after: float = 5.0
    # comma-separated Ethereum addresses of the settlers (their operator keys) whose signed notices
    # (checkpoint confirmed, closed, settle) this node accepts; empty: every notice is refused
    settlers: str = ""
    # the shortest challenge period this node operates a channel with (an open below it is refused)
    min_challenge_period: int = 3600
    # how this process's Kafka clients authenticate (PARSEC_KAFKA_SECURITY_PROTOCOL, SASL, TLS:
    # infrastructure/kafka_access.py); every client the node, sender or settler makes uses it
    security: KafkaSecurity = PLAINTEXT
    # the topics this process creates: replicas (-1: the broker's default) and min.insync.replicas
    # (None: the broker's default)
    replication_factor: int = -1
    min_insync_replicas: int | None = None

    ENV = {
        "bootstrap": "PARSEC_KAFKA_BOOTSTRAP",
        "events_topic": "PARSEC_EVENTS_TOPIC",
        "inbound_topic": "PARSEC_INBOUND_TOPIC",
        "control_topic": "PARSEC_CONTROL_TOPIC",
        "rejected_topic": "PARSEC_REJECTED_TOPIC",
        "partitions": "PARSEC_PARTITIONS",
        "group": "PARSEC_NODE_GROUP",
        "node_id": "PARSEC_NODE_ID",
        "window": "PARSEC_WINDOW",
        "max_wait": "PARSEC_MAX_WAIT",
        "tick_interval": "PARSEC_TICK_INTERVAL",
        "timeout_check_interval": "PARSEC_TIMEOUT_CHECK_INTERVAL",
        "max_poll_records": "PARSEC_MAX_POLL_RECORDS",
        "session_timeout_ms": "PARSEC_SESSION_TIMEOUT_MS",
        "group_instance_id": "PARSEC_GROUP_INSTANCE_ID",
        "kafka_timeout": "PARSEC_KAFKA_TIMEOUT",
        "rejoin_unowned_after": "PARSEC_REJOIN_UNOWNED_AFTER",
        "settlers": "PARSEC_SETTLERS",
        "min_challenge_period": "PARSEC_MIN_CHALLENGE_PERIOD",
        "replication_factor": "PARSEC_KAFKA_REPLICATION_FACTOR",
        "min_insync_replicas": "PARSEC_KAFKA_MIN_INSYNC_REPLICAS",
    }
    _TYPES = {"min_insync_replicas": lambda raw: int(raw) or None}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> NodeConfig:
        env = os.environ if environ is None else environ
        security = overrides.pop("security", None)  # the caller's (the CLI's settings), else the environment's
        c = cls(events_topic=default_events_topic(dict(env)),
                security=security if security is not None else KafkaSecurity.from_env(env))
        for name, var in cls.ENV.items():
            raw = env.get(var)
            if raw:
                setattr(c, name, cls._TYPES.get(name, type(getattr(c, name)))(raw))
        for name, value in overrides.items():
            if value is not None:
                setattr(c, name, value)
        if not c.group_instance_id and (env.get("PARSEC_NODE_ID") or overrides.get("node_id")):
            c.group_instance_id = f"parsec-node-{c.node_id}"  # a stable name: a static member
        c.validate()
        return c

    def validate(self) -> None:
        topics = [self.events_topic, self.inbound_topic, self.control_topic, self.rejected_topic]
        if len(set(topics)) != len(topics):
            raise ValueError(f"the node's topics must be four different topics, got {topics}")
        if self.window < 1:
            raise ValueError(f"the reorder window must hold at least 1 transaction, got {self.window}")
        if self.max_wait < 0 or self.partitions < 1:
            raise ValueError("max wait must be >= 0 and partitions >= 1")
        if self.rejoin_unowned_after < 0:
            raise ValueError(f"rejoin-unowned-after must be >= 0 seconds (0: off), got {self.rejoin_unowned_after}")
        self.trusted_settlers  # noqa: B018 - each one must be an Ethereum address
        self.kafka  # noqa: B018 - the replication settings must work together

    @property
    def kafka(self) -> KafkaAccess:
        """How this process's Kafka clients connect and its topics are replicated (one place)."""
        return KafkaAccess(bootstrap=self.bootstrap, security=self.security,
                           replication_factor=self.replication_factor, min_insync_replicas=self.min_insync_replicas)

    @property
    def trusted_settlers(self) -> frozenset[str]:
        """The settlers' addresses (EIP-55) from ``settlers``; a notice signed by anyone else is refused."""
        items = self.settlers.split(",") if isinstance(self.settlers, str) else self.settlers
        return frozenset(parse_eth_address(a.strip()) for a in items if a.strip())

    def store_env(self, partition: int | None) -> dict[str, str]:
        """The ChannelService environment of the writer of ``partition`` (None: a reader of all)."""
        env = {
            "PERSISTENCE_MODULE": "infrastructure.kafka",
            **self.kafka.store_env(),  # bootstrap, security, replication
            "KAFKA_EVENTS_TOPIC": self.events_topic,
            "KAFKA_PARTITIONS": str(self.partitions),
            "KAFKA_TIMEOUT": str(self.kafka_timeout),
            "PARSEC_MIN_CHALLENGE_PERIOD": str(self.min_challenge_period),
        }
        if partition is not None:
            # The only writer of its partition may cache its channels (a reader may not).
            env["AGGREGATE_CACHE_MAXSIZE"] = "20000"
            env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
            env["DEEPCOPY_FROM_AGGREGATE_CACHE"] = "n"
            env["KAFKA_OWNED_PARTITIONS"] = str(partition)
            env["KAFKA_READ_OWNED_ONLY"] = "y"
            # the process recorder: it also answers max_tracking_id (the positions)
            env["APPLICATION_RECORDER_TOPIC"] = "infrastructure.kafka.recorders:KafkaProcessRecorder"
        return env
