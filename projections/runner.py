"""The projection runner: follow the log, keep read models current, exactly once.

Per partition, a step reads one batch of events after the lowest position of
the read models it runs, applies each event to every read model that has not
seen it yet, and commits the changed rows with the new positions in one
transaction (``ReadModelStore.commit``). After a crash, the stored positions
say where to resume; nothing is applied twice or skipped.

Events no read model handles are passed over on purpose: the position still
moves past them, and each such type is logged once. A store that goes away
(database restart, lock timeout, lost connection) is retried with exponential
backoff; the runner then re-reads its positions from the database, because
the last commit may or may not have landed.

Positions are offsets into one log: before it reads them, the runner claims each
read model for its source's log (``ReadModelStore.claim``); a store whose read
models were built from another log is refused with ``StoreOfAnotherLog``, before
any event is read.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.model import ReadModel, Table
from projections.source import EventSource, SourceEvent, SourceUnavailable
from projections.store import PositionConflict, ReadModelStore, StoreUnavailable, TrackingUpdate

log = logging.getLogger("parsec.projections")


@dataclass
class Backoff:
    """Exponential backoff with jitter: 0.1 s, 0.2 s, … up to ``cap``."""

    initial: float = 0.1
    cap: float = 5.0
    factor: float = 2.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.attempt = 0


class _BatchRows:
    """``Rows`` for one batch: reads through a cache, collects the rows written."""

    def __init__(self, store: ReadModelStore, cache: dict[tuple[str, tuple[Any, ...]], dict[str, Any] | None]):
        self.store = store
        self.cache = cache
        self.written: dict[tuple[str, tuple[Any, ...]], tuple[Table, dict[str, Any]]] = {}

    def get(self, table: Table, *key: Any) -> dict[str, Any] | None:
        ck = (table.name, key)
        if ck in self.written:
            return dict(self.written[ck][1])
        if ck not in self.cache:
            self.cache[ck] = self.store.load(table, key)
        row = self.cache[ck]
        return dict(row) if row is not None else None

    def put(self, table: Table, row: dict[str, Any]) -> None:
        full = table.complete_row(row)
        self.written[(table.name, table.key_of(full))] = (table, full)

    def publish(self) -> None:
        """After the commit: what was written is what the database now has."""
        for ck, (_, row) in self.written.items():
            self.cache[ck] = row


def _handler(model: ReadModel, name: str) -> Callable[[Any, Any], None]:
    """``model``'s handler of ``name`` events; through its ``apply`` if a subclass overrides that."""
    if type(model).apply is not ReadModel.apply:
        return lambda event, rows: model.apply(name, event, rows)  # type: ignore[misc]
    handler = model.handler(name)
    assert handler is not None
    return handler


@dataclass
class RunnerStats:
    events: int = 0  # events read from the log
    applied: int = 0  # (event, read model) pairs a handler took
    batches: int = 0
    retries: int = 0
    skipped: Counter = field(default_factory=Counter)  # event name → events no read model handles


class ProjectionRunner:
    """Runs read models over an event source into one store."""

    def __init__(
        self,
        source: EventSource,
        store: ReadModelStore,
        models: Sequence[ReadModel],
        *,
        batch_size: int = 500,
        cache_size: int = 100_000,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        known_events: Iterable[str] = (),
        indexes: bool = True,
    ) -> None:
        """``known_events``: event names other read models handle, so not worth a warning here.
        ``indexes=False``: the tables' secondary indexes are left for the caller to create (a rebuild)."""
        if not models:
            raise ValueError("a runner needs at least one read model")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"read model names must be unique: {names}")
        identity = getattr(source, "identity", None)
        if not isinstance(identity, str) or not identity:
            raise TypeError(
                f"{type(source).__name__} has no identity: an EventSource must name its log, so that a store "
                "built from one log is never followed from another (projections.source.EventSource.identity)"
            )
        self.source = source
        self.identity = identity
        self.store = store
        self.models = list(models)
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.stats = RunnerStats()
        self._cache: dict[tuple[str, tuple[Any, ...]], dict[str, Any] | None] = {}
        self._positions: dict[str, dict[int, int]] | None = None
        self._claimed = False
        self._handled = frozenset().union(*(m.handled_events for m in self.models))
        # event name -> (index of the read model, its handler, whether it takes the view), in the
        # models' order: looked up once per event, not once per event and read model
        self._handlers: dict[str, list[tuple[int, Callable[[Any, Any], None], bool]]] = {}
        for i, m in enumerate(self.models):
            for name in sorted(m.handled_events):
                self._handlers.setdefault(name, []).append((i, _handler(m, name), m.reads_views))
        self._known = self._handled | frozenset(known_events)
        self._warned: set[str] = set()
        store.create([t for m in self.models for t in m.tables], indexes=indexes)

    # --- positions ------------------------------------------------------------
    @property
    def positions(self) -> dict[str, dict[int, int]]:
        """Read models' positions (read again after a failure)."""
        if self._positions is None:
            self._positions = {m.name: self.store.positions(m.name) for m in self.models}
        return self._positions

    def _claim(self) -> None:
        """Each read model is claimed for this source's log before its positions are used (again after a
        failure). Done by the thread that steps, never by a reader of ``positions``: a claim is a write
        transaction on the store's one connection."""
        if not self._claimed:
            for m in self.models:
                self.store.claim(m.name, self.identity)
            self._claimed = True
            self._positions = None

    def _forget(self) -> None:
        """After any failure: positions and cached rows come from the database again."""
        self._positions = None
        self._claimed = False
        self._cache.clear()

    # --- one step -------------------------------------------------------------
    def step(self, partition: int) -> int:
        """Apply the next batch of one partition; the number of events read (0: caught up)."""
        self._claim()
        positions = {m.name: self.positions[m.name].get(partition) for m in self.models}
        known = [p for p in positions.values() if p is not None]
        after = None if len(known) < len(positions) else min(known)
        events = self.source.read(partition, after, self.batch_size)
        if not events:
            return 0
        if len(self._cache) > self.cache_size:
            self._cache.clear()
        rows = _BatchRows(self.store, self._cache)
        starts = [positions[m.name] for m in self.models]
        applied = 0
        handlers = self._handlers
        for ev in events:
            wanted = handlers.get(ev.name)
            if wanted is None:
                continue
            for i, handle, takes_view in wanted:
                start = starts[i]
                if start is None or ev.position > start:
                    # each decoded once for every read model that takes it (a SourceEvent keeps it)
                    handle(ev.view if takes_view else ev.event, rows)
                    applied += 1
        self.stats.applied += applied
        last = events[-1].position
        updates = [TrackingUpdate(m.name, partition, start, last)
                   for m, start in zip(self.models, starts, strict=True) if start is None or last > start]
        self._note_unhandled(events)
        self.store.commit(rows.written.values(), updates, source=self.identity)
        rows.publish()
        for u in updates:
            self.positions[u.name][partition] = u.position
        self.stats.events += len(events)
        self.stats.batches += 1
        return len(events)

    def _note_unhandled(self, events: Iterable[SourceEvent]) -> None:
        for ev in events:
            if ev.name in self._handled:
                continue
            self.stats.skipped[ev.name] += 1
            if ev.name not in self._warned and ev.name not in self._known:
                self._warned.add(ev.name)
                log.warning(
                    "skipping events of type %s (topic %s): no read model handles them (first at %d/%d)",
                    ev.name, ev.topic, ev.partition, ev.position,
                )

    def step_with_retry(self, partition: int, stop: threading.Event | None = None) -> int:
        """``step``, retried with backoff while the store or the source is unavailable."""
        while True:
            try:
                n = self.step(partition)
                self.backoff.reset()
                return n
            except (StoreUnavailable, SourceUnavailable, PositionConflict) as err:
                self._forget()
                self.stats.retries += 1
                delay = self.backoff.next_delay()
                log.warning("%s; retrying in %.1f s", err, delay)
                if stop is not None:
                    if stop.wait(delay):
                        return 0
                else:
                    self.sleep(delay)
                try:
                    self.store.reconnect()
                except StoreUnavailable as again:
                    log.debug("reconnect failed: %s", again)

    # --- loops ----------------------------------------------------------------
    def catch_up(
        self,
        until: dict[int, int | None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Apply everything in the log now (or up to ``until`` per partition); events read."""
        total = 0
        for partition in self.source.partitions():
            target = until.get(partition) if until is not None else None
            if until is not None and target is None:
                continue
            while stop is None or not stop.is_set():
                n = self.step_with_retry(partition, stop)
                total += n
                if on_progress and n:
                    on_progress(n)
                if n == 0:
                    break
                if target is not None and self._min_position(partition) >= target:
                    break
        return total

    def _min_position(self, partition: int) -> int:
        return min(self.positions[m.name].get(partition, -1) for m in self.models)

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Follow the log until ``stop`` is set (Ctrl-C in the CLI)."""
        while not stop.is_set():
            if self.catch_up(stop=stop) == 0:
                stop.wait(poll_interval)


@dataclass(frozen=True)
class RebuildResult:
    name: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def rebuild(
    source: EventSource,
    store: ReadModelStore,
    models: ReadModel | Sequence[ReadModel],
    *,
    batch_size: int = 1000,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    known_events: Iterable[str] = (),
) -> RebuildResult:
    """Drop the read models and replay the log from the start into them, in one pass, up to the
    head as it is now; the result is named by the model (``all`` for several).

    The read models then belong to ``source``'s log, whichever log they were built from before.
    Their tables are filled without their secondary indexes, which are created once at the end
    (each row inserted into two indexes cost a rebuild as much again as the row itself); if the
    rebuild stops before, the next runner on the store creates them (``ReadModelStore.create``).

    ``on_start`` gets the (approximate) number of events to replay.
    """
    models = [models] if isinstance(models, ReadModel) else list(models)
    for model in models:
        store.reset(model.name, model.tables, indexes=False)
    heads = {p: source.head(p) for p in source.partitions()}
    if on_start:
        first = getattr(source, "first_position", 0)
        on_start(sum(h - first + 1 for h in heads.values() if h is not None))
    runner = ProjectionRunner(source, store, models, batch_size=batch_size, known_events=known_events,
                              indexes=False)
    started = time.perf_counter()
    events = runner.catch_up(until=heads, on_progress=on_progress)
    store.create([t for m in models for t in m.tables])
    name = models[0].name if len(models) == 1 else "all"
    return RebuildResult(name, events, time.perf_counter() - started)
