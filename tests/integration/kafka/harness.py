"""A Kafka broker for the tests, and fresh topics on it.

:func:`kafka_session` reuses a broker that answers on the configured bootstrap
(KAFKA_BOOTSTRAP_SERVERS, then PARSEC_KAFKA_BOOTSTRAP, default 127.0.0.1:9092) or
starts one with ``scripts/kafka start`` (and stops it at the end unless
PARSEC_KAFKA_KEEP=1); the ``kafka_bootstrap`` fixture (tests/conftest.py) is it,
once per session. Every test uses fresh topic names (uuid suffix), so tests never
see each other's records.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from infrastructure.kafka import KafkaApplicationRecorder, KafkaFactory

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "kafka"


def configured_bootstrap() -> str:
    return (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or os.environ.get("PARSEC_KAFKA_BOOTSTRAP")
        or "127.0.0.1:9092"
    )


def kafka_answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=5000,
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def kafka_session() -> Iterator[str]:
    bootstrap = configured_bootstrap()
    if kafka_answers(bootstrap, 3.0):
        yield bootstrap
        return
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        pytest.fail(f"Kafka at {bootstrap} does not answer (and is not local, so not started)")
    env = {**os.environ, "PARSEC_KAFKA_PORT": port}
    proc = subprocess.run(
        [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/kafka start failed:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield bootstrap
    finally:
        if os.environ.get("PARSEC_KAFKA_KEEP") != "1":
            subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120, check=False)


def new_topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}.events"


def kafka_env(bootstrap: str, partitions: int = 1, topic: str | None = None, **extra: str) -> dict[str, str]:
    """An eventsourcing environment for infrastructure.kafka with fresh topics."""
    env = {
        "PERSISTENCE_MODULE": "infrastructure.kafka",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_EVENTS_TOPIC": topic or new_topic(),
        "KAFKA_PARTITIONS": str(partitions),
        "KAFKA_TIMEOUT": "12",
    }
    env.update(extra)
    return env


def open_recorder(env: dict[str, str], *, process: bool = False) -> tuple[KafkaFactory, KafkaApplicationRecorder]:
    """A Kafka factory built from ``env`` and its application (or ``process``) recorder; the
    caller closes the factory."""
    f = InfrastructureFactory.construct(Environment(env=env))
    assert isinstance(f, KafkaFactory)
    r = f.process_recorder() if process else f.application_recorder()
    assert isinstance(r, KafkaApplicationRecorder)
    return f, r
