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
from dataclasses import dataclass
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


def _proof(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel_id": UUID(bytes=bytes(a["channelId"])),
        "buyer": a["buyer"],
        "sequence": a["sequence"],
        "buyer_total": a["buyerTotal"],
    }


def _disputed(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel_id": UUID(bytes=bytes(a["channelId"])),
        "payments": a["payments"],
        "seq_a": a["seqA"],
        "sent_a": a["sentA"],
        "seq_b": a["seqB"],
        "sent_b": a["sentB"],
        "head_hash": bytes(a["headHash"]),
    }


_DECODERS: dict[str, tuple[type[ChainEvent], Any]] = {
    "ChannelOpened": (
        ChannelOpened,
        lambda a: {
            "channel_id": UUID(bytes=bytes(a["channelId"])),
            "a": a["a"],
            "b": a["b"],
            "token": a["token"],
            "challenge_period": a["challengePeriod"],
            "deposit": a["deposit"],
        },
    ),
    "Deposited": (
        Deposited,
        lambda a: {
            "channel_id": UUID(bytes=bytes(a["channelId"])),
            "participant": a["participant"],
            "amount": a["amount"],
            "total_deposit": a["totalDeposit"],
        },
    ),
    "Checkpointed": (Checkpointed, _proof),
    "StateUpdated": (StateUpdated, _proof),
    "ChannelClosed": (
        ChannelClosedLog,
        lambda a: {
            "channel_id": UUID(bytes=bytes(a["channelId"])),
            "closer": a["closer"],
            "settle_at": a["settleAt"],
        },
    ),
    "Disputed": (Disputed, _disputed),
    "ChannelSettled": (
        ChannelSettled,
        lambda a: {
            "channel_id": UUID(bytes=bytes(a["channelId"])),
            "balance_a": a["balanceA"],
            "balance_b": a["balanceB"],
        },
    ),
    "CooperativelyClosed": (
        CooperativelyClosed,
        lambda a: {
            "channel_id": UUID(bytes=bytes(a["channelId"])),
            "balance_a": a["balanceA"],
            "balance_b": a["balanceB"],
            "sequence": a["sequence"],
        },
    ),
    "OperatorSet": (OperatorSet, lambda a: {"participant": a["participant"], "operator": a["operator"]}),
    "PayeeSet": (PayeeSet, lambda a: {"participant": a["participant"], "payee": a["payee"]}),
    "PayoutDeferred": (PayoutDeferred, lambda a: {"owner": a["owner"], "amount": a["amount"]}),
    "Withdrawn": (Withdrawn, lambda a: {"owner": a["owner"], "to": a["to"], "amount": a["amount"]}),
}


LOG_NAMES: dict[type[ChainEvent], str] = {cls: name for name, (cls, _) in _DECODERS.items()}
"""The contract's log name of each event class."""


def decode_events(contract: Contract, logs: Iterable[Any]) -> list[ChainEvent]:
    """Decode this contract's raw logs (others are skipped) into typed events, in log order."""
    by_topic = {
        event_abi_to_log_topic(item): item["name"]
        for item in contract.abi
        if item.get("type") == "event" and item["name"] in _DECODERS
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
        cls, convert = _DECODERS[name]
        decoded.append(
            cls(
                block_number=entry["blockNumber"],
                tx_hash=entry["transactionHash"].to_0x_hex(),
                log_index=entry["logIndex"],
                **convert(entry["args"]),
            )
        )
    decoded.sort(key=lambda e: (e.block_number, e.log_index))
    return decoded
