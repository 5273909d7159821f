"""What travels on the node's topics besides payments: control requests and rejections.

Payments on the inbound topic are ``SignedInvoice`` JSON (``docs/protocol.md``).
The control topic carries one JSON object per request, ``{"type": ..., "channel": ...}``
(see :data:`ControlRequest`). Every message the node refuses is copied, raw, to the
rejected topic with its reason and where it came from (:class:`Rejection`).

Every control message is signed (EIP-712, ``domain.control``; bytes in ``docs/protocol.md``,
"Control requests and notices"): a request by a participant of the channel or the operator it
registered, with ``nonce``, ``expiry`` (unix seconds) and ``signature`` (0x-hex, 65 bytes
r‖s‖v); a settler's notice by the settler's operator key, with ``issuedAt`` and ``signature``.
Amounts are strings of digits. The models parse any of these fields missing (so that the node
can say ``UnsignedRequest`` rather than ``MalformedMessage``); :meth:`authenticate` /
:meth:`signer` say who signed, and ``signed()`` signs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from domain.addresses import Address, eth_address_from_public_key, parse_eth_address
from domain.control import (
    MAX_UINT64,
    ChannelRequest,
    ControlAction,
    Deposit,
    OpenChannel,
    RegisterSecret,
    RequestAuth,
    SetOperator,
    SettlerNotice,
    SignedRequest,
)
from domain.crypto import PrivateKey
from domain.errors import MalformedMessage, ParsecError, UnsignedRequest
from domain.protocol import SigningDomain, check_json_depth
from domain.wire import AMOUNT_JSON_SCHEMA, ETH_ADDRESS_JSON_SCHEMA, hex_json_schema
from infrastructure.kafka.codec import OutRecord, partition_for_key
from infrastructure.schemas.registry import SCHEMA_HEADER
from infrastructure.schemas.registry import header as schema_header
from infrastructure.schemas.validation import explain as explain_refusal

# --- control requests ------------------------------------------------------------

DEFAULT_VALID_FOR = 300  # seconds a request signed here stays valid (its expiry = now + this)


def channel_key(channel: UUID) -> bytes:
    """The record key of everything about a channel: the same key as its events."""
    return str(channel).encode("utf-8")


def partition_of(channel: UUID, partitions: int) -> int:
    return partition_for_key(channel_key(channel), partitions)


_nonce_lock = threading.Lock()
_last_nonce = 0


def fresh_nonce() -> int:
    """Milliseconds since the epoch, and above any nonce this process handed out before."""
    global _last_nonce
    with _nonce_lock:
        _last_nonce = max(time.time_ns() // 1_000_000, _last_nonce + 1)
        return _last_nonce


def _amount(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("an amount is an integer in the smallest unit")
    if isinstance(v, str) and v.isascii() and v.isdigit():  # 0-9 only: isdigit() alone takes "٥" and "²"
        return int(v)
    if isinstance(v, int) and v >= 0:
        return v
    raise ValueError("an amount is a non-negative integer in the smallest unit (or a string of digits)")


def _public_key(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a public key is hex (33 or 65 bytes)")
    h = v.removeprefix("0x")
    try:
        bytes.fromhex(h)
    except ValueError:
        raise ValueError("a public key is hex (33 or 65 bytes)") from None
    return h


def _bytes32(v: Any) -> str:
    """32 bytes as 0x-hex (lower case): a secret or a secret hash."""
    if isinstance(v, str):
        h = v.removeprefix("0x")
        if len(h) == 64:
            try:
                return "0x" + bytes.fromhex(h).hex()
            except ValueError:
                pass
    raise ValueError("32 bytes as hex (64 hex digits, 0x optional)")


def _address(v: Any) -> str:
    try:
        return parse_eth_address(v)
    except ParsecError as err:
        raise ValueError(str(err)) from None


# WithJsonSchema: the published schema of each type (schemas/control/) says what the validator accepts
AmountField = Annotated[int, BeforeValidator(_amount), PlainSerializer(str, return_type=str),
                        WithJsonSchema(AMOUNT_JSON_SCHEMA)]
U64 = Annotated[int, Field(ge=0, le=MAX_UINT64, strict=True)]
PositiveU64 = Annotated[int, Field(gt=0, le=MAX_UINT64, strict=True)]
AddressField = Annotated[str, BeforeValidator(_address), WithJsonSchema(ETH_ADDRESS_JSON_SCHEMA)]
Bytes32Field = Annotated[str, BeforeValidator(_bytes32), WithJsonSchema(hex_json_schema(32, "32 bytes as hex"))]
PublicKeyField = Annotated[str, BeforeValidator(_public_key),
                           WithJsonSchema(hex_json_schema(None, "a secp256k1 public key as hex (33 or 65 bytes)"))]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    channel: UUID

    def require_signature(self) -> None:
        if not getattr(self, "signature", None):
            raise UnsignedRequest(
                f"{getattr(self, 'type', 'control')} request for channel {self.channel} carries no signature: "
                "control requests and notices must be signed"
            )


class _SignedRequest(_Request):
    """A request from a participant (or its operator): nonce, expiry, signature."""

    nonce: U64 | None = None
    expiry: U64 | None = None
    signature: str | None = None

    TYPED: ClassVar[type[SignedRequest]]
    """The ``domain.control`` struct this request is signed as."""

    def typed(self) -> SignedRequest:
        """This request as its signed struct: each field from this model's attribute of the same name,
        ``channel_id`` from ``channel``, a missing nonce or expiry as 0, others from :meth:`_derived`."""
        values = {"channel_id": self.channel, "nonce": self.nonce or 0, "expiry": self.expiry or 0,
                  **self._derived()}
        return self.TYPED(**{f.name: values[f.name] if f.name in values else getattr(self, f.name)
                             for f in dataclasses.fields(self.TYPED)})  # type: ignore[arg-type]

    def _derived(self) -> dict[str, object]:
        """Struct fields not stored under their own name in this model."""
        return {}

    def authenticate(self, domain: SigningDomain) -> RequestAuth:
        """Who signed this request (recovered, low-s only), with its nonce and expiry."""
        self.require_signature()
        if self.nonce is None or self.expiry is None:
            raise MalformedMessage(f"a signed {self.type} request needs a nonce and an expiry")  # type: ignore[attr-defined]
        return self.typed().authenticate(domain, self.signature)

    def signed(self, key: PrivateKey, domain: SigningDomain, *, nonce: int | None = None,
               expiry: int | None = None, valid_for: int = DEFAULT_VALID_FOR) -> Self:
        """This request signed with ``key`` (a fresh nonce and now + ``valid_for`` unless given)."""
        nonce = fresh_nonce() if nonce is None else nonce
        expiry = int(time.time()) + valid_for if expiry is None else expiry
        unsigned = self.model_copy(update={"nonce": nonce, "expiry": expiry, "signature": None})
        sig = unsigned.typed().sign(key, domain)
        return self.model_copy(update={"nonce": nonce, "expiry": expiry, "signature": "0x" + sig.hex()})


class OpenChannelRequest(_SignedRequest):
    """Open a channel in the node's books: signed by participant A (its key is ``publicKeyA``)."""

    TYPED = OpenChannel
    type: Literal["open"] = "open"
    public_key_a: PublicKeyField = Field(alias="publicKeyA")
    public_key_b: PublicKeyField = Field(alias="publicKeyB")
    currency: str = "ETH"
    deposit_a: AmountField = Field(alias="depositA")
    deposit_b: AmountField = Field(0, alias="depositB")
    challenge_period: PositiveU64 = Field(3600, alias="challengePeriod")
    checkpoint_interval: PositiveU64 = Field(100, alias="checkpointInterval")
    checkpoint_timeout: PositiveU64 = Field(3600, alias="checkpointTimeout")
    chain_id: int = Field(alias="chainId")
    contract: str

    @property
    def signing_domain(self) -> SigningDomain:
        """The deployment the channel is opened on: what A's signature is bound to."""
        return SigningDomain(chain_id=self.chain_id, verifying_contract=self.contract)

    def _derived(self) -> dict[str, object]:
        return {"participant_a": eth_address_from_public_key(bytes.fromhex(self.public_key_a)),
                "participant_b": eth_address_from_public_key(bytes.fromhex(self.public_key_b))}


class DepositRequest(_SignedRequest):
    """Credit ``amount`` to ``participant``'s deposit: signed by that participant."""

    TYPED = Deposit
    type: Literal["deposit"] = "deposit"
    participant: AddressField
    amount: AmountField


class SetOperatorRequest(_SignedRequest):
    """``operator`` may send checkpoint, settle and dispute requests for ``participant`` (signed by it)."""

    TYPED = SetOperator
    type: Literal["set-operator"] = "set-operator"
    participant: AddressField
    operator: AddressField


class _ChannelRequest(_SignedRequest):
    TYPED = ChannelRequest
    ACTION: ClassVar[ControlAction]

    def _derived(self) -> dict[str, object]:
        return {"action": self.ACTION}


class CheckpointRequest(_ChannelRequest):
    ACTION: ClassVar[ControlAction] = ControlAction.CHECKPOINT
    type: Literal["checkpoint"] = "checkpoint"


class SettlementRequest(_ChannelRequest):
    ACTION: ClassVar[ControlAction] = ControlAction.SETTLE
    type: Literal["settle"] = "settle"


class DisputeRequest(_ChannelRequest):
    ACTION: ClassVar[ControlAction] = ControlAction.DISPUTE
    type: Literal["dispute"] = "dispute"


class RegisterSecretRequest(_SignedRequest):
    """Register ``secret`` (of a pending lock of the channel) on-chain: signed by a participant or its operator."""

    TYPED = RegisterSecret
    type: Literal["register-secret"] = "register-secret"
    secret: Bytes32Field

    def _derived(self) -> dict[str, object]:
        return {"secret": bytes.fromhex(self.secret[2:])}


class ChannelUpdateRequest(_Request):
    """A participant's signed forwarding policy for its side of the channel (``domain.routing.ChannelUpdate``:
    fee base, proportional fee, expiry delta, issued at). Its signature is the update's own EIP-712
    signature; the newer ``issuedAt`` wins, so a replay changes nothing and needs no nonce."""

    type: Literal["channel-update"] = "channel-update"
    participant: AddressField
    fee_base: AmountField = Field(alias="feeBase")
    fee_proportional: U64 = Field(alias="feeProportional")
    expiry_delta: PositiveU64 = Field(alias="expiryDelta")
    issued_at: U64 = Field(alias="issuedAt")
    signature: str | None = None

    @classmethod
    def of(cls, update: Any) -> ChannelUpdateRequest:
        return cls(channel=update.channel_id, participant=update.participant, fee_base=update.fee_base,
                   fee_proportional=update.fee_proportional, expiry_delta=update.expiry_delta,
                   issued_at=update.issued_at, signature="0x" + bytes(update.signature).hex())

    def update(self, domain: SigningDomain) -> Any:
        """The verified ``ChannelUpdate`` in the channel's domain (WrongSigner if the signature is not
        the participant's over these values in this deployment)."""
        from domain.routing import ChannelUpdate

        self.require_signature()
        return ChannelUpdate(channel_id=self.channel, participant=self.participant, fee_base=self.fee_base,
                             fee_proportional=self.fee_proportional, expiry_delta=self.expiry_delta,
                             issued_at=self.issued_at, signature=self.signature, domain=domain)


class _Notice(_Request):
    """A settler's notice of what the chain did: ``issuedAt`` and the settler's signature."""

    issued_at: U64 | None = Field(None, alias="issuedAt")
    signature: str | None = None

    def typed(self) -> SettlerNotice:  # pragma: no cover - every notice defines it
        raise NotImplementedError

    def signer(self, domain: SigningDomain) -> Address:
        """The address that signed this notice (whether it is a trusted settler is the node's call)."""
        self.require_signature()
        if self.issued_at is None:
            raise MalformedMessage(f"a signed {self.type} notice needs issuedAt")  # type: ignore[attr-defined]
        return self.typed().recover(domain, self.signature)

    def signed(self, key: PrivateKey, domain: SigningDomain, *, issued_at: int | None = None) -> Self:
        issued_at = int(time.time()) if issued_at is None else issued_at
        unsigned = self.model_copy(update={"issued_at": issued_at, "signature": None})
        sig = unsigned.typed().sign(key, domain)
        return self.model_copy(update={"issued_at": issued_at, "signature": "0x" + sig.hex()})


class CheckpointConfirmedNotice(_Notice):
    """The settler saw a checkpoint (or dispute) of the channel land on-chain."""

    type: Literal["checkpoint-confirmed"] = "checkpoint-confirmed"
    sequence: U64
    tx_hash: str = Field(alias="txHash")
    block: U64

    def typed(self) -> SettlerNotice:
        return SettlerNotice.checkpoint_confirmed(self.channel, self.sequence, self.tx_hash, self.block,
                                                  self.issued_at or 0)


class ClosedOnChainNotice(_Notice):
    """The settler saw the channel settled (or cooperatively closed) on-chain, with its payouts."""

    type: Literal["closed"] = "closed"
    payouts: list[AmountField] | None = None
    at: U64 | None = None

    def typed(self) -> SettlerNotice:
        return SettlerNotice.closed(self.channel, self.payouts, self.at, self.issued_at or 0)


class SettleNotice(_Notice):
    """The settler saw the channel closed on-chain by someone else: stop payments (kind ``settle``)."""

    type: Literal["settle-notice"] = "settle-notice"
    reason: str = ""

    def typed(self) -> SettlerNotice:
        return SettlerNotice.settle(self.channel, self.reason, self.issued_at or 0)


class SecretRegisteredNotice(_Notice):
    """The settler saw a pending lock's secret in the contract's registry (since ``revealedAt``)."""

    type: Literal["secret-registered"] = "secret-registered"
    secret_hash: Bytes32Field = Field(alias="secretHash")
    revealed_at: U64 = Field(alias="revealedAt")
    tx_hash: str = Field("", alias="txHash")

    def typed(self) -> SettlerNotice:
        return SettlerNotice.secret_registered(self.channel, bytes.fromhex(self.secret_hash[2:]), self.revealed_at,
                                               self.tx_hash, self.issued_at or 0)


SETTLER_NOTICES = (CheckpointConfirmedNotice, ClosedOnChainNotice, SettleNotice, SecretRegisteredNotice)

ControlRequest = Annotated[
    OpenChannelRequest | DepositRequest | SetOperatorRequest | CheckpointRequest | SettlementRequest
    | DisputeRequest | RegisterSecretRequest | ChannelUpdateRequest | CheckpointConfirmedNotice | ClosedOnChainNotice
    | SettleNotice | SecretRegisteredNotice,
    Field(discriminator="type"),
]
_CONTROL = TypeAdapter(ControlRequest)


def parse_control(raw: bytes | None) -> Any:
    """One control request from its JSON bytes, or MalformedMessage saying why not."""
    if raw is None:
        raise MalformedMessage("empty control message")
    check_size(raw)
    check_json_depth(raw)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not valid JSON: {exc}") from None
    except RecursionError:  # JSON nested deeper than the decoder recurses: never a request
        raise MalformedMessage("not valid JSON: nested too deeply") from None
    try:
        return _CONTROL.validate_python(data)
    except ValidationError as err:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in err.errors()]
        # the published schema's path and reason too (schemas/control/): what a producer checks against
        raise explain_refusal(MalformedMessage("control request: " + "; ".join(parts)), "control", raw) from None


def encode_control(request: Any) -> bytes:
    return request.model_dump_json(by_alias=True, exclude_none=True).encode()


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

_DECIMAL = r"^[0-9]+$"


class RejectionHeaders(BaseModel):
    """The headers of a rejected-topic record, each as its UTF-8 text (what ``Rejection.record`` writes;
    the published schema ``schemas/rejected/``). The value is the refused message's bytes, unparsed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    reason: Annotated[str, Field(min_length=1, description="the reason code (MalformedMessage, WrongSigner, ...)")] = (
        Field(alias=H_REASON))
    message: Annotated[str, Field(max_length=4000, description="what was wrong, for a human")] = Field(alias=H_MESSAGE)
    source_topic: str = Field(alias=H_SOURCE_TOPIC, description="the topic the refused message was read from")
    source_partition: str = Field(alias=H_SOURCE_PARTITION, pattern=_DECIMAL)
    source_offset: str = Field(alias=H_SOURCE_OFFSET, pattern=_DECIMAL)
    at: str = Field(alias=H_AT, pattern=_DECIMAL, description="unix seconds when the node refused it")
    raw_size: str | None = Field(None, alias=H_RAW_SIZE, pattern=_DECIMAL,
                                 description="only when the value was cut: the refused message's size in bytes")
    raw_sha256: str | None = Field(None, alias=H_RAW_SHA256, pattern=r"^[0-9a-f]{64}$",
                                   description="only when the value was cut: the sha-256 of the whole message")
    schema_: str | None = Field(None, alias=SCHEMA_HEADER, pattern=r"^rejected/v[0-9]+$",
                                description="the version of this schema the record was written with")

    @classmethod
    def of(cls, headers: Any) -> dict[str, str]:
        """Record headers as the JSON object this model describes (``parsec schema check``)."""
        return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}


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
            schema_header("rejected"),
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
