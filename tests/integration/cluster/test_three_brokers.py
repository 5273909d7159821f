"""A three-broker cluster loses a broker under load (issue 11).

Given ``scripts/kafka start --brokers 3`` (three KRaft nodes, each broker and controller) and two
node processes in one group, the topics the node creates have three replicas and
min.insync.replicas=2. While signed payments stream in, broker 2 is SIGKILLed
(``scripts/kafka kill-broker 2``), the stream goes on, and the broker is started again
(``scripts/kafka start-broker 2``); then every payment is applied exactly once and nothing is lost:
a full read_committed read of the events topic holds one PaymentAccepted record per payment and no
(aggregate, version) twice, and every channel's replay gives its expected balances.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from infrastructure.node import Sender
from infrastructure.tools.workload import make_channels
from tests.integration.chaos.harness import fresh_config
from tests.integration.cluster.harness import Cluster, exactly_once, read_events
from tests.integration.node.harness import (
    make_payments,
    node_process,
    open_channels,
    reader,
    replay,
    sequences,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

PORT = int(os.environ.get("PARSEC_TEST_CLUSTER_KAFKA_PORT", "19592"))
DOWN = 20.0  # seconds broker 2 stays dead while payments keep coming


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("three") / "kafka", PORT, brokers=3)
    c.start()
    try:
        yield c
    finally:
        c.stop()


class Stream:
    """A gateway: sends each payment until the cluster acknowledges it (a repeat is a no-op)."""

    def __init__(self, sender: Sender, payments: list[Any]) -> None:
        self.sender, self.pending = sender, list(payments)
        self.acknowledged = self.retried = 0
        self.last_error = ""
        self.stop = threading.Event()

    def run(self, rate: float) -> None:
        """Batches of 20 in flight; what is not acknowledged goes out again in the next batch."""
        while self.pending and not self.stop.is_set():
            began = time.monotonic()
            batch, self.pending = self.pending[:20], self.pending[20:]
            futures = []
            for tx in batch:
                try:
                    futures.append(self.sender.payment(tx))
                except Exception as exc:
                    futures.append(None)
                    self.last_error = f"{type(exc).__name__}: {exc}"
            unacknowledged = []
            for tx, future in zip(batch, futures, strict=True):
                try:
                    if future is None:
                        raise RuntimeError("not sent")
                    future.get(timeout=15)
                    self.acknowledged += 1
                except Exception as exc:  # send it again (a repeat is a no-op for the node)
                    self.retried += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    unacknowledged.append(tx)
            self.pending = unacknowledged + self.pending
            self.stop.wait(max(0.0, len(batch) / rate - (time.monotonic() - began)))


def describe(bootstrap: str, topics: list[str], within: float = 30.0) -> dict[str, tuple[set[int], str]]:
    """Per topic: the replica counts of its partitions and its min.insync.replicas (admin client).

    A topic just created may not be in every broker's metadata yet: the broker that answers
    DescribeConfigs can say UNKNOWN_TOPIC_OR_PART for a moment, and the broker that answers
    Metadata can leave the topic out of its list (both seen in CI), so ask again until every
    broker asked knows every topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + within
    while True:
        try:
            meta = admin.list_topics(timeout=15).topics
            unknown = [t for t in topics if t not in meta or not meta[t].partitions]
            if unknown:
                if time.monotonic() > deadline:
                    raise AssertionError(f"topics not in the cluster's metadata after {within:.0f} s: {unknown}")
                time.sleep(0.5)
                continue
            configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics])
            out = {}
            for resource, future in configs.items():
                entries = future.result(timeout=15)
                replicas = {len(p.replicas) for p in meta[resource.name].partitions.values()}
                out[resource.name] = (replicas, entries["min.insync.replicas"].value)
            return out
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_broker_killed_under_load_loses_and_doubles_nothing(cluster: Cluster, tmp_path: Path) -> None:
    config = fresh_config(cluster.bootstrap, session_timeout_ms=10000)
    plans = make_channels("three-brokers", 16)
    payments = make_payments(plans, 1200, "three-brokers")
    nodes = [node_process(config, f"cluster-node-{i}", tmp_path / f"node-{i}.log") for i in range(2)]
    sender = Sender(config)
    stream = Stream(sender, payments)
    thread = threading.Thread(target=stream.run, args=(60.0,), daemon=True)
    started = time.monotonic()
    try:
        wait_for(lambda: all("partitions assigned" in (tmp_path / f"node-{i}.log").read_text(errors="replace")
                             for i in range(2)), 60, "both nodes assigned partitions")
        topics = [config.events_topic, config.inbound_topic, config.control_topic, config.rejected_topic,
                  f"{config.events_topic}.tracking"]
        for topic, (replicas, min_isr) in describe(cluster.bootstrap, topics).items():
            assert replicas == {3}, f"{topic}: replicas per partition {replicas}"
            assert min_isr == "2", f"{topic}: min.insync.replicas {min_isr}"

        open_channels(sender, plans)
        thread.start()
        wait_for(lambda: stream.acknowledged >= 300, 60, "the first 300 payments acknowledged")
        cluster.run("kill-broker", "2")
        killed_at = time.monotonic()
        acknowledged_at_kill = stream.acknowledged
        time.sleep(DOWN)
        during = stream.acknowledged - acknowledged_at_kill
        cluster.run("start-broker", "2")
        back = time.monotonic() - killed_at

        want = {str(p.channel_id): len(p.txs) for p in plans}

        def applied() -> dict[str, int]:  # PaymentAccepted records per channel in the events topic
            records = read_events(cluster.bootstrap, config.events_topic, config.partitions, timeout=30)
            counts = Counter(k for k, _, kind in records if kind == "PaymentAccepted")
            return {k: counts[k] for k in want}

        deadline = time.monotonic() + 120
        while stream.pending or applied() != want:
            if time.monotonic() > deadline:
                got = applied()
                raise AssertionError(
                    f"not drained 120 s after the broker came back: {len(stream.pending)} payments not "
                    f"acknowledged (stream alive: {thread.is_alive()}, last error {stream.last_error!r}); "
                    f"applied per channel (in the log, sent): {[(got[k], v) for k, v in want.items() if got[k] != v]}")
            time.sleep(1.0)
        drained = time.monotonic() - killed_at - back
        assert all(n.poll() is None for n in nodes), "a node exited instead of riding out the broker's death"
        print(f"\n{len(payments)} payments over {len(plans)} channels, {stream.retried} resent; broker 2 dead "
              f"{back:.1f}s ({during} payments acknowledged meanwhile); drained {drained:.1f}s after it came back; "
              f"{time.monotonic() - started:.0f}s in all")
    finally:
        stream.stop.set()
        if thread.is_alive():
            thread.join(30)
        for n in nodes:
            stop_process(n)
        sender.close()
    records = read_events(cluster.bootstrap, config.events_topic, config.partitions)
    assert exactly_once(records, plans) == []
    replayer = reader(config)  # a fresh one: everything from offset 0
    try:
        for p in plans:
            channel, events = replay(replayer, p.channel_id)
            accepted = [e.sequence for e in events if type(e).__name__ == "PaymentAccepted"]
            assert accepted == list(range(1, len(p.txs) + 1)), "a payment applied not exactly once"
            assert (channel.balance_of(p.a.address), channel.balance_of(p.b.address)) == p.expected_balances()
    finally:
        replayer.close()


def test_a_reader_opened_before_a_broker_died_reads_after_it_came_back(cluster: Cluster, tmp_path: Path) -> None:
    """A long-lived reader (what the settler and the projection runner hold) reads the channels before
    broker 2 is SIGKILLed and must read them again once the cluster has moved its leaders and the broker
    is back (a fresh reader always can)."""
    config = fresh_config(cluster.bootstrap, session_timeout_ms=10000)
    plans = make_channels("three-brokers-reader", 8)
    payments = make_payments(plans, 160, "three-brokers-reader")
    node = node_process(config, "reader-node", tmp_path / "node.log")
    sender = Sender(config)
    long_lived = reader(config)
    want = {p.channel_id: len(p.txs) for p in plans}
    try:
        open_channels(sender, plans)
        for f in [sender.payment(tx) for tx in payments]:
            f.get(timeout=15)
        wait_for(lambda: sequences(long_lived, plans) == want, 60, "the payments applied and read")
        cluster.run("kill-broker", "2")
        time.sleep(12)  # past the broker's session timeout: its partitions get other leaders
        cluster.run("start-broker", "2")
        deadline, last = time.monotonic() + 60, ""
        while True:
            try:
                got = {p.channel_id: long_lived.get_channel(p.channel_id).sequence for p in plans}
                if got == want:
                    break
                last = f"read {got}"
            except Exception:
                last = traceback.format_exc(limit=4)
            assert time.monotonic() < deadline, (
                f"the reader opened before the broker died cannot read 60 s after it came back: {last}")
            time.sleep(1)
    finally:
        stop_process(node)
        sender.close()
        long_lived.close()
