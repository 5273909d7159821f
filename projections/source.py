"""Where events come from: an EventSource is a set of ordered logs (partitions).

The SQLite event store has one notification log (partition 0, positions are
notification ids, 1, 2, …). The Kafka event store has one log per partition of
the events topic (positions are offsets, 0, 1, …); there is no order across
partitions, so a reader keeps one position per partition. A Kafka adapter is
just another implementation of ``EventSource``.

Every source names its log (``identity``): positions mean something only in
the log they were taken from, so a read-model store remembers which log its
read models were built from and refuses another (``projections.store``,
"One store, one log" in docs/projections.md).
"""

from __future__ import annotations

import sqlite3
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Mapper,
    OperationalError,
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import TopicError

from projections import views
from projections.views import View


class SourceUnavailable(ConnectionError):
    """The event store cannot be read right now: retry later."""


class SourceEvent:
    """One event at a position in one partition; decoded (by the source's mapper) only when read.

    A plain class with slots, built once per event read: a dataclass with a decoding closure
    per event cost a rebuild ~10% of its time."""

    __slots__ = ("partition", "position", "topic", "name", "originator_id", "originator_version", "_state",
                 "_mapper", "_event", "_view", "_id_text")

    def __init__(self, partition: int, position: int, originator_id: Any, originator_version: int, topic: str,
                 state: bytes, mapper: Mapper, id_text: str | None = None) -> None:
        """A stored record's columns (no ``StoredEvent`` is built unless the domain event is asked
        for); ``id_text``: ``str(originator_id)``, when the reader has it already."""
        self.partition = partition
        self.position = position
        self.topic = topic
        # the qualified class name the topic names (``Channel.PaymentAccepted``)
        self.name = topic.partition(":")[2] or topic
        self.originator_id = originator_id
        self.originator_version = originator_version
        self._state = state
        self._mapper = mapper
        self._id_text = id_text
        self._event: Any = None
        self._view: View | None = None

    @classmethod
    def of(cls, partition: int, position: int, stored: StoredEvent, mapper: Mapper) -> SourceEvent:
        return cls(partition, position, stored.originator_id, stored.originator_version, stored.topic, stored.state,
                   mapper)

    @property
    def event(self) -> Any:
        if self._event is None:
            stored = StoredEvent(originator_id=self.originator_id, originator_version=self.originator_version, topic=self.topic,
                                 state=self._state)
            self._event = self._mapper.to_domain_event(stored)
        return self._event

    @property
    def view(self) -> View:
        """The event's view (``projections.views``; its name must have one), decoded from the stored
        bytes without building the domain event."""
        if self._view is None:
            state = self._state
            cipher = getattr(self._mapper, "cipher", None)
            compressor = getattr(self._mapper, "compressor", None)
            if cipher is not None:  # the mapper's own order, reversed: encrypted last, so first off
                state = cipher.decrypt(state)
            if compressor is not None:
                state = compressor.decompress(state)
            oid = self._id_text if self._id_text is not None else self.originator_id
            self._view = views.decode(self.name, state, oid, self.originator_version)
        return self._view

    def decodable(self) -> bool:
        """False when no class in this code base has the topic (an event from a newer writer)."""
        try:
            _ = self.event
        except TopicError:
            return False
        return True

    def __repr__(self) -> str:
        return f"SourceEvent({self.partition}/{self.position} {self.name} of {self.originator_id})"


@runtime_checkable
class EventSource(Protocol):
    @property
    def identity(self) -> str:
        """The log this source reads, stable across processes and restarts (``sqlite:/abs/path``,
        ``kafka:<events topic>``): a store built from one log refuses a source of another."""

    def partitions(self) -> Sequence[int]:
        """The partitions to follow (SQLite: ``[0]``)."""

    def read(self, partition: int, after: int | None, limit: int) -> Sequence[SourceEvent]:
        """Up to ``limit`` events of ``partition`` after position ``after`` (None: from the start),
        in order. Raises SourceUnavailable when the store cannot be read."""

    def head(self, partition: int) -> int | None:
        """The position of the last event in ``partition`` now (None: empty); for progress.

        Optional attribute ``first_position`` (default 0) says where positions start."""


_IN_MEMORY: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def recorder_identity(recorder: Any) -> str:
    """The log an eventsourcing recorder holds, named so that another process finds the same name.

    SQLite: the absolute path of the database file; PostgreSQL: server, database, schema and table.
    A log that lives only in this process (POPO, SQLite in memory) gets a name unique to the
    recorder: no store may outlive it and be reused for another."""
    datastore = getattr(recorder, "datastore", None)
    pool = getattr(datastore, "pool", None)
    table = getattr(recorder, "events_table_name", "stored_events")
    suffix = "" if table == "stored_events" else f"#{table}"
    db_name = getattr(pool, "db_name", None)
    if isinstance(db_name, str) and not getattr(pool, "is_sqlite_memory_mode", True):
        name = db_name if db_name.startswith("file:") else str(Path(db_name).expanduser().resolve())
        return f"sqlite:{name}{suffix}"
    kwargs = getattr(pool, "kwargs", None)
    if isinstance(kwargs, dict) and "dbname" in kwargs:
        schema = getattr(datastore, "schema", "public")
        return f"postgres:{kwargs.get('host')}:{kwargs.get('port')}/{kwargs['dbname']}/{schema}.{table}"
    try:
        return _IN_MEMORY.setdefault(recorder, f"memory:{uuid.uuid4()}")
    except TypeError:  # not weakly referenceable: unique to this source instead
        return f"memory:{uuid.uuid4()}"


class ApplicationEventSource:
    """An eventsourcing application's notification log (SQLite, PostgreSQL, POPO stores) as one partition."""

    first_position = 1  # notification ids start at 1 (Kafka offsets at 0)

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper, app: Any = None,
                 *, identity: str | None = None) -> None:
        """``identity``: the log's name, when the recorder's own (``recorder_identity``) is not right."""
        self.recorder = recorder
        self.mapper = mapper
        self._app = app  # an Application closes its recorder when collected: keep it alive
        self._identity = identity

    @classmethod
    def of(cls, app: Any, *, identity: str | None = None) -> ApplicationEventSource:
        return cls(app.recorder, app.mapper, app, identity=identity)

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = recorder_identity(self.recorder)
        return self._identity

    def partitions(self) -> Sequence[int]:
        return [0]

    def close(self) -> None:
        """Close the application (and its recorder's connections or Kafka clients)."""
        if self._app is not None:
            self._app.close()

    def _check(self, partition: int) -> None:
        if partition != 0:
            raise ValueError(f"an application's notification log has one partition (0), not {partition}")

    def read(self, partition: int, after: int | None, limit: int) -> Sequence[SourceEvent]:
        self._check(partition)
        try:
            if isinstance(self.recorder, SQLiteApplicationRecorder):
                return self._read_sqlite(self.recorder, after or 0, limit)
            notifications = self.recorder.select_notifications(
                start=after or 0, limit=limit, inclusive_of_start=False
            )
        except (OperationalError, InterfaceError, sqlite3.OperationalError) as err:
            raise SourceUnavailable(f"event store: {err}") from err
        return [self._source_event(n.id, n) for n in notifications]

    def _read_sqlite(self, recorder: SQLiteApplicationRecorder, after: int, limit: int) -> list[SourceEvent]:
        """eventsourcing's ``select_notifications`` query, read as plain rows: its ``Notification`` per
        event, with a ``UUID`` parsed from the stored hex for every event, cost a rebuild ~5 µs an
        event. Here each channel's id is converted once per batch (the recorder's own conversion),
        and its text form kept for the views."""
        statement = (f"SELECT rowid, originator_id, originator_version, topic, state "
                     f"FROM {recorder.events_table_name} WHERE rowid>? ORDER BY rowid LIMIT ?")
        with recorder.datastore.transaction(commit=False) as cur:
            cur.execute(statement, (after, limit))
            rows = cur.fetchall()
        mapper, convert = self.mapper, recorder.convert_originator_id
        ids: dict[str, tuple[Any, str]] = {}
        events = []
        for r in rows:
            stored_id = r[1]
            known = ids.get(stored_id)
            if known is None:
                oid = convert(stored_id)
                known = ids[stored_id] = (oid, str(oid))
            events.append(SourceEvent(0, r[0], known[0], r[2], r[3], r[4], mapper, known[1]))
        return events

    def _source_event(self, position: int, stored: StoredEvent, partition: int = 0) -> SourceEvent:
        return SourceEvent.of(partition, position, stored, self.mapper)

    def head(self, partition: int) -> int | None:
        self._check(partition)
        try:
            return self.recorder.max_notification_id()
        except (OperationalError, InterfaceError, sqlite3.OperationalError) as err:
            raise SourceUnavailable(f"event store: {err}") from err


class PartitionedEventSource(ApplicationEventSource):
    """A recorder with one notification log per partition (the Kafka event store).

    Duck-typed on the Kafka recorder's per-partition API
    (``num_partitions``, ``select_partition_notifications``,
    ``max_partition_notification_id``) so projections need not import
    infrastructure. Positions are its notification ids (Kafka offset + 1):
    increasing, not contiguous. Its log is named by the events topic (``kafka:<topic>``): the
    recorder does not know the cluster's id, so two clusters with a topic of the same name look
    like one log.
    """

    @property
    def identity(self) -> str:
        if self._identity is None:
            topic = getattr(self.recorder, "topic", None)
            self._identity = f"kafka:{topic}" if topic else recorder_identity(self.recorder)
        return self._identity

    @staticmethod
    def supports(recorder: Any) -> bool:
        return hasattr(recorder, "select_partition_notifications") and hasattr(recorder, "num_partitions")

    def partitions(self) -> Sequence[int]:
        try:
            return list(range(self.recorder.num_partitions))  # type: ignore[attr-defined]
        except (OperationalError, InterfaceError) as err:
            raise SourceUnavailable(f"event store: {err}") from err

    def read(self, partition: int, after: int | None, limit: int) -> Sequence[SourceEvent]:
        try:
            notifications = self.recorder.select_partition_notifications(  # type: ignore[attr-defined]
                partition, after, limit, inclusive_of_start=False
            )
        except (OperationalError, InterfaceError) as err:
            raise SourceUnavailable(f"event store partition {partition}: {err}") from err
        return [self._source_event(n.id, n, partition) for n in notifications]

    def head(self, partition: int) -> int | None:
        try:
            return self.recorder.max_partition_notification_id(partition)  # type: ignore[attr-defined]
        except (OperationalError, InterfaceError) as err:
            raise SourceUnavailable(f"event store partition {partition}: {err}") from err


SETTLER_PARTITION_BASE = 1000
"""Where the settler's log is numbered in a combined source (its partition p is 1000 + p): the
events topic's partitions keep their own numbers, so positions stored before it joined still hold."""


class CombinedEventSource:
    """Several logs read as one source, each numbered from its own base.

    On Kafka the settlement process manager keeps its intents (``SettlementIntent``: each
    transaction's hash, block, gas, failure) on the settler's own topic, not on the events topic;
    the settlements read model follows both. Each partition of each log keeps its own position.
    There is no order across the logs, as there is none across partitions: read models built on
    both must not depend on one (``projections.settlements.advance`` moves rows only forward)."""

    def __init__(self, *logs: tuple[int, EventSource]) -> None:
        bases = [base for base, _ in logs]
        if len(set(bases)) != len(bases):
            raise ValueError(f"each log needs its own base, got {bases}")
        self.logs = sorted(logs, key=lambda bl: bl[0])

    @property
    def identity(self) -> str:
        """Each log with its base: ``0=kafka:parsec.events+1000=kafka:parsec.settlement.events``."""
        return "+".join(f"{base}={source.identity}" for base, source in self.logs)

    def _log(self, partition: int) -> tuple[int, EventSource]:
        for base, source in reversed(self.logs):
            if partition >= base:
                return base, source
        raise ValueError(f"no log has partition {partition}")

    def partitions(self) -> Sequence[int]:
        return [base + p for base, source in self.logs for p in source.partitions()]

    def read(self, partition: int, after: int | None, limit: int) -> Sequence[SourceEvent]:
        base, source = self._log(partition)
        events = source.read(partition - base, after, limit)
        for e in events:
            e.partition = partition
        return events

    def head(self, partition: int) -> int | None:
        base, source = self._log(partition)
        return source.head(partition - base)

    @property
    def first_position(self) -> int:
        return min(getattr(source, "first_position", 0) for _, source in self.logs)

    def close(self) -> None:
        for _, source in self.logs:
            closing = getattr(source, "close", None)
            if closing is not None:
                closing()


def source_for(app: Any) -> ApplicationEventSource:
    """The right EventSource for an eventsourcing application's recorder."""
    if PartitionedEventSource.supports(app.recorder):
        return PartitionedEventSource.of(app)
    return ApplicationEventSource.of(app)
