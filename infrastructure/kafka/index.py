"""The in-memory indexes a :class:`~infrastructure.kafka.log.KafkaLog` builds
from the committed records of its topics (one kind of index per kind of topic).
They are caches: rebuilt from the log by reading it from offset zero.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent

from infrastructure.kafka.codec import decode_event
from infrastructure.kafka.errors import CorruptRecord

logger = logging.getLogger(__name__)


@dataclass
class _Sequence:
    """One aggregate's events in one partition, sorted by version."""

    versions: list[int] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)

    def add(self, s: StoredEvent, offset: int) -> bool:
        v = s.originator_version
        i = bisect.bisect_left(self.versions, v)
        if i < len(self.versions) and self.versions[i] == v:
            return False
        self.versions.insert(i, v)
        self.events.insert(i, s)
        self.offsets.insert(i, offset)
        return True

    def __contains__(self, version: int) -> bool:
        i = bisect.bisect_left(self.versions, version)
        return i < len(self.versions) and self.versions[i] == version

    def select(self, gt: int | None, lte: int | None, desc: bool, limit: int | None) -> list[StoredEvent]:
        lo = 0 if gt is None else bisect.bisect_right(self.versions, gt)
        hi = len(self.versions) if lte is None else bisect.bisect_right(self.versions, lte)
        if lo >= hi:
            return []
        if desc:
            start = lo if limit is None else max(lo, hi - limit)
            return self.events[start:hi][::-1]
        stop = hi if limit is None else min(hi, lo + limit)
        return self.events[lo:stop]


class TopicIndex:
    """Base: what a KafkaLog feeds each committed record of a topic into."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.corrupt: list[CorruptRecord] = []
        # Offsets already indexed from our own committed writes, per partition;
        # the consumer skips them when it reads them back.
        self._own: dict[int, set[int]] = {}

    def consume(self, partition: int, offset: int, key: Any, value: Any, headers: Any) -> None:
        own = self._own.get(partition)
        if own and offset in own:
            own.discard(offset)
            return
        self.add(partition, offset, key, value, headers)

    def add_own(self, partition: int, offset: int, key: Any, value: Any, headers: Any) -> None:
        self._own.setdefault(partition, set()).add(offset)
        self.add(partition, offset, key, value, headers)

    def add(self, partition: int, offset: int, key: Any, value: Any, headers: Any) -> None:
        raise NotImplementedError

    def report_corrupt(self, partition: int, offset: int, key: bytes | None, reason: str) -> CorruptRecord:
        c = CorruptRecord(self.topic, partition, offset, key, reason)
        self.corrupt.append(c)
        logger.error(
            "Corrupt record skipped: topic=%s partition=%d offset=%d key=%r: %s",
            self.topic,
            partition,
            offset,
            key,
            reason,
        )
        return c

    def decode_or_report(
        self, partition: int, offset: int, key: Any, value: Any, headers: Any
    ) -> StoredEvent | CorruptRecord:
        """The record's stored event, or (when it cannot be decoded) its report as corrupt."""
        try:
            return decode_event(key, value, headers)
        except ValueError as e:
            return self.report_corrupt(partition, offset, key, str(e))


class EventsIndex(TopicIndex):
    """{partition: ordered notification log} and {aggregate id: _Sequence}."""

    def __init__(self, topic: str, num_partitions: int) -> None:
        super().__init__(topic)
        self.num_partitions = num_partitions
        self.log_offsets: list[list[int]] = [[] for _ in range(num_partitions)]
        self.log_events: list[list[StoredEvent]] = [[] for _ in range(num_partitions)]
        self.sequences: dict[str, _Sequence] = {}
        self.corrupt_by_key: dict[str, list[CorruptRecord]] = {}

    def add(self, partition: int, offset: int, key: Any, value: Any, headers: Any) -> None:
        s = self.decode_or_report(partition, offset, key, value, headers)
        if isinstance(s, CorruptRecord):
            if key is not None:
                try:
                    self.corrupt_by_key.setdefault(key.decode("utf-8"), []).append(s)
                except UnicodeDecodeError:
                    pass
            return
        seq = self.sequences.get(str(s.originator_id))
        if seq is None:
            seq = self.sequences[str(s.originator_id)] = _Sequence()
        if not seq.add(s, offset):
            # Cannot happen with one fenced writer per partition; if it does
            # (e.g. a misconfigured second writer), the first record wins,
            # deterministically for every reader replaying from offset zero.
            logger.error(
                "Duplicate (originator_id, version) ignored: topic=%s partition=%d "
                "offset=%d id=%s version=%d",
                self.topic,
                partition,
                offset,
                s.originator_id,
                s.originator_version,
            )
            return
        offsets = self.log_offsets[partition]
        if not offsets or offset > offsets[-1]:
            offsets.append(offset)
            self.log_events[partition].append(s)
        else:
            i = bisect.bisect_left(offsets, offset)
            offsets.insert(i, offset)
            self.log_events[partition].insert(i, s)


class SnapshotsIndex(TopicIndex):
    """Latest snapshot per aggregate (the topic is compacted on the same key)."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.latest: dict[str, StoredEvent] = {}

    def add(self, partition: int, offset: int, key: Any, value: Any, headers: Any) -> None:
        s = self.decode_or_report(partition, offset, key, value, headers)
        if isinstance(s, CorruptRecord):
            return
        k = str(s.originator_id)
        current = self.latest.get(k)
        if current is None or s.originator_version > current.originator_version:
            self.latest[k] = s


class TrackingIndex(TopicIndex):
    """Max tracked notification id per tracking name."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.max_ids: dict[str, int] = {}

    def add(self, partition: int, offset: int, key: Any, value: Any, headers: Any) -> None:
        try:
            name = key.decode("utf-8")
            nid = int(value.decode("ascii"))
        except (AttributeError, UnicodeDecodeError, ValueError) as e:
            self.report_corrupt(partition, offset, key, f"bad tracking record: {e!r}")
            return
        if nid > self.max_ids.get(name, -1):
            self.max_ids[name] = nid
