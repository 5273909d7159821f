"""One suite for every read-model backend: subclasses say how to make a store.

Given a log written through ChannelService, when runners follow it (in
batches, restarted, killed, cut off from their database), then the read models
equal a fresh rebuild row for row.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent

from projections import registry
from projections.balances import CHANNELS, Balances, channel_balances
from projections.model import Column, Table
from projections.runner import Backoff, ProjectionRunner, rebuild
from projections.source import ApplicationEventSource, source_for
from projections.store import (
    SOURCES_TABLE,
    PositionConflict,
    ReadModelStore,
    StoreOfAnotherLog,
    TableChanged,
    TrackingUpdate,
)
from tests.integration.projections import workload

ROOT = Path(__file__).resolve().parents[2]
MODELS = list(registry.read_models().values())
BIG = 2**128 - 1  # the largest amount a message may carry
EVENT_STORES = [
    "sqlite",
    pytest.param("kafka", marks=[pytest.mark.integration, pytest.mark.kafka]),
]


KNOWN = set().union(*(m.handled_events for m in MODELS))


def rebuild_all(source, store) -> None:
    for m in MODELS:
        rebuild(source, store, m, known_events=KNOWN)


def dump(store: ReadModelStore, models=MODELS) -> dict[str, list[dict[str, Any]]]:
    return {t.name: store.select(t, order_by=t.key) for m in models for t in m.tables}


class Coupon(Aggregate):
    """An aggregate no read model knows, sharing the log (another service's events)."""

    @event("Issued")
    def __init__(self, code: str) -> None:
        self.code = code


def closing_stores(open_store: Callable[[], ReadModelStore]) -> Iterator[Callable[[], ReadModelStore]]:
    """The body of a ``make_store`` fixture: ``open_store()`` per call, and every store it opened
    closed when the test ends."""
    stores: list[ReadModelStore] = []

    def make() -> ReadModelStore:
        store = open_store()
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()


class ReadModelBackendSuite:
    """Subclass with a ``make_store`` fixture: ``make_store() -> fresh empty ReadModelStore``."""

    backend: str

    def cli_args(self, store: ReadModelStore) -> list[str]:
        raise NotImplementedError

    def cli_env(self) -> dict[str, str]:
        return {}

    def interrupt(self, store: ReadModelStore, seconds: float) -> None:
        """Make the database unavailable to ``store`` for a while (runs in a thread)."""
        raise NotImplementedError

    # --- the store ------------------------------------------------------------------
    def test_rows_round_trip_with_amounts_beyond_64_bits(self, make_store):
        store = make_store()
        t = Table("t_rows", (Column("k"), Column("n", "int"), Column("a", "amount"), Column("s")), key=("k",))
        store.create([t])
        store.commit([(t, {"k": "x", "n": 2**62, "a": BIG, "s": None})], [TrackingUpdate("m", 0, None, 5)])
        assert store.load(t, ["x"]) == {"k": "x", "n": 2**62, "a": BIG, "s": None}
        store.commit([(t, {"k": "x", "n": 1, "a": 0, "s": "y"})], [TrackingUpdate("m", 0, 5, 6)])
        assert store.select(t) == [{"k": "x", "n": 1, "a": 0, "s": "y"}]
        assert store.positions("m") == {0: 6}

    def test_a_table_built_with_other_columns_is_refused_until_rebuilt(self, make_store):
        store = make_store()
        old = Table("t_shape", (Column("k"), Column("a", "amount")), key=("k",))
        new = Table("t_shape", (Column("k"), Column("a", "amount"), Column("locked", "amount")), key=("k",))
        store.create([old])
        store.commit([(old, {"k": "x", "a": 5})], [TrackingUpdate("m", 0, None, 1)])
        store.create([old])  # the same shape again: nothing to do
        with pytest.raises(TableChanged, match=r"missing: locked.*parsec projections rebuild"):
            store.create([new])
        store.reset("m", [new])  # what a rebuild does: the new shape, empty
        store.create([new])
        assert store.select(new) == [] and store.positions("m") == {}

    def test_a_stale_position_writes_nothing(self, make_store):
        store = make_store()
        t = Table("t_stale", (Column("k"), Column("a", "amount")), key=("k",))
        store.create([t])
        store.commit([(t, {"k": "x", "a": 1})], [TrackingUpdate("m", 3, None, 10)])
        with pytest.raises(PositionConflict):  # a batch that was already committed (crash before we knew)
            store.commit([(t, {"k": "x", "a": 2})], [TrackingUpdate("m", 3, None, 10)])
        with pytest.raises(PositionConflict):  # another runner moved on
            store.commit([(t, {"k": "x", "a": 3})], [TrackingUpdate("m", 3, 7, 12)])
        assert store.select(t) == [{"k": "x", "a": 1}] and store.positions("m") == {3: 10}

    def test_positions_are_per_read_model_and_partition(self, make_store):
        store = make_store()
        store.commit([], [TrackingUpdate("a", 0, None, 5), TrackingUpdate("a", 1, None, 9),
                          TrackingUpdate("b", 0, None, 2)])
        assert store.positions("a") == {0: 5, 1: 9}
        assert store.all_positions() == {"a": {0: 5, 1: 9}, "b": {0: 2}}

    # --- runner and rebuild -------------------------------------------------------
    def test_following_in_batches_with_restarts_equals_a_rebuild(self, make_store, tmp_path):
        app = workload.service(tmp_path / "events.sqlite")
        workload.write(app, payments=150)
        source = ApplicationEventSource.of(app)
        store = make_store()
        head = source.head(0)
        for stop_at in (1, 40, head // 2, head):  # a new runner each time: resumes from stored positions
            ProjectionRunner(source, store, MODELS, batch_size=17).catch_up(until={0: stop_at})
        assert all(store.positions(m.name) == {0: head} for m in MODELS)
        fresh = make_store()
        for m in MODELS:
            result = rebuild(source, fresh, m, batch_size=64, known_events=KNOWN)
            assert result.events == head
        assert dump(store) == dump(fresh)
        # and a runner that is already current finds nothing to do
        assert ProjectionRunner(source, store, MODELS).catch_up() == 0

    def test_rebuild_replaces_a_damaged_read_model(self, make_store, tmp_path):
        app = workload.service(tmp_path / "events.sqlite")
        workload.write(app, payments=40)
        source = ApplicationEventSource.of(app)
        store = make_store()
        ProjectionRunner(source, store, MODELS).catch_up()
        expected = dump(store)
        row = store.select(CHANNELS)[0]
        store.commit([(CHANNELS, {**row, "balance_a": 1})], [])  # a bad hand edit
        rebuild(source, store, Balances())
        assert dump(store) == expected

    def test_balances_equal_what_the_aggregates_compute(self, make_store, tmp_path):
        app = workload.service(tmp_path / "events.sqlite")
        workload.write(app, payments=120)
        store = make_store()
        ProjectionRunner(ApplicationEventSource.of(app), store, MODELS).catch_up()
        rows = channel_balances(store)
        assert rows
        for row in rows:
            ch = app.get_channel_aggregate(uuid.UUID(row.channel_id))
            expected = ch.final_balances if ch.final_balances is not None else ch.balances
            assert row.balances == tuple(expected[p] for p in ch.participants)
            assert (row.sequence, row.head_hash, row.status) == (ch.sequence, ch.head_hash, ch.status)

    def test_unknown_event_types_are_skipped_tracked_and_logged_once(self, make_store, tmp_path, caplog):
        app = workload.service(tmp_path / "events.sqlite")
        workload.write(app, payments=20, channels=2)
        app.save(Coupon("A"), Coupon("B"))  # decodable, but no read model handles it
        app.recorder.insert_events([  # written by a newer service: no class here has the topic
            StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="parsec.future:Channel.Renamed",
                        state=b"{}")
        ])
        workload.write(app, payments=20, channels=2, seed=8)
        source = ApplicationEventSource.of(app)
        store = make_store()
        runner = ProjectionRunner(source, store, MODELS, batch_size=5)
        with caplog.at_level(logging.WARNING, logger="parsec.projections"):
            runner.catch_up()
        assert all(store.positions(m.name) == {0: source.head(0)} for m in MODELS)
        assert runner.stats.skipped == {"Coupon.Issued": 2, "Channel.Renamed": 1}
        warnings = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
        assert len(warnings) == 2 and any("Coupon.Issued" in w for w in warnings)
        fresh = make_store()
        rebuild_all(source, fresh)
        assert dump(store) == dump(fresh)

    def test_a_database_outage_mid_run_is_retried_and_resumed(self, make_store, tmp_path):
        app = workload.service(tmp_path / "events.sqlite")
        workload.write(app, payments=30, channels=3)
        source = ApplicationEventSource.of(app)
        store = make_store()
        runner = ProjectionRunner(source, store, MODELS, batch_size=10, backoff=Backoff(initial=0.05, cap=0.3))
        stop = threading.Event()
        thread = threading.Thread(target=runner.run_forever, args=(stop, 0.05), daemon=True)
        thread.start()
        try:
            _wait_until(lambda: runner.positions["balances"].get(0) == source.head(0))
            cut = threading.Thread(target=self.interrupt, args=(store, 1.5), daemon=True)
            cut.start()
            time.sleep(0.2)
            workload.write(app, payments=40, channels=3, seed=9)  # the log moves on during the outage
            cut.join()
            _wait_until(lambda: all(runner.positions[m.name].get(0) == source.head(0) for m in MODELS), 30)
        finally:
            stop.set()
            thread.join(10)
        assert runner.stats.retries >= 1
        fresh = make_store()
        rebuild_all(source, fresh)
        assert dump(store) == dump(fresh)

    # --- one store, one log -------------------------------------------------------
    def _two_logs(self, tmp_path):
        a = workload.service(tmp_path / "a" / "events.sqlite")
        workload.write(a, payments=30, channels=3)
        b = workload.service(tmp_path / "b" / "events.sqlite")
        workload.write(b, payments=25, channels=4, seed=3)
        return ApplicationEventSource.of(a), ApplicationEventSource.of(b)

    def test_a_store_refuses_the_read_models_of_another_log(self, make_store, tmp_path):
        a, b = self._two_logs(tmp_path)
        store = make_store()
        ProjectionRunner(a, store, MODELS).catch_up()
        before, positions = dump(store), store.all_positions()
        assert store.all_sources() == {m.name: a.identity for m in MODELS}
        with pytest.raises(StoreOfAnotherLog) as refused:
            ProjectionRunner(b, store, MODELS).catch_up()
        assert a.identity in str(refused.value) and b.identity in str(refused.value)
        assert "parsec projections rebuild" in str(refused.value)
        assert dump(store) == before and store.all_positions() == positions  # nothing of b applied
        assert ProjectionRunner(a, store, MODELS).catch_up() == 0  # its own log is still welcome

    def test_a_rebuild_adopts_the_new_log(self, make_store, tmp_path):
        a, b = self._two_logs(tmp_path)
        store = make_store()
        ProjectionRunner(a, store, MODELS).catch_up()
        rebuild_all(b, store)
        assert store.all_sources() == {m.name: b.identity for m in MODELS}
        fresh = make_store()
        ProjectionRunner(b, fresh, MODELS).catch_up()
        assert dump(store) == dump(fresh)
        assert ProjectionRunner(b, store, MODELS).catch_up() == 0
        with pytest.raises(StoreOfAnotherLog):
            ProjectionRunner(a, store, MODELS).catch_up()

    def test_a_store_from_before_adopts_its_first_log_and_warns_once(self, make_store, tmp_path, caplog):
        a, b = self._two_logs(tmp_path)
        store = make_store()
        ProjectionRunner(a, store, MODELS).catch_up(until={0: 40})
        store._execute(f"DELETE FROM {SOURCES_TABLE}")  # positions, no log: as a store written before
        with caplog.at_level(logging.WARNING, logger="parsec.projections"):
            ProjectionRunner(a, store, MODELS).catch_up()
            ProjectionRunner(a, store, MODELS).catch_up()
        adopted = [r.getMessage() for r in caplog.records if "no recorded log" in r.getMessage()]
        assert len(adopted) == len(MODELS) and all(a.identity in w for w in adopted)
        assert store.all_sources() == {m.name: a.identity for m in MODELS}
        fresh = make_store()
        rebuild_all(a, fresh)
        assert dump(store) == dump(fresh)
        with pytest.raises(StoreOfAnotherLog):
            ProjectionRunner(b, store, MODELS).catch_up()

    def test_a_commit_for_another_log_writes_nothing(self, make_store):
        store = make_store()
        t = Table("t_logs", (Column("k"), Column("a", "amount")), key=("k",))
        store.create([t])
        store.commit([(t, {"k": "x", "a": 1})], [TrackingUpdate("m", 0, None, 1)], source="log-a")
        assert store.source("m") == "log-a"
        # another log's runner that started before a rebuild claimed the read model for it
        with pytest.raises(StoreOfAnotherLog):
            store.commit([(t, {"k": "x", "a": 2})], [TrackingUpdate("m", 0, 1, 2)], source="log-b")
        assert store.select(t) == [{"k": "x", "a": 1}] and store.positions("m") == {0: 1}
        store.reset("m", [t])
        assert store.source("m") is None and store.positions("m") == {}

    @pytest.mark.slow
    @pytest.mark.parametrize("event_store", EVENT_STORES)
    def test_sigkilled_runner_restarts_to_the_same_rows_as_a_rebuild(self, make_store, tmp_path, event_store, request):
        """A writer subprocess keeps writing payments; the runner subprocess is SIGKILLed at random
        points and restarted; at the end its rows equal a fresh rebuild."""
        events = tmp_path / "events.sqlite"
        store = make_store()
        env = {**os.environ, **self.cli_env(), "PARSEC_DATA_DIR": str(tmp_path), "PARSEC_LOG_LEVEL": "WARNING",
               "PARSEC_EVENT_STORE": event_store}
        payments, rounds = ("100", "30") if event_store == "sqlite" else ("100", "30")
        if event_store == "kafka":
            env.update(PARSEC_KAFKA_BOOTSTRAP=request.getfixturevalue("kafka_bootstrap"),
                       PARSEC_EVENTS_TOPIC=f"test.{uuid.uuid4().hex[:12]}.events", PARSEC_PARTITIONS="3")
        mine = {k: env[k] for k in ("PARSEC_EVENTS_TOPIC", "PARSEC_PARTITIONS") if k in env}
        os.environ.update(mine)  # for this process's reader
        writer = subprocess.Popen(
            [sys.executable, workload.__file__, str(events), payments, "11", rounds, "0.25"],
            env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        )
        runner_cmd = [sys.executable, "-m", "infrastructure.cli", "projections", "run",
                      "--events-db", str(events), "--batch-size", "40", "--poll", "0.05", *self.cli_args(store)]
        rng = random.Random()
        kills = 0
        killed_at: list[int] = []  # how far the runner had got when it was killed
        source = None
        try:
            if event_store == "sqlite":
                _wait_until(lambda: events.exists() and events.stat().st_size > 0, 30)
            time.sleep(1.0)
            progress = 0
            while writer.poll() is None and kills < 3:
                runner = subprocess.Popen(runner_cmd, env=env, cwd=ROOT)
                # once it has applied something new, kill it at a random moment
                _wait_until(lambda: sum(store.positions("history").values()) > progress, 60)  # noqa: B023
                time.sleep(rng.uniform(0.0, 0.7))
                runner.send_signal(signal.SIGKILL)
                runner.wait(10)
                kills += 1
                progress = sum(store.positions("history").values())
                killed_at.append(progress)
            assert writer.wait(300) == 0
            runner = subprocess.Popen(runner_cmd, env=env, cwd=ROOT)
            started = time.monotonic()
            source = source_for(workload.service(events, event_store))
            heads = {p: h for p in source.partitions() if (h := source.head(p)) is not None}
            _wait_until(lambda: all(store.positions(m.name) == heads for m in MODELS), 120)
            time.sleep(max(0.0, started + 3 - time.monotonic()))  # past start-up: its signal handler is in place
            runner.send_signal(signal.SIGTERM)
            assert runner.wait(20) == 0  # a clean stop
        finally:
            for k in mine:
                os.environ.pop(k, None)
            if writer.poll() is None:
                writer.kill()
        assert kills >= 1 and any(0 < p < sum(heads.values()) for p in killed_at), (killed_at, heads)
        fresh = make_store()
        rebuild_all(source, fresh)
        assert dump(store) == dump(fresh)


def _wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # the store may be mid-outage
            pass
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")
