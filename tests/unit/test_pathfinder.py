"""The pathfinder over hand-built channel graphs: ordering, backwards fees, capacity, expiry, failures."""

from __future__ import annotations

import pytest

from domain.errors import InvalidAmount
from infrastructure.routing.pathfinder import (
    AmbiguousCurrency,
    InsufficientCapacity,
    MissionControl,
    NoPath,
    Pathfinder,
    UnknownParty,
)
from projections.channel_graph import Direction, GraphChannel

NOW = 1_000_000
A, B, C, D, E, Z = (f"0x{c * 40}" for c in "abcdef")


def chan(cid: str, x: str, y: str, cap: int = 10_000, *, back: int = 10_000, fee_base: int = 0, fee_ppm: int = 0,
         delta: int = 100, status: str = "open", currency: str = "ETH") -> GraphChannel:
    """A channel x–y: x can send ``cap`` under its policy (fee_base, fee_ppm, delta); y can send ``back``
    under the same policy (the tests only ever forward one way through a mediator)."""
    return GraphChannel(cid, currency, (x, y), status, NOW,
                        Direction(x, y, cap, fee_base, fee_ppm, delta, None),
                        Direction(y, x, back, fee_base, fee_ppm, delta, None))


def diamond(**kw) -> list[GraphChannel]:
    """A→B→D (B charges 10) and A→C→D (C charges 3 + 1 %)."""
    return [chan("ab", A, B), chan("bd", B, D, fee_base=10, delta=40),
            chan("ac", A, C), chan("cd", C, D, fee_base=3, fee_ppm=10_000, delta=70, **kw)]


def test_k_routes_cheapest_first_with_fees_added_backwards():
    routes = Pathfinder(diamond()).routes(A, D, 1_000, now=NOW, k=5)
    assert [r.path for r in routes] == [(A, B, D), (A, C, D)]
    best, other = routes
    assert best.total_fee == 10 and best.total_amount == 1_010
    # the payer's own first hop charges nothing; it carries the amount plus B's fee
    assert [(h.channel_id, h.amount, h.fee) for h in best.hops] == [("ab", 1_010, 0), ("bd", 1_000, 10)]
    # C: 3 + 1_000 * 10_000 // 1_000_000 = 13
    assert other.total_fee == 13 and [h.amount for h in other.hops] == [1_013, 1_000]


def test_fee_rounds_down_on_every_hop():
    chans = [chan("ab", A, B), chan("bc", B, C, fee_ppm=1), chan("cd", C, D, fee_ppm=999_999 // 1_000)]
    (r,) = Pathfinder(chans).routes(A, D, 1_500, now=NOW)
    # C: 1_500 * 999 // 1e6 = 1; B: 1_501 * 1 // 1e6 = 0
    assert [h.fee for h in r.hops] == [0, 0, 1] and r.total_amount == 1_501


def test_fees_pile_up_over_three_mediators():
    chans = [chan("a1", A, B), chan("b1", B, C, fee_base=5), chan("c1", C, E, fee_base=7),
             chan("e1", E, D, fee_base=11, fee_ppm=100_000)]
    (r,) = Pathfinder(chans).routes(A, D, 1_000, now=NOW)
    # backwards: E takes 11 + 100 on 1_000; C 7 on 1_111; B 5 on 1_118
    assert [h.amount for h in r.hops] == [1_123, 1_118, 1_111, 1_000]
    assert [h.fee for h in r.hops] == [0, 5, 7, 111] and r.total_fee == 123


def test_a_route_whose_first_hop_lacks_room_for_amount_plus_fees_is_dropped():
    chans = diamond()
    chans[0] = chan("ab", A, B, cap=1_005)  # enough for the amount, not for B's fee on top
    routes = Pathfinder(chans).routes(A, D, 1_000, now=NOW, k=5)
    assert [r.path for r in routes] == [(A, C, D)]


def test_insufficient_capacity_on_every_path():
    chans = [chan("ab", A, B, cap=1_005), chan("bd", B, D, fee_base=10)]
    with pytest.raises(InsufficientCapacity, match="cannot carry 1000"):
        Pathfinder(chans).routes(A, D, 1_000, now=NOW)
    with pytest.raises(InsufficientCapacity):  # the last hop itself too small
        Pathfinder([chan("ab", A, B), chan("bd", B, D, cap=999)]).routes(A, D, 1_000, now=NOW)


def test_parallel_channels_the_cheapest_one_with_room_is_used():
    chans = [chan("ab1", A, B), chan("bd1", B, D, cap=500, fee_base=1), chan("bd2", B, D, fee_base=4),
             chan("bd3", B, D, fee_base=9)]
    (r,) = Pathfinder(chans).routes(A, D, 1_000, now=NOW)
    assert r.hops[1].channel_id == "bd2" and r.total_fee == 4


def test_expiries_grow_backwards_by_each_forwarders_delta():
    routes = Pathfinder(diamond()).routes(A, D, 1_000, now=NOW, final_expiry=600, k=2)
    via_b, via_c = routes
    assert [h.expiry for h in via_b.hops] == [NOW + 600 + 40, NOW + 600]
    assert [h.expiry for h in via_c.hops] == [NOW + 600 + 70, NOW + 600]


def test_hop_cap():
    line = [chan(f"h{i}", f"0x{i:040x}", f"0x{i + 1:040x}") for i in range(7)]
    src, dst = "0x" + "0" * 40, f"0x{7:040x}"
    assert len(Pathfinder(line).routes(src, dst, 10, now=NOW, max_hops=7)[0].hops) == 7
    with pytest.raises(NoPath, match="within 6 hop"):
        Pathfinder(line).routes(src, dst, 10, now=NOW)


def test_hop_count_breaks_fee_ties():
    chans = [chan("ad", A, D), chan("ab", A, B), chan("bd", B, D)]
    routes = Pathfinder(chans).routes(A, D, 100, now=NOW, k=3)
    assert [r.path for r in routes] == [(A, D), (A, B, D)]


def test_recently_failed_channels_are_avoided_until_the_failure_decays():
    mission = MissionControl(decay=300)
    mission.report_failure("bd", B, at=NOW - 10)
    finder = Pathfinder(diamond(), mission)
    assert [r.path for r in finder.routes(A, D, 1_000, now=NOW, k=5)] == [(A, C, D)]
    # the other direction of the same channel is not the one that failed
    assert [r.path for r in finder.routes(D, A, 1_000, now=NOW, k=5)][0] in ((D, B, A), (D, C, A))
    assert [r.path for r in finder.routes(A, D, 1_000, now=NOW + 289, k=5)] == [(A, C, D)]
    assert [r.path for r in finder.routes(A, D, 1_000, now=NOW + 290, k=5)] == [(A, B, D), (A, C, D)]
    mission.report_failure("cd", C, at=NOW)
    mission.report_failure("bd", B, at=NOW)
    with pytest.raises(NoPath, match="avoided after recent failures"):
        finder.routes(A, D, 1_000, now=NOW + 1)
    mission.report_success("cd", C)
    assert [r.path for r in finder.routes(A, D, 1_000, now=NOW + 1)] == [(A, C, D)]


def test_unknown_party_no_path_and_bad_amounts():
    finder = Pathfinder([*diamond(), chan("ez", E, Z)])
    with pytest.raises(UnknownParty):
        finder.routes(A, "0x" + "9" * 40, 10, now=NOW)
    with pytest.raises(UnknownParty):
        finder.routes("0x" + "9" * 40, A, 10, now=NOW)
    with pytest.raises(NoPath, match="no path"):
        finder.routes(A, Z, 10, now=NOW)
    for bad in (0, -5):
        with pytest.raises(InvalidAmount):
            finder.routes(A, D, bad, now=NOW)
    with pytest.raises(NoPath):
        finder.routes(A, A, 10, now=NOW)


def test_only_open_channels_of_the_currency_are_edges():
    chans = [*diamond(status="settling"), chan("ab", A, B, currency="BTC")]
    assert [r.path for r in Pathfinder(chans).routes(A, D, 1_000, now=NOW, currency="ETH", k=5)] == [(A, B, D)]
    with pytest.raises(AmbiguousCurrency):
        Pathfinder(chans).routes(A, D, 1_000, now=NOW)
