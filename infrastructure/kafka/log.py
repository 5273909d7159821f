"""The Kafka side of the event store: settings, record codec, indexes, and
:class:`KafkaLog`, which owns one read_committed consumer and (lazily) one
fenced transactional producer.

See the package docstring (``infrastructure/kafka/__init__.py``) for the
design; this module is its mechanics.
"""

from __future__ import annotations

import bisect
import logging
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import (
    DataError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner import murmur2

from infrastructure.kafka_access import PLAINTEXT, KafkaSecurity, check_replication, topic_configs

try:  # librdkafka: the default writer client when installed (see KAFKA_CLIENT)
    import confluent_kafka as ck
except ImportError:  # pragma: no cover - confluent-kafka is a dependency
    ck = None

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventsourcing.utils import Environment

logger = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_PARTITIONS = 4
DEFAULT_TIMEOUT = 12.0
FORMAT_VERSION = b"1"

# Record headers of an event record (value = the stored event's state bytes).
H_FORMAT = "parsec.format"
H_KIND = "parsec.kind"
H_VERSION = "es.version"
H_TOPIC = "es.topic"
H_ID_TYPE = "es.id_type"

KIND_EVENT = b"event"
KIND_SNAPSHOT = b"snapshot"
KIND_TRACKING = b"tracking"

# The client library of the transactional writer (KAFKA_CLIENT). Reads always
# use kafka-python's consumer.
CLIENT_CONFLUENT = "confluent"
CLIENT_KAFKA_PYTHON = "kafka-python"
_CLIENT_ALIASES = {
    "confluent": CLIENT_CONFLUENT,
    "confluent-kafka": CLIENT_CONFLUENT,
    "confluent_kafka": CLIENT_CONFLUENT,
    "librdkafka": CLIENT_CONFLUENT,
    "kafka-python": CLIENT_KAFKA_PYTHON,
    "kafka_python": CLIENT_KAFKA_PYTHON,
    "kafkapython": CLIENT_KAFKA_PYTHON,
}


def default_client() -> str:
    """confluent-kafka when it is installed (librdkafka produces ~8x faster
    than kafka-python on the node's hot path), else kafka-python."""
    return CLIENT_CONFLUENT if ck is not None else CLIENT_KAFKA_PYTHON


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


def _topic_safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]", "_", name)


MAX_RECORD_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes`` (the broker's ``max.message.bytes`` is 1,048,588)."""
_RECORD_OVERHEAD = 64  # a record's framing in a batch: lengths, attributes, timestamps, offsets


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> int:
    """The bytes a record takes in a batch (an upper bound)."""
    size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, data in headers or ():
        size += 8 + len(name) + len(data or b"")
    return size


@dataclass(frozen=True)
class KafkaSettings:
    """Settings read from an eventsourcing ``Environment`` (so per-application
    prefixes such as ``BANK_KAFKA_EVENTS_TOPIC`` work)."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    events_topic: str = "parsec.events"
    snapshots_topic: str = "parsec.events.snapshots"
    tracking_topic: str = "parsec.events.tracking"
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    # the topic config min.insync.replicas of the topics this store creates (None: the broker's default)
    min_insync_replicas: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    transaction_timeout_ms: int = 15000
    transactional_id_prefix: str = "parsec"
    owned_partitions: tuple[int, ...] | None = None  # None: all partitions
    create_topics: bool = True
    # Read (index) only the owned partitions of the primary topic: a node's
    # per-partition writer needs no one else's events.
    read_owned_only: bool = False
    # Writer client: "confluent" (librdkafka) or "kafka-python".
    client: str = field(default_factory=default_client)
    # The largest record the writer sends (a larger one is RecordTooLargeError before sending).
    max_record_bytes: int = MAX_RECORD_BYTES
    # How every client of this store authenticates (security protocol, SASL, TLS).
    security: KafkaSecurity = PLAINTEXT

    KEYS = (
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_EVENTS_TOPIC",
        "KAFKA_SNAPSHOTS_TOPIC",
        "KAFKA_TRACKING_TOPIC",
        "KAFKA_PARTITIONS",
        "KAFKA_REPLICATION_FACTOR",
        "KAFKA_MIN_INSYNC_REPLICAS",
        "KAFKA_TIMEOUT",
        "KAFKA_TRANSACTION_TIMEOUT_MS",
        "KAFKA_MAX_RECORD_BYTES",
        "KAFKA_TRANSACTIONAL_ID_PREFIX",
        "KAFKA_OWNED_PARTITIONS",
        "CREATE_TABLE",
        "KAFKA_READ_OWNED_ONLY",
        "KAFKA_CLIENT",
    )

    @classmethod
    def from_env(cls, env: Environment) -> KafkaSettings:
        def get(key: str) -> str | None:
            value = env.get(key)
            return value.strip() if value is not None and value.strip() else None

        bootstrap = get("KAFKA_BOOTSTRAP_SERVERS") or get("PARSEC_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP
        default_events = "parsec." + _topic_safe((env.name or "app").lower()) + ".events"
        events_topic = get("KAFKA_EVENTS_TOPIC") or default_events
        try:
            partitions = int(get("KAFKA_PARTITIONS") or DEFAULT_PARTITIONS)
            replication = int(get("KAFKA_REPLICATION_FACTOR") or get("PARSEC_KAFKA_REPLICATION_FACTOR") or -1)
            insync = int(get("KAFKA_MIN_INSYNC_REPLICAS") or get("PARSEC_KAFKA_MIN_INSYNC_REPLICAS") or 0) or None
            timeout = float(get("KAFKA_TIMEOUT") or DEFAULT_TIMEOUT)
            tx_timeout = int(get("KAFKA_TRANSACTION_TIMEOUT_MS") or 15000)
            max_record = int(get("KAFKA_MAX_RECORD_BYTES") or MAX_RECORD_BYTES)
            owned_str = get("KAFKA_OWNED_PARTITIONS")
            owned = (
                None
                if owned_str is None or owned_str.lower() == "all"
                else tuple(sorted({int(p) for p in owned_str.split(",")}))
            )
        except ValueError as e:
            msg = f"Invalid Kafka setting in environment: {e}"
            raise OSError(msg) from None
        if partitions < 1:
            msg = f"KAFKA_PARTITIONS must be >= 1, got {partitions}"
            raise OSError(msg)
        if timeout <= 0:
            msg = f"KAFKA_TIMEOUT must be > 0, got {timeout}"
            raise OSError(msg)
        try:
            check_replication(replication, insync)
        except ValueError as e:
            raise OSError(str(e)) from None
        create = (get("CREATE_TABLE") or "t").lower() not in ("f", "false", "n", "no", "0")
        read_owned_only = (get("KAFKA_READ_OWNED_ONLY") or "n").lower() in ("t", "true", "y", "yes", "1")
        client_str = get("KAFKA_CLIENT")
        if client_str is None:
            client = default_client()
        else:
            client = _CLIENT_ALIASES.get(client_str.lower(), "")
            if not client:
                msg = f"KAFKA_CLIENT must be 'confluent' or 'kafka-python', got {client_str!r}"
                raise OSError(msg)
            if client == CLIENT_CONFLUENT and ck is None:
                msg = "KAFKA_CLIENT=confluent but confluent-kafka is not installed (pip install confluent-kafka)"
                raise OSError(msg)
        return cls(
            bootstrap_servers=bootstrap,
            events_topic=events_topic,
            snapshots_topic=get("KAFKA_SNAPSHOTS_TOPIC") or events_topic + ".snapshots",
            tracking_topic=get("KAFKA_TRACKING_TOPIC") or events_topic + ".tracking",
            partitions=partitions,
            replication_factor=replication,
            min_insync_replicas=insync,
            timeout=timeout,
            transaction_timeout_ms=tx_timeout,
            transactional_id_prefix=get("KAFKA_TRANSACTIONAL_ID_PREFIX") or "parsec",
            owned_partitions=owned,
            create_topics=create,
            read_owned_only=read_owned_only,
            client=client,
            max_record_bytes=max_record,
            security=KafkaSecurity.from_env(get),
        )

    @property
    def timeout_ms(self) -> int:
        return int(self.timeout * 1000)

    def client_kwargs(self) -> dict[str, Any]:
        t = self.timeout_ms
        return {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "request_timeout_ms": max(t, 5000),
            "bootstrap_timeout_ms": t,
            "reconnect_backoff_max_ms": 1000,
            **self.security.kafka_python(),
        }

    def topic_configs(self, spec: TopicSpec) -> dict[str, str]:
        """The configs ``spec`` is created with: its own, plus ``min.insync.replicas`` when set."""
        return topic_configs(spec.configs, self.min_insync_replicas)


# ---------------------------------------------------------------------------
# Partitioning and codec
# ---------------------------------------------------------------------------


def originator_key(originator_id: UUID | str) -> bytes:
    """The record key of an aggregate: its id as text, UTF-8."""
    return str(originator_id).encode("utf-8")


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """Kafka's (Java client's) default partitioner: murmur2(key) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def encode_event(s: StoredEvent, kind: bytes = KIND_EVENT) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    id_type = b"uuid" if isinstance(s.originator_id, UUID) else b"str"
    headers = [
        (H_FORMAT, FORMAT_VERSION),
        (H_KIND, kind),
        (H_VERSION, str(int(s.originator_version)).encode()),
        (H_TOPIC, s.topic.encode("utf-8")),
        (H_ID_TYPE, id_type),
    ]
    return originator_key(s.originator_id), bytes(s.state), headers


def decode_event(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None
) -> StoredEvent:
    """Decode a record into a StoredEvent, or raise ValueError saying why not."""
    h = dict(headers or ())
    if h.get(H_FORMAT) != FORMAT_VERSION:
        msg = f"missing or unknown {H_FORMAT} header: {h.get(H_FORMAT)!r}"
        raise ValueError(msg)
    if key is None:
        msg = "record has no key"
        raise ValueError(msg)
    if value is None:
        msg = "record has no value"
        raise ValueError(msg)
    try:
        version = int(h[H_VERSION].decode("ascii"))
        topic = h[H_TOPIC].decode("utf-8")
        id_type = h[H_ID_TYPE]
        key_str = key.decode("utf-8")
    except (KeyError, UnicodeDecodeError, ValueError, AttributeError) as e:
        msg = f"bad event headers or key: {e!r}"
        raise ValueError(msg) from None
    if id_type == b"uuid":
        originator_id: UUID | str = UUID(key_str)
    elif id_type == b"str":
        originator_id = key_str
    else:
        msg = f"unknown {H_ID_TYPE} {id_type!r}"
        raise ValueError(msg)
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=topic,
        state=value,
    )


# ---------------------------------------------------------------------------
# Indexes (one per topic kind)
# ---------------------------------------------------------------------------


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
        try:
            s = decode_event(key, value, headers)
        except ValueError as e:
            c = self.report_corrupt(partition, offset, key, str(e))
            if key is not None:
                try:
                    self.corrupt_by_key.setdefault(key.decode("utf-8"), []).append(c)
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
        try:
            s = decode_event(key, value, headers)
        except ValueError as e:
            self.report_corrupt(partition, offset, key, str(e))
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


def encode_tracking(
    application_name: str, notification_id: int
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return (
        application_name.encode("utf-8"),
        str(int(notification_id)).encode("ascii"),
        [(H_FORMAT, FORMAT_VERSION), (H_KIND, KIND_TRACKING)],
    )


# ---------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]


@dataclass
class GroupOffsets:
    """A consumer group's offsets to commit in a write's transaction (KIP-447).

    ``offsets``: (topic, partition, next offset to read); ``metadata``: the consumer's
    ``consumer_group_metadata()``, whose generation the broker checks: a member the group has
    dropped cannot commit, and the whole transaction is aborted (a zombie is fenced)."""

    offsets: list[tuple[str, int, int]]
    metadata: Any


@dataclass
class OutRecord:
    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    offset: int | None = None  # set by KafkaLog.write once committed


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


def _is_fenced(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, _FENCED_ERRORS):
            return True
        err = _ck_error(e)
        if err is not None and (err.fatal() or err.code() in _CK_FENCED_CODES):
            return True
        if "fenced" in str(e).lower() or "ProducerFenced" in type(e).__name__:
            return True
        e = e.__cause__ or e.__context__
    return False


def _connect_error(settings: KafkaSettings, what: str, exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError(
        f"Kafka unavailable at {settings.bootstrap_servers} ({what}, "
        f"timeout {settings.timeout:g}s): {type(exc).__name__}: {exc}. "
        "Is the broker running (scripts/kafka status) and are "
        "KAFKA_BOOTSTRAP_SERVERS / PARSEC_KAFKA_BOOTSTRAP right?"
    )


def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> dict[str, int]:
    """Create missing topics; return the actual partition count of each."""
    try:
        admin = KafkaAdminClient(client_id="parsec-admin", **settings.client_kwargs())
    except Exception as e:
        raise _connect_error(settings, "admin connect", e) from e
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing and settings.create_topics:
            new = [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=settings.topic_configs(s),
                )
                for s in missing
            ]
            try:
                admin.create_topics(new, timeout_ms=settings.timeout_ms)
            except kerrors.TopicAlreadyExistsError:
                pass
            except Exception as e:
                # Several processes may race to create the same topic.
                if "TopicAlreadyExists" not in repr(e):
                    raise
        elif missing:
            msg = f"Kafka topics do not exist (and CREATE_TABLE is off): {[s.name for s in missing]}"
            raise ProgrammingError(msg)
        counts: dict[str, int] = {}
        deadline = time.monotonic() + settings.timeout
        while True:
            described = admin.describe_topics([s.name for s in specs])
            ok = True
            for d in described:
                name = d.get("name") or d.get("topic")
                err = d.get("error_code", 0)
                parts = d.get("partitions") or []
                if err or not parts:
                    ok = False
                    break
                counts[name] = len(parts)
            if ok:
                break
            if time.monotonic() > deadline:
                msg = f"Kafka topics not ready in {settings.timeout:g}s: {described}"
                raise OperationalError(msg)
            time.sleep(0.1)
        for s in specs:
            if counts[s.name] != s.partitions:
                logger.warning(
                    "Topic %s has %d partitions, configured %d: using %d",
                    s.name,
                    counts[s.name],
                    s.partitions,
                    counts[s.name],
                )
        return counts
    except (OperationalError, ProgrammingError):
        raise
    except (kerrors.KafkaTimeoutError, kerrors.KafkaConnectionError) as e:
        raise _connect_error(settings, "topic admin", e) from e
    finally:
        admin.close()


class KafkaLog:
    """One read_committed consumer over some topics, plus (once it writes)
    one transactional producer whose id is derived from the primary topic and
    the owned partitions. Every public method is serialised by a lock."""

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
        self._producer: Any = None  # KafkaProducer or confluent_kafka.Producer
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
            raise _connect_error(self.settings, "consumer connect", e) from e
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
        """Read every assigned partition up to its last stable offset."""
        with self._lock:
            self._check_open()
            try:
                end = self._consumer.end_offsets(self._tps, timeout_ms=self.settings.timeout_ms)
            except Exception as e:
                self._renew_reader(e)  # the next call asks with a new client
                raise _connect_error(self.settings, "end_offsets", e) from e
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

    # -- writing ------------------------------------------------------------

    def acquire(self) -> None:
        """Become the writer of the owned partitions: init_transactions fences
        any older writer (aborting its open transaction), then read the
        partitions to the last stable offset."""
        with self._lock:
            self._check_open()
            if self._producer is not None:
                return
            if self.settings.client == CLIENT_CONFLUENT:
                producer = self._new_confluent_producer()
            else:
                producer = self._new_kafka_python_producer()
            self._producer = producer
            self.writer_generation += 1
            logger.info(
                "Writer %s acquired %s partitions %s (generation %d, %s)",
                self.transactional_id,
                self.primary,
                self.owned,
                self.writer_generation,
                self.settings.client,
            )
            self.catch_up()

    def _new_confluent_producer(self) -> Any:
        """A librdkafka transactional producer; init_transactions fences older
        writers of the same transactional id."""
        assert ck is not None
        t = self.settings.timeout_ms
        config = {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "client.id": f"parsec-writer-{self.transactional_id}",
            "transactional.id": self.transactional_id,
            "transaction.timeout.ms": self.settings.transaction_timeout_ms,
            "message.timeout.ms": min(t, self.settings.transaction_timeout_ms),
            "socket.timeout.ms": max(t, 5000),
            "reconnect.backoff.max.ms": 1000,
            "acks": "all",
            # The batch is one transaction: commit_transaction flushes it, so
            # there is nothing to gain from waiting for more messages.
            "linger.ms": 0,
            "retry.backoff.ms": 10,
            # TCP_NODELAY: a transaction is three small request round trips
            # (AddPartitionsToTxn, Produce, EndTxn); ~3.9 -> 3.4 ms each here.
            "socket.nagle.disable": True,
            "logger": logging.getLogger(__name__ + ".librdkafka"),
            **self.settings.security.librdkafka(),
        }
        try:
            producer = ck.Producer(config)
        except Exception as e:
            raise _connect_error(self.settings, "producer connect", e) from e
        try:
            producer.init_transactions(self.settings.timeout)
        except Exception as e:
            self._close_producer(producer)
            if _is_fenced(e):
                msg = f"Writer {self.transactional_id} could not initialise transactions: {e}"
                raise WriterFencedError(msg) from e
            raise _connect_error(self.settings, "init_transactions", e) from e
        return producer

    def _new_kafka_python_producer(self) -> Any:
        try:
            producer = KafkaProducer(
                client_id=f"parsec-writer-{self.transactional_id}",
                transactional_id=self.transactional_id,
                transaction_timeout_ms=self.settings.transaction_timeout_ms,
                max_block_ms=self.settings.timeout_ms,
                linger_ms=0,
                acks="all",
                # Short backoff: AddPartitionsToTxn is retried while the
                # previous transaction's markers are written (100 ms default
                # costs ~65 ms per transaction; 10 ms gives ~15 ms).
                retry_backoff_ms=10,
                **self.settings.client_kwargs(),
            )
        except Exception as e:
            raise _connect_error(self.settings, "producer connect", e) from e
        try:
            producer.init_transactions()
        except Exception as e:
            producer.close(timeout=1)
            raise _connect_error(self.settings, "init_transactions", e) from e
        return producer

    @staticmethod
    def _close_producer(p: Any) -> None:
        try:
            if ck is not None and isinstance(p, ck.Producer):
                # Drop whatever is queued or in flight: the transaction is
                # abandoned (the next writer's init_transactions aborts it).
                p.purge(in_queue=True, in_flight=True, blocking=False)
                with warnings.catch_warnings():
                    # close() tries to abort the open transaction and warns
                    # when it cannot (fenced, or a commit still in progress).
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p.close(0)
            else:
                p.close(timeout=0, null_logger=True)
        except Exception:
            logger.debug("closing producer failed", exc_info=True)

    def _discard_producer(self) -> None:
        p, self._producer = self._producer, None
        if p is not None:
            self._close_producer(p)

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
            self.acquire()
            if check is not None:
                check()
            if not records:
                return []
            producer = self._producer
            assert producer is not None
            if ck is not None and isinstance(producer, ck.Producer):
                positions = self._write_confluent(producer, records, group_offsets)
            elif group_offsets is not None:
                msg = "committing a consumer group's offsets in the transaction needs the confluent client"
                raise ProgrammingError(msg)
            else:
                positions = self._write_kafka_python(producer, records)
            offsets = []
            for r, (partition, offset) in zip(records, positions, strict=True):
                index = self.indexes.get(r.topic)  # records for other topics are not indexed
                if index is not None:
                    index.add_own(partition, offset, r.key, r.value, r.headers)
                r.offset = offset
                offsets.append(offset)
        self._notify()
        return offsets

    def _fenced_error(self, e: BaseException) -> WriterFencedError:
        self._discard_producer()
        msg = (
            f"Writer {self.transactional_id} was fenced by a newer writer of "
            f"{self.primary} partitions {list(self.owned)}; nothing was written. "
            "Reload the aggregate and retry (the partitions are re-read "
            "on the next write)."
        )
        return WriterFencedError(msg)

    def _unknown_outcome_error(self) -> CommitOutcomeUnknownError:
        self._discard_producer()
        msg = (
            f"Commit of a transaction on {self.primary} did not complete in "
            f"{self.settings.timeout:g}s; its outcome is unknown. The writer was "
            "discarded; the next write re-acquires the partitions and re-reads "
            "them, so the index shows the outcome."
        )
        return CommitOutcomeUnknownError(msg)

    def _write_confluent(
        self, producer: Any, records: Sequence[OutRecord], group_offsets: GroupOffsets | None = None
    ) -> list[tuple[int, int]]:
        """One librdkafka transaction; (partition, offset) of each record from
        its delivery report. Called under the lock."""
        timeout = self.settings.timeout
        reports: list[tuple[int, int] | None] = [None] * len(records)
        failures: list[Any] = []

        def report(i: int) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, msg: Any) -> None:
                if err is not None:
                    failures.append(err)
                else:
                    reports[i] = (msg.partition(), msg.offset())

            return on_delivery

        committing = False
        try:
            producer.begin_transaction()
            produce = producer.produce
            for i, r in enumerate(records):
                produce(
                    r.topic, r.value, r.key, partition=r.partition, headers=r.headers, on_delivery=report(i)
                )
            if group_offsets is not None:
                # TxnOffsetCommit with the member's generation: refused (the transaction then
                # must abort) if the group has moved on without this member
                self._send_offsets_bounded(producer, group_offsets, timeout)
            committing = True
            # Flushes the batch (serving the delivery reports), then EndTxn;
            # bounded, unlike kafka-python's.
            producer.commit_transaction(timeout)
            committing = False
            deadline = time.monotonic() + timeout
            while None in reports and not failures and time.monotonic() < deadline:
                producer.poll(0.01)
        except BrokerUnavailableError:
            raise  # an abandoned writer (see _send_offsets_bounded)
        except Exception as e:
            err = _ck_error(e)
            if _is_fenced(e):
                raise self._fenced_error(e) from e
            too_large = [f for f in [err, *failures] if f is not None and f.code() in _CK_TOO_LARGE_CODES]
            if too_large:
                try:
                    producer.abort_transaction(timeout)
                except Exception:
                    logger.debug("abort_transaction failed; discarding the writer", exc_info=True)
                    self._discard_producer()
                raise RecordTooLargeError(
                    self.primary, -1, None, 0, 0, f" (the cluster refused it: {too_large[0].str()})"
                ) from e
            if err is not None and err.code() in _CK_GROUP_FENCED_CODES:
                try:
                    producer.abort_transaction(timeout)
                except Exception:
                    logger.debug("abort_transaction failed; discarding the writer", exc_info=True)
                    self._discard_producer()
                msg = (
                    f"Writer {self.transactional_id}: the consumer group refused this member's offsets "
                    f"({err.str()}): the group has moved on without it; the transaction was aborted"
                )
                raise WriterFencedError(msg) from e
            if err is not None and err.txn_requires_abort():
                try:
                    producer.abort_transaction(timeout)
                except Exception:
                    logger.debug("abort_transaction failed; discarding the writer", exc_info=True)
                    self._discard_producer()
                msg = f"Kafka transaction aborted (nothing committed): {err.str()}"
                raise OperationalError(msg) from e
            if committing and (err is None or err.retriable() or err.code() == ck.KafkaError._TIMED_OUT):
                # The commit may or may not have happened (a retriable error
                # of commit_transaction means "try again": outcome unknown).
                raise self._unknown_outcome_error() from e
            self._discard_producer()
            if err is not None and err.code() in (
                ck.KafkaError._TIMED_OUT,
                ck.KafkaError._TRANSPORT,
                ck.KafkaError._ALL_BROKERS_DOWN,
            ):
                raise _connect_error(self.settings, "transactional write", e) from e
            msg = f"Kafka transaction failed (nothing committed): {type(e).__name__}: {e}"
            raise OperationalError(msg) from e
        if failures or None in reports:
            # Committed, yet a delivery report is missing or failed: cannot
            # happen with a transactional producer; the index re-reads.
            self._discard_producer()
            msg = (
                f"Transaction on {self.primary} committed but {len(failures)} delivery report(s) "
                f"failed and {reports.count(None)} are missing: {failures[:3]}"
            )
            raise CommitOutcomeUnknownError(msg)
        return reports  # type: ignore[return-value]

    def _send_offsets_bounded(self, producer: Any, group_offsets: GroupOffsets, timeout: float) -> None:
        """``send_offsets_to_transaction``, but bounded for real.

        librdkafka (up to at least 2.16, confluentinc/librdkafka#5456) ignores this call's timeout
        while the group coordinator is unreachable: a node blocked in it for good after a broker
        outage. So the call runs on a thread of its own; if it has not returned a little after
        its timeout, the producer is abandoned to that thread (closing it while the call is
        inside would crash), which closes it if the call ever returns. The open transaction is
        aborted by the next writer's ``init_transactions`` (same transactional id): nothing of
        the batch is committed, and the caller sees a broker that is unavailable."""
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
                    self._close_producer(producer)

        thread = threading.Thread(target=call, name=f"parsec-offsets-{self.transactional_id}", daemon=True)
        thread.start()
        if not done.wait(timeout + 3.0):
            abandoned.set()
            if self._producer is producer:
                self._producer = None  # not closed here: the stuck call still uses it
            msg = (
                f"Writer {self.transactional_id}: sending the consumer group's offsets did not return in "
                f"{timeout:g}s (the group coordinator is unreachable); the writer was abandoned and nothing "
                "of the transaction is committed"
            )
            raise BrokerUnavailableError(msg)
        if failure:
            raise failure[0]

    def _write_kafka_python(self, producer: Any, records: Sequence[OutRecord]) -> list[tuple[int, int]]:
        """One kafka-python transaction. Called under the lock."""
        futures: list[Any] = []
        try:
            producer.begin_transaction()
            futures = [
                producer.send(r.topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition)
                for r in records
            ]
            self._bounded_commit(producer)
            metas = [f.get(timeout=self.settings.timeout) for f in futures]
        except CommitOutcomeUnknownError:
            self._discard_producer()
            raise
        except Exception as e:
            causes = [e] + [
                f.exception for f in futures if f.is_done and f.failed() and f.exception is not None
            ]
            if any(_is_fenced(c) for c in causes):
                raise self._fenced_error(e) from e
            # Whatever went wrong, the transaction did not commit; start
            # afresh: the next write re-acquires (init_transactions aborts
            # anything left open) and re-reads the partitions. (No
            # abort_transaction here: kafka-python waits for it unbounded.)
            self._discard_producer()
            if isinstance(e, kerrors.KafkaTimeoutError | kerrors.KafkaConnectionError):
                raise _connect_error(self.settings, "transactional write", e) from e
            msg = f"Kafka transaction failed (nothing committed): {type(e).__name__}: {e}"
            raise OperationalError(msg) from e
        return [(m.partition, m.offset) for m in metas]

    def _bounded_commit(self, producer: KafkaProducer) -> None:
        """commit_transaction, but bounded by the timeout (kafka-python's
        waits forever when the broker goes away mid-commit)."""
        tm = getattr(producer, "_transaction_manager", None)
        sender = getattr(producer, "_sender", None)
        if tm is None or sender is None or not hasattr(tm, "begin_commit"):  # pragma: no cover
            producer.commit_transaction()
            return
        result = tm.begin_commit()
        sender.wakeup()
        if not result.wait(timeout_ms=self.settings.timeout_ms):
            raise self._unknown_outcome_error()

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
            self._discard_producer()
            try:
                self._consumer.close(autocommit=False)
            except Exception:
                logger.debug("closing consumer failed", exc_info=True)
