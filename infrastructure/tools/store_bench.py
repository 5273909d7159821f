"""Benchmark: the Kafka event store against eventsourcing's SQLite store.

    python -m infrastructure.tools.store_bench --events 20000 --aggregates 500

Appends N events across M aggregates through an eventsourcing Application
(generic Aggregate; each save() is one transaction holding
``--events-per-save`` events of one aggregate), then loads every aggregate
back with a fresh Application (cold: includes reading the log) and again
(warm). Prints JSON. The Kafka run uses fresh topics on
KAFKA_BOOTSTRAP_SERVERS / PARSEC_KAFKA_BOOTSTRAP (default 127.0.0.1:9092).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Counter(Aggregate):
    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0

    @event("Added")
    def add(self, amount: int) -> None:
        self.total += amount


def run(env: dict[str, str], events: int, aggregates: int, per_save: int) -> dict[str, Any]:
    per_aggregate = max(1, events // aggregates)
    app = Application(env=env)
    ids = []
    appended = 0
    t0 = time.perf_counter()
    try:
        for i in range(aggregates):
            c = Counter(f"c{i}")
            pending = 1
            for k in range(per_aggregate - 1):
                c.add(k)
                pending += 1
                if pending >= per_save:
                    app.save(c)
                    appended += pending
                    pending = 0
            if pending:
                app.save(c)
                appended += pending
            ids.append(c.id)
        append_s = time.perf_counter() - t0
    finally:
        app.close()

    app2 = Application(env=env)
    try:
        t1 = time.perf_counter()
        for i in ids:
            app2.repository.get(i)
        cold_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        for i in ids:
            app2.repository.get(i)
        warm_s = time.perf_counter() - t2
    finally:
        app2.close()
    return {
        "events_appended": appended,
        "aggregates": aggregates,
        "events_appended_per_s": round(appended / append_s, 1),
        "aggregates_loaded_per_s": round(aggregates / cold_s, 1),
        "aggregates_loaded_per_s_warm": round(aggregates / warm_s, 1),
        "append_seconds": round(append_s, 3),
        "load_seconds_cold": round(cold_s, 3),
        "load_seconds_warm": round(warm_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000, help="events to append (N)")
    ap.add_argument("--aggregates", type=int, default=500, help="aggregates (M)")
    ap.add_argument("--events-per-save", type=int, default=10, help="events per save() transaction")
    ap.add_argument("--partitions", type=int, default=4, help="Kafka partitions")
    ap.add_argument("--only", choices=["kafka", "sqlite"], help="run one store only")
    args = ap.parse_args(argv)

    from infrastructure.settings import Settings

    access = Settings().kafka  # bootstrap, security and replication, read once
    bootstrap = access.bootstrap
    result: dict[str, Any] = {
        "params": {
            "events": args.events,
            "aggregates": args.aggregates,
            "events_per_save": args.events_per_save,
            "partitions": args.partitions,
            "bootstrap": bootstrap,
        }
    }
    if args.only in (None, "kafka"):
        topic = f"bench.{uuid.uuid4().hex[:10]}.events"
        env = {
            "PERSISTENCE_MODULE": "infrastructure.kafka",
            **access.store_env(),
            "KAFKA_EVENTS_TOPIC": topic,
            "KAFKA_PARTITIONS": str(args.partitions),
        }
        try:
            result["kafka"] = run(env, args.events, args.aggregates, args.events_per_save)
        except Exception as e:
            print(f"kafka benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        result["kafka"]["topic"] = topic
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": os.path.join(tmp, "bench.db"),
            }
            result["sqlite"] = run(env, args.events, args.aggregates, args.events_per_save)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
