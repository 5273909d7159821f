"""Two logs read as one source: each keeps its own partitions and positions (the settler's topic beside
the events topic on Kafka)."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from projections.source import SETTLER_PARTITION_BASE, CombinedEventSource, source_for


class Thing(Aggregate):
    def __init__(self, n: int) -> None:
        self.n = n


def _log(count: int) -> Application:
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for i in range(count):
        app.save(Thing(i))
    return app


def test_each_log_keeps_its_numbers_and_positions():
    events, settler = _log(3), _log(2)
    source = CombinedEventSource((0, source_for(events)), (SETTLER_PARTITION_BASE, source_for(settler)))
    assert source.partitions() == [0, SETTLER_PARTITION_BASE]
    first = source.read(0, None, 10)
    assert [e.position for e in first] == [1, 2, 3] and {e.partition for e in first} == {0}
    later = source.read(SETTLER_PARTITION_BASE, 1, 10)
    assert [(e.partition, e.position) for e in later] == [(SETTLER_PARTITION_BASE, 2)]
    assert (source.head(0), source.head(SETTLER_PARTITION_BASE)) == (3, 2)
    assert isinstance(later[0].event.originator_id, uuid.UUID)


def test_two_logs_on_one_base_are_refused():
    with pytest.raises(ValueError, match="its own base"):
        CombinedEventSource((0, source_for(_log(1))), (0, source_for(_log(1))))
