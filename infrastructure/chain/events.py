"""The contract's events as typed, frozen values, for a chain watcher.

Each class is named after the contract's log, except where that name is also a domain name:
``ChannelClosedLog`` (``Channel.ChannelClosed`` is the Channel's own event, with its final
balances), so that one name never means two things in the code base.

``Checkpointed`` and ``StateUpdated`` are emitted once per recorded proof (the buyer's new
sequence and total); ``Disputed`` carries the whole recorded state and the new head's digest.
Together with ``ChannelOpened``/``Deposited`` a watcher can follow a channel from events alone.
Payouts: ``PayeeSet`` names where a participant's payouts go, ``PayoutDeferred`` records an ETH
payout its receiver refused (a credit of the participant), ``Withdrawn`` that credit sent on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

from eth_utils import event_abi_to_log_topic
from web3.contract import Contract


@dataclass(frozen=True)
class ChainEvent:
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ChannelOpened(ChainEvent):
    channel_id: UUID
    a: str
    b: str
    token: str
    challenge_period: int
    deposit: int


@dataclass(frozen=True)
class Deposited(ChainEvent):
    channel_id: UUID
    participant: str
    amount: int
    total_deposit: int


@dataclass(frozen=True)
class ProofRecorded(ChainEvent):
    channel_id: UUID
    buyer: str
    sequence: int
    buyer_total: int


@dataclass(frozen=True)
class Checkpointed(ProofRecorded):
    """A proof recorded by a checkpoint while the channel is open."""


@dataclass(frozen=True)
class StateUpdated(ProofRecorded):
    """A proof recorded by a unilateral close or by the counterparty's update."""


@dataclass(frozen=True)
class ChannelClosedLog(ChainEvent):
    """The contract's ``ChannelClosed`` log: a unilateral close started the challenge period."""

    channel_id: UUID
    closer: str
    settle_at: int


@dataclass(frozen=True)
class Disputed(ChainEvent):
    channel_id: UUID
    payments: int
    seq_a: int
    sent_a: int
    seq_b: int
    sent_b: int
    head_hash: bytes


@dataclass(frozen=True)
class ChannelSettled(ChainEvent):
    channel_id: UUID
    balance_a: int
    balance_b: int


@dataclass(frozen=True)
class CooperativelyClosed(ChainEvent):
    channel_id: UUID
    balance_a: int
    balance_b: int
    sequence: int


@dataclass(frozen=True)
class OperatorSet(ChainEvent):
    participant: str
    operator: str


@dataclass(frozen=True)
class PayeeSet(ChainEvent):
    """Where ``participant``'s payouts go from now on (the zero address: to itself)."""

    participant: str
    payee: str


@dataclass(frozen=True)
class PayoutDeferred(ChainEvent):
    """A pushed ETH payout was refused by its receiver: ``owner`` (the participant) holds it as a credit."""

    owner: str
    amount: int


@dataclass(frozen=True)
class Withdrawn(ChainEvent):
    """``owner``'s credit was sent to ``to`` (its payee, or itself) by ``withdraw(owner)``."""

    owner: str
    to: str
    amount: int


@dataclass(frozen=True)
class SecretRevealed(ChainEvent):
    """The first on-chain registration of a lock's secret (``secret_hash`` = sha256(secret))."""

    secret_hash: bytes
    secret: bytes


@dataclass(frozen=True)
class LocksHeld(ChainEvent):
    """settleHoldingLocks paid what is not locked and holds ``held``; ``base`` and ``total`` are
    what ``unlock`` must be given."""

    channel_id: UUID
    base: int
    total: int
    held: int


@dataclass(frozen=True)
class LocksUnlocked(ChainEvent):
    """unlock decided every held lock: ``to_a`` and ``to_b`` paid on top of the settle's payouts."""

    channel_id: UUID
    to_a: int
    to_b: int


# each class by its contract log name (the classes' fields are the log's arguments in snake_case)
_EVENTS: dict[str, type[ChainEvent]] = {
    "ChannelOpened": ChannelOpened, "Deposited": Deposited, "Checkpointed": Checkpointed,
    "StateUpdated": StateUpdated, "ChannelClosed": ChannelClosedLog, "Disputed": Disputed,
    "ChannelSettled": ChannelSettled, "CooperativelyClosed": CooperativelyClosed, "OperatorSet": OperatorSet,
    "PayeeSet": PayeeSet, "PayoutDeferred": PayoutDeferred, "Withdrawn": Withdrawn,
    "SecretRevealed": SecretRevealed, "LocksHeld": LocksHeld, "LocksUnlocked": LocksUnlocked,
}
_BASE_FIELDS = {f.name for f in fields(ChainEvent)}


def _log_argument(name: str) -> str:
    """The contract's name of a field: ``channel_id`` → ``channelId``, ``seq_a`` → ``seqA``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _arguments(cls: type[ChainEvent], args: Any) -> dict[str, Any]:
    """A log's arguments as the class's fields: bytes32 ids as UUIDs, bytes as bytes, the rest as they are."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in _BASE_FIELDS:
            continue
        value = args[_log_argument(f.name)]
        out[f.name] = UUID(bytes=bytes(value)) if f.type in (UUID, "UUID") else (
            bytes(value) if f.type in (bytes, "bytes") else value)
    return out


LOG_NAMES: dict[type[ChainEvent], str] = {cls: name for name, cls in _EVENTS.items()}
"""The contract's log name of each event class."""


def decode_events(contract: Contract, logs: Iterable[Any]) -> list[ChainEvent]:
    """Decode this contract's raw logs (others are skipped) into typed events, in log order."""
    by_topic = {
        event_abi_to_log_topic(item): item["name"]
        for item in contract.abi
        if item.get("type") == "event" and item["name"] in _EVENTS
    }
    entries: list[tuple[str, Any]] = []
    for log in logs:
        if log["address"] != contract.address or not log["topics"]:
            continue
        name = by_topic.get(bytes(log["topics"][0]))
        if name is None:
            continue
        entries.append((name, getattr(contract.events, name)().process_log(log)))
    return typed_events(entries)


def typed_events(entries: Iterable[tuple[str, Any]]) -> list[ChainEvent]:
    """Processed log entries (web3's, with ``args``), each with its log name, as typed events in chain order."""
    decoded: list[ChainEvent] = []
    for name, entry in entries:
        cls = _EVENTS[name]
        decoded.append(cls(block_number=entry["blockNumber"], tx_hash=entry["transactionHash"].to_0x_hex(),
                           log_index=entry["logIndex"], **_arguments(cls, entry["args"])))
    decoded.sort(key=lambda e: (e.block_number, e.log_index))
    return decoded
