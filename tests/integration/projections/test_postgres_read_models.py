"""The read-model suite on PostgreSQL (scripts/postgres start, or PARSEC_POSTGRES_DSN)."""

from __future__ import annotations

import time

import psycopg
import pytest

from projections.postgres import PostgresStore
from tests.integration.projections.harness import new_schema
from tests.suites.read_model_store import ReadModelBackendSuite, closing_stores

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


class TestPostgresReadModels(ReadModelBackendSuite):
    backend = "postgres"

    @pytest.fixture
    def make_store(self, pg_dsn, pg_schemas):
        self.dsn = pg_dsn

        def open_store():
            schema = new_schema()
            pg_schemas.append(schema)
            return PostgresStore(pg_dsn, schema=schema)

        yield from closing_stores(open_store)

    def cli_args(self, store):
        return ["--backend", "postgres", "--schema", store.schema]

    def cli_env(self):
        return {"PARSEC_POSTGRES_DSN": self.dsn}

    def interrupt(self, store, seconds):
        """Cut the runner's connections, and keep cutting new ones for a while (a restart, as clients see it)."""
        deadline = time.monotonic() + seconds
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            while time.monotonic() < deadline:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user "
                    "AND application_name NOT LIKE 'pytest-admin%%'"
                )
                time.sleep(0.1)
