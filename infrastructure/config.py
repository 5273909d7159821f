"""Configuration: flags over environment variables over defaults.

This is the composition root's input: it says which event store, which
database and which chain the concrete classes talk to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from infrastructure.kafka_access import (
    DEFAULT_BOOTSTRAP,
    PLAINTEXT,
    KafkaAccess,
    KafkaSecurity,
    replication_from_env,
)

DEFAULT_KAFKA_BOOTSTRAP = DEFAULT_BOOTSTRAP
EVENT_STORES = ("sqlite", "kafka", "memory")


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "parsec"


@dataclass
class Settings:
    """Every knob Parsec reads from its environment (``PARSEC_*``)."""

    data_dir: Path = field(default_factory=_default_data_dir)
    event_store: str = "sqlite"
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    postgres_dsn: str | None = None
    eth_rpc: str | None = None  # unset: the in-process chain (py-evm)
    log_level: str = "INFO"
    settlement_topic: str | None = None  # the settler's store on Kafka (default parsec.settlement.events)
    # how this process's Kafka clients authenticate (PARSEC_KAFKA_SECURITY_PROTOCOL, SASL, TLS)
    kafka_security: KafkaSecurity = PLAINTEXT
    kafka_replication_factor: int = -1  # topics Parsec creates (-1: the broker's default)
    kafka_min_insync_replicas: int | None = None  # their min.insync.replicas (None: the broker's default)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        s = cls()
        if env.get("PARSEC_DATA_DIR"):
            s.data_dir = Path(env["PARSEC_DATA_DIR"]).expanduser()
        s.event_store = env.get("PARSEC_EVENT_STORE", s.event_store)
        s.kafka_bootstrap = env.get("PARSEC_KAFKA_BOOTSTRAP", s.kafka_bootstrap)
        s.postgres_dsn = env.get("PARSEC_POSTGRES_DSN") or None
        s.eth_rpc = env.get("PARSEC_ETH_RPC") or None
        s.log_level = env.get("PARSEC_LOG_LEVEL", s.log_level)
        s.settlement_topic = env.get("PARSEC_SETTLEMENT_TOPIC") or None
        s.kafka_security = KafkaSecurity.from_env(env)
        s.kafka_replication_factor, s.kafka_min_insync_replicas = replication_from_env(env.get)
        s.validate()
        return s

    def validate(self) -> None:
        if self.event_store not in EVENT_STORES:
            raise ValueError(
                f"event store {self.event_store!r} is unknown; use one of {', '.join(EVENT_STORES)}"
            )

    @property
    def kafka(self) -> KafkaAccess:
        """Where and as whom this process's Kafka clients connect; how its topics are replicated."""
        return KafkaAccess(bootstrap=self.kafka_bootstrap, security=self.kafka_security,
                           replication_factor=self.kafka_replication_factor,
                           min_insync_replicas=self.kafka_min_insync_replicas)

    def application_env(self, *, sqlite_path: Path | None = None) -> dict[str, str]:
        """The eventsourcing environment for ChannelService on the chosen event store.

        The aggregate cache is not fast-forwarded: Parsec runs one writer per channel
        (per Kafka partition), and the service evicts a cached channel whose save failed.
        """
        env = {
            "AGGREGATE_CACHE_MAXSIZE": "20000",
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }
        if self.event_store == "sqlite":
            path = sqlite_path or self.data_dir / "events.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=str(path),
                SQLITE_LOCK_TIMEOUT="10",
            )
        elif self.event_store == "kafka":
            env.update(PERSISTENCE_MODULE="infrastructure.kafka", **self.kafka.store_env())
        else:
            env.update(PERSISTENCE_MODULE="eventsourcing.popo")
        return env
