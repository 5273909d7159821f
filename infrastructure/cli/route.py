"""``parsec route``: candidate routes for a multi-hop payment, from the channel-graph read model.

Opens the read-model store and catches the ``graph`` read model up with the log exactly as the
other queries do (infrastructure/cli/read_models.py), then asks the pathfinder
(infrastructure/routing/pathfinder.py). Prints; pays nothing.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.table import Table as RichTable

from domain.addresses import parse_eth_address
from domain.money import format_amount, parse_amount
from infrastructure.cli.console import console, print_json, short
from infrastructure.cli.options import add_command, add_settings_flags
from infrastructure.cli.read_models import _catch_up, _common, _store
from infrastructure.routing.pathfinder import (
    DEFAULT_FINAL_EXPIRY,
    DEFAULT_K,
    DEFAULT_MAX_HOPS,
    Pathfinder,
    Route,
)
from projections.channel_graph import graph_channels

ROUTE_AMOUNTS = frozenset({"amount", "fee", "total_fee", "total_amount"})


def _as_json(routes: list[Route], currency: str) -> list[dict[str, Any]]:
    return [
        {"route": i, "currency": currency, "path": list(r.path), "total_fee": r.total_fee,
         "total_amount": r.total_amount,
         "hops": [{"channel_id": h.channel_id, "from": h.source, "to": h.target, "amount": h.amount,
                   "fee": h.fee, "expiry": h.expiry} for h in r.hops]}
        for i, r in enumerate(routes, 1)
    ]


def cmd_route(args: argparse.Namespace, settings: Any) -> int:
    """Candidate routes from one participant to another for an amount (graph read model).

    Cheapest first: each route's hops carry the amount plus the fees of the forwarders after them
    (computed backwards from the payee) and every channel has the capacity for what crosses it.
    Exit 0 with the routes, or a clear error: unknown party, no path, insufficient capacity."""
    payer, payee = parse_eth_address(args.source), parse_eth_address(args.target)
    store = _store(args, settings)
    _catch_up(args, settings, store, ["graph"])
    finder = Pathfinder(graph_channels(store))
    currency = finder.currency_for(payer, args.currency)
    amount = parse_amount(args.amount, currency)
    routes = finder.routes(payer, payee, amount, now=int(time.time()), k=args.k, max_hops=args.max_hops,
                           final_expiry=args.final_expiry, currency=currency)
    if args.json:
        print_json(_as_json(routes, currency), amounts=ROUTE_AMOUNTS, indent=1)
        return 0
    table = RichTable(title=f"Routes from {short(payer)} to {short(payee)} for {format_amount(amount, currency)} "
                            f"{currency} ({len(routes)})")
    for col in ("route", "hops", "path", "fee", "amount"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for i, r in enumerate(routes, 1):
        table.add_row(str(i), str(len(r.hops)), " → ".join(short(p) for p in r.path),
                      format_amount(r.total_fee, currency), format_amount(r.total_amount, currency))
    console.print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_route)
    p.add_argument("--from", dest="source", required=True, metavar="ADDRESS", help="the payer's address")
    p.add_argument("--to", dest="target", required=True, metavar="ADDRESS", help="the payee's address")
    p.add_argument("--amount", required=True, help="decimal amount the payee receives, e.g. 0.01")
    p.add_argument("--currency", help="the channels' currency (default: the one of the payer's open channels)")
    p.add_argument("--k", type=int, default=DEFAULT_K, help=f"at most this many routes (default {DEFAULT_K})")
    p.add_argument("--max-hops", type=int, default=DEFAULT_MAX_HOPS,
                   help=f"at most this many channels per route (default {DEFAULT_MAX_HOPS})")
    p.add_argument("--final-expiry", type=int, default=DEFAULT_FINAL_EXPIRY,
                   help=f"seconds the payee's lock lasts (default {DEFAULT_FINAL_EXPIRY})")
    p.add_argument("--no-catch-up", action="store_true", help="read the read model as it is")
    p.add_argument("--json", action="store_true", help="one JSON document (amounts as strings)")
    add_settings_flags(p, "events_topic")
    _common(p)
