"""The read side: read models rebuilt from the event log.

A read model (``ReadModel``) is a set of tables plus one handler per event
type it cares about. A runner (``ProjectionRunner``) reads the log through an
``EventSource`` (one ordered log per partition), hands each event to the
handlers, and writes the rows it changed together with the log position it
reached, in one database transaction: a crash leaves either both or neither,
so every event is applied exactly once. A store remembers which log its read
models were built from and refuses another (``StoreOfAnotherLog``). ``rebuild`` drops a read model and
replays the whole log into it.

Backends: SQLite (embedded default) and PostgreSQL (psycopg 3). See
``docs/projections.md`` for writing a read model of your own.
"""

from projections.model import Column, ReadModel, Rows, Table, handles
from projections.runner import ProjectionRunner, RebuildResult, rebuild
from projections.source import ApplicationEventSource, EventSource, SourceEvent
from projections.store import PositionConflict, ReadModelStore, StoreOfAnotherLog, StoreUnavailable

__all__ = [
    "ApplicationEventSource",
    "Column",
    "EventSource",
    "PositionConflict",
    "ProjectionRunner",
    "ReadModel",
    "ReadModelStore",
    "RebuildResult",
    "Rows",
    "SourceEvent",
    "StoreOfAnotherLog",
    "StoreUnavailable",
    "Table",
    "handles",
    "rebuild",
]
