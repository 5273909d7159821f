"""Many partitions and aggregates, the Java-compatible partitioner, the
eventsourcing Application on Kafka (with snapshots), corrupt records and
unreachable brokers."""

from __future__ import annotations

import logging
import random
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment
from kafka import KafkaProducer

from infrastructure.kafka import (
    BrokerUnavailableError,
    CorruptRecordError,
    partition_for_key,
    tracking_name,
)
from infrastructure.kafka.codec import originator_key
from infrastructure.tools.store_bench import Counter
from tests.integration.kafka.harness import open_recorder

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_many_aggregates_over_six_partitions_come_back_in_version_order(kafka_env_factory) -> None:
    env = kafka_env_factory(partitions=6)
    f, writer = open_recorder(env, process=True)
    rnd = random.Random(7)
    aggregates = [uuid4() for _ in range(120)]
    next_version = dict.fromkeys(aggregates, 1)
    expected: dict[UUID, list[int]] = {a: [] for a in aggregates}
    try:
        # 60 transactions, each with events of ~8 aggregates spread over partitions.
        for _ in range(60):
            batch = []
            for a in rnd.sample(aggregates, 8):
                for _ in range(rnd.randint(1, 3)):
                    v = next_version[a]
                    next_version[a] += 1
                    batch.append(StoredEvent(a, v, "E", f"{a}:{v}".encode()))
                    expected[a].append(v)
            ids = writer.insert_events(batch)
            assert ids is not None and len(ids) == len(batch)
        assert len({writer.partition_of(a) for a in aggregates}) == 6

        f2, reader = open_recorder(env, process=True)  # replay from offset zero
        try:
            for a in aggregates:
                got = reader.select_events(a)
                assert [e.originator_version for e in got] == expected[a]
                assert all(e.state == f"{a}:{e.originator_version}".encode() for e in got)
                assert [e.originator_version for e in reader.select_events(a, desc=True)] == expected[a][::-1]
            # Each partition is an ordered log holding exactly its aggregates.
            seen: dict[UUID, list[int]] = {}
            for p in range(6):
                notes = reader.select_partition_notifications(p, None, 100000)
                assert [n.id for n in notes] == sorted(n.id for n in notes)
                for n in notes:
                    assert reader.partition_of(n.originator_id) == p
                    seen.setdefault(n.originator_id, []).append(n.originator_version)
                # Paging by position works within the partition.
                if notes:
                    mid = notes[len(notes) // 2].id
                    tail = reader.select_partition_notifications(p, mid, 100000, inclusive_of_start=False)
                    assert [n.id for n in tail] == [n.id for n in notes if n.id > mid]
                    assert reader.max_partition_notification_id(p) == notes[-1].id
            assert seen == {a: v for a, v in expected.items() if v}
            # The integer API refuses to pretend there is one global order.
            from eventsourcing.persistence import NotSupportedError

            with pytest.raises(NotSupportedError):
                reader.select_notifications(None, 10)
        finally:
            f2.close()
    finally:
        f.close()


def test_tracking_per_partition_is_atomic_with_events(kafka_env_factory) -> None:
    from eventsourcing.persistence import IntegrityError, Tracking

    env = kafka_env_factory(partitions=4)
    f, r = open_recorder(env, process=True)
    try:
        a = uuid4()
        r.insert_events([StoredEvent(a, 1, "E", b"")], tracking=Tracking(tracking_name("up", 2), 11))
        r.insert_events([StoredEvent(uuid4(), 1, "E", b"")], tracking=Tracking(tracking_name("up", 3), 5))
        with pytest.raises(IntegrityError):
            r.insert_events([StoredEvent(a, 2, "E", b"")], tracking=Tracking(tracking_name("up", 2), 11))
        assert [e.originator_version for e in r.select_events(a)] == [1]  # refused batch wrote nothing
        f2, r2 = open_recorder(env, process=True)
        try:
            assert r2.max_tracking_id("up#2") == 11
            assert r2.max_tracking_id("up#3") == 5
            assert r2.max_tracking_id("up#0") is None
        finally:
            f2.close()
    finally:
        f.close()


def test_partitioner_matches_kafka_producers_default(kafka_bootstrap: str, kafka_env_factory) -> None:
    env = kafka_env_factory(partitions=5)
    f, r = open_recorder(env, process=True)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for _ in range(50):
            key = originator_key(uuid4())
            meta = producer.send(r.topic, key=key, value=b"x").get(timeout=10)
            assert meta.partition == partition_for_key(key, 5)
    finally:
        producer.close()
        f.close()


JAVA_PARTITIONER = """
import org.apache.kafka.common.utils.Utils;
public class Part {
    public static void main(String[] a) throws Exception {
        int n = Integer.parseInt(a[0]);
        for (int i = 1; i < a.length; i++)
            System.out.println(Utils.toPositive(Utils.murmur2(a[i].getBytes("UTF-8"))) % n);
    }
}
"""


def test_partitioner_matches_java_client(tmp_path: Path) -> None:
    """The same key lands in the same partition as with Kafka's Java client."""
    libs = sorted(Path.home().glob(".cache/parsec/kafka/kafka-*/lib"))
    if not shutil.which("java") or not libs:
        pytest.fail("java or the Kafka jars (scripts/kafka start) not available")
    src = tmp_path / "Part.java"
    src.write_text(JAVA_PARTITIONER)
    keys = [str(uuid4()) for _ in range(40)] + ["channel-1", "ä", ""]
    out = subprocess.run(
        ["java", "-cp", f"{libs[-1]}/*", str(src), "7", *keys],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert [int(x) for x in out] == [partition_for_key(k.encode(), 7) for k in keys]


def test_eventsourcing_application_with_snapshots(kafka_env_factory) -> None:
    env = kafka_env_factory(partitions=4, IS_SNAPSHOTTING_ENABLED="y")
    app = Application(env=env)
    try:
        accounts = [Counter(f"o{i}") for i in range(10)]
        for i, acc in enumerate(accounts):
            for k in range(i + 1):
                acc.add(k)
        app.save(*accounts)  # one transaction across partitions
        acc = accounts[9]
        app.take_snapshot(acc.id)
        acc2 = app.repository.get(acc.id)
        acc2.add(100)
        app.save(acc2)
        app2 = Application(env=env)
        try:
            for i, a in enumerate(accounts):
                loaded = app2.repository.get(a.id)
                expected = sum(range(i + 1)) + (100 if a.id == acc.id else 0)
                assert loaded.total == expected
            assert app2.snapshots is not None
            snaps = list(app2.snapshots.get(acc.id))
            assert [s.originator_version for s in snaps] == [acc.version]
            # Historical version below the snapshot falls back to the events.
            assert app2.repository.get(acc.id, version=3).total == 0 + 1
        finally:
            app2.close()
    finally:
        app.close()


def test_corrupt_record_is_reported_with_partition_and_offset(
    kafka_bootstrap, kafka_env_factory, caplog
) -> None:
    env = kafka_env_factory(partitions=4)
    f, r = open_recorder(env, process=True)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        good, bad = uuid4(), uuid4()
        r.insert_events([StoredEvent(good, 1, "E", b"ok"), StoredEvent(bad, 1, "E", b"ok")])
        key = originator_key(bad)
        p = partition_for_key(key, 4)
        meta = producer.send(r.topic, key=key, value=b"\xff\x00 not an event", partition=p).get(timeout=10)
        meta2 = producer.send(
            r.topic, key=None, value=b"garbage", partition=0, headers=[("parsec.format", b"1")]
        ).get(timeout=10)
        producer.flush()
        f2, reader = open_recorder(env, process=True)
        try:
            with caplog.at_level(logging.ERROR, logger="infrastructure.kafka.index"):
                assert [e.state for e in reader.select_events(good)] == [b"ok"]
            assert f"partition={p} offset={meta.offset}" in caplog.text
            assert f"partition=0 offset={meta2.offset}" in caplog.text
            corrupt = {(c.partition, c.offset) for c in reader.corrupt_records}
            assert corrupt == {(p, meta.offset), (0, meta2.offset)}
            with pytest.raises(CorruptRecordError) as excinfo:
                reader.select_events(bad)
            assert excinfo.value.record.partition == p
            assert excinfo.value.record.offset == meta.offset
            assert f"partition {p} offset {meta.offset}" in str(excinfo.value)
            # The partition's notification log skips it and goes on.
            notes = reader.select_partition_notifications(p, None, 100)
            assert all(n.id != meta.offset + 1 for n in notes)
            # The writer reports it too once it reads it, and keeps writing.
            r.insert_events([StoredEvent(good, 2, "E", b"ok2")])
            assert [e.originator_version for e in r.select_events(good)] == [1, 2]
        finally:
            f2.close()
    finally:
        producer.close()
        f.close()


def test_unreachable_broker_fails_clearly_within_bound() -> None:
    env = {
        "PERSISTENCE_MODULE": "infrastructure.kafka",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_EVENTS_TOPIC": "never.created",
        "KAFKA_TIMEOUT": "5",
    }
    f = InfrastructureFactory.construct(Environment(env=env))
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:1"):
        f.application_recorder()
    assert time.monotonic() - t0 < 15


def test_silent_non_kafka_port_fails_clearly_within_bound() -> None:
    """A port that accepts connections but never answers like Kafka."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        env = {
            "PERSISTENCE_MODULE": "infrastructure.kafka",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "KAFKA_EVENTS_TOPIC": "never.created",
            "KAFKA_TIMEOUT": "5",
        }
        f = InfrastructureFactory.construct(Environment(env=env))
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailableError):
            f.application_recorder()
        assert time.monotonic() - t0 < 15
    finally:
        stop.set()
        server.close()
        for c in conns:
            c.close()
