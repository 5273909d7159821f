"""Rebuild throughput: events/s per read model and backend, on a given log.

``scripts/bench-projections`` (``main`` here) generates a log and calls ``bench_rebuild``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infrastructure import bootstrap
from infrastructure.settings import Settings
from infrastructure.tools.demo import Demo
from projections import registry
from projections.model import ReadModel
from projections.postgres import PostgresStore
from projections.runner import RebuildResult, rebuild
from projections.source import ApplicationEventSource, EventSource
from projections.sqlite import SQLiteStore
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
        r = rebuild(source, store, models, batch_size=batch_size, known_events=known)
        results.append(BenchResult("all", r.events, r.seconds, backend=backend, batch_size=batch_size))
    return results


USAGE = """"""


def main() -> int:
    p = argparse.ArgumentParser(prog="scripts/bench-projections", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--payments", type=int, default=20000)
    p.add_argument("--channels", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "parsec-bench"))
    p.add_argument("--postgres", default=Settings().postgres_dsn, help="DSN (default: PARSEC_POSTGRES_DSN)")
    p.add_argument("--plugin", action="append", default=[], help="also bench read models from MODULE")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    console = Console(stderr=True)

    work = Path(args.dir)
    events = work / f"events-{args.payments}-{args.channels}-{args.seed}.sqlite"
    settings = Settings(data_dir=work, event_store="sqlite")
    if not events.exists():
        console.print(f"generating {args.payments:,} payments over {args.channels} channels into {events} …")
        tmp = events.with_suffix(".partial")
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        app = bootstrap.channel_service(settings, sqlite_path=tmp)
        started = time.perf_counter()
        result = Demo(app, channels=args.channels, payments=args.payments, seed=args.seed).run()
        console.print(f"  {result.accepted:,} accepted in {time.perf_counter() - started:.1f} s")
        app.close()
        tmp.rename(events)
    app = bootstrap.channel_service(settings, sqlite_path=events)
    source = ApplicationEventSource.of(app)
    console.print(f"log: {source.head(0):,} events")

    registry.load_plugins(args.plugin)
    models = list(registry.read_models().values())
    rm = work / "bench-readmodels.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(rm) + suffix).unlink(missing_ok=True)
    stores = {"sqlite": SQLiteStore(rm)}
    schema = None
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        stores["postgres"] = PostgresStore(args.postgres, schema=schema)
    try:
        results = bench_rebuild(source, stores, models, batch_size=args.batch_size)
    finally:
        if schema:
            stores["postgres"].drop_schema()
    table = Table(title=f"Rebuild throughput ({source.head(0):,} events, batch {args.batch_size})")
    for col in ("backend", "read model", "events", "seconds", "events/s"):
        table.add_column(col, justify="left" if col in ("backend", "read model") else "right")
    for r in results:
        table.add_row(r.backend, r.read_model, f"{r.events:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f}")
    # --json: stdout holds the JSON document only, the table goes to stderr
    (console if args.json else Console()).print(table)
    if args.json:
        print(json.dumps([dict(backend=r.backend, read_model=r.read_model, events=r.events,
                               seconds=round(r.seconds, 3), events_per_s=round(r.rate)) for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
