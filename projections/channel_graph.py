"""The channel graph: per channel and per direction, what can be forwarded and at what price.

One row per channel (keyed by channel id, so only that channel's partition writes it; see
projections/model.py), holding both directions: ``a→b`` is what participant A can send to B
(A's spendable: deposit − sent + received − locked, which ``PaymentAccepted.balances`` already is,
so capacity is taken from the events, never recomputed from prices) and A's fee policy for
forwarding through its side; ``b→a`` the same for B. The pathfinder (infrastructure/routing)
builds its graph from these rows.

Fee policies reach the log as ``Channel.FeePolicySet`` events (a participant's verified
``domain.routing.ChannelUpdate`` recorded by its channel): they ride the channel's own partition,
so the newer-``issued_at``-wins rule needs no cross-partition state. A side with no announced
policy has the defaults of ``domain.routing`` (``DEFAULT_FEE_BASE``, ``DEFAULT_FEE_PPM``,
``DEFAULT_EXPIRY_DELTA``) and ``policy_issued_at_*`` NULL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.routing import DEFAULT_EXPIRY_DELTA, DEFAULT_FEE_BASE, DEFAULT_FEE_PPM
from projections import views
from projections.model import Column, ReadModel, Rows, Table, handles
from projections.store import ReadModelStore

SIDES = ("ab", "ba")
"""``ab``: forwarded from participant A to B (A's capacity and A's policy); ``ba``: from B to A."""

GRAPH_CHANNELS = Table(
    "graph_channels",
    (
        Column("channel_id"),
        Column("currency"),
        Column("participant_a"),
        Column("participant_b"),
        Column("deposit_a", "amount"),
        Column("deposit_b", "amount"),
        Column("capacity_ab", "amount"),
        Column("capacity_ba", "amount"),
        Column("locked_a", "amount"),
        Column("locked_b", "amount"),
        *(Column(f"{name}_{d}", kind) for d in SIDES for name, kind in (
            ("fee_base", "amount"), ("fee_ppm", "int"), ("expiry_delta", "int"), ("policy_issued_at", "int"))),
        Column("status"),
        Column("last_seen", "int"),
    ),
    key=("channel_id",),
    indexes=(("participant_a",), ("participant_b",)),
)


def _direction_from(row: dict[str, Any], participant: str) -> str:
    """The direction a participant forwards in: ``ab`` for A, ``ba`` for B."""
    if participant == row["participant_a"]:
        return "ab"
    if participant == row["participant_b"]:
        return "ba"
    raise ValueError(f"{participant} is not a participant of channel {row['channel_id']}")


def _event_time(event: views.View, fallback: int | None = None) -> int | None:
    """When the event was recorded (unix seconds): the eventsourcing timestamp, else the event's own time."""
    stamp = event.timestamp
    if stamp is not None:
        return int(stamp.timestamp())
    return getattr(event, "at", None) or fallback


class ChannelGraph(
    ReadModel, name="graph", tables=(GRAPH_CHANNELS,), reads_views=True,
    description="per channel and direction: capacity to forward, fee policy, expiry delta, status, last seen",
):
    @handles("Channel.ChannelOpened")
    def opened(self, event: views.ChannelOpened, rows: Rows) -> None:
        a, b = event.participants
        da, db = event.deposits
        row: dict[str, Any] = dict(
            channel_id=event.originator_id, currency=event.currency,
            participant_a=a, participant_b=b, deposit_a=da, deposit_b=db,
            capacity_ab=da, capacity_ba=db, locked_a=0, locked_b=0,
            status="open", last_seen=_event_time(event, event.opened_at),
        )
        for d in SIDES:
            row.update({f"fee_base_{d}": DEFAULT_FEE_BASE, f"fee_ppm_{d}": DEFAULT_FEE_PPM,
                        f"expiry_delta_{d}": DEFAULT_EXPIRY_DELTA, f"policy_issued_at_{d}": None})
        rows.put(GRAPH_CHANNELS, row)

    def _row(self, event: views.View, rows: Rows) -> dict[str, Any]:
        row = rows.get(GRAPH_CHANNELS, event.originator_id)
        if row is None:  # the log is ordered per channel: an event before ChannelOpened is corruption
            raise LookupError(f"{type(event).__qualname__} for channel {event.originator_id} before it was opened")
        row["last_seen"] = _event_time(event, row["last_seen"])
        return row

    @handles("Channel.DepositMade")
    def deposited(self, event: views.DepositMade, rows: Rows) -> None:
        row = self._row(event, rows)
        d = _direction_from(row, event.participant)
        side = d[0]
        # ``total`` is the participant's deposit so far: its spendable grows by what was added
        row[f"capacity_{d}"] += event.total - row[f"deposit_{side}"]
        row[f"deposit_{side}"] = event.total
        rows.put(GRAPH_CHANNELS, row)

    @handles("Channel.PaymentAccepted")
    def paid(self, event: views.PaymentAccepted, rows: Rows) -> None:
        """Every kind (payment, lockedTransfer, unlock, lockExpired, a plugin's) carries both sides'
        spendable in ``balances`` and locked amounts in ``locked`` after it; older events lack
        ``kind``/``locked`` (a plain payment, nothing locked)."""
        row = self._row(event, rows)
        buyer_dir = _direction_from(row, event.buyer)
        supplier_dir = "ba" if buyer_dir == "ab" else "ab"
        buyer_spendable, supplier_spendable = event.balances
        buyer_locked, supplier_locked = event.locked or (0, 0)
        row[f"capacity_{buyer_dir}"] = buyer_spendable
        row[f"capacity_{supplier_dir}"] = supplier_spendable
        row[f"locked_{buyer_dir[0]}"] = buyer_locked
        row[f"locked_{supplier_dir[0]}"] = supplier_locked
        rows.put(GRAPH_CHANNELS, row)

    @handles("Channel.FeePolicySet")
    def fee_policy_set(self, event: views.FeePolicySet, rows: Rows) -> None:
        row = self._row(event, rows)
        d = _direction_from(row, event.participant)
        current = row[f"policy_issued_at_{d}"]
        if current is None or event.issued_at > current:  # newer wins; a replayed or older one is ignored
            row[f"fee_base_{d}"] = event.fee_base
            row[f"fee_ppm_{d}"] = event.fee_ppm
            row[f"expiry_delta_{d}"] = event.expiry_delta
            row[f"policy_issued_at_{d}"] = event.issued_at
        rows.put(GRAPH_CHANNELS, row)

    @handles("Channel.SettlementRequested")
    def settling(self, event: views.SettlementRequested, rows: Rows) -> None:
        row = self._row(event, rows)
        row["status"] = "settling"  # nothing more is accepted: no longer a hop
        rows.put(GRAPH_CHANNELS, row)

    @handles("Channel.ChannelClosed")
    def closed(self, event: views.ChannelClosed, rows: Rows) -> None:
        row = self._row(event, rows)
        row["status"] = "closed"
        row["capacity_ab"] = row["capacity_ba"] = 0
        row["locked_a"] = row["locked_b"] = 0
        rows.put(GRAPH_CHANNELS, row)


# --- queries -------------------------------------------------------------------------
@dataclass(frozen=True)
class Direction:
    """One way through a channel: ``source`` forwards to ``target`` under ``source``'s policy."""

    source: str
    target: str
    capacity: int
    fee_base: int
    fee_ppm: int
    expiry_delta: int
    policy_issued_at: int | None


@dataclass(frozen=True)
class GraphChannel:
    channel_id: str
    currency: str
    participants: tuple[str, str]
    status: str
    last_seen: int | None
    ab: Direction
    ba: Direction

    @classmethod
    def of(cls, r: dict[str, Any]) -> GraphChannel:
        a, b = r["participant_a"], r["participant_b"]

        def way(d: str, source: str, target: str) -> Direction:
            return Direction(source, target, r[f"capacity_{d}"], r[f"fee_base_{d}"], r[f"fee_ppm_{d}"],
                             r[f"expiry_delta_{d}"], r[f"policy_issued_at_{d}"])

        return cls(r["channel_id"], r["currency"], (a, b), r["status"], r["last_seen"],
                   way("ab", a, b), way("ba", b, a))

    @property
    def directions(self) -> tuple[Direction, Direction]:
        return self.ab, self.ba


def graph_channels(store: ReadModelStore, currency: str | None = None) -> list[GraphChannel]:
    where = {"currency": currency} if currency is not None else None
    return [GraphChannel.of(r) for r in store.select(GRAPH_CHANNELS, where, order_by=("channel_id",))]
