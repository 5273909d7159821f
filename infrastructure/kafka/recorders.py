"""eventsourcing recorders and the infrastructure factory backed by Kafka.

See the package docstring for the design (positions, tracking, fencing).
"""

from __future__ import annotations

import bisect
import threading
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    ListenNotifySubscription,
    Notification,
    NotSupportedError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import resolve_topic

from infrastructure.kafka.admin import TopicSpec, ensure_topics
from infrastructure.kafka.codec import (
    KIND_SNAPSHOT,
    OutRecord,
    encode_tracking,
    event_records,
    originator_key,
    partition_for_key,
)
from infrastructure.kafka.errors import CorruptRecord, CorruptRecordError
from infrastructure.kafka.index import EventsIndex, SnapshotsIndex, TrackingIndex
from infrastructure.kafka.log import KafkaLog
from infrastructure.kafka.settings import KafkaSettings

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from eventsourcing.utils import Environment, EnvType

    from infrastructure.kafka.writer import GroupOffsets

INFINITE = {"retention.ms": "-1", "retention.bytes": "-1"}
EVENTS_TOPIC_CONFIG = {**INFINITE, "cleanup.policy": "delete"}
COMPACTED_TOPIC_CONFIG = {**INFINITE, "cleanup.policy": "compact"}


def tracking_name(application_name: str, partition: int) -> str:
    """The tracking name of one partition of an upstream application's log.

    Positions are per partition, so a downstream processor tracks each
    upstream partition separately: ``Tracking(tracking_name(app, p), id)``.
    """
    return f"{application_name}#{partition}"


def _check_tracking(index: TrackingIndex, tracking: Tracking) -> None:
    current = index.max_ids.get(tracking.application_name)
    if current is not None and current >= tracking.notification_id:
        msg = (
            f"Tracking notification ID {tracking.notification_id} for "
            f"{tracking.application_name!r} not greater than current max "
            f"tracking ID {current}"
        )
        raise IntegrityError(msg)


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


class _SelectEvents:
    """eventsourcing's ``select_events`` signature, declared once for every recorder here;
    each answers ``_select_events`` with the originator id as a string key."""

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return self._select_events(str(originator_id), gt, lte, desc, limit)

    def _select_events(self, key: str, gt: int | None, lte: int | None, desc: bool,
                       limit: int | None) -> Sequence[StoredEvent]:
        raise NotImplementedError


class _PartitionNotifications:
    """eventsourcing's integer notification API over one partition of a recorder's log:
    ``_notification_partition`` says which recorder and partition."""

    def _notification_partition(self) -> tuple[KafkaApplicationRecorder, int]:
        raise NotImplementedError

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True,
                             ) -> Sequence[Notification]:
        recorder, partition = self._notification_partition()
        return recorder.select_partition_notifications(
            partition, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )

    def max_notification_id(self) -> int | None:
        recorder, partition = self._notification_partition()
        return recorder.max_partition_notification_id(partition)


class KafkaAggregateRecorder(_SelectEvents, AggregateRecorder):
    """Events of aggregates in a partitioned events topic (key = originator id).

    Writes go through the log's fenced transactional writer; reads catch up
    to the last stable offset first, then answer from the in-memory index.
    """

    def __init__(self, log: KafkaLog, tracking_topic: str | None = None) -> None:
        self.log = log
        index = log.indexes[log.primary]
        assert isinstance(index, EventsIndex)
        self.index: EventsIndex = index
        self.topic = log.primary
        self.tracking_topic = tracking_topic

    @property
    def num_partitions(self) -> int:
        return self.log.num_partitions

    @property
    def corrupt_records(self) -> list[CorruptRecord]:
        """Records of the events topic that could not be decoded (skipped)."""
        return list(self.index.corrupt)

    def partition_of(self, originator_id: UUID | str) -> int:
        return partition_for_key(originator_key(originator_id), self.num_partitions)

    def acquire(self) -> None:
        """Take over the owned partitions now (fencing any older writer)."""
        self.log.acquire()

    def _insert(
        self,
        stored_events: Sequence[StoredEvent],
        tracking: Tracking | None = None,
        *,
        trackings: Sequence[Tracking] = (),
        out_records: Sequence[OutRecord] = (),
        group_offsets: GroupOffsets | None = None,
    ) -> list[int]:
        """Events, tracking records and any other records in one Kafka transaction.

        ``trackings`` lets one transaction advance several positions (a node
        consuming two upstream partitions); ``out_records`` are written as
        given (any topic, e.g. a node's rejected-messages topic) and get their
        ``offset`` set once committed.
        """
        records = event_records(self.topic, stored_events, self.num_partitions)
        all_trackings = ([tracking] if tracking is not None else []) + list(trackings)
        if all_trackings and self.tracking_topic is None:
            msg = "This recorder does not record tracking objects"
            raise NotSupportedError(msg)
        for t in all_trackings:
            key, value, headers = encode_tracking(t.application_name, t.notification_id)
            records.append(OutRecord(self.tracking_topic, 0, key, value, headers))  # type: ignore[arg-type]
        records += out_records
        if not records:
            return []

        def check() -> None:
            seen: set[tuple[str, int]] = set()
            for s in stored_events:
                k = (str(s.originator_id), s.originator_version)
                if k in seen:
                    msg = f"Stored events are not unique: {k}"
                    raise IntegrityError(msg)
                seen.add(k)
                seq = self.index.sequences.get(k[0])
                if seq is not None and s.originator_version in seq:
                    msg = f"Stored event already recorded: {k}"
                    raise IntegrityError(msg)
            if all_trackings:
                index = self.log.indexes[self.tracking_topic]  # type: ignore[index]
                assert isinstance(index, TrackingIndex)
                names = [t.application_name for t in all_trackings]
                if len(set(names)) != len(names):
                    msg = f"Several tracking records for the same name in one batch: {names}"
                    raise IntegrityError(msg)
                for t in all_trackings:
                    _check_tracking(index, t)

        offsets = self.log.write(records, check, group_offsets=group_offsets)
        return [o + 1 for o in offsets[: len(stored_events)]]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        self._insert(stored_events, kwargs.get("tracking"))
        return None

    def _select_events(self, key: str, gt: int | None, lte: int | None, desc: bool,
                       limit: int | None) -> Sequence[StoredEvent]:
        with self.log.caught_up():
            corrupt = self.index.corrupt_by_key.get(key)
            if corrupt:
                raise CorruptRecordError(corrupt[0])
            seq = self.index.sequences.get(key)
            if seq is None:
                return []
            return seq.select(gt, lte, desc, limit)


class KafkaApplicationRecorder(_PartitionNotifications, KafkaAggregateRecorder, ApplicationRecorder):
    """Adds notification logs: one per partition (see the package docstring).

    The primary API is per partition: :meth:`select_partition_notifications`,
    :meth:`max_partition_notification_id`, :meth:`subscribe_partition`, or
    :meth:`partition_view` for a plain ``ApplicationRecorder`` over one
    partition. The integer API inherited from eventsourcing
    (``select_notifications`` etc.) works only when the topic has exactly one
    partition, and raises ``NotSupportedError`` otherwise, because there is no
    global order across partitions.
    """

    poll_interval = 0.2

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Returns, for each stored event, its notification id *within its
        own partition* (Kafka offset + 1); ``partition_of(originator_id)``
        says which partition.

        Besides eventsourcing's ``tracking``, accepts ``trackings`` (several
        Tracking objects) and ``out_records`` (OutRecords for other topics),
        all committed in the same Kafka transaction as the events; an
        application passes them as keyword arguments of ``save()``."""
        return self._insert(
            stored_events,
            kwargs.get("tracking"),
            trackings=kwargs.get("trackings", ()),
            out_records=kwargs.get("out_records", ()),
            group_offsets=kwargs.get("group_offsets"),
        )

    # -- per partition (primary API) ----------------------------------------

    def _check_partition(self, partition: int) -> None:
        if not 0 <= partition < self.num_partitions:
            msg = f"Partition {partition} outside 0..{self.num_partitions - 1}"
            raise ValueError(msg)

    def select_partition_notifications(
        self,
        partition: int,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        """Notifications of one partition, ids = Kafka offset + 1 (not
        contiguous: transaction markers and aborted records take offsets)."""
        self._check_partition(partition)
        with self.log.caught_up():
            offsets = self.index.log_offsets[partition]
            events = self.index.log_events[partition]
            if start is None:
                lo = 0
            else:
                # id >= start  <=> offset >= start - 1;  id > start <=> offset >= start
                lo = bisect.bisect_left(offsets, start - 1 if inclusive_of_start else start)
            hi = len(offsets) if stop is None else bisect.bisect_right(offsets, stop - 1)
            results: list[Notification] = []
            topic_set = set(topics)
            for i in range(lo, hi):
                s = events[i]
                if topic_set and s.topic not in topic_set:
                    continue
                results.append(
                    Notification(
                        id=offsets[i] + 1,
                        originator_id=s.originator_id,
                        originator_version=s.originator_version,
                        topic=s.topic,
                        state=s.state,
                    )
                )
                if len(results) >= limit:
                    break
            return results

    def max_partition_notification_id(self, partition: int) -> int | None:
        self._check_partition(partition)
        with self.log.caught_up():
            offsets = self.index.log_offsets[partition]
            return offsets[-1] + 1 if offsets else None

    def partition_view(self, partition: int) -> KafkaPartitionView:
        self._check_partition(partition)
        return KafkaPartitionView(self, partition)

    def subscribe_partition(
        self, partition: int, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return self.partition_view(partition).subscribe(gt=gt, topics=topics)

    # -- eventsourcing's integer API ------------------------------------------

    def _single_partition(self) -> int:
        if self.num_partitions != 1:
            msg = (
                f"Topic {self.topic} has {self.num_partitions} partitions: there is no "
                "single notification order. Use select_partition_notifications(), "
                "max_partition_notification_id(), subscribe_partition() or "
                "partition_view(p)."
            )
            raise NotSupportedError(msg)
        return 0

    def _notification_partition(self) -> tuple[KafkaApplicationRecorder, int]:
        return self, self._single_partition()

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return self.subscribe_partition(self._single_partition(), gt=gt, topics=topics)


class KafkaPartitionView(_SelectEvents, _PartitionNotifications, ApplicationRecorder):
    """An ApplicationRecorder whose notification log is one partition."""

    def __init__(self, recorder: KafkaApplicationRecorder, partition: int) -> None:
        self.recorder = recorder
        self.partition = partition

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return self.recorder.insert_events(stored_events, **kwargs)

    def _select_events(self, key: str, gt: int | None, lte: int | None, desc: bool,
                       limit: int | None) -> Sequence[StoredEvent]:
        return self.recorder.select_events(key, gt=gt, lte=lte, desc=desc, limit=limit)

    def _notification_partition(self) -> tuple[KafkaApplicationRecorder, int]:
        return self.recorder, self.partition

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return KafkaSubscription(self, gt=gt, topics=topics)


class KafkaSubscription(ListenNotifySubscription[KafkaPartitionView]):
    """Wakes on own writes and polls every ``poll_interval`` for others'."""

    def __init__(
        self, recorder: KafkaPartitionView, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._log = recorder.recorder.log
        self._log.listen(self._has_been_notified)
        self._interval = recorder.recorder.poll_interval
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stopped.wait(self._interval):
            self._has_been_notified.set()

    def stop(self) -> None:
        self._stopped.set()
        super().stop()
        self._log.unlisten(self._has_been_notified)


# ---------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------


class _TrackingReader:
    """``max_tracking_id`` answered from a tracking topic's index, caught up first."""

    log: KafkaLog
    tracking_index: TrackingIndex

    def _read_tracking(self, topic: str) -> None:
        index = self.log.indexes[topic]
        assert isinstance(index, TrackingIndex)
        self.tracking_index = index

    def max_tracking_id(self, application_name: str) -> int | None:
        with self.log.caught_up():
            return self.tracking_index.max_ids.get(application_name)


class KafkaTrackingRecorder(_TrackingReader, TrackingRecorder):
    """Tracking records in a compacted one-partition topic (key = tracking
    name, value = notification id), written by a fenced transactional writer."""

    def __init__(self, log: KafkaLog) -> None:
        self.log = log
        self._read_tracking(log.primary)

    def insert_tracking(self, tracking: Tracking) -> None:
        key, value, headers = encode_tracking(tracking.application_name, tracking.notification_id)
        self.log.write(
            [OutRecord(self.log.primary, 0, key, value, headers)],
            lambda: _check_tracking(self.tracking_index, tracking),
        )


class KafkaProcessRecorder(_TrackingReader, KafkaApplicationRecorder, ProcessRecorder):
    """Events and the tracking record in one Kafka transaction.

    The tracking record goes to the tracking topic (compacted, one partition)
    in the same transaction as the events, so either both are visible to
    read_committed readers or neither is.
    """

    def __init__(self, log: KafkaLog, tracking_topic: str) -> None:
        super().__init__(log, tracking_topic=tracking_topic)
        self._read_tracking(tracking_topic)

    def insert_tracking(self, tracking: Tracking) -> None:
        self._insert([], tracking)


# ---------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------


class KafkaSnapshotRecorder(_SelectEvents, AggregateRecorder):
    """Snapshots in a compacted topic keyed by originator id, so compaction
    keeps the latest snapshot of each aggregate; the index keeps only the
    latest version too. Inserting a snapshot whose version is not newer than
    the stored one is an IntegrityError."""

    def __init__(self, log: KafkaLog) -> None:
        self.log = log
        index = log.indexes[log.primary]
        assert isinstance(index, SnapshotsIndex)
        self.index: SnapshotsIndex = index

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return None
        records = event_records(self.log.primary, stored_events, self.log.num_partitions, KIND_SNAPSHOT)

        def check() -> None:
            newest: dict[str, int] = {}
            for s in stored_events:
                k = str(s.originator_id)
                current = self.index.latest.get(k)
                floor = max(
                    newest.get(k, -(2**63)),
                    current.originator_version if current else -(2**63),
                )
                if s.originator_version <= floor:
                    msg = f"Snapshot {k} v{s.originator_version} not newer than v{floor}"
                    raise IntegrityError(msg)
                newest[k] = s.originator_version

        self.log.write(records, check)
        return None

    def _select_events(self, key: str, gt: int | None, lte: int | None, desc: bool,
                       limit: int | None) -> Sequence[StoredEvent]:
        with self.log.caught_up():
            s = self.index.latest.get(key)
        if s is None or limit == 0:
            return []
        if gt is not None and not s.originator_version > gt:
            return []
        if lte is not None and not s.originator_version <= lte:
            return []
        return [s]


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------


class KafkaFactory(InfrastructureFactory[KafkaTrackingRecorder]):
    """``PERSISTENCE_MODULE=infrastructure.kafka``.

    Settings (each may carry the application-name prefix, e.g.
    ``BANK_KAFKA_EVENTS_TOPIC``): KAFKA_BOOTSTRAP_SERVERS (falls back to
    PARSEC_KAFKA_BOOTSTRAP, then 127.0.0.1:9092), KAFKA_EVENTS_TOPIC (default
    ``parsec.<app name>.events``), KAFKA_SNAPSHOTS_TOPIC (default
    ``<events>.snapshots``), KAFKA_TRACKING_TOPIC (default
    ``<events>.tracking``), KAFKA_PARTITIONS (default 4),
    KAFKA_REPLICATION_FACTOR (default -1: broker default), KAFKA_TIMEOUT
    (seconds, default 12), KAFKA_TRANSACTION_TIMEOUT_MS (default 15000),
    KAFKA_TRANSACTIONAL_ID_PREFIX (default ``parsec``), KAFKA_OWNED_PARTITIONS
    (``all`` or e.g. ``0,2``), CREATE_TABLE (create missing topics, default
    true).

    Recorders made by one factory share one log (consumer + writer) per topic
    group, so they never fence each other; ``close()`` closes them.
    """

    aggregate_recorder_class = KafkaAggregateRecorder
    application_recorder_class = KafkaApplicationRecorder
    tracking_recorder_class = KafkaTrackingRecorder
    process_recorder_class = KafkaProcessRecorder
    snapshot_recorder_class = KafkaSnapshotRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        self.settings = KafkaSettings.from_env(self.env)
        self._logs: dict[str, KafkaLog] = {}
        self._logs_lock = threading.Lock()

    def _log(self, which: str) -> KafkaLog:
        with self._logs_lock:
            log = self._logs.get(which)
            if log is not None:
                return log
            s = self.settings
            if which == "events":
                events = TopicSpec(s.events_topic, s.partitions, EVENTS_TOPIC_CONFIG)
                tracking = TopicSpec(s.tracking_topic, 1, COMPACTED_TOPIC_CONFIG)
                specs = [events, tracking]
                counts = ensure_topics(s, specs)
                indexes = {
                    events.name: EventsIndex(events.name, counts[events.name]),
                    tracking.name: TrackingIndex(tracking.name),
                }
                log = KafkaLog(s, events, indexes, specs, counts)
            elif which == "snapshots":
                snaps = TopicSpec(s.snapshots_topic, s.partitions, COMPACTED_TOPIC_CONFIG)
                counts = ensure_topics(s, [snaps])
                log = KafkaLog(s, snaps, {snaps.name: SnapshotsIndex(snaps.name)}, [snaps], counts)
            elif which == "tracking":
                tracking = TopicSpec(s.tracking_topic, 1, COMPACTED_TOPIC_CONFIG)
                counts = ensure_topics(s, [tracking])
                log = KafkaLog(s, tracking, {tracking.name: TrackingIndex(tracking.name)}, [tracking], counts)
            else:  # pragma: no cover
                raise ValueError(which)
            self._logs[which] = log
            return log

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        if purpose == "snapshots":
            return self.snapshot_recorder_class(self._log("snapshots"))
        return self.aggregate_recorder_class(self._log("events"))

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.application_recorder_class
        assert issubclass(cls, KafkaApplicationRecorder)
        return cls(self._log("events"), tracking_topic=self.settings.tracking_topic)

    def tracking_recorder(
        self, tracking_recorder_class: type[KafkaTrackingRecorder] | None = None
    ) -> KafkaTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else self.tracking_recorder_class
        assert tracking_recorder_class is not None
        assert issubclass(tracking_recorder_class, KafkaTrackingRecorder)
        return tracking_recorder_class(self._log("tracking"))

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.process_recorder_class
        assert issubclass(cls, KafkaProcessRecorder)
        return cls(self._log("events"), tracking_topic=self.settings.tracking_topic)

    def close(self) -> None:
        with self._logs_lock:
            logs, self._logs = list(self._logs.values()), {}
        for log in logs:
            log.close()
        super().close()
