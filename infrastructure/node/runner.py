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

Staying in the group: kafka-python 3.0.x can drop a join it started itself
when a poll gives up mid-join (see :func:`_keep_rejoin_until_joined`, the
fix), and no client can be trusted never to leave a member with an empty
assignment: the ownership watchdog (:meth:`Node._watch_ownership`) rejoins a
node that owns less than it should while partitions have no owner in the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import kafka
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
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

# Group states in which the members' assignments are settled (not being handed out).
_SETTLED_GROUP_STATES = ("Stable", "Empty", "Dead")


def _keep_rejoin_until_joined(consumer: KafkaConsumer) -> bool:
    """Make a rejoin that the client decides on stick until a join completes (the root cause of
    issue 10, defect 2; kafka-python 3.0.x).

    ``ConsumerCoordinator.need_rejoin()`` recomputes two of its reasons to rejoin on every call:
    the leader's metadata snapshot of the group's topics differs from the one its last assignment
    used, or the subscription differs from the one it joined with. Both turn False in the middle
    of the join they caused (the leader copies the snapshot when it computes the assignment; the
    subscription is recorded when JoinGroup is sent), and ``rejoin_needed``, the flag that would
    hold them, is never set. When ``poll(timeout)`` gives up in that window (the JoinGroup/SyncGroup
    task still in flight), the next poll sees no reason to rejoin and never collects the join:
    ``on_partitions_revoked`` ran, ``on_partitions_assigned`` never does, heartbeats stay disabled
    and a session later the broker drops the member, which never notices. The Java client sets the
    flag when it sees such a reason (``requestRejoinIfNecessary`` in ``rejoinNeededOrPending``);
    so does this wrapper, and the next poll finishes the join (or joins again).

    Returns whether the consumer's coordinator could be wrapped (if not, the watchdog alone holds).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    computed = getattr(coordinator, "need_rejoin", None)
    request_rejoin = getattr(coordinator, "request_rejoin", None)
    if coordinator is None or not callable(computed) or not callable(request_rejoin):
        log.warning("kafka-python %s: cannot make the group's rejoins stick (no coordinator.need_rejoin/"
                    "request_rejoin); the ownership watchdog alone keeps the node in its partitions",
                    getattr(kafka, "__version__", "?"))
        return False

    def need_rejoin() -> bool:
        if computed():
            request_rejoin()  # held until a join completes: a poll that gives up mid-join comes back to it
            return True
        return False

    coordinator.need_rejoin = need_rejoin
    return True


def _member_partitions(member: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """(topic, partitions) of a member in ``KafkaAdminClient.describe_groups`` (empty while unknown)."""
    assignment = member.get("member_assignment")
    if not isinstance(assignment, dict):
        return []
    return [(tp.get("topic"), list(tp.get("partitions") or [])) for tp in assignment.get("assigned_partitions") or []]


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
        self._listener = _Listener(self)
        # the ownership watchdog
        self._admin: KafkaAdminClient | None = None
        self._unowned_since: float | None = None
        self._next_ownership_check = 0.0

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
        """Poll for the first time only once the client's metadata lists the subscribed topics' partitions.

        Right after creating topics a broker may not yet serve their metadata; a group
        leader that computes the assignment then gives out no partitions for them
        (seen under load: "No partition metadata for topic ..."). Called after subscribing:
        the coordinator keeps a snapshot of the subscribed topics' partitions from each
        metadata update, and the first assignment records it. Fetched before subscribing,
        the metadata left that snapshot empty, so the first update after the first join
        looked like a change and the leader rebalanced again (every lone node went to
        generation 2 right after starting, the rebalance that lost its assignment).
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

    # ------------------------------------------------------------------ the ownership watchdog
    def _watch_ownership(self, now: float) -> None:
        """Rejoin if this node owns fewer partitions than it should while some have no owner.

        Whatever the client library does, a member that owns nothing (or less than it could)
        while partitions of the inbound and control topics have no owner in the group must ask
        again. Cheap: a node that owns every partition never looks; otherwise it describes the
        group (one DescribeGroups to the coordinator) every ``rejoin_unowned_after / 2`` seconds
        (at least 1 s apart), and rejoins once partitions have been seen without an owner for
        ``rejoin_unowned_after`` seconds.
        """
        bound = self.config.rejoin_unowned_after
        if bound <= 0 or self.consumer is None or not self.num_partitions:
            return
        if len(self.assigned) >= self.num_partitions:
            self._unowned_since = None  # it owns everything: no partition can be without an owner
            return
        if now < self._next_ownership_check:
            return
        self._next_ownership_check = now + max(1.0, bound / 2)
        verdict = self._unowned_partitions()
        if verdict is None:  # rebalancing, or no answer: no verdict, the clock keeps running
            return
        unowned, how = verdict
        if not unowned:
            self._unowned_since = None
            return
        if self._unowned_since is None:
            self._unowned_since = now
            log.info("partitions %s have no owner in group %s (%s); rejoining if still so in %.1fs",
                     sorted(unowned), self.config.group, how, bound)
            return
        if now - self._unowned_since >= bound:
            self._rejoin(f"partitions {sorted(unowned)} have had no owner in the group for "
                         f"{now - self._unowned_since:.1f}s ({how})")

    def _unowned_partitions(self) -> tuple[set[int], str] | None:
        """Partitions of the inbound/control topics that no member of the group processes.

        The group's description (the coordinator's record of each member's assignment) says
        what the other members own; what this node owns is what its listener was given (the
        coordinator may list partitions for this member that its client never took: the
        defect this watches for). None while the group is rebalancing or does not answer.
        """
        assert self.consumer is not None
        c = self.config
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=c.bootstrap.split(","),
                                               client_id=f"parsec-node-{c.node_id}-watchdog",
                                               request_timeout_ms=int(c.kafka_timeout * 1000))
            group = self._admin.describe_groups([c.group])[c.group]
        except Exception as exc:
            log.debug("ownership check: could not describe group %s: %s: %s", c.group, type(exc).__name__, exc)
            return None
        state = group.get("group_state")
        if state not in _SETTLED_GROUP_STATES:
            return None
        me = self.consumer.group_metadata()
        topics = (c.inbound_topic, c.control_topic)
        elsewhere: dict[str, set[int]] = {t: set() for t in topics}
        listed_for_me: set[int] = set()
        for member in group.get("members") or []:
            for topic, partitions in _member_partitions(member):
                if topic not in elsewhere:
                    continue
                if member.get("member_id") == me.member_id:
                    listed_for_me |= set(partitions)
                else:
                    elsewhere[topic] |= set(partitions)
        everything = set(range(self.num_partitions))
        unowned = set().union(*((everything - elsewhere[t]) for t in topics)) - self.assigned
        lost = listed_for_me - self.assigned
        if lost:
            how = (f"group {state}, generation {me.generation_id}: the coordinator lists {sorted(listed_for_me)} "
                   f"for this member, whose client took {sorted(self.assigned)}: its assignment was lost")
        else:
            how = f"group {state}: no member of the group was given them; this node owns {sorted(self.assigned)}"
        return unowned, how

    def _rejoin(self, why: str) -> None:
        """Leave and join the group again (unsubscribe + subscribe: any client can do that)."""
        assert self.consumer is not None
        c = self.config
        log.warning("rejoining group %s: %s", c.group, why)
        self.totals["rejoins"] += 1
        self._revoked(set(self.assigned))  # unsubscribe drops the assignment without calling the listener
        self.consumer.unsubscribe()
        self.consumer.subscribe([c.inbound_topic, c.control_topic], listener=self._listener)
        self._unowned_since = None
        self._next_ownership_check = time.monotonic() + c.rejoin_unowned_after  # let the new join settle

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
        _keep_rejoin_until_joined(self.consumer)
        self.consumer.subscribe([c.inbound_topic, c.control_topic], listener=self._listener)
        self._await_topic_metadata([c.inbound_topic, c.control_topic])
        self._next_ownership_check = time.monotonic() + c.rejoin_unowned_after  # not during the first join
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
                self._watch_ownership(time.monotonic())
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
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:
                log.debug("closing the watchdog's admin client", exc_info=True)
            self._admin = None
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False)
            except Exception:
                log.debug("closing consumer", exc_info=True)
            self.consumer = None
        log.info("node %s stopped: %s", self.config.node_id, dict(self.totals))


__all__ = ["Node"]
