"""Fixtures for the read-model tests: PostgreSQL schemas made by a test, dropped after it."""

from __future__ import annotations

import uuid

import pytest


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


