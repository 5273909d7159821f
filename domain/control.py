"""Control requests and the settler's notices: EIP-712 typed data, signed and recovered.

What a participant (or the operator it registered) signs to open a channel, credit a deposit,
register an operator, or ask for a checkpoint, a settlement or a dispute; and what the settler
signs to tell a node what the chain did. Every struct is in the same EIP-712 domain as the
payments (:class:`~domain.protocol.SigningDomain`: "Parsec", "1", chain id, channel contract), so
a request signed for another deployment, channel or action never verifies. The bytes are in
``docs/protocol.md`` ("Control requests and notices").

This module only says *who signed what* (:meth:`Signed.recover`, low-s only); *whether that
signer may* is the :class:`~domain.channel.Channel`'s decision (participants, registered
operators, nonces, expiry), or, for notices, :func:`authorize_settler` against the settlers a
node is configured to trust. No I/O, no clock: times are arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import ClassVar, TypeVar
from uuid import UUID

from domain.addresses import Address, eth_address_from_public_key
from domain.crypto import PrivateKey, Signature, recover_public_key
from domain.eip712 import StructType
from domain.errors import (
    BadRequestSignature,
    InvalidSignature,
    MalformedMessage,
    UnauthorizedRequest,
    UnsignedRequest,
)
from domain.protocol import SigningDomain

MAX_UINT64 = 2**64 - 1

_E = TypeVar("_E", bound=StrEnum)

CHANNEL_REQUEST_TYPE = StructType.parse("ChannelRequest(bytes16 channelId,string action,uint64 nonce,uint64 expiry)")
OPEN_CHANNEL_TYPE = StructType.parse(
    "OpenChannel(bytes16 channelId,address participantA,address participantB,string currency,"
    "uint256 depositA,uint256 depositB,uint64 challengePeriod,uint64 checkpointInterval,"
    "uint64 checkpointTimeout,uint64 nonce,uint64 expiry)"
)
DEPOSIT_TYPE = StructType.parse("Deposit(bytes16 channelId,address participant,uint256 amount,uint64 nonce,uint64 expiry)")
SET_OPERATOR_TYPE = StructType.parse(
    "SetOperator(bytes16 channelId,address participant,address operator,uint64 nonce,uint64 expiry)"
)
REGISTER_SECRET_TYPE = StructType.parse("RegisterSecret(bytes16 channelId,bytes32 secret,uint64 nonce,uint64 expiry)")
SETTLER_NOTICE_TYPE = StructType.parse("SettlerNotice(bytes16 channelId,string kind,bytes32 bodyHash,uint64 issuedAt)")

# The body of each notice kind, hashed as an EIP-712 struct into SettlerNotice.bodyHash.
CHECKPOINT_CONFIRMED_BODY = StructType.parse("CheckpointConfirmed(uint64 sequence,string txHash,uint64 block)")
CLOSED_BODY = StructType.parse("Closed(bool withPayouts,uint256 payoutA,uint256 payoutB,uint64 at)")
SETTLE_BODY = StructType.parse("Settle(string reason)")
SECRET_REGISTERED_BODY = StructType.parse("SecretRegistered(bytes32 secretHash,uint64 revealedAt,string txHash)")

NO_OPERATOR = Address("0x" + "00" * 20)
"""SetOperator to the zero address withdraws a participant's operator."""


class ControlAction(StrEnum):
    """What a ``ChannelRequest`` asks for."""

    CHECKPOINT = "checkpoint"
    SETTLE = "settle"
    DISPUTE = "dispute"


class NoticeKind(StrEnum):
    CHECKPOINT_CONFIRMED = "checkpoint-confirmed"
    CLOSED = "closed"
    SETTLE = "settle"  # the chain saw a close: stop payments
    SECRET_REGISTERED = "secret-registered"  # the chain's registry has a pending lock's secret


@dataclass(frozen=True)
class RequestAuth:
    """An authenticated request: who signed it (recovered), its nonce and its expiry (unix seconds)."""

    signer: Address
    nonce: int
    expiry: int


class Signed:
    """A typed-data struct: its EIP-712 hash, digest in a domain, signature and signer."""

    TYPE: ClassVar[StructType]

    def values(self) -> dict[str, object]:
        """The struct's members, each from the attribute of the same name in snake_case
        (``channelId`` from ``channel_id``): one declaration, the EIP-712 type, says what is signed."""
        return {name: _member_value(getattr(self, _attribute(name))) for _, name in self.TYPE.fields}

    def struct_hash(self) -> bytes:
        try:
            return self.TYPE.hash_struct(self.values())
        except ValueError as err:  # a value that does not fit its EIP-712 type
            raise MalformedMessage(f"{self.TYPE.name}: {err}") from None

    def digest(self, domain: SigningDomain) -> bytes:
        return domain.digest(self.struct_hash())

    def sign(self, key: PrivateKey, domain: SigningDomain) -> Signature:
        return key.sign_digest(self.digest(domain))

    def recover(self, domain: SigningDomain, signature: bytes | str | None) -> Address:
        """The address whose key made ``signature`` over this struct in ``domain`` (low-s only)."""
        sig = _signature_bytes(signature, self.TYPE.name)
        try:
            return eth_address_from_public_key(recover_public_key(self.digest(domain), sig))
        except InvalidSignature as err:
            raise BadRequestSignature(f"{self.TYPE.name} signature: {err}") from None


class SignedRequest(Signed):
    """A request struct: it carries a nonce and an expiry, and authenticates to a :class:`RequestAuth`."""

    nonce: int
    expiry: int

    def authenticate(self, domain: SigningDomain, signature: bytes | str | None) -> RequestAuth:
        return RequestAuth(self.recover(domain, signature), self.nonce, self.expiry)


def _attribute(member: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", member).lower()


def _member_value(value: object) -> object:
    if isinstance(value, UUID):
        return value.bytes
    if isinstance(value, Enum):
        return value.value
    return value


def _signature_bytes(signature: bytes | str | None, what: str) -> bytes:
    if signature is None or signature == "" or signature == b"":
        raise UnsignedRequest(f"{what} carries no signature: control requests and notices must be signed")
    if isinstance(signature, bytes):
        return signature
    try:
        return bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise BadRequestSignature(f"{what} signature is not hex") from None


@dataclass(frozen=True)
class ChannelRequest(SignedRequest):
    """A checkpoint, settlement or dispute request: signed by a participant or its registered operator."""

    TYPE: ClassVar[StructType] = CHANNEL_REQUEST_TYPE
    channel_id: UUID
    action: ControlAction
    nonce: int
    expiry: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", _member_of(ControlAction, self.action))


@dataclass(frozen=True)
class OpenChannel(SignedRequest):
    """Open a channel: signed by participant A, the opener."""

    TYPE: ClassVar[StructType] = OPEN_CHANNEL_TYPE
    channel_id: UUID
    participant_a: str
    participant_b: str
    currency: str
    deposit_a: int
    deposit_b: int
    challenge_period: int
    checkpoint_interval: int
    checkpoint_timeout: int
    nonce: int
    expiry: int

    @classmethod
    def of_keys(cls, public_key_a: bytes, public_key_b: bytes, **fields: object) -> OpenChannel:
        return cls(participant_a=eth_address_from_public_key(public_key_a),
                   participant_b=eth_address_from_public_key(public_key_b), **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Deposit(SignedRequest):
    """Credit a deposit to a participant: signed by that participant."""

    TYPE: ClassVar[StructType] = DEPOSIT_TYPE
    channel_id: UUID
    participant: str
    amount: int
    nonce: int
    expiry: int


@dataclass(frozen=True)
class SetOperator(SignedRequest):
    """Register who may send checkpoint, settlement and dispute requests for a participant (its node)."""

    TYPE: ClassVar[StructType] = SET_OPERATOR_TYPE
    channel_id: UUID
    participant: str
    operator: str
    nonce: int
    expiry: int


@dataclass(frozen=True)
class RegisterSecret(SignedRequest):
    """Register a pending lock's secret on-chain (its sha256 is the lock's hash): signed by a participant
    or its registered operator; the settlement process sends ``registerSecret``."""

    TYPE: ClassVar[StructType] = REGISTER_SECRET_TYPE
    channel_id: UUID
    secret: bytes
    nonce: int
    expiry: int


@dataclass(frozen=True)
class SettlerNotice(Signed):
    """What the chain did, from the settler: signed by its operator key."""

    TYPE: ClassVar[StructType] = SETTLER_NOTICE_TYPE
    channel_id: UUID
    kind: NoticeKind
    body_hash: bytes
    issued_at: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _member_of(NoticeKind, self.kind))

    @classmethod
    def checkpoint_confirmed(cls, channel_id: UUID, sequence: int, tx_hash: str, block: int,
                             issued_at: int) -> SettlerNotice:
        body = _hash_body(CHECKPOINT_CONFIRMED_BODY, {"sequence": sequence, "txHash": tx_hash, "block": block})
        return cls(channel_id, NoticeKind.CHECKPOINT_CONFIRMED, body, issued_at)

    @classmethod
    def closed(cls, channel_id: UUID, payouts: list[int] | tuple[int, ...] | None, at: int | None,
               issued_at: int) -> SettlerNotice:
        """``payouts`` None: the chain's payouts are not known (the node computes the balances);
        ``at`` None or 0: the node's time."""
        if payouts is not None and len(payouts) != 2:
            raise MalformedMessage(f"a closed notice has two payouts (A, B), got {len(payouts)}")
        a, b = payouts if payouts is not None else (0, 0)
        body = _hash_body(CLOSED_BODY, {"withPayouts": payouts is not None, "payoutA": a, "payoutB": b,
                                        "at": at or 0})
        return cls(channel_id, NoticeKind.CLOSED, body, issued_at)

    @classmethod
    def settle(cls, channel_id: UUID, reason: str, issued_at: int) -> SettlerNotice:
        return cls(channel_id, NoticeKind.SETTLE, _hash_body(SETTLE_BODY, {"reason": reason}), issued_at)

    @classmethod
    def secret_registered(cls, channel_id: UUID, secret_hash: bytes, revealed_at: int, tx_hash: str,
                          issued_at: int) -> SettlerNotice:
        body = _hash_body(SECRET_REGISTERED_BODY,
                          {"secretHash": secret_hash, "revealedAt": revealed_at, "txHash": tx_hash})
        return cls(channel_id, NoticeKind.SECRET_REGISTERED, body, issued_at)


def _member_of(kind: type[_E], value: object) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise MalformedMessage(f"{value!r} is not a {kind.__name__}") from None


def _hash_body(struct: StructType, values: dict[str, object]) -> bytes:
    try:
        return struct.hash_struct(values)
    except ValueError as err:
        raise MalformedMessage(f"{struct.name}: {err}") from None


def authorize_settler(signer: str, trusted: Iterable[str]) -> Address:
    """A notice counts only if its signer is one of the settlers the node trusts."""
    trusted = frozenset(trusted)
    if not trusted:
        raise UnauthorizedRequest(
            f"settler notice signed by {signer}, but this node trusts no settler "
            "(configure PARSEC_SETTLERS / --settlers with the settler's operator address)"
        )
    if signer not in trusted:
        raise UnauthorizedRequest(f"settler notice signed by {signer}, which is not a settler this node trusts")
    return Address(signer)


__all__ = [
    "CHANNEL_REQUEST_TYPE",
    "CHECKPOINT_CONFIRMED_BODY",
    "CLOSED_BODY",
    "DEPOSIT_TYPE",
    "NO_OPERATOR",
    "OPEN_CHANNEL_TYPE",
    "REGISTER_SECRET_TYPE",
    "SETTLER_NOTICE_TYPE",
    "SECRET_REGISTERED_BODY",
    "SETTLE_BODY",
    "SET_OPERATOR_TYPE",
    "ChannelRequest",
    "ControlAction",
    "Deposit",
    "NoticeKind",
    "OpenChannel",
    "RegisterSecret",
    "RequestAuth",
    "SetOperator",
    "SettlerNotice",
    "Signed",
    "SignedRequest",
    "authorize_settler",
]
