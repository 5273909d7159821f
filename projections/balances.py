"""Balances: per channel (deposits, sent, balances, head) and per participant.

One row per channel (written only by the channel's partition). A
participant's totals are summed from the rows of their channels at query
time, so runners of different partitions never update the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections import views
from projections.model import Column, ReadModel, Rows, Table, handles
from projections.store import ReadModelStore

CHANNELS = Table(
    "balances_channels",
    (
        Column("channel_id"),
        Column("currency"),
        Column("participant_a"),
        Column("participant_b"),
        Column("deposit_a", "amount"),
        Column("deposit_b", "amount"),
        Column("sent_a", "amount"),
        Column("sent_b", "amount"),
        Column("locked_a", "amount"),
        Column("locked_b", "amount"),
        Column("balance_a", "amount"),
        Column("balance_b", "amount"),
        Column("sequence", "int"),
        Column("head_hash"),
        Column("checkpoint_sequence", "int"),
        Column("confirmed_sequence", "int"),
        Column("status"),
        Column("opened_at", "int"),
        Column("closed_at", "int"),
    ),
    key=("channel_id",),
    indexes=(("participant_a",), ("participant_b",)),
)

GENESIS_HEAD = "0x" + "00" * 32


def _side(row: dict[str, Any], participant: str) -> str:
    if participant == row["participant_a"]:
        return "a"
    if participant == row["participant_b"]:
        return "b"
    raise ValueError(f"{participant} is not a participant of channel {row['channel_id']}")


def _recompute(row: dict[str, Any]) -> None:
    """Spendable, as the Channel computes it: what is locked in pending hashed timelocks is neither the
    sender's to spend nor yet the receiver's (deposits = balance_a + balance_b + locked_a + locked_b)."""
    row["balance_a"] = row["deposit_a"] - row["sent_a"] + row["sent_b"] - (row.get("locked_a") or 0)
    row["balance_b"] = row["deposit_b"] - row["sent_b"] + row["sent_a"] - (row.get("locked_b") or 0)


class Balances(
    ReadModel, name="balances", tables=(CHANNELS,), reads_views=True,
    description="per channel: deposits, sent, balances, head; per participant: totals across channels",
):
    @handles("Channel.ChannelOpened")
    def opened(self, event: views.ChannelOpened, rows: Rows) -> None:
        a, b = event.participants
        da, db = event.deposits
        row = dict(
            channel_id=event.originator_id,
            currency=event.currency,
            participant_a=a,
            participant_b=b,
            deposit_a=da,
            deposit_b=db,
            sent_a=0,
            sent_b=0,
            locked_a=0,
            locked_b=0,
            sequence=0,
            head_hash=GENESIS_HEAD,
            checkpoint_sequence=0,
            confirmed_sequence=0,
            status="open",
            opened_at=event.opened_at,
        )
        _recompute(row)
        rows.put(CHANNELS, row)

    def _row(self, event: views.View, rows: Rows) -> dict[str, Any]:
        row = rows.get(CHANNELS, event.originator_id)
        if row is None:  # the log is ordered per channel: an event before ChannelOpened is corruption
            raise LookupError(f"{type(event).__qualname__} for channel {event.originator_id} before it was opened")
        return row

    @handles("Channel.DepositMade")
    def deposited(self, event: views.DepositMade, rows: Rows) -> None:
        row = self._row(event, rows)
        row[f"deposit_{_side(row, event.participant)}"] = event.total
        _recompute(row)
        rows.put(CHANNELS, row)

    @handles("Channel.PaymentAccepted")
    def paid(self, event: views.PaymentAccepted, rows: Rows) -> None:
        row = self._row(event, rows)
        buyer, supplier = _side(row, event.buyer), _side(row, event.supplier)
        row[f"sent_{buyer}"] = event.buyer_total
        # [buyer's, supplier's] locked after it; events recorded before hashed timelocks carry none
        locked = event.locked or (0, 0)
        row[f"locked_{buyer}"], row[f"locked_{supplier}"] = locked
        _recompute(row)
        row["sequence"] = event.sequence
        row["head_hash"] = event.transaction_hash
        rows.put(CHANNELS, row)

    @handles("Channel.CheckpointRequested")
    def checkpoint_requested(self, event: views.CheckpointRequested, rows: Rows) -> None:
        row = self._row(event, rows)
        row["checkpoint_sequence"] = event.sequence
        rows.put(CHANNELS, row)

    @handles("Channel.CheckpointConfirmed")
    def checkpoint_confirmed(self, event: views.CheckpointConfirmed, rows: Rows) -> None:
        row = self._row(event, rows)
        row["confirmed_sequence"] = max(row["confirmed_sequence"] or 0, event.sequence)
        rows.put(CHANNELS, row)

    @handles("Channel.SettlementRequested")
    def settling(self, event: views.SettlementRequested, rows: Rows) -> None:
        row = self._row(event, rows)
        row["status"] = "settling"
        rows.put(CHANNELS, row)

    @handles("Channel.ChannelClosed")
    def closed(self, event: views.ChannelClosed, rows: Rows) -> None:
        row = self._row(event, rows)
        row["status"] = "closed"
        row["closed_at"] = event.at
        row["balance_a"], row["balance_b"] = event.balances  # what the chain paid out
        row["locked_a"] = row["locked_b"] = 0  # the chain decided every lock (docs/protocol.md)
        rows.put(CHANNELS, row)


# --- queries -------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelBalance:
    channel_id: str
    currency: str
    participants: tuple[str, str]
    deposits: tuple[int, int]
    sent: tuple[int, int]
    balances: tuple[int, int]  # spendable: deposit - sent + received - locked
    sequence: int
    head_hash: str
    checkpoint_sequence: int
    confirmed_sequence: int
    status: str
    locked: tuple[int, int] = (0, 0)  # in pending hashed timelocks, per sender

    @classmethod
    def of(cls, r: dict[str, Any]) -> ChannelBalance:
        return cls(
            channel_id=r["channel_id"],
            currency=r["currency"],
            participants=(r["participant_a"], r["participant_b"]),
            deposits=(r["deposit_a"], r["deposit_b"]),
            sent=(r["sent_a"], r["sent_b"]),
            balances=(r["balance_a"], r["balance_b"]),
            sequence=r["sequence"],
            head_hash=r["head_hash"],
            checkpoint_sequence=r["checkpoint_sequence"],
            confirmed_sequence=r["confirmed_sequence"],
            status=r["status"],
            locked=(r["locked_a"] or 0, r["locked_b"] or 0),
        )


@dataclass(frozen=True)
class ParticipantBalance:
    address: str
    currency: str
    channels: int
    deposited: int
    sent: int
    received: int
    balance: int
    locked: int = 0


def channel_balances(store: ReadModelStore, channel_id: str | None = None) -> list[ChannelBalance]:
    where = {"channel_id": str(channel_id)} if channel_id is not None else None
    return [ChannelBalance.of(r) for r in store.select(CHANNELS, where, order_by=("channel_id",))]


def participant_totals(channels: list[ChannelBalance]) -> list[ParticipantBalance]:
    """Sum channel rows into one row per (participant, currency)."""
    totals: dict[tuple[str, str], list[int]] = {}
    for ch in channels:
        for i, who in enumerate(ch.participants):
            t = totals.setdefault((who, ch.currency), [0, 0, 0, 0, 0, 0])
            t[0] += 1
            t[1] += ch.deposits[i]
            t[2] += ch.sent[i]
            t[3] += ch.sent[1 - i]
            t[4] += ch.balances[i]
            t[5] += ch.locked[i]
    return [
        ParticipantBalance(address=a, currency=c, channels=t[0], deposited=t[1], sent=t[2], received=t[3],
                           balance=t[4], locked=t[5])
        for (a, c), t in sorted(totals.items())
    ]


def participant_balances(store: ReadModelStore, address: str | None = None) -> list[ParticipantBalance]:
    if address is None:
        return participant_totals(channel_balances(store))
    rows = {r["channel_id"]: r for r in store.select(CHANNELS, {"participant_a": address})}
    rows.update({r["channel_id"]: r for r in store.select(CHANNELS, {"participant_b": address})})
    totals = participant_totals([ChannelBalance.of(r) for r in rows.values()])
    return [t for t in totals if t.address == address]
