"""The node: a member of a consumer group on the inbound and control topics.

One client: the group consumer is librdkafka's (confluent-kafka), like the
partitions' transactional writers, so a batch's group offsets are committed in
its transaction (``send_offsets_to_transaction`` with the consumer's group
metadata, KIP-447) together with the tracking records, and the standard tools
(``kafka-consumer-groups.sh --describe``, lag exporters) show each node's lag.

Co-partitioning: the Range assignor gives inbound p and control p to the same
member (both topics have the events topic's partition count), because worker p
reads both and is the only writer of events partition p. (Cooperative-sticky
would move inbound p and control p independently: two members would build
workers for p and fence each other on every rebalance.) Static membership
(``group.instance.id``, set when the node has a stable id) makes a restart of
a node no rebalance at all: it gets its partitions back at once.

Positions come from the tracking records the workers commit with their
batches; the group's offsets are the same numbers, written in the same
transaction. The consumer fetches each partition from its worker's tracking positions.

Rebalancing: on revoke a worker stops (it is parked, not yet closed); on
assign a parked worker that is assigned again is resumed where it was (its
window intact); any other assigned partition is not fetched until its new
worker is built (by the loop, outside the callback; its writer fences the
previous owner) and the consumer is assigned its positions. If some other node wrote to the partition in between, it fenced this
node's writer, so the parked worker's next commit fails and the worker is
rebuilt from the log: stale state can never commit. A member that the group
has dropped (a zombie: paused longer than its session) cannot commit either:
its transactional offset commit carries its old generation and the broker
refuses it, so the whole transaction is aborted.

The ownership watchdog (:meth:`Node._watch_ownership`) stays: no client can be
trusted never to leave a member with less than it should own while partitions
have no owner in the group (kafka-python did, issue 10 defect 2). It describes
the group with kafka-python's admin client: librdkafka's (2.16) aborted the
whole process (``rd_kafka_enq_once_del_source_return: Assertion
eonce->refcnt > 0``) when a DescribeConsumerGroups ran while the broker was down.
"""

from __future__ import annotations

import faulthandler
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck
from kafka.admin import KafkaAdminClient

from infrastructure import metrics
from infrastructure.kafka.admin import ensure_topics
from infrastructure.node import partition
from infrastructure.node.partition import ExecutorFactory, InRecord, PartitionWorker
from infrastructure.node.service import NodeChannelService
from infrastructure.node.topics import node_topic_specs, store_settings
from infrastructure.settings import Settings

log = logging.getLogger("parsec.node")

# Seconds between refreshes of the per-partition gauges (lag, reorder window): a scrape is every 15 s or so.
_GAUGE_INTERVAL = 1.0

# Group states in which the members' assignments are settled (not being handed out).
_SETTLED_GROUP_STATES = ("STABLE", "EMPTY", "DEAD")


def consumer_config(c: Settings) -> dict[str, Any]:
    """The group consumer's librdkafka configuration (pure: tested without a broker)."""
    config: dict[str, Any] = c.kafka.librdkafka(**{
        "group.id": c.node_group,
        "client.id": f"parsec-node-{c.node_id}",
        "enable.auto.commit": False,  # offsets go in the batches' transactions
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        # co-partitioning: inbound p and control p to the same member (see the module's docstring)
        "partition.assignment.strategy": "range",
        "session.timeout.ms": c.session_timeout_ms,
        "heartbeat.interval.ms": max(500, c.session_timeout_ms // 4),
        # a worker is built in the loop (reading its partition): minutes for a very big one
        "max.poll.interval.ms": 600000,
        "fetch.wait.max.ms": 100,
        "socket.nagle.disable": True,
        "logger": logging.getLogger("parsec.node.librdkafka"),
    })
    if c.group_instance_id:
        config["group.instance.id"] = c.group_instance_id
    return config


class GroupWatch:
    """The node group's description, asked for on a thread of its own.

    The watchdog's kafka-python admin client blocks while it cannot reach the cluster: its
    constructor waited without a bound for the bootstrap (kafka-python 3.0.12), and run on the
    node's loop it held the whole node after a broker outage (every partition stalled, no log
    line; the stall report showed ``KafkaAdminClient.__init__`` in ``bootstrap``). Here only this
    thread waits. It keeps one client for its life (each failed constructor leaked that client's
    IO thread), asks when the loop says so (``ask``), and keeps the last answer with the time it
    came. The loop takes an answer only if it came after its previous question (``latest``), so a
    verdict is never older than one check."""

    def __init__(self, config: Settings) -> None:
        self.config = config
        self._asked = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._answer: tuple[float, dict[str, Any]] | None = None
        self._asked_at = 0.0
        threading.Thread(target=self._run, name="parsec-group-watch", daemon=True).start()

    def ask(self) -> None:
        with self._lock:
            self._asked_at = time.monotonic()
        self._asked.set()

    def latest(self) -> dict[str, Any] | None:
        """The group's description if it was answered after the last ``ask`` (None: not yet)."""
        with self._lock:
            answer, after = self._answer, self._asked_at
        if answer is None or answer[0] < after:
            return None
        return answer[1]

    def _run(self) -> None:
        c = self.config
        admin: KafkaAdminClient | None = None
        while not self._closed.is_set():
            self._asked.wait()
            self._asked.clear()
            if self._closed.is_set():
                break
            try:
                if admin is None:
                    admin = KafkaAdminClient(client_id=f"parsec-node-{c.node_id}-watchdog",
                                             **c.kafka.kafka_python(request_timeout_ms=int(c.kafka_timeout * 1000)))
                group = admin.describe_groups([c.node_group])[c.node_group]
            except Exception as exc:
                log.debug("ownership check: could not describe group %s: %s: %s", c.node_group,
                          type(exc).__name__, exc)
                continue
            with self._lock:
                self._answer = (time.monotonic(), group)
        if admin is not None:
            try:
                admin.close()
            except Exception:
                log.debug("closing the watchdog's admin client", exc_info=True)

    def close(self) -> None:
        """Stop asking; the thread closes its client when its current call returns (never waited for)."""
        self._closed.set()
        self._asked.set()


def _is_fatal(err: Any) -> bool:
    return err is not None and (err.fatal() or err.code() == ck.KafkaError._FATAL)


def _records(messages: list[Any]) -> dict[tuple[str, int], list[InRecord]]:
    """A poll's messages by (topic, partition), in offset order; errors are logged and skipped."""
    out: dict[tuple[str, int], list[InRecord]] = {}
    for m in messages:
        err = m.error()
        if err is not None:
            if err.code() != ck.KafkaError._PARTITION_EOF:
                log.warning("consumer: %s [%s/%s]", err.str(), m.topic(), m.partition())
            continue
        out.setdefault((m.topic(), m.partition()), []).append(InRecord(m.offset(), m.key(), m.value()))
    return out


class Node:
    def __init__(self, config: Settings, *, open_service: Callable[[int], NodeChannelService],
                 executor_factory: ExecutorFactory | None = None) -> None:
        self.config = config
        self.open_service = open_service  # partition -> its writer (infrastructure.bootstrap.partition_service)
        self.executor_factory = executor_factory
        self.workers: dict[int, PartitionWorker] = {}
        self.parked: dict[int, PartitionWorker] = {}
        self.assigned: set[int] = set()
        self.broken: set[int] = set()  # assigned, but no worker yet (build failed or batch failed): not fetched
        # after a batch Kafka cannot take: offsets to commit one record per transaction, and the
        # records found to be the cause, refused as SetAside by the next worker (per partition)
        self.isolate: dict[int, dict[str, int]] = {}
        self.set_aside: dict[int, dict[tuple[str, int], str]] = {}
        self.totals: Counter = Counter()
        self.stopped = threading.Event()
        self.ready = threading.Event()  # set once the first assignment is in place
        self.consumer: Any = None  # confluent_kafka.Consumer
        self.num_partitions = 0
        self.assignments = 0  # how many assignments this node's consumer was given
        # the ownership watchdog
        self._group_watch: GroupWatch | None = None
        self._unowned_since: float | None = None
        self._next_ownership_check = 0.0
        self._next_gauges = 0.0
        self._gauged: set[int] = set()  # partitions whose gauges are exported

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

    def _tps(self, partitions: Any, offsets: dict[int, tuple[int, int]] | None = None) -> list[Any]:
        """Inbound and control TopicPartitions of ``partitions`` (at ``offsets[p]`` if given)."""
        c = self.config
        out = []
        for p in sorted(partitions):
            at = (offsets or {}).get(p)
            if at is None:
                out += [ck.TopicPartition(c.inbound_topic, p), ck.TopicPartition(c.control_topic, p)]
            else:
                out += [ck.TopicPartition(c.inbound_topic, p, at[0]), ck.TopicPartition(c.control_topic, p, at[1])]
        return out

    # ------------------------------------------------------------------ rebalancing (callbacks run in poll)
    def _park(self, partitions: set[int]) -> None:
        for p in sorted(partitions):
            w = self.workers.pop(p, None)
            if w is not None:
                self.parked[p] = w
            self.broken.discard(p)
        self.assigned -= partitions
        if partitions:
            self._next_gauges = 0.0  # stop exporting their lag at once
            log.info("partitions revoked: %s", sorted(partitions))

    def _on_revoke(self, consumer: Any, tps: list[Any]) -> None:
        self._park({tp.partition for tp in tps})
        consumer.unassign()

    def _on_lost(self, consumer: Any, tps: list[Any]) -> None:
        log.warning("partitions lost (the group dropped this member): %s", sorted({tp.partition for tp in tps}))
        self._on_revoke(consumer, tps)

    def _on_assign(self, consumer: Any, tps: list[Any]) -> None:
        c = self.config
        self.assignments += 1
        metrics.ASSIGNMENTS.inc()
        self._next_gauges = 0.0  # show the new assignment at once
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
                resumed.append(p)
            else:
                self.broken.add(p)
        # Resumed workers read on from their positions; the others are not fetched until their
        # worker (built by the loop, outside this callback) says from where: see _reassign.
        self._reassign(consumer)
        self.assigned = set(partitions)
        log.info("partitions assigned: %s (resumed %s, building %s; generation of %s)", sorted(partitions), resumed,
                 sorted(self.broken), c.group_instance_id or "a dynamic member")
        self.ready.set()

    def _build_broken(self) -> set[int]:
        built = set()
        for p in sorted(self.broken):
            try:
                w = PartitionWorker(p, self.config, self.open_service(p), executor_factory=self.executor_factory,
                                    isolate_until=self.isolate.get(p), set_aside=self.set_aside.get(p),
                                    group_metadata=self._group_metadata)
            except Exception as exc:
                log.error("p%d: could not take over the partition (will retry): %s: %s", p, type(exc).__name__, exc)
                continue
            self.workers[p] = w
            self.broken.discard(p)
            built.add(p)
        if built:
            self._reassign(self.consumer)
            self._next_gauges = 0.0
        return built

    def _group_metadata(self) -> Any:
        """The current consumer's (it is replaced after a fatal error): what a worker's commit carries."""
        return self.consumer.consumer_group_metadata()

    def _reassign(self, consumer: Any) -> None:
        """Fetch exactly the partitions that have a worker, each from its worker's positions.

        ``assign`` with explicit offsets, never ``seek``: confluent-kafka's seek waits without a
        bound for the partition's fetcher, and one seek on a partition still waiting for its
        offsets (a coordinator coming back after an outage) hung the node for good. An assign is
        answered by the client's own thread; what was fetched before it is discarded (librdkafka
        versions each assignment). The group's assignment (the coordinator's) is not changed."""
        consumer.assign(self._tps(self.workers, {p: (w.next_inbound, w.next_control)
                                                 for p, w in self.workers.items()}))

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
                     sorted(unowned), self.config.node_group, how, bound)
            return
        if now - self._unowned_since >= bound:
            self._rejoin(f"partitions {sorted(unowned)} have had no owner in the group for "
                         f"{now - self._unowned_since:.1f}s ({how})")

    def _unowned_partitions(self) -> tuple[set[int], str] | None:
        """Partitions of the inbound/control topics that no member of the group processes.

        The group's description (the coordinator's record of each member's assignment) says
        what the other members own; what this node owns is what its callback was given (the
        coordinator may list partitions for this member that its client never took: the
        defect this watches for). None while the group is rebalancing or does not answer.
        """
        c = self.config
        if self._group_watch is None:
            self._group_watch = GroupWatch(c)
        group = self._group_watch.latest()
        self._group_watch.ask()  # the next check reads the answer to this one
        if group is None:
            return None
        state = str(group.get("group_state") or "").upper()
        if state not in _SETTLED_GROUP_STATES:
            return None
        me = self.consumer.memberid()
        topics = (c.inbound_topic, c.control_topic)
        elsewhere: dict[str, set[int]] = {t: set() for t in topics}
        listed_for_me: set[int] = set()
        for member in group.get("members") or []:
            assignment = member.get("member_assignment")
            if not isinstance(assignment, dict):
                continue
            for tp in assignment.get("assigned_partitions") or []:
                topic = tp.get("topic")
                if topic not in elsewhere:
                    continue
                if member.get("member_id") == me:
                    listed_for_me |= set(tp.get("partitions") or [])
                else:
                    elsewhere[topic] |= set(tp.get("partitions") or [])
        everything = set(range(self.num_partitions))
        unowned = set().union(*((everything - elsewhere[t]) for t in topics)) - self.assigned
        lost = listed_for_me - self.assigned
        if lost:
            how = (f"group {state}: the coordinator lists {sorted(listed_for_me)} for this member, whose client "
                   f"took {sorted(self.assigned)}: its assignment was lost")
        else:
            how = f"group {state}: no member of the group was given them; this node owns {sorted(self.assigned)}"
        return unowned, how

    def _rejoin(self, why: str) -> None:
        """Leave and join the group again (unsubscribe + subscribe: any client can do that)."""
        c = self.config
        log.warning("rejoining group %s: %s", c.node_group, why)
        self.totals["rejoins"] += 1
        self._park(set(self.assigned))
        try:
            self.consumer.unsubscribe()
        except ck.KafkaException as exc:
            self._renew_consumer(f"unsubscribe failed: {exc}")
            return
        self._subscribe()
        self._unowned_since = None
        self._next_ownership_check = time.monotonic() + c.rejoin_unowned_after  # let the new join settle

    def _renew_consumer(self, why: str) -> None:
        """Replace a consumer that hit a fatal error (librdkafka: the instance is unusable).

        Seen after a broker outage: a static member's own rejoin raced its previous registration
        and the broker answered FENCED_INSTANCE_ID, which librdkafka makes fatal. The workers are
        parked (they resume if the new consumer is given their partitions; their writers fence
        anything stale), and a new consumer joins under the same instance id."""
        c = self.config
        log.error("the group consumer hit a fatal error (%s): replacing it", why)
        self.totals["consumer_renewals"] += 1
        self._park(set(self.assigned))
        old, self.consumer = self.consumer, None
        try:
            old.close()
        except Exception:
            log.debug("closing the failed consumer", exc_info=True)
        self.consumer = ck.Consumer(consumer_config(c))
        self._subscribe()
        self._unowned_since = None
        self._next_ownership_check = time.monotonic() + c.rejoin_unowned_after

    def _subscribe(self) -> None:
        c = self.config
        self.consumer.subscribe([c.inbound_topic, c.control_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self.stopped
        c = self.config
        self.ensure_topics()
        self.consumer = ck.Consumer(consumer_config(c))
        self._subscribe()
        self._next_ownership_check = time.monotonic() + c.rejoin_unowned_after  # not during the first join
        log.info("node %s joining group %s on %s + %s (events %s, rejected %s; %s)", c.node_id, c.node_group,
                 c.inbound_topic, c.control_topic, c.events_topic, c.rejected_topic,
                 f"static member {c.group_instance_id}" if c.group_instance_id else "dynamic member")
        last_summary, last_count = time.monotonic(), 0
        # only for a node that is its process (``parsec node``): faulthandler's timer is one per
        # process, and a node run on another thread (tests, embedded tools) stopped being assigned
        # partitions when it re-armed it under pytest's own
        stall_after = c.stall_report_after if threading.current_thread() is threading.main_thread() else 0
        try:
            while not stop.is_set():
                if stall_after > 0:
                    # every thread's stack on stderr if this iteration has not come back in time: a
                    # node blocked in a client call says where without anyone sending it SIGUSR1
                    faulthandler.dump_traceback_later(stall_after, repeat=False)
                try:
                    messages = self._poll()
                except ck.KafkaException as exc:
                    self._renew_consumer(str(exc))
                    continue
                fatal = next((m.error() for m in messages if _is_fatal(m.error())), None)
                if fatal is not None:
                    self._renew_consumer(fatal.str())
                    continue
                batch = _records(messages)
                if self.broken:
                    built = self._build_broken()
                    # records fetched before these workers existed were read from no known position
                    batch = {tp: rs for tp, rs in batch.items() if tp[1] not in built and tp[1] not in self.broken}
                self._process(batch)
                self._watch_ownership(time.monotonic())
                if time.monotonic() >= self._next_gauges:
                    self._refresh_gauges()
                if time.monotonic() - last_summary >= 10:
                    rate = (self.totals["payments"] - last_count) / (time.monotonic() - last_summary)
                    last_summary, last_count = time.monotonic(), self.totals["payments"]
                    if self.totals:
                        log.info("so far: %s; %.0f payments/s over the last interval; partitions %s",
                                 dict(self.totals), rate, sorted(self.workers))
        finally:
            if stall_after > 0:
                faulthandler.cancel_dump_traceback_later()
            self.close()

    def _poll(self) -> list[Any]:
        """The next batch: wait (up to 0.2 s) for one record, then take what else has arrived.

        ``consume(n, timeout)`` alone returns only once it has n records or the timeout has
        passed: below ``max_poll_records`` a second, every payment waited out the timeout (the
        p50 of 140 ms at 100 payments/s offered). Here a record is processed as soon as it has
        arrived; under load the batch is what arrived while the previous one committed, so
        batches grow with the load by themselves. ``batch_linger_ms`` trades latency for
        fewer transactions."""
        c = self.config
        first = self.consumer.poll(timeout=0.2)
        if first is None:
            return []
        if c.max_poll_records == 1:
            return [first]
        linger = c.batch_linger_ms / 1000
        return [first, *self.consumer.consume(num_messages=c.max_poll_records - 1, timeout=linger)]

    def _process(self, batch: dict[tuple[str, int], list[InRecord]]) -> None:
        c = self.config
        now = time.time()
        for p in sorted(self.workers):
            w = self.workers[p]
            control = batch.get((c.control_topic, p), [])
            inbound = batch.get((c.inbound_topic, p), [])
            try:
                report = w.process(control, inbound, now)
                w.tick_executor(int(now))
            except (partition.UncommittableBatch, partition.UncommittableRecord) as exc:
                if isinstance(exc, partition.UncommittableBatch):
                    until = self.isolate.setdefault(p, {})
                    for topic, offset in exc.until.items():
                        until[topic] = max(until.get(topic, -1), offset)
                    log.error("%s; committing those records one per transaction to find the cause", exc)
                else:
                    self.set_aside.setdefault(p, {})[(exc.topic, exc.offset)] = exc.reason
                    log.error("%s; setting it aside (refused with its reason) so the partition goes on", exc)
                metrics.BATCHES_FAILED.inc()
                self._drop(p, w)
                continue
            except Exception as exc:
                log.error("p%d: batch not committed (%s: %s); rebuilding the partition from the log",
                          p, type(exc).__name__, exc)
                metrics.BATCHES_FAILED.inc()
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

    def _refresh_gauges(self) -> None:
        """Partitions owned, and each owned partition's lag and reorder-window occupancy.

        Lag is the consumer's cached high watermark (updated by every fetch response, no request
        to the broker) minus the worker's next offset to read; a partition whose watermark is not
        known yet is left out until it is."""
        self._next_gauges = time.monotonic() + _GAUGE_INTERVAL
        c = self.config
        metrics.PARTITIONS_OWNED.set(len(self.workers))
        metrics.PARTITIONS_ASSIGNED.set(len(self.assigned))
        for p in self._gauged - set(self.workers):
            metrics.forget_partition(p)
        self._gauged = set(self.workers)
        for p, w in self.workers.items():
            label = str(p)
            metrics.WINDOW_HELD.labels(label).set(len(w.window))
            if self.consumer is None:
                continue
            for role, topic, position in (("inbound", c.inbound_topic, w.next_inbound),
                                          ("control", c.control_topic, w.next_control)):
                try:
                    _, high = self.consumer.get_watermark_offsets(ck.TopicPartition(topic, p), cached=True)
                except ck.KafkaException:
                    continue
                if high is not None and high >= 0:
                    metrics.LAG.labels(role, label).set(max(0, high - position))

    def _drop(self, p: int, w: PartitionWorker) -> None:
        """Forget a worker whose batch failed; the loop builds a new one from the committed positions."""
        self.workers.pop(p, None)
        try:
            w.close()
        except Exception:
            log.debug("closing a failed worker", exc_info=True)
        if p in self.assigned:
            self.broken.add(p)  # its records are dropped until the new worker reassigns it

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
        # this node owns nothing now
        metrics.PARTITIONS_OWNED.set(0)
        metrics.PARTITIONS_ASSIGNED.set(0)
        for p in self._gauged:
            metrics.forget_partition(p)
        self._gauged = set()
        if self._group_watch is not None:
            self._group_watch.close()
            self._group_watch = None
        if self.consumer is not None:
            try:
                self.consumer.close()  # a dynamic member leaves the group; a static one keeps its place
            except Exception:
                log.debug("closing consumer", exc_info=True)
            self.consumer = None
        log.info("node %s stopped: %s", self.config.node_id, dict(self.totals))


__all__ = ["Node", "consumer_config"]
