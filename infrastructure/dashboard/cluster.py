"""Who owns which partition, and how far behind it is: the node group as the broker sees it.

The nodes commit their consumer group's offsets inside each batch's transaction (KIP-447,
``infrastructure/node/runner.py``), so the group's committed offset of inbound partition p is
exactly what partition p's owner has applied, and the lag is the partition's end minus it. The
owners are the group's members and their assignments. Everything comes from the broker's admin
API (confluent-kafka's ``AdminClient``): no node is asked, a dashboard never joins the group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PartitionRow:
    topic: str  # the inbound or the control topic
    role: str  # "inbound" | "control"
    partition: int
    owner: str | None  # the member's client id @ host (None: no member has it: a rebalance, or no node)
    instance: str | None  # the node's static id (group.instance.id), when it has one
    committed: int | None  # the group's committed offset (None: nothing committed yet)
    end: int | None  # the partition's end offset (the next offset a producer gets)

    @property
    def lag(self) -> int | None:
        if self.end is None:
            return None
        return max(0, self.end - (self.committed or 0))


@dataclass(frozen=True)
class GroupView:
    group: str
    state: str  # the group's state as the broker says it (stable, preparing rebalance, empty, ...)
    members: int
    rows: list[PartitionRow]
    error: str | None = None  # the broker could not be asked: why

    @property
    def total_lag(self) -> int:
        return sum(r.lag or 0 for r in self.rows)


def admin_client(librdkafka: dict[str, Any], timeout: float = 5.0) -> Any:
    """One admin client for every refresh (its connections to the brokers are kept)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({**librdkafka, "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000))})


def describe_group(admin: Any, group: str, topics: dict[str, str], timeout: float = 5.0) -> GroupView:
    """``topics``: role -> topic name. One metadata request, one group description, one offsets
    fetch and one list-offsets request."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    try:
        md = admin.list_topics(timeout=timeout)
        parts = [(role, topic, p) for role, topic in topics.items() if topic in md.topics
                 for p in sorted(md.topics[topic].partitions)]
        if not parts:
            return GroupView(group, "no topics yet", 0, [])
        description = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result()
        owners: dict[tuple[str, int], tuple[str, str | None]] = {}
        for m in description.members:
            who = f"{m.client_id}@{m.host.lstrip('/')}"
            for tp in (m.assignment.topic_partitions if m.assignment else []):
                owners[(tp.topic, tp.partition)] = (who, m.group_instance_id)
        committed: dict[tuple[str, int], int] = {}
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for _, t, p in parts])
        for tp in admin.list_consumer_group_offsets([request], request_timeout=timeout)[group].result().topic_partitions:
            if tp.offset >= 0:
                committed[(tp.topic, tp.partition)] = tp.offset
        ends: dict[tuple[str, int], int] = {}
        futures = admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for _, t, p in parts},
                                     request_timeout=timeout)
        for tp, future in futures.items():
            ends[(tp.topic, tp.partition)] = future.result().offset
    except KafkaException as err:
        return GroupView(group, "unknown", 0, [], error=str(err.args[0] if err.args else err))
    rows = [PartitionRow(topic, role, p, *owners.get((topic, p), (None, None)), committed.get((topic, p)),
                         ends.get((topic, p))) for role, topic, p in parts]
    state = getattr(description.state, "name", str(description.state)).lower().replace("_", " ")
    return GroupView(group, state, len(description.members), rows)


class Cached:
    """``make()`` at most once every ``seconds``: every refresh of every open overview asks the
    broker once between them, however many browsers are watching."""

    def __init__(self, make: Callable[[], Any], seconds: float = 2.0) -> None:
        self._make, self._seconds = make, seconds
        self._value: Any = None
        self._at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at >= self._seconds:
                self._value, self._at = self._make(), time.monotonic()
            return self._value
