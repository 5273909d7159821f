"""The event stream's cursor: resuming from any id delivers every later event once, none earlier."""

from __future__ import annotations

from typing import Any

from infrastructure.api.events import Cursor, EventSourceReader, StreamFilter, Tail


class _Ev:
    def __init__(self, partition: int, position: int, name: str, event: Any) -> None:
        self.partition, self.position, self.name, self.event = partition, position, name, event


class _Payment:
    def __init__(self, channel: str, sequence: int) -> None:
        self.originator_id, self.sequence, self.price, self.buyer_total = channel, sequence, 10, 10 * sequence
        self.balances = [1, 2]


class FakeLog:
    """Two partitions; positions start at 1 (an event store's notification ids)."""

    def __init__(self) -> None:
        self.events: dict[int, list[_Ev]] = {0: [], 1: []}

    def add(self, partition: int, name: str, event: Any) -> None:
        log = self.events[partition]
        log.append(_Ev(partition, len(log) + 1, name, event))

    def partitions(self) -> list[int]:
        return [0, 1]

    def head(self, partition: int) -> int | None:
        return self.events[partition][-1].position if self.events[partition] else None

    def read(self, partition: int, after: int | None, limit: int) -> list[_Ev]:
        return [e for e in self.events[partition] if after is None or e.position > after][:limit]


def _pay(log: FakeLog, partition: int, channel: str, seq: int) -> None:
    log.add(partition, "Channel.PaymentAccepted", _Payment(channel, seq))


def _drain(tail: Tail) -> list[tuple[str, Any]]:
    out = []
    while batch := tail.poll(0):
        out += batch
    return out


def test_resuming_from_each_id_gives_exactly_the_events_after_it():
    log = FakeLog()
    for seq in range(1, 4):
        _pay(log, 0, "a", seq)
        _pay(log, 1, "b", seq)
    log.add(0, "Channel.SomethingNotStreamed", object())
    _pay(log, 0, "a", 4)
    everything = _drain(Tail([EventSourceReader("events", log)], None, from_now=False))
    seen = [(ev.data["channel"], ev.data["sequence"]) for _, ev in everything]
    assert sorted(seen) == sorted([("a", s) for s in range(1, 5)] + [("b", s) for s in range(1, 4)])
    for i, (event_id, _) in enumerate(everything):
        resumed = _drain(Tail([EventSourceReader("events", log)], Cursor.parse(event_id), from_now=False))
        assert [(e.partition, e.position) for _, e in resumed] == [
            (e.partition, e.position) for _, e in everything[i + 1:]]


def test_a_stream_from_now_starts_at_the_heads_and_its_first_id_resumes_there():
    log = FakeLog()
    _pay(log, 0, "a", 1)
    tail = Tail([EventSourceReader("events", log)], None, from_now=True)
    first_id = tail.id
    assert first_id == "events:0:1"  # partition 1 is empty: it will be read from its start
    _pay(log, 1, "b", 1)
    _pay(log, 0, "a", 2)
    live = _drain(tail)
    resumed = _drain(Tail([EventSourceReader("events", log)], Cursor.parse(first_id), from_now=True))
    assert [(e.partition, e.position) for _, e in live] == [(e.partition, e.position) for _, e in resumed]
    assert len(live) == 2


def test_a_filter_passes_events_over_but_the_cursor_moves_past_them():
    log = FakeLog()
    _pay(log, 0, "00000000-0000-0000-0000-00000000000a", 1)
    _pay(log, 0, "00000000-0000-0000-0000-00000000000b", 1)
    keep = StreamFilter.of("00000000-0000-0000-0000-00000000000b", "payment.accepted")
    tail = Tail([EventSourceReader("events", log)], None, from_now=False, keep=keep)
    got = _drain(tail)
    assert [e.data["channel"] for _, e in got] == ["00000000-0000-0000-0000-00000000000b"]
    assert tail.id == "events:0:2"
