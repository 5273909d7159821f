"""Several OS processes against one partition: fencing, conflicts, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from infrastructure.kafka import WriterFencedError
from tests.integration.kafka.harness import REPO, kafka_env, new_topic, open_recorder

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.kafka._worker", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_append_to_one_aggregate(kafka_bootstrap: str) -> None:
    topic = new_topic()
    env = kafka_env(kafka_bootstrap, 4, topic)
    factory, reader = open_recorder(env)  # creates the topics; a pure reader never fences
    aggregate_id = uuid4()
    per_worker = 40
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "go"
        workers = [
            _spawn(
                "contend", kafka_bootstrap, topic, "4", str(aggregate_id), name, str(per_worker), str(start)
            )
            for name in ("A", "B")
        ]
        time.sleep(3)  # let both connect and acquire before the race starts
        start.touch()
        results = []
        for w in workers:
            out, err = w.communicate(timeout=300)
            assert w.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    try:
        events = reader.select_events(aggregate_id)
        versions = [e.originator_version for e in events]
        # Every version written exactly once, no gaps, nothing lost.
        assert versions == list(range(1, 2 * per_worker + 1))
        claimed = sorted(v for r in results for v in r["written"])
        assert claimed == versions, "every success was recorded, every record was a reported success"
        by_version = {e.originator_version: json.loads(e.state)["writer"] for e in events}
        for r in results:
            assert len(r["written"]) == per_worker
            assert all(by_version[v] == r["name"] for v in r["written"])
        print("contention results:", results)
        # They really contended: the losers got conflicts or were fenced.
        assert sum(r["conflicts"] + r["fenced"] for r in results) > 0
    finally:
        factory.close()


def test_sigkilled_writer_leaves_nothing_visible(kafka_bootstrap: str) -> None:
    topic = new_topic()
    env = kafka_env(kafka_bootstrap, 4, topic)
    factory, _ = open_recorder(env)
    factory.close()
    agg, other = uuid4(), uuid4()
    w = _spawn("hang", kafka_bootstrap, topic, "4", str(agg), str(other))
    try:
        assert w.stdout is not None
        line = w.stdout.readline()
        assert line.strip() == "READY", w.stderr.read() if w.stderr else ""
    finally:
        os.kill(w.pid, signal.SIGKILL)
        w.wait(timeout=30)
    assert w.returncode == -signal.SIGKILL

    # A read_committed reader sees only the committed part, and does not hang
    # on the open transaction (it reads up to the last stable offset).
    f1, reader = open_recorder(env)
    try:
        t0 = time.monotonic()
        assert [e.originator_version for e in reader.select_events(agg)] == [1, 2, 3]
        assert reader.select_events(other) == []
        assert time.monotonic() - t0 < 10
    finally:
        f1.close()

    # Restart the writer: init_transactions aborts the dead transaction.
    f2, writer = open_recorder(env)
    try:
        writer.acquire()
        assert [e.originator_version for e in writer.select_events(agg)] == [1, 2, 3]
        assert writer.select_events(other) == []
        writer.insert_events(
            [StoredEvent(agg, 4, "AfterRestart", b"{}"), StoredEvent(other, 1, "AfterRestart", b"{}")]
        )
        # State equals a replay from offset zero by a fresh reader.
        f3, replay = open_recorder(env)
        try:
            for oid in (agg, other):
                assert replay.select_events(oid) == writer.select_events(oid)
            for p in range(writer.num_partitions):
                assert replay.select_partition_notifications(
                    p, None, 1000
                ) == writer.select_partition_notifications(p, None, 1000)
            assert [e.topic for e in replay.select_events(agg)] == ["Committed"] * 3 + ["AfterRestart"]
            assert all(
                n.topic != "Uncommitted"
                for p in range(4)
                for n in replay.select_partition_notifications(p, None, 1000)
            )
        finally:
            f3.close()
    finally:
        f2.close()


def test_fenced_writer_gets_clear_error_and_recovers(kafka_bootstrap: str) -> None:
    topic = new_topic()
    env = kafka_env(kafka_bootstrap, 2, topic)
    f1, r1 = open_recorder(env)
    f2, r2 = open_recorder(env)
    try:
        agg = uuid4()
        r1.insert_events([StoredEvent(agg, 1, "E", b"1")])
        r2.insert_events([StoredEvent(agg, 2, "E", b"2")])  # r2 takes over, fencing r1
        with pytest.raises(WriterFencedError, match="fenced"):
            r1.insert_events([StoredEvent(agg, 3, "E", b"3")])
        # r1 recovers: next write re-acquires and re-reads, so it sees v2 ...
        with pytest.raises(Exception) as excinfo:
            r1.insert_events([StoredEvent(agg, 2, "E", b"x")])
        assert "already recorded" in str(excinfo.value)
        r1.insert_events([StoredEvent(agg, 3, "E", b"3")])
        # ... and now r2 is the fenced one.
        with pytest.raises(WriterFencedError):
            r2.insert_events([StoredEvent(agg, 4, "E", b"4")])
        assert [e.state for e in r2.select_events(agg)] == [b"1", b"2", b"3"]
    finally:
        f1.close()
        f2.close()
