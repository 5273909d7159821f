"""Where read models live: a ReadModelStore writes rows and log positions together.

The tracking table holds, per read model and partition of the log, the
position of the last event applied. ``commit`` writes a batch's rows and its
tracking rows in one transaction, and only if the stored position is still the
one the batch started from (optimistic concurrency, like eventsourcing's
tracking recorders, which refuse a second tracking record for a position):
a second runner on the same partition, or a batch already committed before a
crash, makes the commit fail with ``PositionConflict`` instead of applying
events twice.

The sources table holds, per read model, the name of the log (``EventSource.identity``)
its positions were taken from. A position is an offset into one log; taken into
another log it points at some other event, and following from it would skip
that log's first events without a sound. ``claim`` records the log on first use
and refuses another one with ``StoreOfAnotherLog``; ``commit`` checks it again in
the transaction that moves the positions; ``reset`` forgets it with them.

Two SQL dialects share everything here; ``SQLiteStore`` (``projections.sqlite``)
and ``PostgresStore`` (``projections.postgres``) fill in connections, types
and placeholders.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from projections.model import Column, Table

TRACKING_TABLE = "projection_tracking"
SOURCES_TABLE = "projection_sources"

log = logging.getLogger("parsec.projections")


class StoreUnavailable(ConnectionError):
    """The read-model database cannot be reached or is busy: retry later, positions are safe."""


class PositionConflict(Exception):
    """The tracked position moved under this batch (another runner, or a commit already made)."""


class StoreOfAnotherLog(ValueError):
    """The read model in this store was built from another log: its positions mean nothing in this one."""

    def __init__(self, name: str, store: str, recorded: str, offered: str) -> None:
        self.name, self.store, self.recorded, self.offered = name, store, recorded, offered
        super().__init__(
            f"read model {name!r} in {store} was built from the log {recorded}, not from {offered}: "
            "its positions are offsets into that log, and following this one from them would skip "
            "events. Use a store of this log's own (another --db, or another --schema on PostgreSQL), "
            f"or rebuild the read model from this log (`parsec projections rebuild {name}`)"
        )


class TableChanged(ValueError):
    """A read model's table in this store has other columns than the read model now declares (it was built
    by an older Parsec): its rows cannot be written, and no default is right for every new column."""

    def __init__(self, table: str, store: str, found: list[str], declared: list[str]) -> None:
        self.table, self.found, self.declared = table, found, declared
        missing = [c for c in declared if c not in found]
        extra = [c for c in found if c not in declared]
        super().__init__(
            f"table {table} in {store} has other columns than its read model declares "
            f"(missing: {', '.join(missing) or 'none'}; no longer declared: {', '.join(extra) or 'none'}): "
            "it was built by another version of Parsec. Rebuild the read model from the log "
            "(`parsec projections rebuild NAME`), or use a store of its own"
        )


@dataclass(frozen=True)
class TrackingUpdate:
    """Move ``name``'s position in ``partition`` from ``expected`` (None: no row yet) to ``position``."""

    name: str
    partition: int
    expected: int | None
    position: int


class ReadModelStore(ABC):
    """Rows of read models plus their log positions, in one database."""

    dialect: str
    placeholder: str
    column_types: dict[str, str]
    """Column kind ("text", "int", "amount") → this database's SQL type."""
    _conn: Any = None  # the DB-API connection, None until (re)connected
    # table -> (its row's values in column order, the columns to_db changes)
    _converted: dict[str, tuple[Callable[[dict[str, Any]], tuple[Any, ...]], list[tuple[int, Column]]]] | None = None

    # --- dialect ------------------------------------------------------------
    def sql_type(self, column: Column) -> str:
        return self.column_types[column.kind]

    @abstractmethod
    def to_db(self, column: Column, value: Any) -> Any: ...

    @abstractmethod
    def from_db(self, column: Column, value: Any) -> Any: ...

    def converts(self, column: Column) -> bool:
        """Whether ``to_db`` changes this column's values (a store that never does says False: the
        commit then passes them as they are, without a call per value)."""
        return True

    def _params(self, table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
        """A complete row's statement parameters (``Table.complete_row`` gave it every column), in the
        table's column order: once per row a batch writes, so the getter and the columns ``to_db``
        changes are worked out once per table."""
        plan = self._converted.get(table.name) if self._converted is not None else None
        if plan is None:
            if self._converted is None:
                self._converted = {}
            names = table.column_names
            getter = itemgetter(*names) if len(names) > 1 else (lambda r, n=names[0]: (r[n],))
            plan = self._converted[table.name] = (getter, [(i, c) for i, c in enumerate(table.columns)
                                                           if self.converts(c)])
        getter, converted = plan
        if not converted:
            return getter(row)
        values = list(getter(row))
        to_db = self.to_db
        for i, c in converted:
            values[i] = to_db(c, values[i])
        return tuple(values)

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit (or the current transaction); rows it returns."""

    @abstractmethod
    def _transaction(self) -> Any:
        """A context manager: one database transaction; yields an object with ``execute``,
        ``executemany`` and ``rowcount`` after execute (a DB-API cursor)."""

    @property
    def conn(self) -> Any:
        """The open connection: (re)connects first when there is none or it was closed."""
        if self._conn is None or self._closed(self._conn):
            self.reconnect()
        assert self._conn is not None
        return self._conn

    def _closed(self, conn: Any) -> bool:
        """Whether ``conn`` was closed under us (the server went away); a driver that says so overrides."""
        return False

    def close(self) -> None:
        """Close the connection if one is open (the next statement reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @abstractmethod
    def reconnect(self) -> None:
        """Drop the connection (if any) and open a new one (raises StoreUnavailable)."""

    def describe(self) -> str:
        return self.dialect

    # --- schema -------------------------------------------------------------
    def _create_statements(self, tables: Iterable[Table], indexes: bool = True) -> list[str]:
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
            "name TEXT NOT NULL, partition_no INTEGER NOT NULL, position BIGINT NOT NULL, "
            "PRIMARY KEY (name, partition_no))",
            f"CREATE TABLE IF NOT EXISTS {SOURCES_TABLE} (name TEXT NOT NULL PRIMARY KEY, source TEXT NOT NULL)",
        ]
        for t in tables:
            cols = ", ".join(f"{c.name} {self.sql_type(c)}" for c in t.columns)
            stmts.append(f"CREATE TABLE IF NOT EXISTS {t.name} ({cols}, PRIMARY KEY ({', '.join(t.key)}))")
            for ix in t.indexes if indexes else ():
                stmts.append(f"CREATE INDEX IF NOT EXISTS {t.name}_{'_'.join(ix)} ON {t.name} ({', '.join(ix)})")
        return stmts

    def create(self, tables: Iterable[Table] = (), *, indexes: bool = True) -> None:
        """Create what is missing; refuse a table that exists with other columns (``TableChanged``):
        ``CREATE TABLE IF NOT EXISTS`` would keep it, and every later write would fail.

        ``indexes=False``: the tables without their secondary indexes, for a rebuild that creates
        them once it is done (``projections.runner.rebuild``): one index built over all rows is
        cheaper than every row inserted into it; a later ``create`` adds any that are missing."""
        tables = list(tables)
        with self._transaction() as cur:
            for t in tables:
                found = self._columns(cur, t.name)
                if found is not None and sorted(found) != sorted(t.column_names):
                    raise TableChanged(t.name, self.describe(), found, list(t.column_names))
            for stmt in self._create_statements(tables, indexes):
                cur.execute(stmt)

    @abstractmethod
    def _columns(self, cur: Any, table: str) -> list[str] | None:
        """The columns of ``table`` as it exists in this store (None: it does not)."""

    def reset(self, name: str, tables: Iterable[Table], *, indexes: bool = True) -> None:
        """Drop a read model's tables, positions and log and create them empty, atomically
        (``indexes=False``: without their secondary indexes, as ``create``)."""
        tables = list(tables)
        with self._transaction() as cur:
            for stmt in self._create_statements(()):
                cur.execute(stmt)
            for t in tables:
                cur.execute(f"DROP TABLE IF EXISTS {t.name}")
            cur.execute(f"DELETE FROM {TRACKING_TABLE} WHERE name = {self.placeholder}", (name,))
            cur.execute(f"DELETE FROM {SOURCES_TABLE} WHERE name = {self.placeholder}", (name,))
            for stmt in self._create_statements(tables, indexes):
                cur.execute(stmt)

    # --- positions ------------------------------------------------------------
    def positions(self, name: str) -> dict[int, int]:
        """Partition → position of the last event applied to read model ``name``."""
        rows = self._execute(
            f"SELECT partition_no, position FROM {TRACKING_TABLE} WHERE name = {self.placeholder}", (name,)
        )
        return {int(p): int(pos) for p, pos in rows}

    def all_positions(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for name, p, pos in self._execute(f"SELECT name, partition_no, position FROM {TRACKING_TABLE}"):
            out.setdefault(name, {})[int(p)] = int(pos)
        return out

    # --- the log the positions belong to -----------------------------------------------
    def source(self, name: str) -> str | None:
        """The log read model ``name`` was built from (None: not recorded yet)."""
        rows = self._execute(f"SELECT source FROM {SOURCES_TABLE} WHERE name = {self.placeholder}", (name,))
        return str(rows[0][0]) if rows else None

    def all_sources(self) -> dict[str, str]:
        return {str(n): str(s) for n, s in self._execute(f"SELECT name, source FROM {SOURCES_TABLE}")}

    def claim(self, name: str, source: str) -> None:
        """Read model ``name`` follows the log ``source`` from now on: recorded if no log is,
        refused (``StoreOfAnotherLog``) if another one is.

        A read model with positions but no log (a store from before logs were recorded) adopts
        ``source``, with a warning: whether its positions were taken from it cannot be known."""
        ph = self.placeholder
        with self._transaction() as cur:
            cur.execute(
                f"INSERT INTO {SOURCES_TABLE} (name, source) VALUES ({ph}, {ph}) ON CONFLICT (name) DO NOTHING",
                (name, source),
            )
            if cur.rowcount == 1:
                cur.execute(f"SELECT COUNT(*) FROM {TRACKING_TABLE} WHERE name = {ph}", (name,))
                adopted = int(cur.fetchone()[0]) > 0
                recorded = source
            else:
                adopted = False
                cur.execute(f"SELECT source FROM {SOURCES_TABLE} WHERE name = {ph}", (name,))
                recorded = str(cur.fetchone()[0])
        if recorded != source:
            raise StoreOfAnotherLog(name, self.describe(), recorded, source)
        if adopted:
            log.warning(
                "read model %s in %s has positions but no recorded log: it now belongs to %s. If it was "
                "built from another log, rebuild it (`parsec projections rebuild %s`)",
                name, self.describe(), source, name,
            )

    def _check_sources(self, cur: Any, names: Sequence[str], source: str) -> None:
        """In ``commit``'s transaction: every read model moved is still ``source``'s (a rebuild from
        another log may have claimed it since this runner started); one with no log yet gets it."""
        ph = self.placeholder
        cur.execute(f"SELECT name, source FROM {SOURCES_TABLE} WHERE name IN ({', '.join([ph] * len(names))})",
                    tuple(names))
        recorded = {str(n): str(s) for n, s in cur.fetchall()}
        for name in names:
            if name not in recorded:
                cur.execute(f"INSERT INTO {SOURCES_TABLE} (name, source) VALUES ({ph}, {ph})", (name, source))
            elif recorded[name] != source:
                raise StoreOfAnotherLog(name, self.describe(), recorded[name], source)

    # --- rows -----------------------------------------------------------------
    def load(self, table: Table, key: Sequence[Any]) -> dict[str, Any] | None:
        cond = " AND ".join(f"{k} = {self.placeholder}" for k in table.key)
        cols = {c.name: c for c in table.columns}
        params = [self.to_db(cols[k], v) for k, v in zip(table.key, key, strict=True)]
        rows = self._execute(f"SELECT {', '.join(table.column_names)} FROM {table.name} WHERE {cond}", params)
        return self._row(table, rows[0]) if rows else None

    def select(
        self,
        table: Table,
        where: dict[str, Any] | None = None,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        cols = {c.name: c for c in table.columns}
        sql = f"SELECT {', '.join(table.column_names)} FROM {table.name}"
        params: list[Any] = []
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = {self.placeholder}" for k in where)
            params = [self.to_db(cols[k], v) for k, v in where.items()]
        if order_by:
            for k in order_by:
                if k not in cols:
                    raise ValueError(f"table {table.name} has no column {k!r}")
            sql += " ORDER BY " + ", ".join(order_by)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._row(table, r) for r in self._execute(sql, params)]

    def _row(self, table: Table, values: Sequence[Any]) -> dict[str, Any]:
        return {c.name: self.from_db(c, v) for c, v in zip(table.columns, values, strict=True)}

    def _upsert_sql(self, table: Table) -> str:
        names = table.column_names
        values = ", ".join(self._param(c) for c in table.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in table.key)
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({values}) "
            f"ON CONFLICT ({', '.join(table.key)}) {conflict}"
        )

    def _param(self, column: Column) -> str:
        return self.placeholder

    # --- the exactly-once write ---------------------------------------------------
    def commit(
        self,
        rows: Iterable[tuple[Table, dict[str, Any]]],
        tracking: Sequence[TrackingUpdate],
        *,
        source: str | None = None,
    ) -> None:
        """Write changed rows and move positions, all or nothing; with ``source`` (the log the
        events came from), only if it is the log of every read model moved (``StoreOfAnotherLog``)."""
        by_table: dict[str, tuple[Table, list[tuple[Any, ...]]]] = {}
        for table, row in rows:
            params = self._params(table, row)
            by_table.setdefault(table.name, (table, []))[1].append(params)
        ph = self.placeholder
        with self._transaction() as cur:
            names = sorted({t.name for t in tracking})
            if source is not None and names:
                self._check_sources(cur, names, source)
            for t in tracking:  # positions first: a conflict fails fast, before any row is written
                if t.expected is None:
                    cur.execute(
                        f"INSERT INTO {TRACKING_TABLE} (name, partition_no, position) VALUES ({ph}, {ph}, {ph}) "
                        "ON CONFLICT (name, partition_no) DO NOTHING",
                        (t.name, t.partition, t.position),
                    )
                else:
                    cur.execute(
                        f"UPDATE {TRACKING_TABLE} SET position = {ph} "
                        f"WHERE name = {ph} AND partition_no = {ph} AND position = {ph}",
                        (t.position, t.name, t.partition, t.expected),
                    )
                if cur.rowcount != 1:
                    raise PositionConflict(
                        f"{t.name} partition {t.partition}: position is no longer {t.expected}; "
                        "another runner applied these events"
                    )
            for table, params_list in by_table.values():
                cur.executemany(self._upsert_sql(table), params_list)
