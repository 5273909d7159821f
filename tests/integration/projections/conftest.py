"""Fixtures for the read-model suites: an event log, SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A running PostgreSQL: ``PARSEC_POSTGRES_DSN`` if set, else ``scripts/postgres start``."""
    dsn = os.environ.get("PARSEC_POSTGRES_DSN")
    if dsn:
        return dsn
    try:
        out = subprocess.run(
            [str(ROOT / "scripts" / "postgres"), "start"], check=True, capture_output=True, text=True, timeout=300
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        pytest.fail(f"PostgreSQL not available: {err}")
    return out.stdout.strip().splitlines()[-1]


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_schemas(pg_dsn):
    """Schemas made by a test; dropped afterwards."""
    import psycopg

    made: list[str] = []
    yield made
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for s in made:
            conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")


@pytest.fixture(scope="session")
def kafka_broker() -> str:
    """A Kafka broker that answers (PARSEC_KAFKA_BOOTSTRAP, default 127.0.0.1:9092); `scripts/kafka start` first."""
    from kafka.admin import KafkaAdminClient

    bootstrap = os.environ.get("PARSEC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=5000)
        admin.list_topics()
        admin.close()
    except Exception as err:
        pytest.fail(f"no Kafka broker at {bootstrap} ({err}); run scripts/kafka start")
    return bootstrap
