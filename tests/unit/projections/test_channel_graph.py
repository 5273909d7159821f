"""The channel-graph read model's handlers on MemoryRows: capacity per direction, status, fee policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from channel_driver import Driver

from domain.routing import DEFAULT_EXPIRY_DELTA, DEFAULT_FEE_BASE, DEFAULT_FEE_PPM
from projections import registry
from projections.channel_graph import GRAPH_CHANNELS, ChannelGraph, GraphChannel
from projections.model import MemoryRows, event_name

ETH = 10**18


class Channel:
    """Events of the names the domain emits, built here (the lock-aware domain lands separately)."""

    @dataclass
    class FeePolicySet:
        originator_id: UUID
        participant: str
        fee_base: int
        fee_ppm: int
        expiry_delta: int
        issued_at: int
        timestamp: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    @dataclass
    class PaymentAccepted:
        originator_id: UUID
        buyer: str
        supplier: str
        price: int
        buyer_total: int
        balances: list[int]
        sequence: int
        kind: str = "payment"
        locked: list[int] = field(default_factory=lambda: [0, 0])
        timestamp: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 0, 1, tzinfo=UTC))


def _graph(events: list[Any], rows: MemoryRows | None = None) -> tuple[MemoryRows, dict[str, Any]]:
    rows = rows or MemoryRows()
    model = ChannelGraph()
    for ev in events:
        model.apply(event_name(ev), ev, rows)
    (row,) = rows.all(GRAPH_CHANNELS)
    return rows, row


def test_registered_as_a_built_in():
    assert "graph" in registry.BUILT_IN and isinstance(registry.get("graph"), ChannelGraph)


def test_open_gives_each_side_its_deposit_and_the_default_policy():
    d = Driver.open(deposits=(ETH, ETH // 2))
    _, row = _graph(d.events)
    a, b = (p.address for p in d.parties)
    assert (row["participant_a"], row["participant_b"]) == (a, b)
    assert (row["capacity_ab"], row["capacity_ba"]) == (ETH, ETH // 2)
    assert row["status"] == "open" and row["currency"] == "ETH" and row["last_seen"] is not None
    for side in ("ab", "ba"):
        assert (row[f"fee_base_{side}"], row[f"fee_ppm_{side}"], row[f"expiry_delta_{side}"]) == (
            DEFAULT_FEE_BASE, DEFAULT_FEE_PPM, DEFAULT_EXPIRY_DELTA)
        assert row[f"policy_issued_at_{side}"] is None


def test_deposit_adds_to_that_sides_capacity_and_payments_move_it_both_ways():
    d = Driver.open(deposits=(ETH, 0))
    d.pay(0, 3 * ETH // 10)
    d.pay(1, ETH // 10)
    rows, row = _graph(d.events)
    assert (row["capacity_ab"], row["capacity_ba"]) == (ETH - 3 * ETH // 10 + ETH // 10, 2 * ETH // 10)
    d.channel.deposit(d.parties[1].address, 2 * ETH)
    _, row = _graph(d.collect(), rows)
    assert (row["deposit_a"], row["deposit_b"]) == (ETH, 2 * ETH)
    assert row["capacity_ba"] == 2 * ETH // 10 + 2 * ETH
    assert (row["capacity_ab"], row["capacity_ba"]) == tuple(d.channel.balances.values())


def test_locked_amounts_reduce_capacity_as_the_balances_say():
    d = Driver.open(deposits=(ETH, ETH))
    a, b = (p.address for p in d.parties)
    # a locked transfer of 0.2 from A: A's spendable drops by it, B's does not grow until the unlock
    locked = Channel.PaymentAccepted(d.channel.id, buyer=a, supplier=b, price=2 * ETH // 10, buyer_total=0,
                                     balances=[8 * ETH // 10, ETH], sequence=1, kind="lockedTransfer",
                                     locked=[2 * ETH // 10, 0])
    rows, row = _graph([*d.events, locked])
    assert (row["capacity_ab"], row["capacity_ba"]) == (8 * ETH // 10, ETH)
    assert (row["locked_a"], row["locked_b"]) == (2 * ETH // 10, 0)
    # B pays back (B is the buyer: the fields are the buyer's first)
    back = Channel.PaymentAccepted(d.channel.id, buyer=b, supplier=a, price=ETH // 10, buyer_total=ETH // 10,
                                   balances=[9 * ETH // 10, 9 * ETH // 10], sequence=2, locked=[0, 2 * ETH // 10])
    _, row = _graph([back], rows)
    assert (row["capacity_ab"], row["capacity_ba"]) == (9 * ETH // 10, 9 * ETH // 10)
    assert (row["locked_a"], row["locked_b"]) == (2 * ETH // 10, 0)


def test_settling_and_closed_channels_are_no_longer_open():
    d = Driver.open()
    d.channel.request_settlement(at=3_000)
    d.collect()
    rows, row = _graph(d.events)
    assert row["status"] == "settling"
    d.channel.close(at=3_100)
    _, row = _graph(d.collect(), rows)
    assert row["status"] == "closed" and (row["capacity_ab"], row["capacity_ba"]) == (0, 0)


def test_fee_policy_newer_wins_per_side():
    d = Driver.open()
    a, b = (p.address for p in d.parties)
    cid = d.channel.id
    rows, row = _graph([*d.events, Channel.FeePolicySet(cid, b, 5, 2_000, 120, issued_at=100)])
    assert (row["fee_base_ba"], row["fee_ppm_ba"], row["expiry_delta_ba"], row["policy_issued_at_ba"]) == (
        5, 2_000, 120, 100)
    assert row["policy_issued_at_ab"] is None  # A's side untouched
    _, row = _graph([Channel.FeePolicySet(cid, b, 9, 9, 9, issued_at=99),  # older: ignored
                     Channel.FeePolicySet(cid, b, 7, 7, 7, issued_at=100),  # same age: ignored
                     Channel.FeePolicySet(cid, a, 1, 10, 30, issued_at=50)], rows)
    assert (row["fee_base_ba"], row["policy_issued_at_ba"]) == (5, 100)
    assert (row["fee_base_ab"], row["fee_ppm_ab"], row["expiry_delta_ab"]) == (1, 10, 30)
    _, row = _graph([Channel.FeePolicySet(cid, b, 0, 1, 60, issued_at=101)], rows)
    assert (row["fee_base_ba"], row["fee_ppm_ba"], row["expiry_delta_ba"]) == (0, 1, 60)
    g = GraphChannel.of(row)
    assert (g.ba.source, g.ba.target, g.ba.fee_ppm) == (b, a, 1)
    assert (g.ab.source, g.ab.fee_base) == (a, 1)
