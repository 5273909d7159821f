"""Rebuild throughput: events/s per read model and backend, on a given log.

``scripts/bench-projections`` generates a log and calls ``bench_rebuild``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from infrastructure import bootstrap
from projections.model import ReadModel
from projections.runner import RebuildResult, rebuild
from projections.source import EventSource
from projections.store import ReadModelStore


@dataclass(frozen=True)
class BenchResult(RebuildResult):
    """A rebuild on one backend; ``name`` is a read model's, or "all" (one pass running every read model)."""

    backend: str
    batch_size: int

    @property
    def read_model(self) -> str:
        return self.name


def bench_rebuild(
    source: EventSource,
    stores: dict[str, ReadModelStore],
    models: Sequence[ReadModel],
    *,
    batch_size: int = 1000,
) -> list[BenchResult]:
    """Rebuild each read model alone, then all together in one pass, on every store."""
    known = set().union(*(m.handled_events for m in models))
    results = []
    for backend, store in stores.items():
        for m in models:
            r = rebuild(source, store, m, batch_size=batch_size, known_events=known)
            results.append(BenchResult(m.name, r.events, r.seconds, backend=backend, batch_size=batch_size))
        for m in models:
            store.reset(m.name, m.tables)
        runner = bootstrap.projection_runner(source, store, models, batch_size=batch_size)
        started = time.perf_counter()
        events = runner.catch_up()
        results.append(BenchResult("all", events, time.perf_counter() - started, backend=backend,
                                   batch_size=batch_size))
    return results
