"""Off-chain messages between the parties of a mediated transfer (issue 14): EIP-712, signed by their sender.

Three messages travel beside the channels' lockedTransfers; each is typed data in the payments'
domain (:class:`~domain.protocol.SigningDomain`: "Parsec", "1", chain id, channel contract), so a
message signed for another deployment never verifies. The struct strings, byte-exact (for
docs/protocol.md)::

  SecretRequest(bytes16 paymentId,bytes32 secretHash,uint256 amount,uint64 expiry,address sender,address recipient)
  RevealSecret(bytes32 secret,address sender,address recipient)
  LockFailed(bytes16 channelId,bytes32 secretHash,string reason,address sender,address recipient)

``SecretRequest`` goes from the target to the initiator; ``RevealSecret`` from the initiator to the
target and then from each hop to its payer (upstream); ``LockFailed`` from a payee to its payer
("I cannot forward this lock"). Sender and recipient are signed so a message cannot be replayed to
another party. There is no nonce: each message is idempotent (the same message twice changes
nothing), and its :attr:`message_id` (the struct hash) is its uniqueness.

A message is verified on construction: the signature must recover to ``sender`` in the given domain
(low-s only). JSON is camelCase, amounts decimal strings, bytes 0x hex, plus ``"type"`` and
``"signature"``; the domain is not in the JSON (the receiver verifies in its own).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from domain.addresses import eth_address_from_public_key, parse_eth_address
from domain.control import Signed
from domain.crypto import PrivateKey
from domain.eip712 import StructType
from domain.errors import InvalidAddress, MalformedMessage, WrongSigner
from domain.protocol import SigningDomain

SECRET_REQUEST_TYPE_STRING = (
    "SecretRequest(bytes16 paymentId,bytes32 secretHash,uint256 amount,uint64 expiry,address sender,address recipient)"
)
REVEAL_SECRET_TYPE_STRING = "RevealSecret(bytes32 secret,address sender,address recipient)"
LOCK_FAILED_TYPE_STRING = (
    "LockFailed(bytes16 channelId,bytes32 secretHash,string reason,address sender,address recipient)"
)

MAX_UINT64 = 2**64 - 1
MAX_UINT256 = 2**256 - 1
MAX_REASON_LENGTH = 200  # a reason is a short code or sentence for a log, not a payload
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,77})$")


class MalformedHopMessage(MalformedMessage):
    """A hop message whose fields are missing, of the wrong type or out of range."""


class HopMessageSignatureInvalid(WrongSigner):
    """A hop message whose signature does not recover to its sender (tampered, or another domain)."""


def secret_hash_of(secret: bytes) -> bytes:
    """The lock's hash of a secret: sha256 (interoperates with Bitcoin HTLCs and Raiden)."""
    return hashlib.sha256(secret).digest()


@dataclass(frozen=True)
class HopMessage(Signed):
    """Base: sender, recipient, signature and the domain it was verified in."""

    KIND: ClassVar[str]

    def _check_common(self) -> None:
        for name in ("sender", "recipient"):
            try:
                object.__setattr__(self, name, parse_eth_address(getattr(self, name)))
            except InvalidAddress as err:
                raise MalformedHopMessage(f"{self.KIND}.{name}: {err}") from None
        if self.sender == self.recipient:
            raise MalformedHopMessage(f"{self.KIND}: sender and recipient are the same address")
        if not isinstance(self.signature, bytes) or len(self.signature) != 65:
            raise MalformedHopMessage(f"{self.KIND}: a signature is 65 bytes")
        signer = self.recover(self.domain, self.signature)
        if signer != self.sender:
            raise HopMessageSignatureInvalid(
                f"{self.KIND} signed by {signer}, not by its sender {self.sender} (tampered, or another domain)"
            )

    @property
    def message_id(self) -> bytes:
        """The struct hash: the same message, whoever relays it, has the same id."""
        return self.struct_hash()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.KIND}
        for typ, name in self.TYPE.fields:
            out[name] = _to_json_value(typ, getattr(self, _attribute(name)))
        out["signature"] = "0x" + self.signature.hex()
        return out

    @classmethod
    def from_json(cls, data: Any, domain: SigningDomain) -> HopMessage:
        if not isinstance(data, dict):
            raise MalformedHopMessage(f"a {cls.KIND} is a JSON object")
        if data.get("type") != cls.KIND:
            raise MalformedHopMessage(f"expected type {cls.KIND!r}, got {data.get('type')!r}")
        expected = {name for _, name in cls.TYPE.fields} | {"type", "signature"}
        unknown = set(data) - expected
        missing = expected - set(data)
        if unknown or missing:
            raise MalformedHopMessage(
                f"{cls.KIND}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}"
            )
        values = {_attribute(name): _from_json_value(cls.KIND, name, typ, data[name]) for typ, name in cls.TYPE.fields}
        signature = _from_json_value(cls.KIND, "signature", "signature", data["signature"])
        return cls(**values, signature=signature, domain=domain)  # type: ignore[arg-type]

    @classmethod
    def signed(cls, key: PrivateKey, domain: SigningDomain, **fields: Any) -> HopMessage:
        """Build and sign (the sender is the key's address)."""
        sender = eth_address_from_public_key(key.public_key)
        unsigned = cls(**fields, sender=sender, signature=b"", domain=domain, _verify=False)  # type: ignore[call-arg]
        signature = bytes(unsigned.sign(key, domain))
        return cls(**fields, sender=sender, signature=signature, domain=domain)


def _attribute(member: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", member).lower()


def _to_json_value(typ: str, value: object) -> object:
    if typ.startswith("uint"):
        return str(value)
    if typ == "bytes16":
        return str(value)  # a UUID, canonical text
    if typ == "bytes32":
        return "0x" + value.hex()  # type: ignore[attr-defined]
    return value


def _from_json_value(kind: str, name: str, typ: str, value: object) -> object:
    where = f"{kind}.{name}"
    if typ.startswith("uint"):
        if not isinstance(value, str) or not _DECIMAL.match(value):
            raise MalformedHopMessage(f"{where} is an ASCII decimal string")
        return int(value)
    if typ == "bytes16":
        try:
            return uuid.UUID(value) if isinstance(value, str) else _bad(where, "a UUID string")
        except ValueError:
            raise MalformedHopMessage(f"{where} is not a UUID") from None
    if typ == "bytes32":
        if not isinstance(value, str) or not _HEX32.match(value):
            raise MalformedHopMessage(f"{where} is 0x and 64 hex digits")
        return bytes.fromhex(value[2:])
    if typ == "signature":
        if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", value):
            raise MalformedHopMessage(f"{where} is 0x and 130 hex digits")
        return bytes.fromhex(value[2:])
    if not isinstance(value, str):
        raise MalformedHopMessage(f"{where} is a string")
    return value


def _bad(where: str, what: str) -> Any:
    raise MalformedHopMessage(f"{where} is {what}")


def _check_uint(kind: str, name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise MalformedHopMessage(f"{kind}.{name} must be an integer in [0, {maximum}]")


def _check_bytes(kind: str, name: str, value: object, length: int) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise MalformedHopMessage(f"{kind}.{name} must be {length} bytes")


def _check_uuid(kind: str, name: str, value: object) -> None:
    if not isinstance(value, uuid.UUID):
        raise MalformedHopMessage(f"{kind}.{name} must be a UUID")


@dataclass(frozen=True)
class SecretRequest(HopMessage):
    """The target asks the initiator for the secret of a lock it holds (amount and expiry as it received)."""

    KIND: ClassVar[str] = "secretRequest"
    TYPE: ClassVar[StructType] = StructType.parse(SECRET_REQUEST_TYPE_STRING)
    payment_id: uuid.UUID
    secret_hash: bytes
    amount: int
    expiry: int
    recipient: str
    sender: str
    signature: bytes
    domain: SigningDomain = field(repr=False, compare=False)
    _verify: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_uuid(self.KIND, "paymentId", self.payment_id)
        _check_bytes(self.KIND, "secretHash", self.secret_hash, 32)
        _check_uint(self.KIND, "amount", self.amount, MAX_UINT256)
        if self.amount <= 0:
            raise MalformedHopMessage("secretRequest.amount must be positive")
        _check_uint(self.KIND, "expiry", self.expiry, MAX_UINT64)
        if self._verify:
            self._check_common()


@dataclass(frozen=True)
class RevealSecret(HopMessage):
    """A secret, told to a party that holds (or is owed) a lock on its hash."""

    KIND: ClassVar[str] = "revealSecret"
    TYPE: ClassVar[StructType] = StructType.parse(REVEAL_SECRET_TYPE_STRING)
    secret: bytes
    recipient: str
    sender: str
    signature: bytes
    domain: SigningDomain = field(repr=False, compare=False)
    _verify: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_bytes(self.KIND, "secret", self.secret, 32)
        if self._verify:
            self._check_common()

    @property
    def secret_hash(self) -> bytes:
        return secret_hash_of(self.secret)


@dataclass(frozen=True)
class LockFailed(HopMessage):
    """A payee tells its payer it cannot forward the lock on ``secret_hash`` in ``channel_id``."""

    KIND: ClassVar[str] = "lockFailed"
    TYPE: ClassVar[StructType] = StructType.parse(LOCK_FAILED_TYPE_STRING)
    channel_id: uuid.UUID
    secret_hash: bytes
    reason: str
    recipient: str
    sender: str
    signature: bytes
    domain: SigningDomain = field(repr=False, compare=False)
    _verify: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_uuid(self.KIND, "channelId", self.channel_id)
        _check_bytes(self.KIND, "secretHash", self.secret_hash, 32)
        if not isinstance(self.reason, str) or not 0 < len(self.reason) <= MAX_REASON_LENGTH:
            raise MalformedHopMessage(f"lockFailed.reason is a string of 1 to {MAX_REASON_LENGTH} characters")
        if self._verify:
            self._check_common()


HOP_MESSAGES: dict[str, type[HopMessage]] = {m.KIND: m for m in (SecretRequest, RevealSecret, LockFailed)}


def parse_hop_message(data: Any, domain: SigningDomain) -> HopMessage:
    """Any of the three messages from its JSON, by its ``"type"``; verified in ``domain``."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in HOP_MESSAGES:
        raise MalformedHopMessage(f"unknown hop message type {kind!r} (expected one of {sorted(HOP_MESSAGES)})")
    return HOP_MESSAGES[kind].from_json(data, domain)


__all__ = [
    "HOP_MESSAGES",
    "LOCK_FAILED_TYPE_STRING",
    "REVEAL_SECRET_TYPE_STRING",
    "SECRET_REQUEST_TYPE_STRING",
    "HopMessage",
    "HopMessageSignatureInvalid",
    "LockFailed",
    "MalformedHopMessage",
    "RevealSecret",
    "SecretRequest",
    "parse_hop_message",
    "secret_hash_of",
]
