"""What a read model is: tables, and a handler per event type.

Handlers are plain functions of (event, rows): they read and write rows
through ``Rows`` and do nothing else, so they are tested without a database
(``MemoryRows``) and run unchanged on SQLite and PostgreSQL.

Rule for rows, because the log is partitioned (Kafka: all events of a channel
in one partition, partitions followed independently, perhaps by different
processes): key every row by something that lives in one partition — the
channel id — and aggregate across channels when you query. A row that two
partitions update (a per-participant total) would be a lost-update race
between two runners.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any, ClassVar, Literal, Protocol

from projections.views import VIEWS, View, view_of

ColumnKind = Literal["text", "int", "amount"]
"""``int`` fits 64 bits (sequences, blocks); ``amount`` is any integer (wei up to 2**128)."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind = "text"

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name):
            raise ValueError(f"column name {self.name!r} must be lower_snake_case")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name):
            raise ValueError(f"table name {self.name!r} must be lower_snake_case")
        names = self.column_names
        for col in (*self.key, *(c for ix in self.indexes for c in ix)):
            if col not in names:
                raise ValueError(f"table {self.name}: {col!r} is not one of its columns")

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        # asked for every row a handler puts (the rebuild's hot path): computed once per table
        return tuple(c.name for c in self.columns)

    @cached_property
    def _column_set(self) -> frozenset[str]:
        return frozenset(self.column_names)

    @cached_property
    def key_of(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """``key_of(row)``: the row's key, a tuple (an itemgetter: called for every row put)."""
        getter = itemgetter(*self.key)
        if len(self.key) == 1:
            return lambda row: (getter(row),)
        return getter  # type: ignore[return-value]

    def complete_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` checked, with every column (missing ones None): what ``Rows.put`` stores.

        Per row a handler puts (the rebuild's hot path): a row that has exactly the table's
        columns, as one read with ``Rows.get`` and changed has, is taken as it is, not copied
        (``Rows.put`` takes the row: its caller does not change it after)."""
        if row.keys() == self._column_set:
            for k in self.key:
                if row[k] is None:
                    self.check_row(row)  # raises: a key column is missing
            return row
        self.check_row(row)
        return {c: row.get(c) for c in self.column_names}

    def check_row(self, row: dict[str, Any]) -> None:
        extra = row.keys() - self._column_set
        if extra:
            raise ValueError(f"table {self.name} has no column(s) {sorted(extra)}")
        missing = [k for k in self.key if row.get(k) is None]
        if missing:
            raise ValueError(f"row for table {self.name} lacks key column(s) {missing}")


class Rows(Protocol):
    """The handlers' view of the read model's tables during one batch of events."""

    def get(self, table: Table, *key: Any) -> dict[str, Any] | None:
        """The row with this key (a copy: change it, then ``put`` it), or None."""

    def put(self, table: Table, row: dict[str, Any]) -> None:
        """Insert or replace the whole row (missing columns become NULL). The row is the store's from
        now on: change a copy (another ``get``), not it."""


Handler = Callable[[Any, Any, Rows], None]


def handles(*event_names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a ReadModel method as the handler of these events (``"Channel.PaymentAccepted"``).

    Event names are the qualified class names from the stored topic (the part
    after ``module:``), so ``Channel.PaymentAccepted`` cannot collide with
    another aggregate's ``PaymentAccepted``.
    """

    def mark(fn: Callable[..., None]) -> Callable[..., None]:
        fn.__parsec_handles__ = (*getattr(fn, "__parsec_handles__", ()), *event_names)  # type: ignore[attr-defined]
        return fn

    return mark


class ReadModel:
    """Subclass with ``name``, ``tables`` and ``@handles(...)`` methods ``(self, event, rows)``.

    ``name``, ``tables`` and ``description`` are given in the class statement,
    ``class Revenue(ReadModel, name="revenue", tables=(REVENUE,), description="..."):``,
    or as class attributes of the same names.

    ``reads_views=True``: the handlers read only the fields ``projections.views`` declares, and
    receive those views instead of domain events (decoded in C from the stored bytes, the rebuild's
    fast path); every event they handle must have a view there.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    description: ClassVar[str] = ""
    reads_views: ClassVar[bool] = False
    _handlers: ClassVar[dict[str, str]]

    def __init_subclass__(cls, *, name: str | None = None, tables: Iterable[Table] | None = None,
                          description: str | None = None, reads_views: bool | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        if tables is not None:
            cls.tables = tuple(tables)
        if description is not None:
            cls.description = description
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                for event_name in getattr(fn, "__parsec_handles__", ()):
                    handlers[event_name] = attr
        cls._handlers = handlers
        if reads_views is not None:
            cls.reads_views = reads_views
        if cls.reads_views:
            missing = sorted(set(handlers) - set(VIEWS))
            if missing:
                raise TypeError(f"{cls.__name__} reads views, but projections.views has none of {missing}")
        if hasattr(cls, "name") and not _IDENTIFIER.match(cls.name):
            raise ValueError(f"read model name {cls.name!r} must be lower_snake_case")

    @property
    def handled_events(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def handler(self, event_name: str) -> Callable[[Any, Rows], None] | None:
        attr = self._handlers.get(event_name)
        return getattr(self, attr) if attr else None

    def apply(self, event_name: str, event: Any, rows: Rows) -> bool:
        """Apply one event; False if this read model does not handle its type."""
        handler = self.handler(event_name)
        if handler is None:
            return False
        handler(event, rows)
        return True


class MemoryRows:
    """Rows in dictionaries: the fake for unit tests of handlers and queries."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}

    def get(self, table: Table, *key: Any) -> dict[str, Any] | None:
        row = self.tables.get(table.name, {}).get(tuple(key))
        return dict(row) if row is not None else None

    def put(self, table: Table, row: dict[str, Any]) -> None:
        full = table.complete_row(row)
        self.tables.setdefault(table.name, {})[table.key_of(full)] = full

    def all(self, table: Table) -> list[dict[str, Any]]:
        return [dict(r) for _, r in sorted(self.tables.get(table.name, {}).items(), key=lambda kv: str(kv[0]))]

    def apply_all(self, model: ReadModel, events: Iterable[Any]) -> None:
        """Domain events, each given as the runner would give it (its view, to a read model of views)."""
        for ev in events:
            name = event_name(ev)
            if model.reads_views and name in VIEWS and not isinstance(ev, View):
                ev = view_of(ev)
            model.apply(name, ev, self)


def event_name(event: Any) -> str:
    """``Channel.PaymentAccepted`` for a decoded event object (what a topic names after ``:``)."""
    return type(event).__qualname__
