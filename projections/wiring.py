"""Picking the event source and the read-model store from the settings.

``projections`` may not import ``infrastructure`` (import-linter), so the
settings object is used by its attributes (``data_dir``, ``event_store``,
``postgres_dsn``, ``application_env``). The Kafka event store is read through
its recorder's per-partition API (``PartitionedEventSource``); any other source
can be plugged in from outside: ``SOURCE_FACTORIES[name] = factory`` where
``factory(settings) -> EventSource``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from projections.source import (
    SETTLER_PARTITION_BASE,
    CombinedEventSource,
    EventSource,
    PartitionedEventSource,
    source_for,
)
from projections.store import ReadModelStore

SOURCE_FACTORIES: dict[str, Callable[[Any], EventSource]] = {}


class NotWired(ValueError):
    """The chosen event store has no event source plugged in."""


def events_path(settings: Any, events_db: str | None = None) -> Path:
    return Path(events_db).expanduser() if events_db else Path(settings.data_dir) / "events.sqlite"


def event_source(settings: Any, events_db: str | None = None) -> EventSource:
    if settings.event_store in SOURCE_FACTORIES:
        return SOURCE_FACTORIES[settings.event_store](settings)
    if settings.event_store == "sqlite":
        from domain.application import ChannelService

        path = events_path(settings, events_db)
        if not path.exists():
            raise FileNotFoundError(f"no event store at {path}; run `parsec demo` or pass --events-db")
        return source_for(ChannelService(env=settings.application_env(sqlite_path=path)))
    if settings.event_store == "kafka":
        from domain.application import ChannelService

        app = ChannelService(env=settings.application_env())
        if not PartitionedEventSource.supports(app.recorder):
            raise NotWired("the Kafka event store's recorder has no per-partition notification API")
        return CombinedEventSource((0, source_for(app)), (SETTLER_PARTITION_BASE, settler_source(settings)))
    raise NotWired(
        f"no event source for the {settings.event_store!r} event store is plugged in "
        "(projections.wiring.SOURCE_FACTORIES)"
    )


DEFAULT_SETTLEMENT_TOPIC = "parsec.settlement.events"  # the settler's default store (parsec settler)


def settlement_topic(settings: Any) -> str:
    return (getattr(settings, "settlement_topic", None) or os.environ.get("PARSEC_SETTLEMENT_TOPIC")
            or DEFAULT_SETTLEMENT_TOPIC)


def settler_source(settings: Any, topic: str | None = None) -> EventSource:
    """The settler's own one-partition log on Kafka (its intents: hashes, blocks, gas, failures)."""
    from eventsourcing.application import Application

    class SettlerLog(Application):  # the settler's store, read only (the settler is its writer)
        name = "settler"

    env = {**settings.application_env(), "KAFKA_EVENTS_TOPIC": topic or settlement_topic(settings),
           "KAFKA_PARTITIONS": "1", "AGGREGATE_CACHE_MAXSIZE": "0"}
    return source_for(SettlerLog(env=env))


def backend_name(settings: Any, backend: str | None) -> str:
    return backend or ("postgres" if settings.postgres_dsn else "sqlite")


def read_model_store(
    settings: Any,
    backend: str | None = None,
    *,
    db: str | None = None,
    schema: str = "public",
    events_db: str | None = None,
) -> ReadModelStore:
    """SQLite: ``readmodels.sqlite`` next to the event store (so each log has its own); PostgreSQL: the DSN."""
    name = backend_name(settings, backend)
    if name == "postgres":
        if not settings.postgres_dsn:
            raise ValueError("--backend postgres needs a DSN: --postgres or PARSEC_POSTGRES_DSN")
        from projections.postgres import PostgresStore

        return PostgresStore(settings.postgres_dsn, schema=schema)
    from projections.sqlite import SQLiteStore

    if db:
        path = Path(db).expanduser()
    elif settings.event_store == "sqlite":
        path = events_path(settings, events_db).parent / "readmodels.sqlite"
    else:
        path = Path(settings.data_dir) / "readmodels.sqlite"
    return SQLiteStore(path)
