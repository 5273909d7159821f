"""Candidate routes for a multi-hop payment over the channel graph read model.

A ``networkx.DiGraph`` with one edge per (forwarder, next party) over the open channels of one
currency (parallel channels between the same two parties are kept on the edge and the best one is
picked per route). ``networkx.shortest_simple_paths`` (Yen's k shortest simple paths) yields
candidates by weight: the fee a hop's forwarder charges on the amount (the payer's own first hop is
free), plus a per-hop penalty so that of two equally cheap routes the shorter comes first. Each
candidate is then priced BACKWARDS from the payee: the last hop carries the amount, every upstream
hop carries what its downstream forwarder passes on plus that forwarder's fee, and every channel
must have the capacity for what crosses it. Lock expiries are computed the same way: the payee's
lock ends at ``now + final_expiry`` and each upstream lock adds the downstream forwarder's
``expiry_delta``. Channels that failed recently (``MissionControl``) are left out.

All amounts are integers in the smallest unit; the fee rounding is ``domain.routing.proportional_fee``'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from domain.errors import ParsecError
from domain.money import check_amount
from domain.routing import proportional_fee
from projections.channel_graph import Direction, GraphChannel

DEFAULT_MAX_HOPS = 6
DEFAULT_K = 3
DEFAULT_FINAL_EXPIRY = 3600
"""Seconds the payee's lock lasts: time to claim with the secret, on the chain if it comes to that."""
DEFAULT_FAILURE_DECAY = 600
"""Seconds a reported failure keeps a channel direction out of routes (then it is tried again)."""
_CANDIDATES_PER_ROUTE = 10
"""How many Yen candidates to price per route asked for before giving up (the hop cap and capacity
drop some; Yen's cost grows with every candidate, so the search is bounded)."""


# --- errors --------------------------------------------------------------------------
class RoutingError(ParsecError):
    """No route can be offered; the subclass says why."""


class UnknownParty(RoutingError):
    """The payer or payee has no open channel in the graph (of this currency)."""


class NoPath(RoutingError):
    """The two parties are not connected (within the hop cap, around failed channels)."""


class InsufficientCapacity(RoutingError):
    """Paths exist, but on every one some channel cannot carry the amount plus the fees after it."""


class BadRouteRequest(RoutingError):
    """``k`` or ``max_hops`` below 1."""


class AmbiguousCurrency(RoutingError):
    """The payer has channels in several currencies and none was named."""


# --- mission control -----------------------------------------------------------------
@dataclass
class MissionControl:
    """In-process memory of channel directions that failed to forward, like LND's mission control
    (without its probabilities): a failure keeps that direction out of routes for ``decay`` seconds."""

    decay: int = DEFAULT_FAILURE_DECAY
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def report_failure(self, channel: str, direction: str, at: int) -> None:
        """``direction`` is the forwarding party's address (the side that could not pass the payment on)."""
        key = (str(channel), direction)
        self._failures[key] = max(at, self._failures.get(key, at))

    def report_success(self, channel: str, direction: str) -> None:
        self._failures.pop((str(channel), direction), None)

    def failed(self, channel: str, direction: str, now: int) -> bool:
        at = self._failures.get((str(channel), direction))
        return at is not None and now < at + self.decay


# --- routes --------------------------------------------------------------------------
@dataclass(frozen=True)
class Hop:
    channel_id: str
    source: str
    target: str
    amount: int
    """What crosses this channel (and is locked on it)."""
    fee: int
    """What ``source`` keeps for forwarding on this hop (0 on the payer's own first hop)."""
    expiry: int
    """Unix seconds at which this hop's lock expires."""


@dataclass(frozen=True)
class Route:
    hops: tuple[Hop, ...]
    total_fee: int
    total_amount: int
    """What the payer sends: the amount plus every fee."""

    @property
    def path(self) -> tuple[str, ...]:
        return (self.hops[0].source, *(h.target for h in self.hops))


# --- the pathfinder ------------------------------------------------------------------
def _fee(direction: Direction, amount: int) -> int:
    return proportional_fee(amount, direction.fee_base, direction.fee_ppm)


class Pathfinder:
    """Routes over a snapshot of the channel graph (``projections.channel_graph.graph_channels``)."""

    def __init__(self, channels: Iterable[GraphChannel], mission: MissionControl | None = None) -> None:
        self.channels = [c for c in channels if c.status == "open"]
        self.mission = mission or MissionControl()

    def _graph(self, currency: str, amount: int, payer: str, now: int, hop_penalty: int) -> tuple[nx.DiGraph, int]:
        """The DiGraph of usable directions, and how many were left out for recent failures."""
        graph = nx.DiGraph()
        skipped = 0
        for ch in self.channels:
            if ch.currency != currency:
                continue
            for way in ch.directions:
                graph.add_node(way.source)
                if self.mission.failed(ch.channel_id, way.source, now):
                    skipped += 1
                    continue
                if not graph.has_edge(way.source, way.target):
                    graph.add_edge(way.source, way.target, ways=[])
                graph[way.source][way.target]["ways"].append((ch.channel_id, way))
        for u, _v, data in graph.edges(data=True):
            # the search's estimate: the cheapest parallel channel's fee on the amount itself
            fee = 0 if u == payer else min(_fee(w, amount) for _, w in data["ways"])
            data["weight"] = fee + hop_penalty
        return graph, skipped

    def currency_for(self, payer: str, currency: str | None = None) -> str:
        """``currency``, else the one currency of the payer's open channels."""
        if currency is not None:
            return currency
        found = sorted({c.currency for c in self.channels if payer in c.participants})
        if not found:
            raise UnknownParty(f"{payer} has no open channel in the graph")
        if len(found) > 1:
            raise AmbiguousCurrency(f"{payer} has open channels in {', '.join(found)}: name the currency")
        return found[0]

    def routes(self, payer: str, payee: str, amount: int, *, now: int, k: int = DEFAULT_K,
               max_hops: int = DEFAULT_MAX_HOPS, final_expiry: int = DEFAULT_FINAL_EXPIRY,
               currency: str | None = None, hop_penalty: int | None = None) -> list[Route]:
        """Up to ``k`` routes from ``payer`` to ``payee`` for ``amount``, cheapest first (then fewest hops).

        Routes differ in the parties they pass through: of parallel channels between the same two
        parties each route uses the cheapest that has room, so they count as one candidate.

        ``hop_penalty`` (default: 1 + amount // 10_000, about a basis point) is what one more hop
        costs in the search's weight beside its fee."""
        check_amount(amount, what="route amount")
        if k < 1 or max_hops < 1:
            raise BadRouteRequest(f"k and max_hops must be at least 1, got k={k}, max_hops={max_hops}")
        if payer == payee:
            raise NoPath("payer and payee are the same party")
        currency = self.currency_for(payer, currency)
        penalty = 1 + amount // 10_000 if hop_penalty is None else hop_penalty
        graph, skipped = self._graph(currency, amount, payer, now, penalty)
        for who in (payer, payee):
            if who not in graph:
                raise UnknownParty(f"{who} has no open {currency} channel in the graph")
        avoided = f" ({skipped} channel direction(s) avoided after recent failures)" if skipped else ""
        candidates = nx.shortest_simple_paths(graph, payer, payee, weight="weight")
        found: list[Route] = []
        tried = 0
        try:
            for path in itertools.islice(candidates, k * _CANDIDATES_PER_ROUTE):
                if len(path) - 1 > max_hops:
                    continue
                tried += 1
                route = self._price(graph, path, amount, now + final_expiry)
                if route is not None:
                    found.append(route)
                    if len(found) == k:
                        break
        except nx.NetworkXNoPath:
            raise NoPath(f"no path from {payer} to {payee} over open {currency} channels{avoided}") from None
        if not found:
            if not tried:
                raise NoPath(f"no path from {payer} to {payee} within {max_hops} hop(s){avoided}")
            raise InsufficientCapacity(
                f"every path from {payer} to {payee} ({tried} tried) has a channel that cannot carry "
                f"{amount} plus the fees added after it{avoided}")
        return sorted(found, key=lambda r: (r.total_fee, len(r.hops)))

    @staticmethod
    def _price(graph: nx.DiGraph, path: list[str], amount: int, final_expiry_at: int) -> Route | None:
        """Amounts and expiries from the payee back to the payer; None when a channel lacks capacity."""
        hops: list[Hop] = []
        crossing, expiry = amount, final_expiry_at
        for i in range(len(path) - 2, -1, -1):
            source, target = path[i], path[i + 1]
            usable = [(cid, w) for cid, w in graph[source][target]["ways"] if w.capacity >= crossing]
            if not usable:
                return None
            # the cheapest parallel channel for this forwarder, then the roomiest
            cid, way = min(usable, key=lambda cw: (_fee(cw[1], crossing), -cw[1].capacity, cw[0]))
            fee = 0 if i == 0 else _fee(way, crossing)
            hops.append(Hop(cid, source, target, crossing, fee, expiry))
            # what the upstream hop must carry, and how long its lock must outlast this one's
            crossing += fee
            expiry += way.expiry_delta
        hops.reverse()
        total_fee = sum(h.fee for h in hops)
        return Route(tuple(hops), total_fee, amount + total_fee)
