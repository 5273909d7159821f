"""One store, one log: every event source names its log, and a read-model store built from one log
refuses another instead of following it from positions that belong to the first (which skipped the
new log's first events: a DepositMade "before the channel was opened")."""

from __future__ import annotations

import logging

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from projections.model import Column, ReadModel, Table, handles
from projections.runner import ProjectionRunner, rebuild
from projections.source import SETTLER_PARTITION_BASE, CombinedEventSource, PartitionedEventSource, source_for
from projections.sqlite import SQLiteStore
from projections.store import StoreOfAnotherLog

THINGS = Table("things", (Column("id"), Column("n", "int")), key=("id",))


class Thing(Aggregate):
    @event("Made")
    def __init__(self, n: int) -> None:
        self.n = n


class Things(ReadModel, name="things", tables=(THINGS,)):
    @handles("Thing.Made")
    def made(self, ev, rows) -> None:
        rows.put(THINGS, {"id": str(ev.originator_id), "n": ev.n})


def _memory_log(*ns: int) -> Application:
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(*(Thing(n) for n in ns))
    return app


def _sqlite_log(path, *ns: int) -> Application:
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})
    app.save(*(Thing(n) for n in ns))
    return app


def _ns(store) -> list[int]:
    return sorted(r["n"] for r in store.select(THINGS))


# --- identities ------------------------------------------------------------------------------
def test_a_sqlite_log_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative, absolute = _sqlite_log("events.sqlite", 1), _sqlite_log(tmp_path / "events.sqlite")
    other = _sqlite_log(tmp_path / "other.sqlite", 1)
    assert source_for(relative).identity == source_for(absolute).identity == f"sqlite:{tmp_path / 'events.sqlite'}"
    assert source_for(other).identity != source_for(absolute).identity


def test_an_in_memory_log_is_its_own():
    one, two = _memory_log(1), _memory_log(1)
    assert source_for(one).identity == source_for(one).identity  # one recorder, one log
    assert source_for(one).identity != source_for(two).identity
    assert source_for(one).identity.startswith("memory:")


def test_a_kafka_log_is_named_by_its_events_topic():
    class Recorder:  # the Kafka recorder's per-partition API, as PartitionedEventSource sees it
        topic = "parsec.events"
        num_partitions = 3

        def select_partition_notifications(self, *args, **kwargs):
            return []

    assert PartitionedEventSource.supports(Recorder())
    assert PartitionedEventSource(Recorder(), mapper=None).identity == "kafka:parsec.events"


def test_a_combined_source_names_each_log_with_its_base(tmp_path):
    events, settler = source_for(_sqlite_log(tmp_path / "e.sqlite")), source_for(_sqlite_log(tmp_path / "s.sqlite"))
    combined = CombinedEventSource((SETTLER_PARTITION_BASE, settler), (0, events))
    assert combined.identity == f"0={events.identity}+{SETTLER_PARTITION_BASE}={settler.identity}"


def test_a_source_without_identity_is_refused():
    class Anonymous:
        def partitions(self):
            return [0]

        def read(self, partition, after, limit):
            return []

        def head(self, partition):
            return None

    with pytest.raises(TypeError, match="identity"):
        ProjectionRunner(Anonymous(), SQLiteStore(":memory:"), [Things()])


# --- the store -------------------------------------------------------------------------------
def test_the_second_log_is_refused_and_nothing_of_it_applied(tmp_path):
    first, second = source_for(_sqlite_log(tmp_path / "a.sqlite", 1, 2)), source_for(_sqlite_log(tmp_path / "b.sqlite", 7, 8, 9))
    store = SQLiteStore(tmp_path / "readmodels.sqlite")
    assert ProjectionRunner(first, store, [Things()]).catch_up() == 2
    runner = ProjectionRunner(second, store, [Things()])
    with pytest.raises(StoreOfAnotherLog, match="projections rebuild things") as refused:
        runner.catch_up()
    assert (refused.value.recorded, refused.value.offered) == (first.identity, second.identity)
    assert runner.stats.events == 0 and _ns(store) == [1, 2] and store.positions("things") == {0: 2}


def test_a_rebuild_adopts_the_new_log(tmp_path):
    first, second = source_for(_memory_log(1, 2)), source_for(_memory_log(7, 8, 9))
    store = SQLiteStore(tmp_path / "readmodels.sqlite")
    ProjectionRunner(first, store, [Things()]).catch_up()
    assert rebuild(second, store, Things()).events == 3
    assert _ns(store) == [7, 8, 9] and store.source("things") == second.identity
    with pytest.raises(StoreOfAnotherLog):
        ProjectionRunner(first, store, [Things()]).catch_up()


def test_a_store_from_before_adopts_the_first_log_it_is_used_with(tmp_path, caplog):
    first, second = source_for(_memory_log(1, 2)), source_for(_memory_log(7, 8, 9))
    store = SQLiteStore(tmp_path / "readmodels.sqlite")
    ProjectionRunner(first, store, [Things()]).catch_up()
    store._execute("DELETE FROM projection_sources")  # positions, no log: a store written before logs were kept
    first.recorder.insert_events(list(_memory_log(3).recorder.select_notifications(1, 10)))
    with caplog.at_level(logging.WARNING, logger="parsec.projections"):
        assert ProjectionRunner(first, store, [Things()]).catch_up() == 1
        ProjectionRunner(first, store, [Things()]).catch_up()
    warnings = [r.getMessage() for r in caplog.records if "no recorded log" in r.getMessage()]
    assert len(warnings) == 1 and first.identity in warnings[0]
    assert _ns(store) == [1, 2, 3] and store.source("things") == first.identity
    with pytest.raises(StoreOfAnotherLog):
        ProjectionRunner(second, store, [Things()]).catch_up()
