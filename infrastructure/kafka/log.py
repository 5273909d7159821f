"""The log: :class:`KafkaLog` reads some topics with one read_committed consumer into their
indexes and (lazily, once it writes) holds one fenced transactional writer
(:mod:`infrastructure.kafka.writer`) of its primary topic's owned partitions.

See the package docstring (``infrastructure/kafka/__init__.py``) for the design; this module and
its siblings (``codec``, ``index``, ``admin``, ``writer``) are its mechanics.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import OperationalError, ProgrammingError
from kafka import KafkaConsumer, TopicPartition

from infrastructure.kafka.codec import record_size
from infrastructure.kafka.errors import RecordTooLargeError, connect_error
from infrastructure.kafka.writer import open_writer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from infrastructure.kafka.admin import TopicSpec
    from infrastructure.kafka.codec import OutRecord
    from infrastructure.kafka.index import TopicIndex
    from infrastructure.kafka.settings import KafkaSettings
    from infrastructure.kafka.writer import GroupOffsets, TransactionalWriter

logger = logging.getLogger(__name__)


class KafkaLog:
    """One read_committed consumer over some topics, plus (once it writes)
    one transactional writer whose id is derived from the primary topic and
    the owned partitions. Every public method is serialised by a lock; a reader
    of the indexes holds it with :meth:`exclusive` (or :meth:`caught_up`)."""

    def __init__(
        self,
        settings: KafkaSettings,
        primary: TopicSpec,
        indexes: dict[str, TopicIndex],
        specs: Sequence[TopicSpec],
        partition_counts: dict[str, int],
    ) -> None:
        self.settings = settings
        self.primary = primary.name
        self.indexes = indexes
        self.partition_counts = dict(partition_counts)
        self.num_partitions = self.partition_counts[primary.name]
        owned = settings.owned_partitions
        if owned is None:
            self.owned: tuple[int, ...] = tuple(range(self.num_partitions))
        else:
            bad = [p for p in owned if not 0 <= p < self.num_partitions]
            if bad:
                msg = f"KAFKA_OWNED_PARTITIONS {bad} outside 0..{self.num_partitions - 1}"
                raise ProgrammingError(msg)
            self.owned = owned
        self.transactional_id = self.make_transactional_id(
            settings.transactional_id_prefix, self.primary, self.owned, self.num_partitions
        )
        self._lock = threading.RLock()
        self._writer: TransactionalWriter | None = None
        self.writer_generation = 0
        self._closed = False
        self._listeners: set[threading.Event] = set()
        self._tps = [
            TopicPartition(s.name, p)
            for s in specs
            for p in range(self.partition_counts[s.name])
            if not (settings.read_owned_only and s.name == self.primary and p not in self.owned)
        ]
        # next offset after the last record read, per partition: where a renewed reader resumes
        self._read_to: dict[Any, int] = {}
        self._consumer = self._new_reader()

    def _new_reader(self) -> KafkaConsumer:
        try:
            consumer = KafkaConsumer(
                client_id=f"parsec-reader-{self.primary}",
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                max_poll_records=5000,
                fetch_max_wait_ms=50,
                **self.settings.client_kwargs(),
            )
        except Exception as e:
            raise connect_error(self.settings, "consumer connect", e) from e
        consumer.assign(self._tps)
        for tp in self._tps:
            if tp in self._read_to:
                consumer.seek(tp, self._read_to[tp])
            else:
                consumer.seek_to_beginning(tp)
        return consumer

    def _renew_reader(self, why: BaseException) -> None:
        """Replace the reader after it failed to answer: a kafka-python 3.0.12 consumer that had
        asked for end offsets before a broker of a cluster was killed kept timing out after the
        broker came back, while a new consumer answered at once. The new one resumes after the
        last record read; the old one is closed on a thread (its close may wait on the network)."""
        old = self._consumer
        logger.warning("Reader of %s did not answer (%s: %s); replacing it", self.primary, type(why).__name__, why)
        self._consumer = self._new_reader()
        threading.Thread(target=self._close_reader, args=(old,), daemon=True,
                         name=f"parsec-close-reader-{self.primary}").start()

    @staticmethod
    def _close_reader(consumer: KafkaConsumer) -> None:
        try:
            consumer.close(autocommit=False)
        except Exception:
            logger.debug("closing a replaced reader failed", exc_info=True)

    @staticmethod
    def make_transactional_id(prefix: str, topic: str, owned: Sequence[int], num_partitions: int) -> str:
        if len(owned) == 1:
            return f"{prefix}-{topic}-{owned[0]}"
        if tuple(owned) == tuple(range(num_partitions)):
            return f"{prefix}-{topic}-all{num_partitions}"
        return f"{prefix}-{topic}-" + ".".join(map(str, owned))

    # -- reading ------------------------------------------------------------

    def catch_up(self) -> None:
        """Read every assigned partition up to its last stable offset.

        Not needed, so not done, while this log holds the writer of the partitions it reads
        (``KAFKA_READ_OWNED_ONLY``, a node's partition store): it read them to the end when it
        acquired the writer (``init_transactions`` had fenced every older one), and since then
        every record on them is its own, indexed as it commits. A newer owner's records would
        fence this writer, so nothing decided from a stale index can commit. This saves a
        ListOffsets round trip to the broker on every read that misses the aggregate cache
        (a channel's first payment after a takeover, every snapshot): ~10% of a node's time."""
        with self._lock:
            self._check_open()
            if self._writer is not None and self.settings.read_owned_only:
                return
            self._read_to_end()

    def _read_to_end(self) -> None:
        with self._lock:
            try:
                end = self._consumer.end_offsets(self._tps, timeout_ms=self.settings.timeout_ms)
            except Exception as e:
                self._renew_reader(e)  # the next call asks with a new client
                raise connect_error(self.settings, "end_offsets", e) from e
            deadline = time.monotonic() + self.settings.timeout
            while True:
                behind = False
                for tp in self._tps:
                    if end.get(tp) is None:
                        continue
                    if self._consumer.position(tp, timeout_ms=self.settings.timeout_ms) < end[tp]:
                        behind = True
                        break
                if not behind:
                    return
                if time.monotonic() > deadline:
                    msg = (
                        f"No progress for {self.settings.timeout:g}s reading "
                        f"{self.primary} up to its last stable offsets"
                    )
                    self._renew_reader(OperationalError(msg))
                    raise OperationalError(msg)
                batch = self._consumer.poll(timeout_ms=100)
                if batch:
                    # The bound is on lack of progress, not on the log's size.
                    deadline = time.monotonic() + self.settings.timeout
                for tp, records in batch.items():
                    index = self.indexes[tp.topic]
                    for r in records:
                        index.consume(tp.partition, r.offset, r.key, r.value, r.headers)
                    if records:
                        self._read_to[tp] = records[-1].offset + 1

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the log's lock for the block: no catch-up, write or close runs meanwhile, so the
        indexes can be read consistently."""
        with self._lock:
            yield

    @contextmanager
    def caught_up(self) -> Iterator[None]:
        """:meth:`catch_up`, then hold the log (:meth:`exclusive`) for the block: to answer a
        read from the indexes with everything committed so far."""
        self.catch_up()
        with self.exclusive():
            yield

    # -- writing ------------------------------------------------------------

    def acquire(self) -> None:
        """Become the writer of the owned partitions: init_transactions fences
        any older writer (aborting its open transaction), then read the
        partitions to the last stable offset."""
        with self._lock:
            self._check_open()
            if self._writer is not None:
                return
            self._writer = open_writer(self.settings, self.transactional_id, self.primary, self.owned)
            self.writer_generation += 1
            logger.info(
                "Writer %s acquired %s partitions %s (generation %d, %s)",
                self.transactional_id,
                self.primary,
                self.owned,
                self.writer_generation,
                self.settings.client,
            )
            self._read_to_end()

    @property
    def writer(self) -> TransactionalWriter | None:
        """The transactional writer of the owned partitions (None until acquired, and again after a
        failed transaction dropped it: the next write re-acquires)."""
        return self._writer

    def _discard_writer(self) -> None:
        w, self._writer = self._writer, None
        if w is not None:
            w.discard()

    def write(
        self,
        records: Sequence[OutRecord],
        check: Callable[[], None] | None = None,
        *,
        group_offsets: GroupOffsets | None = None,
    ) -> list[int]:
        """Write records in one Kafka transaction; return their offsets.

        ``check`` runs under the lock after the partitions are acquired and
        before anything is sent; it raises IntegrityError to refuse the batch.
        ``group_offsets`` are committed in the same transaction (confluent client only).
        """
        with self._lock:
            self._check_open()
            for r in records:
                if r.topic == self.primary and r.partition not in self.owned:
                    msg = (
                        f"Partition {r.partition} of {self.primary} is not owned by "
                        f"writer {self.transactional_id} (owns {list(self.owned)})"
                    )
                    raise ProgrammingError(msg)
            for r in records:  # refuse before sending: a broker would refuse the whole transaction
                size = record_size(r.key, r.value, r.headers)
                if size > self.settings.max_record_bytes:
                    raise RecordTooLargeError(r.topic, r.partition, r.key, size, self.settings.max_record_bytes)
            stale = self._writer.stale() if self._writer is not None else None
            if stale is not None:
                # its producer would hang in this transaction (see ClusterWatch): a fresh one
                # fences it, aborts whatever it left open and re-reads the partitions
                logger.info(
                    "Replacing writer %s of %s partitions %s: %s", self.transactional_id, self.primary, self.owned, stale
                )
                self._discard_writer()
            self.acquire()
            if check is not None:
                check()
            if not records:
                return []
            writer = self._writer
            assert writer is not None
            try:
                positions = writer.write(records, group_offsets)
            finally:
                if not writer.usable and self._writer is writer:
                    # discarded or abandoned: the next write re-acquires (and re-reads)
                    self._writer = None
            offsets = []
            for r, (partition, offset) in zip(records, positions, strict=True):
                index = self.indexes.get(r.topic)  # records for other topics are not indexed
                if index is not None:
                    index.add_own(partition, offset, r.key, r.value, r.headers)
                r.offset = offset
                offsets.append(offset)
        self._notify()
        return offsets

    # -- listeners (subscriptions) -----------------------------------------

    def listen(self, event: threading.Event) -> None:
        self._listeners.add(event)

    def unlisten(self, event: threading.Event) -> None:
        self._listeners.discard(event)

    def _notify(self) -> None:
        for e in list(self._listeners):
            e.set()

    # -- lifecycle ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            msg = f"Kafka log for {self.primary} is closed"
            raise ProgrammingError(msg)

    def close(self) -> None:
        if sys.is_finalizing():
            # Called by an Application's __del__ while the interpreter shuts down: kafka-python's
            # IO thread is gone by then and its consumer's close waits for it forever (a process
            # that had finished its work hung at exit). The process ends anyway: nothing to close.
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._discard_writer()
            try:
                self._consumer.close(autocommit=False)
            except Exception:
                logger.debug("closing consumer failed", exc_info=True)
