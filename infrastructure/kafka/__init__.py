"""Kafka-backed persistence module for eventsourcing.

Select it the library's way: ``PERSISTENCE_MODULE=infrastructure.kafka``.
Events live in Kafka and nowhere else; the in-memory indexes are caches
rebuilt from the log.

Topics
------
* events topic (``KAFKA_EVENTS_TOPIC``, default ``parsec.<app>.events``):
  ``KAFKA_PARTITIONS`` partitions (default 4), ``retention.ms=-1``,
  ``cleanup.policy=delete``. Record key = originator id as text; partition =
  ``murmur2(key) % partitions`` (the Java client's default partitioner, also
  kafka-python's), computed explicitly and passed to ``send``. Value = the
  stored event's state bytes; headers carry the format, originator version,
  event topic and id type (uuid/str). All events of an aggregate are in one
  partition, in version order.
* snapshots topic (``<events>.snapshots``): compacted, same key, so
  compaction keeps the latest snapshot of each aggregate.
* tracking topic (``<events>.tracking``): compacted, one partition, key =
  tracking name, value = notification id.

Writers and optimistic concurrency
----------------------------------
Kafka has no conditional append, so there is one writer per partition set.
A recorder writes through a transactional producer whose
``transactional.id`` is derived from the topic and the owned partitions:
``parsec-<topic>-<p>`` when it owns one partition, ``parsec-<topic>-all<N>``
when it owns all N (the default), ``parsec-<topic>-0.2`` for a subset
(``KAFKA_OWNED_PARTITIONS``). Writers of the same partition set must use the
same set (a node runtime assigns sets; overlapping different sets are not
fenced against each other).

The writer is acquired lazily, on the first write (or ``recorder.acquire()``):
``init_transactions`` fences any older writer with the same id and aborts its
open transaction; then the writer reads its partitions to the last stable
offset with a ``read_committed`` consumer (assign/seek/end_offsets) and builds
the index ``{aggregate id -> versions, events, offsets}``. Versions are
checked against that index: a duplicate ``(originator_id, version)`` is
eventsourcing's ``IntegrityError``. While it holds the id no one else can
commit to its partitions, so the check needs no read before each write. A
batch (any number of aggregates, any owned partitions, plus a tracking record)
is one Kafka transaction. A writer fenced by a newer one gets
:class:`WriterFencedError` (an ``IntegrityError``: nothing was written; reload
and retry); its next write re-acquires, which re-reads the partitions and
fences the other writer in turn. Pure readers never acquire, so they never
fence the writer.

Client library (``KAFKA_CLIENT``): the writer is a confluent-kafka
(librdkafka) transactional producer by default (``confluent``; ~8x faster
produce than kafka-python, whose ``send`` was the node's hot spot), or
kafka-python's (``kafka-python``; the default only when confluent-kafka is not
installed). Both use the same transactional id, so either fences the other.
With confluent, offsets come from the delivery reports, served while
``commit_transaction(KAFKA_TIMEOUT)`` flushes the batch; a fatal or fencing
error (``_FENCED``, ``PRODUCER_FENCED``, ``INVALID_PRODUCER_EPOCH``) is
:class:`WriterFencedError`, an abortable one is aborted (``OperationalError``,
nothing committed), a retriable one or a timeout of the commit is
:class:`CommitOutcomeUnknownError`. Reads always use kafka-python's
``read_committed`` consumer.

Reads: ``select_events`` catches the consumer up to the last stable offset
(one ListOffsets round trip when nothing is new), so other writers' committed
events are seen, then answers from the index (gt/lte/desc/limit as the
library's recorders). Own commits are added to the index immediately (the
consumer skips them when it reads them back).

Positions (there is no global order)
------------------------------------
Each partition is one ordered notification log. A notification id is the
record's Kafka offset + 1 within its partition (so "last processed id" equals
Kafka's committed-offset convention, and a runner can seek straight to it).
Ids are increasing but not contiguous: transaction markers and aborted records
take offsets. The primary API is per partition:

* ``recorder.select_partition_notifications(partition, start, limit, stop=None,
  topics=(), inclusive_of_start=True)``
* ``recorder.max_partition_notification_id(partition)``
* ``recorder.subscribe_partition(partition, gt=None, topics=())``
* ``recorder.partition_view(partition)`` -> a plain ``ApplicationRecorder``
  whose notification log is that partition (for library machinery).

eventsourcing's integer API (``select_notifications``,
``max_notification_id``, ``subscribe``) works only on a one-partition topic
(it is partition 0) and raises ``NotSupportedError`` otherwise.
``insert_events`` returns, per event, its id within its own partition
(``recorder.partition_of(originator_id)`` says which).

Tracking
--------
A downstream processor tracks each upstream partition under its own name,
``tracking_name(upstream_app, partition)`` = ``"<app>#<p>"``, so
``max_tracking_id`` is a per-partition position. The ProcessRecorder writes
the tracking record to the tracking topic *in the same Kafka transaction* as
the events, so events and position commit atomically (read-process-write,
exactly once for read_committed readers). We chose a tracking record over
consumer-group offsets (``send_offsets_to_transaction``) because
eventsourcing's ``Tracking`` names an application, not a topic-partition,
tracking must work for upstreams that are not Kafka topics, and
``max_tracking_id`` must be answerable from the log itself; a node that
consumes a Kafka inbound topic can still add ``send_offsets_to_transaction``
on top. The standalone TrackingRecorder uses the same topic layout with its
own writer (``parsec-<tracking topic>-0``).

A consumer of several upstream partitions (a node: inbound p and control p)
passes ``trackings=[Tracking, ...]`` to ``save()`` (so to ``insert_events``),
and records for other topics as ``out_records=[OutRecord, ...]`` (a node's
rejected messages); all of them commit in the events' Kafka transaction, and
each OutRecord gets its ``offset`` once committed. ``KAFKA_READ_OWNED_ONLY=y``
makes a writer read (index) only its owned partitions of the events and
snapshots topics: a node's per-partition writer needs no one else's events.

Bad input and failures
----------------------
A record on the events topic that cannot be decoded is skipped with a report:
logged at ERROR with topic, partition and offset, kept in
``recorder.corrupt_records`` (:class:`CorruptRecord`), and reading the
aggregate whose key it carries raises :class:`CorruptRecordError` (so a
channel is never loaded with a silent gap). An unreachable or non-Kafka
bootstrap address raises :class:`BrokerUnavailableError` (an
``OperationalError``) within about ``KAFKA_TIMEOUT`` seconds (default 12).
A commit the broker does not confirm within ``KAFKA_TIMEOUT`` raises
:class:`CommitOutcomeUnknownError` (the batch may or may not be in the log;
reload before retrying). After any failed transaction the writer is discarded;
the next write re-acquires, which aborts anything left open and re-reads.
A record over ``MAX_RECORD_BYTES`` (librdkafka's default limit, 1,000,000 bytes)
is refused before anything is sent, and a record the cluster refuses for its
size, with :class:`RecordTooLargeError`: retrying cannot cure it, so the
caller must set its cause aside (the node does, see ``infrastructure.node``).

Limits: the index holds every event of the topic in memory (snapshots and
ownership of a partition subset bound it in production); a read costs one
ListOffsets round trip (~1 ms) to reach the last stable offset; two processes
contending for the same partitions keep fencing each other (correct but slow),
so partition ownership belongs to the node runtime, not to per-write races.

Modules
-------
* ``errors``: the errors above (and :class:`CorruptRecord`).
* ``settings``: :class:`KafkaSettings`, read from the eventsourcing ``Environment``.
* ``codec``: record keys, partitions, headers and values (``encode_event``,
  ``decode_event``, ``encode_tracking``, ``OutRecord``).
* ``index``: the in-memory indexes of the events, snapshots and tracking topics.
* ``admin``: creating and describing topics (``TopicSpec``, ``ensure_topics``).
* ``log``: :class:`KafkaLog`, reading its topics into their indexes and writing
  through its writer; readers of the indexes hold it with ``log.exclusive()``
  (``log.caught_up()``: catch up first).
* ``writer``: the transactional writer, a port (``TransactionalWriter``: begin,
  send, send group offsets, commit, abort, fencing) with one adapter per client
  library (``ConfluentWriter``, ``KafkaPythonWriter``).
* ``recorders``: the eventsourcing recorders and the factory.

This package imports its Kafka clients when imported: eventsourcing finds the
factory among the members of the ``PERSISTENCE_MODULE`` module, so it must be
here. Code that must not load a Kafka client (the configuration) reads the
connection settings from :mod:`infrastructure.kafka_access`, outside the package.
"""

from infrastructure.kafka.codec import partition_for_key
from infrastructure.kafka.errors import (
    BrokerUnavailableError,
    CommitOutcomeUnknownError,
    CorruptRecord,
    CorruptRecordError,
    RecordTooLargeError,
    WriterFencedError,
)
from infrastructure.kafka.log import KafkaLog
from infrastructure.kafka.recorders import (
    KafkaAggregateRecorder,
    KafkaApplicationRecorder,
    KafkaFactory,
    KafkaPartitionView,
    KafkaProcessRecorder,
    KafkaSnapshotRecorder,
    KafkaSubscription,
    KafkaTrackingRecorder,
    tracking_name,
)
from infrastructure.kafka.settings import KafkaSettings

Factory = KafkaFactory

__all__ = [
    "BrokerUnavailableError",
    "CommitOutcomeUnknownError",
    "CorruptRecord",
    "CorruptRecordError",
    "Factory",
    "KafkaAggregateRecorder",
    "KafkaApplicationRecorder",
    "KafkaFactory",
    "KafkaLog",
    "KafkaPartitionView",
    "KafkaProcessRecorder",
    "KafkaSettings",
    "KafkaSnapshotRecorder",
    "KafkaSubscription",
    "KafkaTrackingRecorder",
    "RecordTooLargeError",
    "WriterFencedError",
    "partition_for_key",
    "tracking_name",
]
