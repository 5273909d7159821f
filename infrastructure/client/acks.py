"""What the node says became of a wallet's payments: its channel log and its rejected topic.

A node writes two things a payer can read back (``infrastructure/node``):

* the channel's events on the events topic: ``PaymentAccepted`` per applied payment, with its
  sequence, transaction hash, buyer and the signed payment itself. A payment sent twice is applied
  once; the repeat writes nothing (the Channel answers DUPLICATE);
* every refused message on the rejected topic, partition p for channels of partition p, with the
  raw bytes and the reason code in headers (``infrastructure.node.messages.Rejection``).

:class:`KafkaAcknowledgements` reads both: the channel through a read-only ``ChannelService`` over
the events topic (``bootstrap.channel_reader``), the refusals with a plain ``read_committed``
consumer from the first record at or after the oldest unsettled payment's creation time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from kafka import KafkaConsumer, TopicPartition

from domain.protocol import HashPointer, SigningDomain
from infrastructure.node.messages import Rejection, partition_of


@dataclass(frozen=True)
class Accepted:
    """One payment in the channel's log."""

    sequence: int
    tx_hash: str
    invoice_id: str
    buyer: str
    buyer_total: int
    transaction: dict[str, Any]


@dataclass(frozen=True)
class NodeChannel:
    """A channel as the node's log has it now."""

    channel: UUID
    participants: tuple[str, str]
    public_keys: tuple[str, str]
    currency: str
    domain: SigningDomain
    deposits: dict[str, int]
    sent: dict[str, int]
    sequence: int
    head: HashPointer
    status: str
    latest: dict[str, dict[str, Any]]
    accepted: list[Accepted] = field(default_factory=list)  # the payments asked for, in sequence order


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


class Acknowledgements(Protocol):
    def channel(self, channel: UUID, since_sequence: int | None = None) -> NodeChannel:
        """The channel now; with ``since_sequence``, also its payments above that sequence
        (UnknownChannel if the node has no such channel)."""
        ...

    def refusals(self, channel: UUID, invoice_ids: set[str], since: float) -> dict[str, Refusal]:
        """Which of these payments (by invoice id) the node refused, and why."""
        ...

    def close(self) -> None: ...


class KafkaAcknowledgements:
    def __init__(self, reader: Any, consumer_config: dict[str, Any], *, inbound_topic: str, rejected_topic: str,
                 timeout: float = 12.0) -> None:
        self.reader = reader  # a ChannelService over the events topic that never writes
        self.consumer_config = consumer_config
        self.inbound_topic, self.rejected_topic, self.timeout = inbound_topic, rejected_topic, timeout

    def channel(self, channel: UUID, since_sequence: int | None = None) -> NodeChannel:
        ch = self.reader.get_channel_aggregate(channel)  # UnknownChannel if the node has none
        accepted = []
        if since_sequence is not None and ch.sequence > since_sequence:
            for e in self.reader.payments_between(channel, since_sequence + 1, ch.sequence):
                accepted.append(Accepted(e.sequence, e.transaction_hash, e.invoice_id, e.buyer, int(e.buyer_total),
                                         dict(e.transaction)))
        a, b = ch.participants
        return NodeChannel(
            channel=channel, participants=(a, b), public_keys=tuple(ch.public_keys),  # type: ignore[arg-type]
            currency=ch.currency, domain=ch.domain, deposits=dict(ch.deposits), sent=dict(ch.sent),
            sequence=ch.sequence,
            head=HashPointer(transaction_id=UUID(ch.head_id), transaction_hash=bytes.fromhex(ch.head_hash[2:])),
            status=ch.status, latest={k: dict(v) for k, v in ch.latest.items()}, accepted=accepted)

    def refusals(self, channel: UUID, invoice_ids: set[str], since: float) -> dict[str, Refusal]:
        if not invoice_ids:
            return {}
        consumer = KafkaConsumer(**self.consumer_config)
        try:
            parts = consumer.partitions_for_topic(self.rejected_topic)
            if not parts:
                return {}
            tp = TopicPartition(self.rejected_topic, partition_of(channel, len(parts)))
            consumer.assign([tp])
            # a rejection is written after its payment was recorded here: start a minute before the
            # oldest one asked about (clocks differ), not at the beginning of the partition
            start = consumer.offsets_for_times({tp: max(0, int((since - 60) * 1000))}).get(tp)
            end = consumer.end_offsets([tp])[tp]
            if start is None or start.offset >= end:
                return {}
            consumer.seek(tp, start.offset)
            found: dict[str, Refusal] = {}
            deadline = time.monotonic() + self.timeout
            while consumer.position(tp) < end and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    for r in records:
                        rej = _rejection(r)
                        if rej is None or rej.source_topic != self.inbound_topic:
                            continue
                        invoice = _invoice_id(rej.raw)
                        if invoice in invoice_ids:
                            found[invoice] = Refusal(rej.reason, rej.message)
            return found
        finally:
            consumer.close(autocommit=False)

    def close(self) -> None:
        self.reader.close()


def _rejection(record: Any) -> Rejection | None:
    try:
        return Rejection.of(record.key, record.value, record.headers)
    except (KeyError, ValueError):
        return None


def _invoice_id(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # a refused message's own bytes: anything
        return None
    value = doc.get("invoiceID") if isinstance(doc, dict) else None
    return str(value) if isinstance(value, str) else None


class LazyAcknowledgements:
    """Builds its acknowledgements on first use: a wallet that only signs and sends through the API
    never connects to Kafka."""

    def __init__(self, factory: Any) -> None:
        self.factory, self._acks = factory, None

    def _get(self) -> Acknowledgements:
        if self._acks is None:
            self._acks = self.factory()
        return self._acks

    def channel(self, channel: UUID, since_sequence: int | None = None) -> NodeChannel:
        return self._get().channel(channel, since_sequence)

    def refusals(self, channel: UUID, invoice_ids: set[str], since: float) -> dict[str, Refusal]:
        return self._get().refusals(channel, invoice_ids, since)

    def close(self) -> None:
        if self._acks is not None:
            self._acks.close()
