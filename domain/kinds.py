"""The catalogue of channel transaction kinds (the paper's "basic catalogue of predefined
transactions which can be used to add additional custom transactions").

Every channel transaction is a buyer-signed ``Payment`` (``domain/protocol.py``) in the channel's
hash chain; its ``kind`` says what it does to the buyer's side of the channel. A kind is registered
here once with

- its terms: a ``Message`` model (the JSON ``terms`` object) and the EIP-712 struct the signature
  binds them with (``terms`` in the signed struct is that struct's hashStruct, so its type hash names
  the kind; a kind without terms signs zero);
- its effect: from the buyer's direction before (cumulative total sent, pending locks) to after,
  refusing what the kind does not allow.

The Channel applies every kind the same way: the chain checks (sequence, hash pointer, participants,
domain, currency, repeats) first, then the kind's effect, then the signed buyerTotal, lockedAmount and
locksRoot must equal the effect's, and the buyer must afford what the effect takes from its spendable
balance. So the node, the reorder window, the read models (``PaymentAccepted`` records the kind and
the totals after) and the dispute (the contract is kind-agnostic: it checks signatures, links and
that totals never decrease) treat a plugin's kind exactly like a built-in one.

A plugin is any importable module with a ``TRANSACTION_KINDS`` list (``load_plugins``; the
``kind_plugins`` setting, ``PARSEC_KIND_PLUGINS``). Example: ``domain/examples/refund.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from domain.eip712 import StructType
from domain.errors import (
    LockAlreadyPending,
    LockAmountMismatch,
    LockLifetimeTooLong,
    LockNotExpired,
    LockNotFound,
    MalformedMessage,
    TooManyLocks,
    UnknownTransactionKind,
    WrongSecret,
)
from domain.locks import MAX_PENDING_LOCKS, Lock, secret_hash
from domain.wire import AmountField, EthAddressField, Hash32, Message

NO_TERMS = b"\0" * 32

LOCK_EXPIRY_MARGIN = 30
"""Seconds after a lock's expiry before its payer may remove it (``lockExpired``). The receiver may
register the secret on-chain up to the expiry itself; the margin covers the block that does so being
seen late (clock skew between the node and the chain, a block mined a few seconds after its
timestamp), so a lock is never removed off-chain while the chain may still pay it."""


@dataclass(frozen=True)
class Direction:
    """One buyer's side of a channel: its cumulative total sent and its pending locks, oldest first."""

    sent: int
    locks: tuple[Lock, ...] = ()

    @property
    def locked(self) -> int:
        return sum(lock.amount for lock in self.locks)

    def find(self, secret_hash_: bytes) -> Lock:
        for lock in self.locks:
            if lock.secret_hash == secret_hash_:
                return lock
        raise LockNotFound(f"no pending lock with secret hash 0x{secret_hash_.hex()}")

    def without(self, lock: Lock) -> tuple[Lock, ...]:
        return tuple(x for x in self.locks if x is not lock)


@dataclass(frozen=True)
class Circumstances:
    """What a kind may consult besides the buyer's direction: the node's time and the channel's terms."""

    at: int
    challenge_period: int


class TransactionKind:
    """One entry of the catalogue. Subclass, set ``name`` (and ``terms_model`` / ``terms_type`` if the
    kind has terms), implement ``effect``."""

    name: ClassVar[str]
    terms_model: ClassVar[type[Message] | None] = None
    terms_type: ClassVar[StructType | None] = None

    def parse_terms(self, raw: dict[str, Any]) -> Message | None:
        if self.terms_model is None:
            if raw:
                raise MalformedMessage(f"a {self.name} transaction carries no terms")
            return None
        if not isinstance(raw, dict):
            raise MalformedMessage(f"the terms of a {self.name} are a JSON object")
        return self.terms_model.parse(raw)

    def terms_hash(self, terms: Message | None) -> bytes:
        if terms is None or self.terms_type is None:
            return NO_TERMS
        return self.terms_type.hash_struct(self.struct(terms))

    def struct(self, terms: Message) -> dict[str, object]:
        """The terms as the EIP-712 struct's values; by default the model's fields under their aliases."""
        return {(f.alias or n): getattr(terms, n) for n, f in type(terms).model_fields.items()}

    def effect(self, price: int, terms: Message | None, before: Direction, when: Circumstances) -> Direction:
        raise NotImplementedError


class Micropayment(TransactionKind):
    """The paper's payment: the price moves to the supplier."""

    name = "payment"

    def effect(self, price: int, terms: Message | None, before: Direction, when: Circumstances) -> Direction:
        return replace(before, sent=before.sent + price)


# --- hashed timelocks ---------------------------------------------------------------------
class LockedTransferTerms(Message):
    amount: AmountField
    secret_hash: Hash32 = Field(alias="secretHash")
    expiry: int = Field(ge=0, le=2**64 - 1)
    payment_id: UUID = Field(alias="paymentId")
    initiator: EthAddressField
    target: EthAddressField


class UnlockTerms(Message):
    secret_hash: Hash32 = Field(alias="secretHash")
    secret: Hash32


class LockExpiredTerms(Message):
    secret_hash: Hash32 = Field(alias="secretHash")


class LockedTransfer(TransactionKind):
    """Adds a lock: ``price`` is the lock's amount, held back from the buyer's spendable balance and not
    yet the supplier's. The lock's life is capped at the channel's challenge period: a channel closed
    unilaterally settles a challenge period after the close, so by then every lock recorded before the
    close has expired and the contract decides them all in the settle (docs/protocol.md "Locks")."""

    name = "lockedTransfer"
    terms_model = LockedTransferTerms
    terms_type = StructType.parse(
        "LockedTransfer(uint256 amount,bytes32 secretHash,uint64 expiry,bytes16 paymentId,address initiator,"
        "address target)"
    )

    def struct(self, terms: Message) -> dict[str, object]:
        t: LockedTransferTerms = terms  # type: ignore[assignment]
        return {"amount": t.amount, "secretHash": t.secret_hash, "expiry": t.expiry,
                "paymentId": t.payment_id.bytes, "initiator": t.initiator, "target": t.target}

    def effect(self, price: int, terms: Message | None, before: Direction, when: Circumstances) -> Direction:
        t: LockedTransferTerms = terms  # type: ignore[assignment]
        if t.amount != price:
            raise LockAmountMismatch(f"the lock's amount {t.amount} is not the transaction's price {price}")
        if len(before.locks) >= MAX_PENDING_LOCKS:
            raise TooManyLocks(f"the buyer already has {MAX_PENDING_LOCKS} pending locks in this channel")
        if any(lock.secret_hash == t.secret_hash for lock in before.locks):
            raise LockAlreadyPending(f"a lock with secret hash 0x{t.secret_hash.hex()} is already pending")
        if t.expiry <= when.at:
            raise LockLifetimeTooLong(f"the lock expires at {t.expiry}, not after now ({when.at})")
        if t.expiry - when.at > when.challenge_period:
            raise LockLifetimeTooLong(
                f"the lock expires {t.expiry - when.at}s from now, past the channel's challenge period of "
                f"{when.challenge_period}s"
            )
        lock = Lock(amount=t.amount, secret_hash=t.secret_hash, expiry=t.expiry)
        return replace(before, locks=(*before.locks, lock))


class Unlock(TransactionKind):
    """The secret is known: the lock's amount moves from the buyer's locked amount to its total sent."""

    name = "unlock"
    terms_model = UnlockTerms
    terms_type = StructType.parse("Unlock(bytes32 secretHash,bytes32 secret)")

    def effect(self, price: int, terms: Message | None, before: Direction, when: Circumstances) -> Direction:
        t: UnlockTerms = terms  # type: ignore[assignment]
        if secret_hash(t.secret) != t.secret_hash:
            raise WrongSecret(f"sha256 of the secret is not 0x{t.secret_hash.hex()}")
        lock = before.find(t.secret_hash)
        if lock.amount != price:
            raise LockAmountMismatch(f"the lock's amount is {lock.amount}, not the transaction's price {price}")
        return Direction(sent=before.sent + lock.amount, locks=before.without(lock))


class LockExpired(TransactionKind):
    """The lock is removed after its expiry plus ``LOCK_EXPIRY_MARGIN``: its amount is the buyer's again."""

    name = "lockExpired"
    terms_model = LockExpiredTerms
    terms_type = StructType.parse("LockExpired(bytes32 secretHash)")

    def effect(self, price: int, terms: Message | None, before: Direction, when: Circumstances) -> Direction:
        t: LockExpiredTerms = terms  # type: ignore[assignment]
        lock = before.find(t.secret_hash)
        if lock.amount != price:
            raise LockAmountMismatch(f"the lock's amount is {lock.amount}, not the transaction's price {price}")
        if when.at <= lock.expiry + LOCK_EXPIRY_MARGIN:
            raise LockNotExpired(
                f"the lock expires at {lock.expiry}; it may be removed after {lock.expiry + LOCK_EXPIRY_MARGIN} "
                f"(expiry + {LOCK_EXPIRY_MARGIN}s), it is {when.at}"
            )
        return replace(before, locks=before.without(lock))


# --- the catalogue ---------------------------------------------------------------------------
_KINDS: dict[str, TransactionKind] = {}
BUILT_IN = ("payment", "lockedTransfer", "unlock", "lockExpired")


def register(kind: TransactionKind) -> TransactionKind:
    """Add a kind; refuses a second kind of the same name or the same terms type (the signature would
    not tell them apart). Registering the same class again is a no-op."""
    existing = _KINDS.get(kind.name)
    if existing is not None:
        if type(existing) is type(kind):
            return existing
        raise ValueError(f"a transaction kind named {kind.name!r} is already registered ({type(existing).__name__})")
    if kind.terms_type is not None:
        for other in _KINDS.values():
            if other.terms_type is not None and other.terms_type.type_hash == kind.terms_type.type_hash:
                raise ValueError(f"kind {kind.name!r} has the terms type of {other.name!r}")
    _KINDS[kind.name] = kind
    return kind


for _kind in (Micropayment(), LockedTransfer(), Unlock(), LockExpired()):
    register(_kind)


def get(name: str) -> TransactionKind:
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise UnknownTransactionKind(
            f"no transaction kind {str(name)[:64]!r}; known: {', '.join(sorted(_KINDS))}"
        ) from None


def kinds() -> dict[str, TransactionKind]:
    return dict(_KINDS)


def load_plugins(modules: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Import each module and register its ``TRANSACTION_KINDS``; returns the names added."""
    added: list[str] = []
    for module_name in modules or ():
        module = importlib.import_module(module_name)
        for kind in getattr(module, "TRANSACTION_KINDS", ()):
            register(kind)
            added.append(kind.name)
    return added
