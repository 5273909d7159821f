"""The read-model suite on SQLite (embedded; fast, no marker)."""

from __future__ import annotations

import itertools
import sqlite3
import time

import pytest

from projections.sqlite import SQLiteStore
from tests.suites.read_model_store import ReadModelBackendSuite, closing_stores


class TestSQLiteReadModels(ReadModelBackendSuite):
    backend = "sqlite"

    @pytest.fixture
    def make_store(self, tmp_path):
        counter = itertools.count()
        yield from closing_stores(lambda: SQLiteStore(tmp_path / f"readmodels-{next(counter)}.sqlite", timeout=0.2))

    def cli_args(self, store):
        return ["--backend", "sqlite", "--db", store.path]

    def interrupt(self, store, seconds):
        """Another process holds the write lock: the runner's writes time out (database is locked)."""
        conn = sqlite3.connect(store.path, timeout=5, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()
