"""Raw records of any topic of any cluster, read to its last stable offset: the auditor's only input.

kafka-python, ``read_committed`` (an aborted transaction's records are not the log), partitions
assigned explicitly and no consumer group: the auditor commits nothing to the cluster it audits,
and its positions are its own (``infrastructure/audit/state.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from infrastructure.audit.verifier import RawRecord


class UnknownTopic(ValueError):
    """The cluster has no such topic (a copy is ``A.<topic>`` under MirrorMaker 2's default policy)."""


class LogReader:
    """Reads ``topic`` from each partition's position (its next offset) to where the log ends now."""

    def __init__(self, topic: str, client_kwargs: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        self.topic, self.timeout = topic, timeout
        self.consumer = KafkaConsumer(
            client_id="parsec-audit", group_id=None, enable_auto_commit=False, isolation_level="read_committed",
            auto_offset_reset="earliest", max_poll_records=5000, fetch_max_wait_ms=50,
            allow_auto_create_topics=False,  # asking about a mistyped topic must not create it
            request_timeout_ms=int(timeout * 1000) + 5000, **client_kwargs)

    def partitions(self) -> list[int]:
        found = self.consumer.partitions_for_topic(self.topic)
        if not found:
            raise UnknownTopic(f"topic {self.topic!r} does not exist on this cluster (or has no partitions)")
        return sorted(found)

    def ends(self, partitions: list[int]) -> dict[int, int]:
        """Each partition's last stable offset (read_committed): what a run reads up to."""
        tps = [TopicPartition(self.topic, p) for p in partitions]
        return {tp.partition: off for tp, off in self.consumer.end_offsets(tps).items()}

    def read(self, positions: Mapping[int, int], ends: Mapping[int, int]) -> Iterator[list[RawRecord]]:
        """Batches of records from ``positions`` (partition -> next offset; absent: the beginning) up to
        ``ends``; within a partition in offset order. Stops when every partition reached its end."""
        tps = {p: TopicPartition(self.topic, p) for p in ends}
        self.consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            if p in positions:
                self.consumer.seek(tp, positions[p])
            else:
                self.consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + self.timeout
        while True:
            behind = [tp for p, tp in tps.items() if self.consumer.position(tp) < ends[p]]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no progress for {self.timeout:g}s reading {self.topic} up to its last "
                                   f"stable offsets (partitions {[tp.partition for tp in behind]})")
            batch = self.consumer.poll(timeout_ms=200)
            if batch:
                deadline = time.monotonic() + self.timeout  # a bound on lack of progress, not on the log's size
            for tp, records in batch.items():
                end = ends[tp.partition]
                out = [RawRecord(tp.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                       for r in records if r.offset < end]
                if out:
                    yield out

    def close(self) -> None:
        self.consumer.close(autocommit=False)
