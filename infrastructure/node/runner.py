"""The node: a member of a consumer group on the inbound and control topics.

The Range assignor gives inbound p and control p to the same member (both
topics have the events topic's partition count). For each partition it owns,
the node keeps a :class:`PartitionWorker` (writer of events partition p,
reorder window, positions). Positions come from the tracking records the
workers commit with their batches, never from the group's committed offsets:
on assignment the node seeks to them.

Rebalancing: on revoke a worker stops (it is parked, not yet closed); on
assign a parked worker that is assigned again is resumed where it was (its
window intact); any other assigned partition gets a new worker, whose writer
fences the previous owner. If some other node wrote to the partition in
between, it fenced this node's writer, so the parked worker's next commit
fails and the worker is rebuilt from the log: stale state can never commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor

from infrastructure.kafka.log import ensure_topics
from infrastructure.node.config import NodeConfig
from infrastructure.node.partition import (
    ExecutorFactory,
    PartitionWorker,
    UncommittableBatch,
    UncommittableRecord,
)
from infrastructure.node.topics import node_topic_specs, store_settings

log = logging.getLogger("parsec.node")


class _Listener(ConsumerRebalanceListener):
    def __init__(self, node: Node) -> None:
        self.node = node

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.node._revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.node._assigned(assigned)


class Node:
    def __init__(self, config: NodeConfig, *, executor_factory: ExecutorFactory | None = None) -> None:
        self.config = config
        self.executor_factory = executor_factory
        self.workers: dict[int, PartitionWorker] = {}
        self.parked: dict[int, PartitionWorker] = {}
        self.assigned: set[int] = set()
        self.broken: set[int] = set()  # assigned, but no worker yet (build failed or batch failed)
        # after a batch Kafka cannot take: offsets to commit one record per transaction, and the
        # records found to be the cause, refused as SetAside by the next worker (per partition)
        self.isolate: dict[int, dict[str, int]] = {}
        self.set_aside: dict[int, dict[tuple[str, int], str]] = {}
        self.totals: Counter = Counter()
        self.stopped = threading.Event()
        self.ready = threading.Event()  # set once the first assignment is in place
        self.consumer: KafkaConsumer | None = None
        self.num_partitions = 0

    # ------------------------------------------------------------------ setup
    def ensure_topics(self) -> int:
        """Create missing topics; all four must have the same partition count."""
        c = self.config
        specs = node_topic_specs(c)
        counts = ensure_topics(store_settings(c), specs)
        if len(set(counts.values())) != 1:
            raise ValueError(
                f"the events, inbound, control and rejected topics must have the same partition count: {counts}"
            )
        self.num_partitions = counts[c.events_topic]
        if self.num_partitions != c.partitions:
            log.info("topics have %d partitions (configured %d): using %d", self.num_partitions, c.partitions,
                     self.num_partitions)
            c.partitions = self.num_partitions
        return self.num_partitions

    def _await_topic_metadata(self, topics: list[str], timeout: float = 30.0) -> None:
        """Subscribe only once the client's metadata lists the topics' partitions.

        Right after creating topics a broker may not yet serve their metadata; a group
        leader that computes the assignment then gives out no partitions for them
        (seen under load: "No partition metadata for topic ...").
        """
        assert self.consumer is not None
        deadline = time.monotonic() + timeout
        while True:
            missing = [t for t in topics if not self.consumer.partitions_for_topic(t)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ValueError(f"no partition metadata for {missing} after {timeout:.0f}s")
            self.consumer.topics()  # refreshes the cluster metadata
            time.sleep(0.1)

    # ------------------------------------------------------------------ rebalancing
    def _revoked(self, partitions: set[int]) -> None:
        for p in sorted(partitions):
            w = self.workers.pop(p, None)
            if w is not None:
                self.parked[p] = w
            self.broken.discard(p)
        self.assigned -= partitions
        if partitions:
            log.info("partitions revoked: %s", sorted(partitions))

    def _assigned(self, tps: Any) -> None:
        c = self.config
        by_topic: dict[str, set[int]] = {}
        for tp in tps:
            by_topic.setdefault(tp.topic, set()).add(tp.partition)
        inbound, control = by_topic.get(c.inbound_topic, set()), by_topic.get(c.control_topic, set())
        if inbound != control:
            log.warning("inbound %s and control %s assignments differ: processing their union",
                        sorted(inbound), sorted(control))
        partitions = inbound | control
        for p in sorted(set(self.parked) - partitions):
            self.parked.pop(p).close()
        resumed = []
        for p in sorted(partitions):
            w = self.parked.pop(p, None)
            if w is not None:
                self.workers[p] = w
                self._seek(w)
                resumed.append(p)
            else:
                self.broken.add(p)
        self.assigned = set(partitions)
        log.info("partitions assigned: %s (resumed %s, building %s)", sorted(partitions), resumed,
                 sorted(self.broken))
        # New workers are built by the loop, outside this callback: building one reads the
        # partition, and a callback blocks the consumer's heartbeats.
        self.ready.set()

    def _seek(self, w: PartitionWorker) -> None:
        assert self.consumer is not None
        c = self.config
        self.consumer.seek(TopicPartition(c.inbound_topic, w.partition), w.next_inbound)
        self.consumer.seek(TopicPartition(c.control_topic, w.partition), w.next_control)

    def _build_broken(self) -> set[int]:
        built = set()
        for p in sorted(self.broken):
            try:
                w = PartitionWorker(p, self.config, executor_factory=self.executor_factory,
                                    isolate_until=self.isolate.get(p), set_aside=self.set_aside.get(p))
            except Exception as exc:
                log.error("p%d: could not take over the partition (will retry): %s: %s", p, type(exc).__name__, exc)
                continue
            self.workers[p] = w
            self.broken.discard(p)
            self._seek(w)
            built.add(p)
        return built

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self.stopped
        c = self.config
        self.ensure_topics()
        self.consumer = KafkaConsumer(
            bootstrap_servers=c.bootstrap.split(","),
            group_id=c.group,
            client_id=f"parsec-node-{c.node_id}",
            enable_auto_commit=False,  # positions live in the tracking records
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            partition_assignment_strategy=[RangePartitionAssignor],
            max_poll_records=c.max_poll_records,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=max(500, c.session_timeout_ms // 4),
            max_poll_interval_ms=300000,
            fetch_max_wait_ms=100,
        )
        self._await_topic_metadata([c.inbound_topic, c.control_topic])
        self.consumer.subscribe([c.inbound_topic, c.control_topic], listener=_Listener(self))
        log.info("node %s joined group %s on %s + %s (events %s, rejected %s)", c.node_id, c.group,
                 c.inbound_topic, c.control_topic, c.events_topic, c.rejected_topic)
        last_summary, last_count = time.monotonic(), 0
        try:
            while not stop.is_set():
                batch = self.consumer.poll(timeout_ms=200)
                if self.broken:
                    built = self._build_broken()
                    # records fetched before these workers existed were read from no known position
                    batch = {tp: rs for tp, rs in batch.items() if tp.partition not in built}
                self._process(batch)
                if time.monotonic() - last_summary >= 10:
                    rate = (self.totals["payments"] - last_count) / (time.monotonic() - last_summary)
                    last_summary, last_count = time.monotonic(), self.totals["payments"]
                    if self.totals:
                        log.info("so far: %s; %.0f payments/s over the last interval; partitions %s",
                                 dict(self.totals), rate, sorted(self.workers))
        finally:
            self.close()

    def _process(self, batch: dict[Any, list[Any]]) -> None:
        c = self.config
        now = time.time()
        for p in sorted(self.workers):
            w = self.workers[p]
            control = batch.get(TopicPartition(c.control_topic, p), [])
            inbound = batch.get(TopicPartition(c.inbound_topic, p), [])
            try:
                report = w.process(control, inbound, now)
                w.tick_executor(int(now))
            except (UncommittableBatch, UncommittableRecord) as exc:
                if isinstance(exc, UncommittableBatch):
                    until = self.isolate.setdefault(p, {})
                    for topic, offset in exc.until.items():
                        until[topic] = max(until.get(topic, -1), offset)
                    log.error("%s; committing those records one per transaction to find the cause", exc)
                else:
                    self.set_aside.setdefault(p, {})[(exc.topic, exc.offset)] = exc.reason
                    log.error("%s; setting it aside (refused with its reason) so the partition goes on", exc)
                self._drop(p, w)
                continue
            except Exception as exc:
                log.error("p%d: batch not committed (%s: %s); rebuilding the partition from the log",
                          p, type(exc).__name__, exc)
                self._drop(p, w)
                continue
            if report.anything:
                self.totals["payments"] += report.inbound
                self.totals["accepted"] += report.accepted
                self.totals["duplicates"] += report.duplicates
                for reason, n in report.rejected.items():
                    self.totals[f"rejected:{reason}"] += n
                for name, n in report.events.items():
                    if name in ("CheckpointRequested", "SettlementRequested", "DisputeRequested"):
                        self.totals[name] += n
                level = logging.INFO if (report.rejected or report.control or report.inbound >= 100) else logging.DEBUG
                log.log(level, "%s", report.describe())

    def _drop(self, p: int, w: PartitionWorker) -> None:
        """Forget a worker whose batch failed; the loop builds a new one from the committed positions."""
        self.workers.pop(p, None)
        try:
            w.close()
        except Exception:
            log.debug("closing a failed worker", exc_info=True)
        if p in self.assigned:
            self.broken.add(p)

    def stop(self) -> None:
        self.stopped.set()

    def close(self) -> None:
        for w in list(self.workers.values()) + list(self.parked.values()):
            try:
                w.close()
            except Exception:
                log.debug("closing worker", exc_info=True)
        self.workers.clear()
        self.parked.clear()
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False)
            except Exception:
                log.debug("closing consumer", exc_info=True)
            self.consumer = None
        log.info("node %s stopped: %s", self.config.node_id, dict(self.totals))


__all__ = ["Node"]
