"""The services the integration and end-to-end tests share, found (or started) once per session.

Each fixture fails, never skips, when its service cannot be had: a test that needs Kafka,
PostgreSQL or anvil says so by asking for the fixture (and by its ``integration`` marker).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka.harness import kafka_session
from tests.integration.node.harness import node_configs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    yield from kafka_session()


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


@pytest.fixture
def node_config(kafka_bootstrap: str) -> Callable[..., Any]:
    """Node configurations on fresh topics of the session's broker."""
    return node_configs(kafka_bootstrap)
