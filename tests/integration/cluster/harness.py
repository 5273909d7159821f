"""Private clusters for the cluster tests: ``scripts/kafka start [--brokers 3] [--sasl]`` on ports
of their own, a data directory in tmp, stopped at the end of the module.

Also: a node process with a principal's credentials in its environment (the env-var interface of
infrastructure/kafka/security.py), a participants' gateway as a plain confluent-kafka producer,
and a raw read_committed read of the events topic.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from infrastructure.kafka.codec import H_TOPIC, H_VERSION
from infrastructure.kafka.security import KafkaSecurity
from infrastructure.node.messages import channel_key, encode_control, partition_of
from infrastructure.settings import Settings
from tests.integration.node.harness import node_process

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "kafka"


class Cluster:
    """A cluster of the test's own, driven through scripts/kafka."""

    def __init__(self, data: Path, port: int, brokers: int = 1, sasl: bool = False,
                 extra_env: dict[str, str] | None = None) -> None:
        self.data, self.port, self.brokers, self.sasl = data, port, brokers, sasl
        self.env = {**os.environ, "PARSEC_KAFKA_PORT": str(port), "PARSEC_KAFKA_DATA": str(data),
                    **(extra_env or {})}
        self.bootstrap = ",".join(f"127.0.0.1:{port + i}" for i in range(brokers))

    def run(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert proc.returncode == 0, f"scripts/kafka {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def start(self) -> None:
        flags = (["--brokers", str(self.brokers)] if self.brokers > 1 else []) + (["--sasl"] if self.sasl else [])
        self.run("start", *flags)

    def stop(self) -> None:
        self.run("stop")

    # ------------------------------------------------------------------ credentials (--sasl)
    def credentials(self, principal: str) -> dict[str, str]:
        """The principal's env file (PARSEC_KAFKA_BOOTSTRAP, _SECURITY_PROTOCOL, _SASL_MECHANISM,
        _SASL_USERNAME, _SASL_PASSWORD), as scripts/kafka wrote it."""
        path = self.data / "credentials" / f"{principal}.env"
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    def security(self, principal: str, password: str | None = None) -> KafkaSecurity:
        env = self.credentials(principal)
        if password is not None:
            env["PARSEC_KAFKA_SASL_PASSWORD"] = password
        return Settings.from_env(env).kafka_security


def secured_node_process(config: Settings, node_id: str, log_path: Path, credentials: dict[str, str]) -> Any:
    """``parsec node`` in a subprocess, authenticating with ``credentials`` (PARSEC_KAFKA_* env)."""
    saved = {k: os.environ.get(k) for k in credentials}
    os.environ.update(credentials)  # node_process passes os.environ on, then its own settings
    try:
        return node_process(config, node_id, log_path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Gateway:
    """A participants' gateway: a confluent-kafka producer (acks=all) writing signed payments and
    control requests to the inbound and control topics, keyed and partitioned like the node's Sender."""

    def __init__(self, config: Settings, security: KafkaSecurity, **conf: Any) -> None:
        self.config = config
        self.errors: list[KafkaError] = []
        self.producer = Producer({"bootstrap.servers": config.kafka_bootstrap, "acks": "all", "linger.ms": 5,
                                  "message.timeout.ms": 20000, "error_cb": self.errors.append,
                                  **security.librdkafka(), **conf})

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> _Delivery:
        d = _Delivery()
        kw: dict[str, Any] = {} if partition is None else {"partition": partition}
        self.producer.produce(topic, value=value, key=key, on_delivery=d.done, **kw)
        self.producer.poll(0)
        return d

    def payment(self, tx: Any) -> _Delivery:
        return self.send(self.config.inbound_topic, channel_key(tx.channel), tx.to_json(),
                         partition_of(tx.channel, self.config.partitions))

    def control(self, request: Any) -> _Delivery:
        return self.send(self.config.control_topic, channel_key(request.channel), encode_control(request),
                         partition_of(request.channel, self.config.partitions))

    def flush(self, timeout: float = 30) -> int:
        return self.producer.flush(timeout)


class _Delivery:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: KafkaError | None = None

    def done(self, err: KafkaError | None, msg: Any) -> None:
        self.error = err
        self.event.set()


def read_events(bootstrap: str, topic: str, partitions: int, security: KafkaSecurity | None = None,
                timeout: float = 60) -> list[tuple[str, int, str]]:
    """Every committed record of the events topic, from offset 0 to its end (read_committed, no group):
    (key, version, event type) of each event record."""
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      isolation_level="read_committed", **(security or KafkaSecurity()).kafka_python())
    try:
        tps = [KafkaTopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[tuple[str, int, str]] = []
        deadline = time.monotonic() + timeout
        # The consumer's position, not the last record's offset: a transaction's commit marker takes
        # an offset (often the last one) that is never delivered.
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"events topic not read to its end in {timeout:g}s"
            for records in c.poll(timeout_ms=500).values():
                for r in records:
                    h = dict(r.headers or [])
                    if H_VERSION in h:
                        kind = re.split(r"[.:]", h[H_TOPIC].decode())[-1]
                        out.append((r.key.decode(), int(h[H_VERSION]), kind))
        return out
    finally:
        c.close(autocommit=False)


def exactly_once(records: Iterable[tuple[str, int, str]], plans: list[Any]) -> list[str]:
    """Problems in a full read of the events topic: an (aggregate, version) twice, or a channel whose
    PaymentAccepted records are not one per payment sent."""
    records = list(records)
    problems = [f"{k} version {v} recorded {n} times" for (k, v), n in
                Counter((k, v) for k, v, _ in records).items() if n > 1]
    accepted = Counter(k for k, _, kind in records if kind == "PaymentAccepted")
    for p in plans:
        if accepted[str(p.channel_id)] != len(p.txs):
            problems.append(f"channel {p.channel_id}: {accepted[str(p.channel_id)]} PaymentAccepted "
                            f"records for {len(p.txs)} payments")
    return problems
