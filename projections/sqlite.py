"""Read models in an embedded SQLite file (the default, next to the event store).

Amounts are stored as decimal TEXT: SQLite integers stop at 2**63 and a wei
amount goes to 2**128. The file runs in WAL mode so queries read while the
runner writes; writes take the lock up front (BEGIN IMMEDIATE) so two runners
queue instead of deadlocking.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from projections.model import Column
from projections.store import ReadModelStore, StoreUnavailable

_TYPES = {"text": "TEXT", "int": "INTEGER", "amount": "TEXT"}


class SQLiteStore(ReadModelStore):
    dialect = "sqlite"
    placeholder = "?"
    column_types = _TYPES

    def __init__(self, path: Path | str, *, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self.reconnect()
        self.create()

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def reconnect(self) -> None:
        self.close()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as err:
            raise StoreUnavailable(f"cannot open read-model database {self.path}: {err}") from err
        self._conn = conn

    def to_db(self, column: Column, value: Any) -> Any:
        if value is not None and column.kind == "amount":
            return str(int(value))
        return value

    def converts(self, column: Column) -> bool:
        return column.kind == "amount"

    def from_db(self, column: Column, value: Any) -> Any:
        if value is not None and column.kind == "amount":
            return int(value)
        return value

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except (sqlite3.OperationalError, sqlite3.ProgrammingError) as err:
            if isinstance(err, sqlite3.OperationalError) and "no such table" in str(err):
                raise LookupError(f"read model table missing ({err}); rebuild the read model") from err
            raise StoreUnavailable(f"read-model database {self.path}: {err}") from err

    def _columns(self, cur: Any, table: str) -> list[str] | None:
        rows = cur.execute(f"PRAGMA table_info({table})").fetchall()  # table names are checked identifiers
        return [r[1] for r in rows] or None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.OperationalError, sqlite3.ProgrammingError) as err:
            raise StoreUnavailable(f"read-model database {self.path}: {err}") from err
        cur = conn.cursor()
        try:
            yield cur
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self.close()
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as err:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self.close()
            raise StoreUnavailable(f"read-model database {self.path}: commit failed: {err}") from err
