"""Pages of the read models' tables, in key order (keyset pagination).

A page is the rows after a cursor, in the table's key order; the cursor is the key of the last
row of the previous page (base64url of its JSON), so a page never shifts when rows are added
before it, and a client that walks every page sees every row once. The store's own ``select``
answers only equality filters; a page needs "after this key", so the SQL is built here with the
store's dialect (its placeholders and column conversions).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infrastructure.api.errors import InvalidParameter
from projections.model import Table
from projections.store import ReadModelStore


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidParameter(f"cursor {cursor[:40]!r} is not one this API handed out") from None
    if not isinstance(values, list) or len(values) != arity or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise InvalidParameter(f"cursor {cursor[:40]!r} is not one this API handed out")
    return values


def page(store: ReadModelStore, table: Table, *, order: Sequence[str], limit: int, cursor: str | None = None,
         where: dict[str, Any] | None = None, any_of: Sequence[str] = (), any_value: Any = None) -> Page:
    """Up to ``limit`` rows of ``table`` after ``cursor`` in ``order`` (a unique key of the table).

    ``where``: columns equal to values; ``any_of``: columns one of which equals ``any_value``
    (a participant is either side of a channel)."""
    cols = {c.name: c for c in table.columns}
    conditions: list[str] = []
    params: list[Any] = []
    for name, value in (where or {}).items():
        conditions.append(f"{name} = {store._param(cols[name])}")
        params.append(store.to_db(cols[name], value))
    if any_of:
        conditions.append("(" + " OR ".join(f"{name} = {store._param(cols[name])}" for name in any_of) + ")")
        params += [store.to_db(cols[name], any_value) for name in any_of]
    if cursor is not None:
        after = decode_cursor(cursor, len(order))
        for name, value in zip(order, after, strict=True):
            kind = cols[name].kind
            if (kind == "int") != isinstance(value, int):
                raise InvalidParameter(f"cursor {cursor[:40]!r} is not one this API handed out")
        conditions.append(f"({', '.join(order)}) > ({', '.join(store._param(cols[n]) for n in order)})")
        params += [store.to_db(cols[n], v) for n, v in zip(order, after, strict=True)]
    sql = f"SELECT {', '.join(table.column_names)} FROM {table.name}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += f" ORDER BY {', '.join(order)} LIMIT {int(limit) + 1}"
    rows = [store._row(table, r) for r in store._execute(sql, params)]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor([rows[-1][n] for n in order]) if more and rows else None)
