"""Settlements: every checkpoint, settlement and dispute a channel asked the chain for.

One row per (channel, kind, sequence), moving through
requested → submitted → confirmed | failed. The Channel's events give the
requests and the confirmed checkpoints and closes; the settlement process
manager's ``SettlementIntent`` events give each transaction's hash, block,
gas and failure reason. A close transaction only submits a settlement (the
challenge period follows); ``ChannelClosed`` confirms it, and the settle
transaction itself is its own row (kind ``settle``). A watchtower's
``update`` is a row too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.model import Column, ReadModel, Rows, Table, handles
from projections.store import ReadModelStore

SETTLEMENTS = Table(
    "settlements",
    (
        Column("channel_id"),
        Column("kind"),  # checkpoint | settlement | dispute
        Column("sequence", "int"),  # the head it commits (dispute: the last transaction it carries)
        Column("from_sequence", "int"),  # dispute: first transaction it carries
        Column("state"),  # requested | submitted | confirmed | failed
        Column("reason"),  # checkpoint: interval | timeout | request; others: who asked
        Column("head_hash"),
        Column("balance_a", "amount"),
        Column("balance_b", "amount"),
        Column("requested_at", "int"),
        Column("submitted_at", "int"),
        Column("confirmed_at", "int"),
        Column("tx_hash"),
        Column("block", "int"),
        Column("gas", "int"),
        Column("error"),
    ),
    key=("channel_id", "kind", "sequence"),
    indexes=(("state",),),
)

KINDS = ("checkpoint", "settlement", "dispute", "settle", "update")
# the process manager's intent kinds -> the row they move
_ROW_OF_INTENT = {"checkpoint": "checkpoint", "close": "settlement", "dispute": "dispute",
                  "settle": "settle", "update": "update"}
STATES = ("requested", "submitted", "confirmed", "failed")
_ORDER = {s: i for i, s in enumerate(STATES)}


def advance(rows: Rows, channel_id: str, kind: str, sequence: int, state: str, **fields: Any) -> dict[str, Any]:
    """Move one row forward to ``state`` (creating it if the request is not in the log).

    A state never goes back (a late "submitted" after "confirmed" changes only
    the fields it brings, e.g. gas); confirmed and failed are final.
    """
    if kind not in KINDS or state not in STATES:
        raise ValueError(f"kind {kind!r} / state {state!r} unknown")
    row = rows.get(SETTLEMENTS, channel_id, kind, sequence) or dict(
        channel_id=channel_id, kind=kind, sequence=sequence, state=state
    )
    if _ORDER[state] >= _ORDER[row["state"]] and row["state"] not in ("confirmed", "failed"):
        row["state"] = state
    row.update({k: v for k, v in fields.items() if v is not None})
    rows.put(SETTLEMENTS, row)
    return row


def _advance_channel(rows: Rows, event: Any, kind: str, sequence: int, state: str, **fields: Any) -> None:
    """``advance`` the row of ``event``'s channel (a Channel event: its originator is the channel)."""
    advance(rows, str(event.originator_id), kind, sequence, state, **fields)


def _requested_at_head(rows: Rows, event: Any, kind: str, reason: str) -> None:
    """A checkpoint or settlement request: both carry the head and the balances at it."""
    a, b = event.balances
    _advance_channel(rows, event, kind, event.sequence, "requested", reason=reason, head_hash=event.head_hash,
                     balance_a=a, balance_b=b, requested_at=event.at)


class Settlements(
    ReadModel, name="settlements", tables=(SETTLEMENTS,), reads_views=True,
    description="every checkpoint, settlement and dispute with its on-chain state",
):
    @handles("Channel.CheckpointRequested")
    def checkpoint_requested(self, event: Any, rows: Rows) -> None:
        _requested_at_head(rows, event, "checkpoint", event.reason)

    @handles("Channel.CheckpointConfirmed")
    def checkpoint_confirmed(self, event: Any, rows: Rows) -> None:
        _advance_channel(rows, event, "checkpoint", event.sequence, "confirmed", tx_hash=event.tx_hash,
                         block=event.block)

    @handles("Channel.SettlementRequested")
    def settlement_requested(self, event: Any, rows: Rows) -> None:
        _requested_at_head(rows, event, "settlement", event.requested_by)

    @handles("Channel.DisputeRequested")
    def dispute_requested(self, event: Any, rows: Rows) -> None:
        _advance_channel(rows, event, "dispute", event.to_sequence, "requested",
                         from_sequence=event.from_sequence, reason=event.requested_by, requested_at=event.at)

    @handles("Channel.ChannelClosed")
    def closed(self, event: Any, rows: Rows) -> None:
        """A close settles the channel: a settlement asked for at this head is confirmed by it."""
        cid = str(event.originator_id)
        if rows.get(SETTLEMENTS, cid, "settlement", event.sequence) is not None:
            a, b = event.balances
            advance(rows, cid, "settlement", event.sequence, "confirmed", confirmed_at=event.at, balance_a=a, balance_b=b)


    # --- the process manager's transactions -------------------------------------
    @staticmethod
    def _intent_row(event: Any) -> tuple[str, str, int] | None:
        kind = _ROW_OF_INTENT.get(str(event.kind))
        if kind is None:
            return None
        return str(event.channel_id), kind, int(event.sequence)

    @staticmethod
    def _when(event: Any) -> int | None:
        ts = getattr(event, "timestamp", None)
        return int(ts.timestamp()) if ts is not None else None

    @handles("SettlementIntent.TransactionSubmitted")
    def transaction_submitted(self, event: Any, rows: Rows) -> None:
        key = self._intent_row(event)
        if key:
            advance(rows, *key, "submitted", tx_hash=event.tx_hash, submitted_at=self._when(event))

    @handles("SettlementIntent.TransactionConfirmed")
    def transaction_confirmed(self, event: Any, rows: Rows) -> None:
        key = self._intent_row(event)
        if not key:
            return
        fields = dict(tx_hash=event.tx_hash, block=event.block, gas=event.gas_used)
        if key[1] == "settlement":  # the close is mined; the settlement ends with ChannelClosed
            advance(rows, *key, "submitted", **fields)
        else:
            advance(rows, *key, "confirmed", confirmed_at=self._when(event), **fields)

    @handles("SettlementIntent.TransactionFailed")
    def transaction_failed(self, event: Any, rows: Rows) -> None:
        key = self._intent_row(event)
        if key:  # a retried failure keeps the row moving; a final one ends it
            advance(rows, *key, "failed" if event.final else "submitted", error=event.reason)


@dataclass(frozen=True)
class Settlement:
    channel_id: str
    kind: str
    sequence: int
    from_sequence: int | None
    state: str
    reason: str | None
    head_hash: str | None
    balances: tuple[int | None, int | None]
    requested_at: int | None
    submitted_at: int | None
    confirmed_at: int | None
    tx_hash: str | None
    block: int | None
    gas: int | None
    error: str | None

    @classmethod
    def of(cls, r: dict[str, Any]) -> Settlement:
        fields = {k: v for k, v in r.items() if k not in ("balance_a", "balance_b")}
        return cls(**fields, balances=(r["balance_a"], r["balance_b"]))


def settlements(store: ReadModelStore, channel_id: str | None = None, state: str | None = None) -> list[Settlement]:
    where: dict[str, Any] = {}
    if channel_id is not None:
        where["channel_id"] = str(channel_id)
    if state is not None:
        where["state"] = state
    rows = store.select(SETTLEMENTS, where or None, order_by=("channel_id", "sequence", "kind"))
    return [Settlement.of(r) for r in rows]
