"""Hashed timelocks: a lock, its packed form, the root over a direction's pending locks.

A lock is an amount the buyer of a channel direction has promised its counterparty, claimable by
whoever knows the secret whose sha256 is ``secret_hash``, until ``expiry`` (unix seconds). sha256,
not keccak: the same secret then unlocks a Bitcoin HTLC (and Raiden's registry uses it too).

The packed form and the root are what the contract recomputes (docs/protocol.md "Locks"):
``abi.encodePacked(uint64 expiry, uint128 amount, bytes32 secretHash)``, 56 bytes, and the root is
keccak-256 of the packed locks concatenated in the order they were added (zero when none is pending).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from domain.crypto import keccak
from domain.errors import MalformedMessage

MAX_PENDING_LOCKS = 160
"""Raiden's bound: unlocking every pending lock of a direction on-chain stays far inside a block's gas."""

NO_LOCKS_ROOT = b"\0" * 32
PACKED_LOCK_SIZE = 56
MAX_EXPIRY = 2**64 - 1
MAX_LOCK_AMOUNT = 2**128 - 1


def secret_hash(secret: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) != 32:
        raise MalformedMessage("a secret is exactly 32 bytes")
    return hashlib.sha256(secret).digest()


@dataclass(frozen=True)
class Lock:
    amount: int
    secret_hash: bytes
    expiry: int

    def __post_init__(self) -> None:
        if not 0 < self.amount <= MAX_LOCK_AMOUNT:
            raise MalformedMessage(f"a lock's amount must be between 1 and 2**128-1, got {self.amount}")
        if not 0 <= self.expiry <= MAX_EXPIRY:
            raise MalformedMessage(f"a lock's expiry must fit 64 bits, got {self.expiry}")
        if len(self.secret_hash) != 32:
            raise MalformedMessage("a lock's secret hash is 32 bytes")

    def packed(self) -> bytes:
        return self.expiry.to_bytes(8, "big") + self.amount.to_bytes(16, "big") + self.secret_hash

    def to_dict(self) -> dict[str, Any]:
        """As events store it (amounts as integers: the event codec keeps big integers exactly)."""
        return {"amount": self.amount, "secretHash": "0x" + self.secret_hash.hex(), "expiry": self.expiry}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lock:
        return cls(amount=int(d["amount"]), secret_hash=bytes.fromhex(str(d["secretHash"])[2:]),
                   expiry=int(d["expiry"]))


def pack_locks(locks: Iterable[Lock]) -> bytes:
    """What the contract's settleWithLocks / unlock take for one direction."""
    return b"".join(lock.packed() for lock in locks)


def locks_root(locks: Iterable[Lock]) -> bytes:
    packed = pack_locks(locks)
    return keccak(packed) if packed else NO_LOCKS_ROOT


def unpack_locks(data: bytes) -> list[Lock]:
    if len(data) % PACKED_LOCK_SIZE:
        raise MalformedMessage(f"packed locks are a multiple of {PACKED_LOCK_SIZE} bytes, got {len(data)}")
    return [Lock(expiry=int.from_bytes(data[o:o + 8], "big"), amount=int.from_bytes(data[o + 8:o + 24], "big"),
                 secret_hash=data[o + 24:o + 56]) for o in range(0, len(data), PACKED_LOCK_SIZE)]
