"""How events and tracking positions are spelled as Kafka records: keys,
partitions, headers and values, and the record a writer sends (``OutRecord``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from kafka.partitioner import murmur2

from infrastructure.schemas.registry import header as schema_header

if TYPE_CHECKING:
    from collections.abc import Sequence

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

MAX_RECORD_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes`` (the broker's ``max.message.bytes`` is 1,048,588)."""
_RECORD_OVERHEAD = 64  # a record's framing in a batch: lengths, attributes, timestamps, offsets


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> int:
    """The bytes a record takes in a batch (an upper bound)."""
    size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, data in headers or ():
        size += 8 + len(name) + len(data or b"")
    return size


@dataclass
class OutRecord:
    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    offset: int | None = None  # set by KafkaLog.write once committed


def originator_key(originator_id: UUID | str) -> bytes:
    """The record key of an aggregate: its id as text, UTF-8."""
    return str(originator_id).encode("utf-8")


@lru_cache(maxsize=1 << 16)
def partition_for_key(key: bytes, num_partitions: int) -> int:
    """Kafka's (Java client's) default partitioner: murmur2(key) % partitions.

    kafka-python's murmur2 is pure Python, ~25 µs for a channel id: 5% of a node's time per
    payment (its event's key and the partition check of its record). The keys are channel ids,
    a working set that fits a cache; a miss costs the hash once more."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


CHANNEL_EVENT_TOPIC_PREFIX = "domain.channel:Channel."
"""The es.topic of every Channel event: the events the published schema ``event`` describes."""


def encode_event(s: StoredEvent, kind: bytes = KIND_EVENT) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    id_type = b"uuid" if isinstance(s.originator_id, UUID) else b"str"
    headers = [
        (H_FORMAT, FORMAT_VERSION),
        (H_KIND, kind),
        (H_VERSION, str(int(s.originator_version)).encode()),
        (H_TOPIC, s.topic.encode("utf-8")),
        (H_ID_TYPE, id_type),
    ]
    if kind == KIND_EVENT and s.topic.startswith(CHANNEL_EVENT_TOPIC_PREFIX):
        # the value's schema (schemas/event/); decode_event does not need it, old records lack it
        headers.append(schema_header("event"))
    return originator_key(s.originator_id), bytes(s.state), headers


def event_records(
    topic: str, stored_events: Sequence[StoredEvent], num_partitions: int, kind: bytes = KIND_EVENT
) -> list[OutRecord]:
    """The records of ``stored_events`` on ``topic``, each in its aggregate's partition."""
    records = []
    for s in stored_events:
        key, value, headers = encode_event(s, kind)
        records.append(OutRecord(topic, partition_for_key(key, num_partitions), key, value, headers))
    return records


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


def encode_tracking(
    application_name: str, notification_id: int
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return (
        application_name.encode("utf-8"),
        str(int(notification_id)).encode("ascii"),
        [(H_FORMAT, FORMAT_VERSION), (H_KIND, KIND_TRACKING)],
    )
