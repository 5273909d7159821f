"""The transactional writer of a log: a port and one adapter per client library.

:class:`TransactionalWriter` (the port) says what a writer of a set of partitions does: it holds a
transactional id (opening it fences every older writer of that id and aborts its open
transaction), begins a transaction, sends records, sends a consumer group's offsets, commits or
aborts, and says which errors mean that a newer writer has fenced it. :meth:`~TransactionalWriter.write`
runs one whole transaction with these steps and turns its client's failures into the event store's
errors: :class:`WriterFencedError` (fenced; nothing written), :class:`CommitOutcomeUnknownError`
(the commit may or may not have happened), :class:`RecordTooLargeError`,
:class:`BrokerUnavailableError` or ``OperationalError`` (nothing committed).

A writer that can no longer be used (fenced, failed, abandoned) says so (``usable`` is false): its
log drops it and the next write opens a new one, which re-reads the partitions. A writer that is
usable but ``stale`` (its client lost the cluster and would hang in its next transaction: see
:class:`ClusterWatch`) is replaced in the same way before that transaction.

The adapters, chosen by ``KafkaSettings.client`` (``KAFKA_CLIENT``), both in use:

* :class:`ConfluentWriter`: confluent-kafka (librdkafka), the default. Offsets come from the
  delivery reports served while ``commit_transaction`` flushes the batch; it alone can commit a
  consumer group's offsets in the transaction (the node does).
* :class:`KafkaPythonWriter`: kafka-python's transactional ``KafkaProducer`` (``KAFKA_CLIENT=kafka-python``,
  and the default when confluent-kafka is not installed).

Both use the same transactional id, so either fences the other.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.persistence import OperationalError, ProgrammingError
from kafka import KafkaProducer
from kafka import errors as kerrors

from infrastructure.kafka.errors import (
    BrokerUnavailableError,
    CommitOutcomeUnknownError,
    RecordTooLargeError,
    WriterFencedError,
    connect_error,
)
from infrastructure.kafka.settings import CLIENT_CONFLUENT, CLIENT_KAFKA_PYTHON
from infrastructure.kafka_access import RECONNECT_BACKOFF_MAX_MS

try:  # librdkafka: the default writer client when installed (see KAFKA_CLIENT)
    import confluent_kafka as ck
except ImportError:  # pragma: no cover - confluent-kafka is a dependency
    ck = None

if TYPE_CHECKING:
    from collections.abc import Sequence

    from infrastructure.kafka.codec import OutRecord
    from infrastructure.kafka.settings import KafkaSettings

logger = logging.getLogger(__name__)


@dataclass
class GroupOffsets:
    """A consumer group's offsets to commit in a write's transaction (KIP-447).

    ``offsets``: (topic, partition, next offset to read); ``metadata``: the consumer's
    ``consumer_group_metadata()``, whose generation the broker checks: a member the group has
    dropped cannot commit, and the whole transaction is aborted (a zombie is fenced)."""

    offsets: list[tuple[str, int, int]]
    metadata: Any


# ---------------------------------------------------------------------------
# The port
# ---------------------------------------------------------------------------


class TransactionalWriter(ABC):
    """A fenced transactional producer of one transactional id, writing ``topic``'s ``owned``
    partitions (and records of any other topic in the same transactions).

    Not thread-safe: its log calls it under its lock."""

    client_name: ClassVar[str]
    """The ``KafkaSettings.client`` value this adapter serves."""

    def __init__(
        self, settings: KafkaSettings, transactional_id: str, topic: str, owned: Sequence[int], client: Any
    ) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.topic = topic
        self.owned = owned
        self.client = client  # the client library's producer
        self.usable = True  # false once discarded or abandoned: the log then drops this writer

    def stale(self) -> str | None:
        """Why this writer, though usable, should be replaced before its next transaction (its
        client holds a connection state it would not recover from in time: see
        :class:`ClusterWatch`), or None. Replacing costs an ``init_transactions`` and a re-read of
        the partitions."""
        return None

    @classmethod
    @abstractmethod
    def open(
        cls, settings: KafkaSettings, transactional_id: str, topic: str, owned: Sequence[int]
    ) -> TransactionalWriter:
        """A writer holding ``transactional_id``: ``init_transactions`` fenced every older writer
        of the id and aborted its open transaction. Raises :class:`BrokerUnavailableError` (or
        :class:`WriterFencedError`) when it cannot."""

    # -- the steps of a transaction -----------------------------------------------

    @abstractmethod
    def begin(self) -> None:
        """Begin a transaction."""

    @abstractmethod
    def send(self, record: OutRecord) -> Any:
        """Send a record in the open transaction (its position is known once committed);
        returns the client's handle of the record, if it has one."""

    @abstractmethod
    def send_group_offsets(self, group_offsets: GroupOffsets) -> None:
        """Commit a consumer group's offsets in the open transaction (KIP-447)."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the open transaction, within the settings' timeout
        (:class:`CommitOutcomeUnknownError` when not confirmed by then)."""

    @abstractmethod
    def abort(self) -> None:
        """End the open transaction with nothing of it committed. A writer that cannot abort
        within the timeout is discarded instead: the next writer's ``init_transactions`` aborts
        what is left open."""

    @abstractmethod
    def write(
        self, records: Sequence[OutRecord], group_offsets: GroupOffsets | None = None
    ) -> list[tuple[int, int]]:
        """``records`` (and ``group_offsets``) in one transaction; the (partition, offset) of each
        record. Raises the event store's errors (see the module docstring)."""

    # -- fencing ----------------------------------------------------------------------

    @abstractmethod
    def is_fencing_error(self, exc: BaseException) -> bool:
        """Whether this client's error ``exc`` (by itself, not its causes) means fenced."""

    def is_fenced(self, exc: BaseException) -> bool:
        """Whether ``exc`` or one of its causes says a newer writer took the transactional id."""
        seen: set[int] = set()
        e: BaseException | None = exc
        while e is not None and id(e) not in seen:
            seen.add(id(e))
            if self.is_fencing_error(e):
                return True
            if "fenced" in str(e).lower() or "ProducerFenced" in type(e).__name__:
                return True
            e = e.__cause__ or e.__context__
        return False

    def fenced_error(self) -> WriterFencedError:
        """Discard this writer; the error to raise for a write it was fenced in."""
        self.discard()
        msg = (
            f"Writer {self.transactional_id} was fenced by a newer writer of "
            f"{self.topic} partitions {list(self.owned)}; nothing was written. "
            "Reload the aggregate and retry (the partitions are re-read "
            "on the next write)."
        )
        return WriterFencedError(msg)

    def unknown_outcome_error(self) -> CommitOutcomeUnknownError:
        """Discard this writer; the error to raise for a commit not confirmed in time."""
        self.discard()
        msg = (
            f"Commit of a transaction on {self.topic} did not complete in "
            f"{self.settings.timeout:g}s; its outcome is unknown. The writer was "
            "discarded; the next write re-acquires the partitions and re-reads "
            "them, so the index shows the outcome."
        )
        return CommitOutcomeUnknownError(msg)

    # -- lifecycle ----------------------------------------------------------------------

    def discard(self) -> None:
        """Close the client, dropping whatever is queued or in flight (the transaction is
        abandoned: the next writer's ``init_transactions`` aborts it)."""
        if self.usable:
            self.usable = False
            self.close_client()

    def abandon(self) -> None:
        """Give up this writer without closing its client (a call still inside it closes it)."""
        self.usable = False

    def close_client(self) -> None:
        try:
            self._close_client()
        except Exception:
            logger.debug("closing producer failed", exc_info=True)

    @abstractmethod
    def _close_client(self) -> None:
        """Close the client at once."""


def open_writer(
    settings: KafkaSettings, transactional_id: str, topic: str, owned: Sequence[int]
) -> TransactionalWriter:
    """A writer of the settings' client library (``KAFKA_CLIENT``)."""
    adapter = ConfluentWriter if settings.client == CLIENT_CONFLUENT else KafkaPythonWriter
    return adapter.open(settings, transactional_id, topic, owned)


# ---------------------------------------------------------------------------
# confluent-kafka (librdkafka)
# ---------------------------------------------------------------------------


def _ck_codes(*names: str) -> frozenset[int]:
    """The confluent-kafka ``KafkaError`` codes of these names (those this version knows)."""
    if ck is None:
        return frozenset()
    return frozenset(getattr(ck.KafkaError, n) for n in names if hasattr(ck.KafkaError, n))


# confluent-kafka (librdkafka) error codes that mean another writer took the
# transactional id (a fatal error of the producer means the same for us: it is
# unusable and nothing of the open transaction commits).
_CK_FENCED_CODES = _ck_codes(
    "_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "INVALID_TXN_STATE", "TRANSACTION_COORDINATOR_FENCED"
)

# broker codes of a TxnOffsetCommit from a member the group no longer has (a zombie, KIP-447)
_CK_GROUP_FENCED_CODES = _ck_codes("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "FENCED_INSTANCE_ID",
                                   "REBALANCE_IN_PROGRESS")

# librdkafka / broker codes for a record the cluster will never take (retrying cannot cure them)
_CK_TOO_LARGE_CODES = _ck_codes("_MSG_SIZE_TOO_LARGE", "MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD")


class _Stalls:
    """How many writers of this process have been abandoned inside ``send_offsets_to_transaction``
    (see :meth:`ConfluentWriter.send_group_offsets`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


_offsets_stalls = _Stalls()


class ClusterWatch:
    """Whether a librdkafka producer should be replaced by a fresh one before its next transaction.

    librdkafka (to at least 2.16) keeps a producer's group coordinator pointing at the broker
    connection it had before that broker went away (confluentinc/librdkafka#5511), so the first
    ``send_offsets_to_transaction`` after the broker is back hangs past its timeout (#5456) until
    :meth:`ConfluentWriter.send_group_offsets` abandons it. Measured on a node after a 20 s
    outage: 15 s per partition, one partition after another. A fresh producer of the same
    transactional id initialises in ~0.1 s and commits at once. So a producer is stale once it has
    seen every broker go down (its ``error_cb``), or once another writer of this process stalled
    there after it opened (the others that lived through the same outage would hang the same
    way). Replacing one costs an ``init_transactions`` and a re-read of its partitions."""

    def __init__(self) -> None:
        self.lost: str | None = None  # why the producer is stale, once it is
        self._stalls_at_open = _offsets_stalls.count

    def on_client_error(self, err: Any) -> None:
        """The producer's ``error_cb`` (served on its poll). Only ``_ALL_BROKERS_DOWN`` counts: a
        mere ``_TRANSPORT`` error is also what brokers closing idle connections raise, and a
        producer recovers from losing one connection."""
        if self.lost is None and err.code() == ck.KafkaError._ALL_BROKERS_DOWN:
            self.lost = f"its producer lost every broker ({err.str()})"

    def stale(self) -> str | None:
        """Why the producer should be replaced, or None."""
        if self.lost is None and _offsets_stalls.count != self._stalls_at_open:
            self.lost = "another writer of this process stalled sending its group offsets since it opened"
        return self.lost


def _ck_error(exc: BaseException) -> Any:
    """The ``KafkaError`` of a confluent-kafka ``KafkaException``, else None."""
    if (
        ck is not None
        and isinstance(exc, ck.KafkaException)
        and exc.args
        and isinstance(exc.args[0], ck.KafkaError)
    ):
        return exc.args[0]
    return None


class ConfluentWriter(TransactionalWriter):
    """A librdkafka transactional producer. Its calls are bounded by the settings' timeout."""

    client_name = CLIENT_CONFLUENT

    def __init__(
        self,
        settings: KafkaSettings,
        transactional_id: str,
        topic: str,
        owned: Sequence[int],
        client: Any,
        watch: ClusterWatch,
    ) -> None:
        super().__init__(settings, transactional_id, topic, owned, client)
        # the open transaction's delivery reports: (partition, offset) of each record sent, failures
        self._reports: list[tuple[int, int] | None] = []
        self._failures: list[Any] = []
        self.watch = watch  # the producer's error_cb feeds it, so open() makes it before the producer

    def stale(self) -> str | None:
        if self.watch.lost is None:
            self.client.poll(0)  # serves the error callbacks queued since the last call
        return self.watch.stale()

    @classmethod
    def open(
        cls, settings: KafkaSettings, transactional_id: str, topic: str, owned: Sequence[int]
    ) -> ConfluentWriter:
        """A librdkafka transactional producer; init_transactions fences older
        writers of the same transactional id."""
        assert ck is not None
        t = settings.timeout_ms
        config = {
            "bootstrap.servers": settings.bootstrap_servers,
            "client.id": f"parsec-writer-{transactional_id}",
            "transactional.id": transactional_id,
            "transaction.timeout.ms": settings.transaction_timeout_ms,
            "message.timeout.ms": min(t, settings.transaction_timeout_ms),
            "socket.timeout.ms": max(t, 5000),
            "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
            "acks": "all",
            # The batch is one transaction: commit_transaction flushes it, so
            # there is nothing to gain from waiting for more messages.
            "linger.ms": 0,
            "retry.backoff.ms": 10,
            # TCP_NODELAY: a transaction is three small request round trips
            # (AddPartitionsToTxn, Produce, EndTxn); ~3.9 -> 3.4 ms each here.
            "socket.nagle.disable": True,
            "logger": logging.getLogger(__name__ + ".librdkafka"),
            **settings.security.librdkafka(),
        }
        watch = ClusterWatch()
        config["error_cb"] = watch.on_client_error
        try:
            producer = ck.Producer(config)
        except Exception as e:
            raise connect_error(settings, "producer connect", e) from e
        writer = cls(settings, transactional_id, topic, owned, producer, watch)
        try:
            producer.init_transactions(settings.timeout)
        except Exception as e:
            writer.close_client()
            if writer.is_fenced(e):
                msg = f"Writer {transactional_id} could not initialise transactions: {e}"
                raise WriterFencedError(msg) from e
            raise connect_error(settings, "init_transactions", e) from e
        return writer

    def is_fencing_error(self, exc: BaseException) -> bool:
        err = _ck_error(exc)
        return err is not None and (err.fatal() or err.code() in _CK_FENCED_CODES)

    def begin(self) -> None:
        self._reports = []
        self._failures = []
        self.client.begin_transaction()

    def send(self, record: OutRecord) -> None:
        i = len(self._reports)
        self._reports.append(None)
        reports, failures = self._reports, self._failures

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(err)
            else:
                reports[i] = (msg.partition(), msg.offset())

        r = record
        self.client.produce(r.topic, r.value, r.key, partition=r.partition, headers=r.headers, on_delivery=on_delivery)

    def commit(self) -> None:
        # Flushes the batch (serving the delivery reports), then EndTxn;
        # bounded, unlike kafka-python's.
        self.client.commit_transaction(self.settings.timeout)

    def abort(self) -> None:
        try:
            self.client.abort_transaction(self.settings.timeout)
        except Exception:
            logger.debug("abort_transaction failed; discarding the writer", exc_info=True)
            self.discard()

    def write(
        self, records: Sequence[OutRecord], group_offsets: GroupOffsets | None = None
    ) -> list[tuple[int, int]]:
        """One librdkafka transaction; (partition, offset) of each record from
        its delivery report."""
        timeout = self.settings.timeout
        committing = False
        try:
            self.begin()
            for r in records:
                self.send(r)
            if group_offsets is not None:
                # TxnOffsetCommit with the member's generation: refused (the transaction then
                # must abort) if the group has moved on without this member
                self.send_group_offsets(group_offsets)
            committing = True
            self.commit()
            committing = False
            deadline = time.monotonic() + timeout
            while None in self._reports and not self._failures and time.monotonic() < deadline:
                self.client.poll(0.01)
        except BrokerUnavailableError:
            raise  # an abandoned writer (see send_group_offsets)
        except Exception as e:
            raise self._failure(e, committing=committing) from e
        reports, failures = self._reports, self._failures
        if failures or None in reports:
            # Committed, yet a delivery report is missing or failed: cannot
            # happen with a transactional producer; the index re-reads.
            self.discard()
            msg = (
                f"Transaction on {self.topic} committed but {len(failures)} delivery report(s) "
                f"failed and {reports.count(None)} are missing: {failures[:3]}"
            )
            raise CommitOutcomeUnknownError(msg)
        return reports  # type: ignore[return-value]

    def _failure(self, e: Exception, *, committing: bool) -> Exception:
        """What a failed transaction is to its caller (aborting it, or discarding the writer,
        as the error requires)."""
        err = _ck_error(e)
        if self.is_fenced(e):
            return self.fenced_error()
        too_large = [f for f in [err, *self._failures] if f is not None and f.code() in _CK_TOO_LARGE_CODES]
        if too_large:
            self.abort()
            return RecordTooLargeError(
                self.topic, -1, None, 0, 0, f" (the cluster refused it: {too_large[0].str()})"
            )
        if err is not None and err.code() in _CK_GROUP_FENCED_CODES:
            self.abort()
            msg = (
                f"Writer {self.transactional_id}: the consumer group refused this member's offsets "
                f"({err.str()}): the group has moved on without it; the transaction was aborted"
            )
            return WriterFencedError(msg)
        if err is not None and err.txn_requires_abort():
            self.abort()
            msg = f"Kafka transaction aborted (nothing committed): {err.str()}"
            return OperationalError(msg)
        if committing and (err is None or err.retriable() or err.code() == ck.KafkaError._TIMED_OUT):
            # The commit may or may not have happened (a retriable error
            # of commit_transaction means "try again": outcome unknown).
            return self.unknown_outcome_error()
        self.discard()
        if err is not None and err.code() in (
            ck.KafkaError._TIMED_OUT,
            ck.KafkaError._TRANSPORT,
            ck.KafkaError._ALL_BROKERS_DOWN,
        ):
            return connect_error(self.settings, "transactional write", e)
        msg = f"Kafka transaction failed (nothing committed): {type(e).__name__}: {e}"
        return OperationalError(msg)

    def send_group_offsets(self, group_offsets: GroupOffsets) -> None:
        """``send_offsets_to_transaction``, but bounded for real.

        librdkafka (up to at least 2.16, confluentinc/librdkafka#5456) ignores this call's timeout
        while the group coordinator is unreachable: a node blocked in it for good after a broker
        outage. So the call runs on a thread of its own; if it has not returned a little after
        its timeout, the producer is abandoned to that thread (closing it while the call is
        inside would crash), which closes it if the call ever returns. The open transaction is
        aborted by the next writer's ``init_transactions`` (same transactional id): nothing of
        the batch is committed, and the caller sees a broker that is unavailable."""
        timeout = self.settings.timeout
        producer = self.client
        offsets = [ck.TopicPartition(t, p, o) for t, p, o in group_offsets.offsets]
        done = threading.Event()
        abandoned = threading.Event()
        failure: list[BaseException] = []

        def call() -> None:
            try:
                producer.send_offsets_to_transaction(offsets, group_offsets.metadata, timeout)
            except BaseException as e:  # handed to the caller below
                failure.append(e)
            finally:
                done.set()
                if abandoned.is_set():
                    self.close_client()

        thread = threading.Thread(target=call, name=f"parsec-offsets-{self.transactional_id}", daemon=True)
        thread.start()
        if not done.wait(timeout + 3.0):
            abandoned.set()
            self.abandon()  # not closed here: the stuck call still uses it
            _offsets_stalls.add()  # the other writers of this process give way (ClusterWatch)
            msg = (
                f"Writer {self.transactional_id}: sending the consumer group's offsets did not return in "
                f"{timeout:g}s (the group coordinator is unreachable); the writer was abandoned and nothing "
                "of the transaction is committed"
            )
            raise BrokerUnavailableError(msg)
        if failure:
            raise failure[0]

    def _close_client(self) -> None:
        # Drop whatever is queued or in flight: the transaction is
        # abandoned (the next writer's init_transactions aborts it).
        self.client.purge(in_queue=True, in_flight=True, blocking=False)
        with warnings.catch_warnings():
            # close() tries to abort the open transaction and warns
            # when it cannot (fenced, or a commit still in progress).
            warnings.simplefilter("ignore", RuntimeWarning)
            self.client.close(0)


# ---------------------------------------------------------------------------
# kafka-python
# ---------------------------------------------------------------------------


_FENCED_ERRORS: tuple[type[BaseException], ...] = tuple(
    e
    for e in (
        getattr(kerrors, "ProducerFencedError", None),
        getattr(kerrors, "InvalidProducerEpochError", None),
        getattr(kerrors, "TransactionCoordinatorFencedError", None),
        # Seen under contention when another producer with our transactional id
        # bumped the epoch between our AddPartitionsToTxn and EndTxn: the same
        # situation as fenced (nothing of ours committed; reload and retry).
        getattr(kerrors, "InvalidTxnStateError", None),
    )
    if e is not None
)


class KafkaPythonWriter(TransactionalWriter):
    """kafka-python's transactional ``KafkaProducer``. Its commit is bounded here (kafka-python's
    own waits forever when the broker goes away mid-commit); it never aborts (kafka-python's
    abort waits unbounded too): a failed transaction discards the writer instead."""

    client_name = CLIENT_KAFKA_PYTHON

    @classmethod
    def open(
        cls, settings: KafkaSettings, transactional_id: str, topic: str, owned: Sequence[int]
    ) -> KafkaPythonWriter:
        try:
            producer = KafkaProducer(
                client_id=f"parsec-writer-{transactional_id}",
                transactional_id=transactional_id,
                transaction_timeout_ms=settings.transaction_timeout_ms,
                max_block_ms=settings.timeout_ms,
                linger_ms=0,
                acks="all",
                # Short backoff: AddPartitionsToTxn is retried while the
                # previous transaction's markers are written (100 ms default
                # costs ~65 ms per transaction; 10 ms gives ~15 ms).
                retry_backoff_ms=10,
                **settings.client_kwargs(),
            )
        except Exception as e:
            raise connect_error(settings, "producer connect", e) from e
        try:
            producer.init_transactions()
        except Exception as e:
            producer.close(timeout=1)
            raise connect_error(settings, "init_transactions", e) from e
        return cls(settings, transactional_id, topic, owned, producer)

    def is_fencing_error(self, exc: BaseException) -> bool:
        return isinstance(exc, _FENCED_ERRORS)

    def begin(self) -> None:
        self.client.begin_transaction()

    def send(self, record: OutRecord) -> Any:
        r = record
        return self.client.send(r.topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition)

    def send_group_offsets(self, group_offsets: GroupOffsets) -> None:
        msg = "committing a consumer group's offsets in the transaction needs the confluent client"
        raise ProgrammingError(msg)

    def commit(self) -> None:
        """commit_transaction, but bounded by the timeout (kafka-python's
        waits forever when the broker goes away mid-commit)."""
        producer = self.client
        tm = getattr(producer, "_transaction_manager", None)
        sender = getattr(producer, "_sender", None)
        if tm is None or sender is None or not hasattr(tm, "begin_commit"):  # pragma: no cover
            producer.commit_transaction()
            return
        result = tm.begin_commit()
        sender.wakeup()
        if not result.wait(timeout_ms=self.settings.timeout_ms):
            raise self.unknown_outcome_error()

    def abort(self) -> None:
        # No abort_transaction: kafka-python waits for it unbounded. The next writer's
        # init_transactions aborts what is left open.
        self.discard()

    def write(
        self, records: Sequence[OutRecord], group_offsets: GroupOffsets | None = None
    ) -> list[tuple[int, int]]:
        """One kafka-python transaction."""
        if group_offsets is not None:
            self.send_group_offsets(group_offsets)
        futures: list[Any] = []
        try:
            self.begin()
            futures = [self.send(r) for r in records]
            self.commit()
            metas = [f.get(timeout=self.settings.timeout) for f in futures]
        except CommitOutcomeUnknownError:
            self.discard()
            raise
        except Exception as e:
            causes = [e] + [
                f.exception for f in futures if f.is_done and f.failed() and f.exception is not None
            ]
            if any(self.is_fenced(c) for c in causes):
                raise self.fenced_error() from e
            # Whatever went wrong, the transaction did not commit; start
            # afresh: the next write re-acquires (init_transactions aborts
            # anything left open) and re-reads the partitions.
            self.abort()
            if isinstance(e, kerrors.KafkaTimeoutError | kerrors.KafkaConnectionError):
                raise connect_error(self.settings, "transactional write", e) from e
            msg = f"Kafka transaction failed (nothing committed): {type(e).__name__}: {e}"
            raise OperationalError(msg) from e
        return [(m.partition, m.offset) for m in metas]

    def _close_client(self) -> None:
        self.client.close(timeout=0, null_logger=True)
