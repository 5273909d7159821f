"""The fee policy a participant announces for forwarding through its side of a channel.

``ChannelUpdate`` is Parsec's Lightning ``channel_update``: the participant signs, in the Parsec
EIP-712 domain, what it charges to forward a payment out of its side of one channel (``feeBase``
plus ``feeProportional`` parts per million of the forwarded amount) and how much expiry it needs
between the lock it receives and the lock it offers (``expiryDelta``). An instance that exists is
verified (signer == participant). Of two updates for the same (channel, participant) the newer
``issuedAt`` wins (``supersedes``); the channel-graph read model applies that rule.

Pure: the pathfinder (infrastructure/routing) reads these numbers; nothing here knows a graph.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field, PrivateAttr, field_validator

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey, recover_public_key, split_signature
from domain.eip712 import StructType
from domain.errors import InvalidAmount, MalformedMessage, WrongSigner
from domain.money import check_amount
from domain.protocol import AmountField, EthAddressField, Message, SignatureHex, SigningDomain

CHANNEL_UPDATE_TYPE = StructType.parse(
    "ChannelUpdate(bytes16 channelId,address participant,uint256 feeBase,uint32 feeProportional,"
    "uint64 expiryDelta,uint64 issuedAt)"
)

PPM = 1_000_000
"""``feeProportional`` is in parts per million of the forwarded amount."""
MAX_FEE_PPM = 2**32 - 1  # uint32 in the signed struct
MAX_UINT64 = 2**64 - 1


def proportional_fee(amount: int, fee_base: int, fee_ppm: int) -> int:
    """``fee_base + amount * fee_ppm // 1_000_000``: integer, rounded DOWN (the forwarder loses the
    fraction of the smallest unit, never the payer), the same rule as Lightning's msat fees."""
    check_amount(amount, positive=False, what="forwarded amount")
    return fee_base + amount * fee_ppm // PPM


def _uint(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise MalformedMessage(f"{what} must be an integer, got {type(v).__name__}")
    return v


class ChannelUpdate(Message):
    """One participant's signed forwarding policy for its side of one channel."""

    channel_id: UUID = Field(alias="channelId")
    participant: EthAddressField
    fee_base: AmountField = Field(alias="feeBase")
    fee_proportional: int = Field(alias="feeProportional", ge=0, le=MAX_FEE_PPM)
    expiry_delta: int = Field(alias="expiryDelta", gt=0, le=MAX_UINT64)
    issued_at: int = Field(alias="issuedAt", ge=0, le=MAX_UINT64)
    signature: SignatureHex
    domain: SigningDomain

    _digest: bytes = PrivateAttr(default=b"")

    @field_validator("fee_proportional", "expiry_delta", "issued_at", mode="before")
    @classmethod
    def _integers(cls, v: Any, info: Any) -> int:
        return _uint(v, info.field_name)

    def model_post_init(self, context: Any) -> None:
        check_amount(self.fee_base, positive=False, what="feeBase")
        digest = channel_update_digest(self.domain, self.channel_id, self.participant, self.fee_base,
                                       self.fee_proportional, self.expiry_delta, self.issued_at)
        split_signature(self.signature)  # form and low-s before the costly recovery
        signer = eth_address_from_public_key(recover_public_key(digest, self.signature))
        if signer != self.participant:
            raise WrongSigner(
                f"channel update for {self.participant} was signed by {signer} "
                "(wrong key, altered field, or signed for another chain or contract)"
            )
        self._digest = digest

    @property
    def digest(self) -> bytes:
        return self._digest

    def fee_for(self, amount: int) -> int:
        """What this participant charges to forward ``amount`` (rounded down, see ``proportional_fee``)."""
        return proportional_fee(amount, self.fee_base, self.fee_proportional)

    def supersedes(self, other: ChannelUpdate | None) -> bool:
        """True when this update replaces ``other``: same channel and participant, strictly newer."""
        if other is None:
            return True
        return (self.channel_id, self.participant) == (other.channel_id, other.participant) and \
            self.issued_at > other.issued_at


def channel_update_digest(domain: SigningDomain, channel_id: UUID, participant: str, fee_base: int,
                          fee_proportional: int, expiry_delta: int, issued_at: int) -> bytes:
    return domain.digest(CHANNEL_UPDATE_TYPE.hash_struct({
        "channelId": channel_id.bytes,
        "participant": participant,
        "feeBase": fee_base,
        "feeProportional": fee_proportional,
        "expiryDelta": expiry_delta,
        "issuedAt": issued_at,
    }))


def sign_channel_update(key: PrivateKey, domain: SigningDomain, channel_id: UUID, *, fee_base: int,
                        fee_proportional: int, expiry_delta: int, issued_at: int) -> ChannelUpdate:
    """The participant's side: sign its forwarding policy for ``channel_id`` (verified on return)."""
    # the same bounds the model enforces, before anything is hashed (the struct's uint words refuse
    # out-of-range values only with a bare ValueError)
    if isinstance(fee_base, bool) or not isinstance(fee_base, int) or fee_base < 0:
        raise InvalidAmount(f"feeBase must be a non-negative integer, got {fee_base!r}")
    for what, value, low, high in (("feeProportional", fee_proportional, 0, MAX_FEE_PPM),
                                   ("expiryDelta", expiry_delta, 1, MAX_UINT64),
                                   ("issuedAt", issued_at, 0, MAX_UINT64)):
        if not low <= _uint(value, what) <= high:
            raise MalformedMessage(f"{what} must be between {low} and {high}, got {value}")
    participant = eth_address_from_public_key(key.public_key)
    digest = channel_update_digest(domain, channel_id, participant, fee_base, fee_proportional,
                                   expiry_delta, issued_at)
    return ChannelUpdate(
        channel_id=channel_id, participant=participant, fee_base=fee_base, fee_proportional=fee_proportional,
        expiry_delta=expiry_delta, issued_at=issued_at, signature=key.sign_digest(digest), domain=domain,
    )


# --- the policy a channel side has before its participant announces one ----------------------------
DEFAULT_FEE_BASE = 0
"""No base fee unless announced: a payer is never charged for a policy nobody signed."""
DEFAULT_FEE_PPM = 1_000
"""0.1 % of the forwarded amount, so that among unannounced channels a route's fee still grows with it."""
DEFAULT_EXPIRY_DELTA = 600
"""Ten minutes between the lock a mediator receives and the one it offers: room to see the secret revealed
downstream and claim upstream (the node reads Kafka in well under a second; the chain is the slow part)."""


__all__ = [
    "CHANNEL_UPDATE_TYPE", "DEFAULT_EXPIRY_DELTA", "DEFAULT_FEE_BASE", "DEFAULT_FEE_PPM", "PPM", "ChannelUpdate",
    "channel_update_digest", "proportional_fee", "sign_channel_update",
]
