"""The event store's errors: what a caller of the Kafka recorders may catch.

Each is one of eventsourcing's persistence errors, so an application handles
it as it handles any event store's (``IntegrityError``: reload and retry;
``OperationalError``: the store is not usable now; ``DataError``: the data
itself cannot be stored or read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventsourcing.persistence import DataError, IntegrityError, OperationalError

if TYPE_CHECKING:
    from infrastructure.kafka.settings import KafkaSettings


class BrokerUnavailableError(OperationalError):
    """The Kafka cluster could not be reached (or did not answer like Kafka)
    within the configured timeout."""


class WriterFencedError(IntegrityError):
    """Another writer took over the partitions (same transactional id, newer
    epoch). Nothing of the failed batch was written. The recorder reloads its
    partitions (and fences the other writer back) on its next write; callers
    must reload their aggregates and retry, exactly as for a version conflict,
    which is why this is an ``IntegrityError``."""


class CommitOutcomeUnknownError(OperationalError):
    """The broker did not confirm a commit in time: the batch may or may not
    be in the log. Reload before deciding to retry."""


class RecordTooLargeError(DataError):
    """A record of the batch is larger than Kafka accepts (``MAX_RECORD_BYTES``).

    Retrying cannot cure it: nothing of the batch was written, and the caller must set the
    command that produced the record aside instead of retrying the same batch forever."""

    def __init__(
        self, topic: str, partition: int, key: bytes | None, size: int, limit: int, detail: str = ""
    ) -> None:
        shown = (key or b"").decode("utf-8", "replace")[:80]
        what = f"a record of {size:,} bytes" if size else "a record"
        super().__init__(
            f"{what} for {topic!r} partition {partition} (key {shown!r}) exceeds the record limit"
            f"{f' of {limit:,} bytes' if limit else ''}; nothing of the batch was written{detail}"
        )
        self.topic, self.partition, self.key, self.size, self.limit = topic, partition, key, size, limit


class CorruptRecordError(DataError):
    """A record on an events topic could not be decoded."""

    def __init__(self, record: CorruptRecord) -> None:
        super().__init__(
            f"Corrupt record on topic {record.topic!r} partition "
            f"{record.partition} offset {record.offset}: {record.reason}"
        )
        self.record = record


@dataclass(frozen=True)
class CorruptRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    reason: str


def connect_error(settings: KafkaSettings, what: str, exc: BaseException) -> BrokerUnavailableError:
    """The error of a client that could not reach the cluster (``what``: the step that failed)."""
    return BrokerUnavailableError(
        f"Kafka unavailable at {settings.bootstrap_servers} ({what}, "
        f"timeout {settings.timeout:g}s): {type(exc).__name__}: {exc}. "
        "Is the broker running (scripts/kafka status) and are "
        "KAFKA_BOOTSTRAP_SERVERS / PARSEC_KAFKA_BOOTSTRAP right?"
    )
