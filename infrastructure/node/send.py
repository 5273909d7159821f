"""Producing to a node: signed payments to the inbound topic, requests to the control topic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from kafka import KafkaProducer

from domain.addresses import eth_address_from_public_key
from domain.application import ChannelService
from domain.crypto import PrivateKey
from domain.errors import NotAParticipant
from domain.money import Currency, parse_amount
from domain.protocol import HashPointer, Invoice, SignedInvoice, sign_invoice
from infrastructure.kafka.admin import ensure_topics
from infrastructure.node.messages import channel_key, encode_control, partition_of
from infrastructure.node.topics import node_topic_specs, store_settings
from infrastructure.schemas.registry import header as schema_header
from infrastructure.settings import Settings


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int
    key: str


def producer_config(config: Settings) -> dict[str, Any]:
    """The sender's kafka-python producer: the config's bootstrap and security, ``acks=all``."""
    return config.kafka.kafka_python_producer(linger_ms=5, client_id="parsec-send")


class Sender:
    """One idempotent producer; records keyed by channel id, partitioned like the events."""

    def __init__(self, config: Settings) -> None:
        self.config = config
        counts = ensure_topics(store_settings(config), node_topic_specs(config))
        self.partitions = counts[config.inbound_topic]
        self.producer = KafkaProducer(**producer_config(config))

    def _send(self, topic: str, channel: UUID, value: bytes, schema: str) -> Any:
        # the value's schema version (schemas/NAME/vN.json): the node does not need it to read the record
        return self.producer.send(topic, key=channel_key(channel), value=value,
                                  partition=partition_of(channel, self.partitions), headers=[schema_header(schema)])

    def payment(self, tx: SignedInvoice | bytes, channel: UUID | None = None) -> Any:
        """Queue one payment (a SignedInvoice, or raw JSON with ``channel`` given); returns a future."""
        if isinstance(tx, SignedInvoice):
            return self._send(self.config.inbound_topic, tx.channel, tx.to_json(), "payment")
        assert channel is not None
        return self._send(self.config.inbound_topic, channel, tx, "payment")

    def control(self, request: Any) -> Any:
        return self._send(self.config.control_topic, request.channel, encode_control(request), "control")

    def raw(self, topic: str, partition: int, key: bytes | None, value: bytes) -> Any:
        return self.producer.send(topic, key=key, value=value, partition=partition)

    @staticmethod
    def sent(future: Any, timeout: float = 15) -> Sent:
        m = future.get(timeout=timeout)
        return Sent(m.topic, m.partition, m.offset, "")

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def next_payment(reader: ChannelService, channel_id: UUID, key: PrivateKey, amount: str,
                 invoice_type: str = "") -> SignedInvoice:
    """Sign the payment that extends ``channel_id``'s head as the event store has it now.

    (A payment still in flight on the inbound topic is not seen: send one at a time,
    or sign a chain yourself and send the files.)"""
    ch = reader.get_channel_aggregate(channel_id)
    buyer = eth_address_from_public_key(key.public_key)
    if buyer not in ch.participants:
        raise NotAParticipant(f"{buyer} is not a participant of channel {channel_id}")
    supplier = ch.counterparty(buyer)
    cur = Currency.parse(ch.currency)
    price = parse_amount(amount, cur)
    previous = HashPointer(transaction_id=UUID(ch.head_id), transaction_hash=bytes.fromhex(ch.head_hash[2:]))
    return sign_invoice(
        Invoice(invoice_address=supplier, price=price, currency=cur, invoice_type=invoice_type),
        key=key,
        channel=channel_id,
        invoice_id=uuid.uuid4(),
        sequence=ch.sequence + 1,
        previous=previous,
        buyer_total=ch.sent[buyer] + price,
        domain=ch.domain,
    )
