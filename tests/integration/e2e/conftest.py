"""Fixtures for the end-to-end test: a real broker, anvil and PostgreSQL."""

from __future__ import annotations

from tests.integration.node.conftest import kafka_bootstrap, node_config
from tests.integration.projections.conftest import pg_dsn

__all__ = ["kafka_bootstrap", "node_config", "pg_dsn"]
