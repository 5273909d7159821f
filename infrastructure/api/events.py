"""``GET /v1/events``: the log as server-sent events, resumable without a gap or a repeat.

Three logs feed the stream, each read by its own reader: ``events`` (the Channel events topic, or
the embedded SQLite log: accepted payments, checkpoints, settlement and dispute requests, closes),
``settler`` (the settler's own topic: each checkpoint, close or settle transaction submitted,
confirmed or failed) and ``rejected`` (every message a node refused, with its reason). Each log is
ordered per partition and nowhere else, so a position is kept per (log, partition).

An event's SSE id is the whole cursor after it: ``<log>:<partition>:<position>`` for every
partition read so far, comma-separated (``events:0:42,events:1:17,rejected:0:3``), where position
is the log's own (the event store's notification id, a Kafka offset for ``rejected``). A client
that reconnects with ``Last-Event-ID`` (browsers do it by themselves) gets exactly the events after
that cursor: a partition it names resumes after its position, a partition it does not name starts
from its beginning (it had nothing there). A stream started without one begins at the head of each
partition (``?from=now``, the default) or at the start of the log (``?from=start``); its first
message carries only an id (the cursor of the heads), and keep-alive messages carry the id too, so
the events a filter (``?channel=``, ``?types=``) passed over are not scanned again on resume. The id
of a cursor with no position yet is ``start``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infrastructure.api.errors import InvalidEventId, InvalidParameter

LOGS = ("events", "settler", "rejected")
_ENTRY = re.compile(r"^(events|settler|rejected):(\d{1,6}):(-?\d{1,20})$")
MAX_CURSOR_CHARS = 8192
EMPTY = "start"  # the id of a cursor with no position yet: every partition from its start

# the Channel and SettlementIntent events streamed, and the SSE event type of each
EVENT_TYPES = {
    "Channel.ChannelOpened": "channel.opened",
    "Channel.DepositMade": "deposit.made",
    "Channel.OperatorRegistered": "operator.registered",
    "Channel.PaymentAccepted": "payment.accepted",
    "Channel.CheckpointRequested": "checkpoint.requested",
    "Channel.CheckpointConfirmed": "checkpoint.confirmed",
    "Channel.SettlementRequested": "settlement.requested",
    "Channel.DisputeRequested": "dispute.requested",
    "Channel.ChannelClosed": "channel.closed",
    "SettlementIntent.TransactionSubmitted": "settlement.transaction",
    "SettlementIntent.TransactionConfirmed": "settlement.transaction",
    "SettlementIntent.TransactionFailed": "settlement.transaction",
}
STREAM_TYPES = (*dict.fromkeys(EVENT_TYPES.values()), "payment.rejected", "control.rejected")


# ---------------------------------------------------------------------- the cursor
class Cursor:
    """The last position delivered in each (log, partition)."""

    def __init__(self, positions: dict[tuple[str, int], int] | None = None) -> None:
        self.positions: dict[tuple[str, int], int] = dict(positions or {})

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        if text is None or not text.strip():
            return None
        if text.strip() == EMPTY:
            return cls()
        if len(text) > MAX_CURSOR_CHARS:
            raise InvalidEventId(f"Last-Event-ID has {len(text)} characters; this API hands out at most "
                                 f"{MAX_CURSOR_CHARS}")
        positions: dict[tuple[str, int], int] = {}
        for entry in text.strip().split(","):
            m = _ENTRY.match(entry.strip())
            if m is None:
                raise InvalidEventId(f"{entry[:60]!r} is not <log>:<partition>:<position> with log one of "
                                     f"{', '.join(LOGS)}")
            positions[(m.group(1), int(m.group(2)))] = int(m.group(3))
        return cls(positions)

    def of(self, log: str) -> dict[int, int]:
        return {p: pos for (name, p), pos in self.positions.items() if name == log}

    def advance(self, log: str, partition: int, position: int) -> None:
        self.positions[(log, partition)] = position

    def encode(self) -> str:
        order = {name: i for i, name in enumerate(LOGS)}
        keys = sorted(self.positions, key=lambda k: (order[k[0]], k[1]))
        if not keys:
            return EMPTY
        return ",".join(f"{name}:{p}:{self.positions[(name, p)]}" for name, p in keys)


# ---------------------------------------------------------------------- readers
@dataclass(frozen=True)
class StreamEvent:
    log: str
    partition: int
    position: int
    type: str | None  # None: not streamed (the position still moves past it)
    data: dict[str, Any]


class LogReader(Protocol):
    log: str

    def start(self, positions: dict[int, int], from_now: bool) -> dict[int, int]:
        """Resume after ``positions`` (a partition not in it: from its start, or its head when
        ``from_now``); returns the positions started from (a partition with nothing before: absent)."""

    def poll(self, timeout: float) -> list[StreamEvent]:
        """What came after the last poll, in order per partition (waits at most ``timeout``)."""

    def close(self) -> None: ...


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _amounts(values: Iterable[Any] | None) -> list[str | None] | None:
    return None if values is None else [_s(v) for v in values]


def describe_event(name: str, event: Any) -> dict[str, Any]:
    """The JSON of one streamed Channel or SettlementIntent event (amounts as decimal strings)."""
    g = lambda attr, default=None: getattr(event, attr, default)  # noqa: E731
    if name.startswith("SettlementIntent."):
        state = {"TransactionSubmitted": "submitted", "TransactionConfirmed": "confirmed",
                 "TransactionFailed": "failed"}[name.partition(".")[2]]
        out = {"channel": _s(g("channel_id")), "kind": _s(g("kind")), "sequence": g("sequence"), "state": state,
               "tx_hash": g("tx_hash")}
        if state == "confirmed":
            out.update(block=g("block"), gas_used=g("gas_used"), payouts=_amounts(g("payouts")))
        if state == "failed":
            out.update(error=g("reason"), final=g("final"))
        return out
    out: dict[str, Any] = {"channel": _s(g("originator_id"))}
    kind = name.partition(".")[2]
    if kind == "ChannelOpened":
        out.update(participants=g("participants"), currency=g("currency"), deposits=_amounts(g("deposits")),
                   chain_id=g("chain_id"), contract=g("contract"), opened_at=g("opened_at"))
    elif kind == "DepositMade":
        out.update(participant=g("participant"), amount=_s(g("amount")), total=_s(g("total")))
    elif kind == "OperatorRegistered":
        out.update(participant=g("participant"), operator=g("operator"))
    elif kind == "PaymentAccepted":
        out.update(sequence=g("sequence"), invoice_id=_s(g("invoice_id")), buyer=g("buyer"), supplier=g("supplier"),
                   price=_s(g("price")), buyer_total=_s(g("buyer_total")), balances=_amounts(g("balances")),
                   transaction_hash=g("transaction_hash"))
    elif kind in ("CheckpointRequested", "SettlementRequested"):
        out.update(sequence=g("sequence"), head_hash=g("head_hash"), balances=_amounts(g("balances")), at=g("at"),
                   requested_by=g("requested_by") or None)
        if kind == "CheckpointRequested":
            out["reason"] = g("reason")
    elif kind == "CheckpointConfirmed":
        out.update(sequence=g("sequence"), tx_hash=g("tx_hash"), block=g("block"))
    elif kind == "DisputeRequested":
        out.update(from_sequence=g("from_sequence"), to_sequence=g("to_sequence"), head_hash=g("head_hash"),
                   requested_by=g("requested_by") or None, at=g("at"))
    elif kind == "ChannelClosed":
        out.update(sequence=g("sequence"), balances=_amounts(g("balances")), at=g("at"))
    return out


class EventSourceReader:
    """A log the read models follow (``projections.source.EventSource``): the events or the settler's."""

    def __init__(self, log: str, source: Any, *, batch: int = 500, lock: threading.Lock | None = None) -> None:
        self.log = log
        self.source = source
        self.batch = batch
        self.lock = lock or threading.Lock()  # one source may be shared by every stream
        self.positions: dict[int, int] = {}

    def start(self, positions: dict[int, int], from_now: bool) -> dict[int, int]:
        with self.lock:
            partitions = list(self.source.partitions())
            self.positions = {p: positions[p] for p in partitions if p in positions}
            if from_now:
                for p in partitions:
                    if p not in self.positions:
                        head = self.source.head(p)
                        if head is not None:
                            self.positions[p] = head
            self._partitions = partitions
        return dict(self.positions)

    def poll(self, timeout: float) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        with self.lock:
            for p in self._partitions:
                for ev in self.source.read(p, self.positions.get(p), self.batch):
                    self.positions[p] = ev.position
                    kind = EVENT_TYPES.get(ev.name)
                    data = describe_event(ev.name, ev.event) if kind else {}
                    out.append(StreamEvent(self.log, p, ev.position, kind, data))
        return out

    def close(self) -> None:
        pass  # the source is shared; the services close it


def describe_rejection(rejection: Any, inbound_topic: str) -> tuple[str, dict[str, Any]]:
    kind = "payment.rejected" if rejection.source_topic == inbound_topic else "control.rejected"
    raw = rejection.raw.decode("utf-8", "replace")
    data = {"reason": rejection.reason, "message": rejection.message,
            "channel": (rejection.key or b"").decode("utf-8", "replace") or None,
            "source": {"topic": rejection.source_topic, "partition": rejection.source_partition,
                       "offset": rejection.source_offset},
            "at": rejection.at, "raw": raw[:4096]}
    if len(raw) > 4096:
        data["raw_truncated"] = True
    return kind, data


class RejectedTopicReader:
    """The rejected topic, read committed, with a consumer of its own (one per stream)."""

    log = "rejected"

    def __init__(self, consumer: Any, topic: str, inbound_topic: str,
                 parse: Callable[[Any, Any, Any], Any]) -> None:
        self.consumer = consumer
        self.topic = topic
        self.inbound_topic = inbound_topic
        self.parse = parse  # (key, value, headers) -> Rejection

    def start(self, positions: dict[int, int], from_now: bool) -> dict[int, int]:
        from kafka import TopicPartition

        parts = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        started: dict[int, int] = {}
        ends = self.consumer.end_offsets(tps) if from_now else {}
        for tp in tps:
            if tp.partition in positions:
                started[tp.partition] = positions[tp.partition]
                self.consumer.seek(tp, positions[tp.partition] + 1)
            elif from_now and ends.get(tp, 0) > 0:
                started[tp.partition] = ends[tp] - 1
                self.consumer.seek(tp, ends[tp])
            else:
                self.consumer.seek_to_beginning(tp)
        return started

    def poll(self, timeout: float) -> list[StreamEvent]:
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=500)
        out: list[StreamEvent] = []
        for tp, records in sorted(batches.items(), key=lambda kv: kv[0].partition):
            for r in records:
                try:
                    kind, data = describe_rejection(self.parse(r.key, r.value, r.headers), self.inbound_topic)
                except (KeyError, ValueError):  # not a node's rejection record: passed over
                    kind, data = None, {}
                out.append(StreamEvent(self.log, tp.partition, r.offset, kind, data))
        return out

    def close(self) -> None:
        try:
            self.consumer.close(autocommit=False)
        except Exception:  # closing a consumer whose broker went away
            pass


# ---------------------------------------------------------------------- one stream
@dataclass(frozen=True)
class StreamFilter:
    channel: str | None = None
    types: frozenset[str] | None = None

    @classmethod
    def of(cls, channel: str | None, types: str | None) -> StreamFilter:
        if channel is not None:
            try:
                channel = str(uuid.UUID(channel))
            except ValueError:
                raise InvalidParameter(f"channel {channel[:60]!r} is not a channel id (a UUID)") from None
        wanted = None
        if types:
            wanted = frozenset(t.strip() for t in types.split(",") if t.strip())
            unknown = wanted - set(STREAM_TYPES)
            if unknown:
                raise InvalidParameter(f"unknown event type(s) {sorted(unknown)}; known: {', '.join(STREAM_TYPES)}")
        return cls(channel, wanted)

    def passes(self, ev: StreamEvent) -> bool:
        if ev.type is None:
            return False
        if self.types is not None and ev.type not in self.types:
            return False
        return self.channel is None or ev.data.get("channel") == self.channel


class Tail:
    """One client's stream over every reader: ``poll`` gives (id, event) pairs, in order per partition."""

    def __init__(self, readers: Sequence[LogReader], cursor: Cursor | None, *, from_now: bool,
                 keep: StreamFilter = StreamFilter(), idle_sleep: float = 0.2) -> None:
        self.readers = list(readers)
        self.keep = keep
        self.idle_sleep = idle_sleep
        # a resumed stream keeps the positions of logs this API does not read (yet): their ids stay whole
        self.cursor = Cursor(cursor.positions if cursor is not None else None)
        resume = cursor is not None
        for reader in self.readers:
            given = cursor.of(reader.log) if cursor is not None else {}
            for p, pos in reader.start(given, from_now=from_now and not resume).items():
                self.cursor.advance(reader.log, p, pos)

    @property
    def id(self) -> str:
        return self.cursor.encode()

    def poll(self, timeout: float) -> list[tuple[str, StreamEvent]]:
        deadline = time.monotonic() + timeout
        while True:
            out: list[tuple[str, StreamEvent]] = []
            moved = False
            for reader in self.readers:
                wait = 0.05 if reader.log == "rejected" else 0.0
                for ev in reader.poll(wait):
                    moved = True
                    self.cursor.advance(ev.log, ev.partition, ev.position)
                    if self.keep.passes(ev):
                        out.append((self.cursor.encode(), ev))
            if out or moved or time.monotonic() >= deadline:
                return out
            time.sleep(min(self.idle_sleep, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def sse(event_id: str, ev: StreamEvent) -> str:
    data = {**ev.data, "log": ev.log, "partition": ev.partition, "position": ev.position}
    return f"id: {event_id}\nevent: {ev.type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def sse_id_only(event_id: str, comment: str = "") -> str:
    return (f": {comment}\n" if comment else "") + f"id: {event_id}\n\n"
