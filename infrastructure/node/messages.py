"""What travels on the node's topics besides payments: control requests and rejections.

Payments on the inbound topic are ``SignedInvoice`` JSON (``docs/protocol.md``).
The control topic carries one JSON object per request, ``{"type": ..., "channel": ...}``
(see :data:`ControlRequest`). Every message the node refuses is copied, raw, to the
rejected topic with its reason and where it came from (:class:`Rejection`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from domain.errors import MalformedMessage, ParsecError
from infrastructure.kafka.log import OutRecord, partition_for_key

# --- control requests ------------------------------------------------------------


def channel_key(channel: UUID) -> bytes:
    """The record key of everything about a channel: the same key as its events."""
    return str(channel).encode("utf-8")


def partition_of(channel: UUID, partitions: int) -> int:
    return partition_for_key(channel_key(channel), partitions)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    channel: UUID


def _amount(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("an amount is an integer in the smallest unit")
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if isinstance(v, int):
        return v
    raise ValueError("an amount is an integer in the smallest unit (or a string of digits)")


class OpenChannelRequest(_Request):
    type: Literal["open"] = "open"
    public_key_a: str = Field(alias="publicKeyA")
    public_key_b: str = Field(alias="publicKeyB")
    currency: str = "ETH"
    deposit_a: int = Field(alias="depositA")
    deposit_b: int = Field(0, alias="depositB")
    challenge_period: int = Field(3600, alias="challengePeriod")
    checkpoint_interval: int = Field(100, alias="checkpointInterval")
    checkpoint_timeout: int = Field(3600, alias="checkpointTimeout")
    chain_id: int = Field(alias="chainId")
    contract: str
    at: int | None = None

    _amounts = field_validator("deposit_a", "deposit_b", mode="before")(lambda cls, v: _amount(v))

    @field_validator("public_key_a", "public_key_b")
    @classmethod
    def _hex_key(cls, v: str) -> str:
        h = v.removeprefix("0x")
        try:
            bytes.fromhex(h)
        except ValueError:
            raise ValueError("a public key is hex (33 or 65 bytes)") from None
        return h


class DepositRequest(_Request):
    type: Literal["deposit"] = "deposit"
    participant: str
    amount: int

    _amounts = field_validator("amount", mode="before")(lambda cls, v: _amount(v))


class CheckpointRequest(_Request):
    type: Literal["checkpoint"] = "checkpoint"


class SettlementRequest(_Request):
    type: Literal["settle"] = "settle"
    requested_by: str = Field("control", alias="requestedBy")


class DisputeRequest(_Request):
    type: Literal["dispute"] = "dispute"
    requested_by: str = Field("control", alias="requestedBy")


class CheckpointConfirmedNotice(_Request):
    """The settler saw a checkpoint (or dispute) of the channel land on-chain."""

    type: Literal["checkpoint-confirmed"] = "checkpoint-confirmed"
    sequence: int
    tx_hash: str = Field(alias="txHash")
    block: int


class ClosedOnChainNotice(_Request):
    """The settler saw the channel settled (or cooperatively closed) on-chain, with its payouts."""

    type: Literal["closed"] = "closed"
    payouts: list[int] | None = None
    at: int | None = None


ControlRequest = Annotated[
    OpenChannelRequest | DepositRequest | CheckpointRequest | SettlementRequest | DisputeRequest
    | CheckpointConfirmedNotice | ClosedOnChainNotice,
    Field(discriminator="type"),
]
_CONTROL = TypeAdapter(ControlRequest)


def parse_control(raw: bytes | None) -> Any:
    """One control request from its JSON bytes, or MalformedMessage saying why not."""
    if raw is None:
        raise MalformedMessage("empty control message")
    check_size(raw)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not valid JSON: {exc}") from None
    try:
        return _CONTROL.validate_python(data)
    except ValidationError as err:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in err.errors()]
        raise MalformedMessage("control request: " + "; ".join(parts)) from None


def encode_control(request: Any) -> bytes:
    return request.model_dump_json(by_alias=True).encode()


# --- rejections --------------------------------------------------------------------


class WrongPartition(ParsecError):
    """A message on a partition that does not hold its channel (the producer's key was wrong)."""


class ProcessingError(ParsecError):
    """A request the node failed to carry out for a reason of its own (a bug): kept for a human."""


MAX_MESSAGE_BYTES = 64 * 1024
"""The largest payment or control message a node reads (a signed payment is about 1 KB)."""


class MessageTooLarge(MalformedMessage):
    """A message over ``MAX_MESSAGE_BYTES``: refused unread, so nothing it could make grows past Kafka's limits."""


class SetAside(ParsecError):
    """A message whose outcome Kafka cannot take (a record over its size limit): refused so that the
    partition goes on; retrying the same batch would fail forever."""


def check_size(raw: bytes | None) -> None:
    if raw is not None and len(raw) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"{len(raw):,} bytes; a message may have at most {MAX_MESSAGE_BYTES:,}")


H_REASON = "parsec.reason"
H_MESSAGE = "parsec.message"
H_SOURCE_TOPIC = "parsec.source.topic"
H_SOURCE_PARTITION = "parsec.source.partition"
H_SOURCE_OFFSET = "parsec.source.offset"
H_AT = "parsec.rejected.at"
H_RAW_SIZE = "parsec.raw.size"  # only when the raw bytes were cut: their size and sha-256
H_RAW_SHA256 = "parsec.raw.sha256"


@dataclass(frozen=True)
class Rejection:
    """A refused message: why, where it came from, and its bytes as they arrived."""

    reason: str
    message: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    raw: bytes
    at: int

    def record(self, topic: str) -> OutRecord:
        """Rejections of partition p go to partition p of the rejected topic (same owner)."""
        headers = [
            (H_REASON, self.reason.encode()),
            (H_MESSAGE, self.message.encode("utf-8", "replace")[:4000]),
            (H_SOURCE_TOPIC, self.source_topic.encode()),
            (H_SOURCE_PARTITION, str(self.source_partition).encode()),
            (H_SOURCE_OFFSET, str(self.source_offset).encode()),
            (H_AT, str(self.at).encode()),
        ]
        raw, key = self.raw, (self.key or b"")[:1024]
        if len(raw) > MAX_MESSAGE_BYTES:
            # a refusal must always fit in a record: keep the start, say what the whole was
            headers += [(H_RAW_SIZE, str(len(raw)).encode()), (H_RAW_SHA256, hashlib.sha256(raw).hexdigest().encode())]
            raw = raw[:MAX_MESSAGE_BYTES]
        return OutRecord(topic, self.source_partition, key, raw, headers)

    @classmethod
    def of(cls, key: bytes | None, value: bytes | None, headers: Any) -> Rejection:
        h = {k: v for k, v in headers or ()}
        return cls(
            reason=h[H_REASON].decode(),
            message=h[H_MESSAGE].decode("utf-8", "replace"),
            source_topic=h[H_SOURCE_TOPIC].decode(),
            source_partition=int(h[H_SOURCE_PARTITION]),
            source_offset=int(h[H_SOURCE_OFFSET]),
            key=key or None,
            raw=value or b"",
            at=int(h.get(H_AT, b"0")),
        )

    @classmethod
    def from_error(
        cls, err: ParsecError, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes | None, at: int
    ) -> Rejection:
        return cls(err.reason, str(err), topic, partition, offset, key, raw or b"", at)
