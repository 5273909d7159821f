"""Read models in PostgreSQL (production), through psycopg 3.

Amounts are NUMERIC(78, 0): exact, and wide enough for any uint256. Each
store works in one schema (``search_path``), so tests and a side-by-side
rebuild can use a schema of their own in the same database. A lost connection
is ``StoreUnavailable``: the runner reconnects with backoff and re-reads its
positions, because a commit whose answer was lost may or may not have landed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg

from projections.model import Column
from projections.store import ReadModelStore, StoreUnavailable

_TYPES = {"text": "TEXT", "int": "BIGINT", "amount": "NUMERIC(78, 0)"}
_CASTS = {"text": "%s", "int": "%s::bigint", "amount": "%s::numeric"}
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")

_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)


class PostgresStore(ReadModelStore):
    dialect = "postgres"
    placeholder = "%s"
    column_types = _TYPES

    def __init__(self, dsn: str, *, schema: str = "public", connect_timeout: int = 5) -> None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"schema {schema!r} must be lower_snake_case")
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self.reconnect()
        self.create()

    def describe(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        return f"postgres {info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')} schema {self.schema}"

    def _closed(self, conn: psycopg.Connection) -> bool:
        return conn.closed

    def reconnect(self) -> None:
        self.close()
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute(f"SET search_path TO {self.schema}")
        except _UNAVAILABLE as err:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {err}") from err
        self._conn = conn

    def drop_schema(self) -> None:
        self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def _param(self, column: Column) -> str:
        return _CASTS[column.kind]

    def to_db(self, column: Column, value: Any) -> Any:
        return value

    def converts(self, column: Column) -> bool:
        return False

    def from_db(self, column: Column, value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value)
        return value

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read, retried once on a fresh connection: an idle connection may have been cut."""
        for attempt in (1, 2):
            try:
                cur = self.conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
            except psycopg.errors.UndefinedTable as err:
                raise LookupError(f"read model table missing ({err}); rebuild the read model") from err
            except _UNAVAILABLE as err:
                self.close()
                if attempt == 2:
                    raise StoreUnavailable(f"PostgreSQL: {err}") from err
        raise AssertionError("unreachable")

    def _columns(self, cur: Any, table: str) -> list[str] | None:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (self.schema, table),
        )
        return [r[0] for r in cur.fetchall()] or None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor]:
        try:
            conn = self.conn
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except _UNAVAILABLE as err:
            self.close()
            raise StoreUnavailable(f"PostgreSQL: {err}") from err
