"""Replication between business units for the tests: a second cluster B of the test's own
(``scripts/kafka --name``, a free port, a data directory in tmp), MirrorMaker 2 from A (the session's
cluster, ``PARSEC_KAFKA_BOOTSTRAP``) to B (``scripts/mirrormaker``), node configurations on topics
only this module's MirrorMaker copies, and full reads of a topic decoded into events.

B holds A's topic T as ``A.T`` (MirrorMaker's default replication policy). Its offsets are not A's
(A's transaction markers take offsets; B's copies are plain writes) and a restarted MirrorMaker may
copy a record twice: an event is identified by (channel, originator version), never by offset.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from infrastructure.kafka.codec import H_KIND, KIND_EVENT, decode_event
from infrastructure.settings import Settings

REPO = Path(__file__).resolve().parents[3]
KAFKA = REPO / "scripts" / "kafka"
MIRRORMAKER = REPO / "scripts" / "mirrormaker"
SOURCE_ALIAS = "A"

# Ports another run on this machine may hold (a CI run's Kafka, its controller, PostgreSQL, anvil):
# never handed out even if free at this instant.
_RESERVED = {9092, 10092, 9292, 10292, 5433, 5533, 8545, 8645}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (the kernel's choice, so not a fixed one that a
    parallel run might take too)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _RESERVED:
            return port


def run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


class UnitCluster:
    """Another business unit's single-broker cluster: ``scripts/kafka --name NAME`` with its own ports
    and data directory."""

    def __init__(self, name: str, data: Path) -> None:
        self.name, self.data = name, data
        self.port, self.controller_port = free_port(), free_port()
        self.env = {**os.environ, "PARSEC_KAFKA_PORT": str(self.port),
                    "PARSEC_KAFKA_CONTROLLER_PORT": str(self.controller_port), "PARSEC_KAFKA_DATA": str(data)}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def kafka(self, *args: str) -> subprocess.CompletedProcess:
        return run([str(KAFKA), "--name", self.name, *args], self.env)

    def start(self) -> None:
        self.kafka("start")

    def stop(self) -> None:
        self.kafka("stop")


@dataclass
class MirrorMaker:
    """``scripts/mirrormaker`` from ``source`` to ``target`` for the topics matching ``topics``, its
    files in ``data``."""

    source: str
    target: str
    topics: str
    data: Path
    starts: list[float] = field(default_factory=list)  # seconds each start took

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PARSEC_MIRRORMAKER_DATA": str(self.data)}
        return run([str(MIRRORMAKER), *args], env)

    def start(self) -> None:
        began = time.monotonic()
        self._run("start", "--source", self.source, "--target", self.target, "--topics", self.topics)
        self.starts.append(time.monotonic() - began)

    def stop(self) -> None:
        self._run("stop")

    def running(self) -> bool:
        env = {**os.environ, "PARSEC_MIRRORMAKER_DATA": str(self.data)}
        code = subprocess.run([str(MIRRORMAKER), "status"], env=env, capture_output=True, check=False).returncode
        assert code in (0, 3), f"scripts/mirrormaker status exited {code}"
        return code == 0

    @property
    def pid(self) -> int:
        return int((self.data / "mirrormaker.pid").read_text())

    def kill(self) -> None:
        """SIGKILL: no flush of its position in A, no goodbye to its group."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not self.running(), "MirrorMaker still runs after SIGKILL"

    @property
    def log(self) -> Path:
        return self.data / "mirrormaker.log"


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def topic_prefix() -> str:
    """This module's topics: the only ones its MirrorMaker copies (other tests' topics on A are not)."""
    return f"repl.{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnitCluster]:
    b = UnitCluster("b", tmp_path_factory.mktemp("unit-b") / "kafka")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def mirrormaker(kafka_bootstrap: str, cluster_b: UnitCluster, topic_prefix: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorMaker]:
    mm = MirrorMaker(kafka_bootstrap, cluster_b.bootstrap, rf"{topic_prefix.replace('.', chr(92) + '.')}\..*",
                     tmp_path_factory.mktemp("mirrormaker"))
    mm.start()
    try:
        yield mm
    finally:
        mm.stop()  # also after a test killed and restarted it: stop acts on whatever runs


def unit_config(kafka_bootstrap: str, topic_prefix: str, **overrides: Any) -> Settings:
    """A node configuration on fresh topics under ``topic_prefix`` (so MirrorMaker copies them)."""
    t = f"{topic_prefix}.{uuid.uuid4().hex[:6]}"
    c = Settings(kafka_bootstrap=kafka_bootstrap, events_topic=f"{t}.events", inbound_topic=f"{t}.inbound",
                 control_topic=f"{t}.control", rejected_topic=f"{t}.rejected", hops_topic=f"{t}.hops",
                 node_group=f"{t}.nodes", partitions=4, session_timeout_ms=6000, tick_interval=0.5)
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def copy_of(topic: str) -> str:
    """B's name of A's topic."""
    return f"{SOURCE_ALIAS}.{topic}"


# --- reading ----------------------------------------------------------------------


@dataclass
class Copy:
    """The event records of one topic, decoded: per channel (the record key), per originator version,
    every copy's (event class topic, state); and the records that were not events."""

    events: dict[str, dict[int, list[tuple[str, bytes]]]] = field(default_factory=lambda: defaultdict(dict))
    records: int = 0
    end_offsets: dict[int, int] = field(default_factory=dict)

    def add(self, key: str, version: int, topic: str, state: bytes) -> None:
        self.events[key].setdefault(version, []).append((topic, state))

    def deduped(self) -> dict[str, dict[int, tuple[str, bytes]]]:
        """One event per (channel, version); raises when two copies of one differ (a duplicate must be
        the same record again, never another event under the same identity)."""
        out: dict[str, dict[int, tuple[str, bytes]]] = {}
        for key, versions in self.events.items():
            out[key] = {}
            for v, copies in versions.items():
                assert all(c == copies[0] for c in copies), f"{key} version {v}: copies differ"
                out[key][v] = copies[0]
        return out

    def duplicates(self) -> int:
        return sum(len(c) - 1 for versions in self.events.values() for c in versions.values())

    def count(self) -> int:
        return sum(len(versions) for versions in self.events.values())


def topic_exists(bootstrap: str, topic: str) -> bool:
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None)
    try:
        return topic in c.topics()
    finally:
        c.close()


def read_copy(bootstrap: str, topic: str, partitions: int, timeout: float = 60) -> Copy:
    """Every committed record of ``topic`` from offset 0 to its end (read_committed, no group),
    decoded with the event store's codec (``infrastructure/kafka/codec.py``)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      isolation_level="read_committed")
    out = Copy()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out.end_offsets = {tp.partition: end[tp] for tp in tps}
        deadline = time.monotonic() + timeout
        # The consumer's position, not the last record's offset: on A a commit marker takes an offset.
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout:g}s"
            for records in c.poll(timeout_ms=500).values():
                for r in records:
                    out.records += 1
                    if dict(r.headers or []).get(H_KIND) != KIND_EVENT:
                        continue
                    s = decode_event(r.key, r.value, r.headers)
                    out.add(str(s.originator_id), s.originator_version, s.topic, bytes(s.state))
        return out
    finally:
        c.close(autocommit=False)


def wait_copied(a_bootstrap: str, b_bootstrap: str, topic: str, partitions: int, timeout: float = 90) -> tuple[Copy, Copy]:
    """Wait until B's copy of ``topic`` holds every event of A's (after dedupe); both reads."""
    a = read_copy(a_bootstrap, topic, partitions)
    deadline = time.monotonic() + timeout
    b = Copy()
    while time.monotonic() < deadline:
        if topic_exists(b_bootstrap, copy_of(topic)):
            b = read_copy(b_bootstrap, copy_of(topic), partitions)
            if {k: set(v) for k, v in b.events.items()} == {k: set(v) for k, v in a.events.items()}:
                return a, b
        time.sleep(1.0)
    raise AssertionError(f"B's {copy_of(topic)} holds {b.count()} of A's {a.count()} events after {timeout:g}s")


class LagMeter:
    """Follows B's copy of a topic in a thread, from its end when it starts, and keeps, per record, the
    time it was seen on B minus its timestamp (MirrorMaker keeps A's record timestamp: the create time
    the node's producer gave it on A, just before its transaction committed). Start it once the copy
    flows: records that waited for MirrorMaker to discover a new topic would measure that wait."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.samples: list[float] = []
        self.stop, self.ready = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="lag-meter", daemon=True)

    def __enter__(self) -> LagMeter:
        self.thread.start()
        assert self.ready.wait(30), f"could not follow {self.topic}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)

    def _run(self) -> None:
        c = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=None, enable_auto_commit=False)
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            c.assign(tps)
            c.seek_to_end(*tps)
            for tp in tps:
                c.position(tp)  # resolve the end now, before the stream starts
            self.ready.set()
            while not self.stop.is_set():
                for records in c.poll(timeout_ms=200).values():
                    now = time.time()
                    self.samples += [now - r.timestamp / 1000 for r in records]
        finally:
            c.close(autocommit=False)


def summary(samples: list[float]) -> str:
    """'n=…, median …, p95 …, max …' in milliseconds."""
    if not samples:
        return "no samples"
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return f"n={len(s)}, median {pick(0.5):.0f} ms, p95 {pick(0.95):.0f} ms, max {s[-1] * 1000:.0f} ms"
