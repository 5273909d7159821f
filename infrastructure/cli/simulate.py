"""``parsec simulate``: stream signed payments at a node (or the embedded store) and report."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.table import Table

from infrastructure.cli.options import add_command, add_workload_flags
from infrastructure.settings import Settings


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """The paper's simulator: parties, channels and a stream of signed payments (Kafka or embedded).

    Generate parties, open channels (control requests on Kafka, or directly on the embedded store) and
    stream signed payments into the inbound topic (or the embedded store with --embedded) at --rate
    payments/s (0 = as fast as possible) for --payments or --duration. Fractions of the stream can be
    shuffled within --distance positions (inside the node's reorder window), sent twice, or invalid (bad
    signature, broken chain, overspend, unknown channel, malformed bytes). Outcomes are read back from
    the events and rejected topics. Latency on Kafka: from handing a payment to the producer to a
    read_committed consumer receiving its PaymentAccepted event (the node's transaction committed).
    Kafka mode needs a running node on the same topics (parsec node) or --spawn-node N, which starts N
    node processes on fresh private topics. Unknown-channel payments are refused after the node's
    --max-wait (spawned nodes: 2 s).
    """
    from infrastructure.cli.console import RateProgress, err_console, out_console, print_json
    from infrastructure.tools import simulate

    if args.multi_hop:
        return cmd_multi_hop(args)
    if args.channels is None:
        args.channels = 50
    if args.payments is None and args.duration is None:
        args.payments = 2000
    workload = simulate.Workload(
        args.channels, seed=args.seed, out_of_order=args.out_of_order, duplicates=args.duplicates,
        invalid=args.invalid, distance=args.distance,
    )
    total = args.payments if args.payments is not None else None
    what = "embedded store" if args.embedded else f"Kafka {settings.kafka_bootstrap}"
    err_console.print(f"[bold]parsec simulate[/]: {args.channels} channels → {what}"
                      + (f", {args.rate:,.0f}/s" if args.rate else ", as fast as possible")
                      + (f", spawning {args.spawn_node} node(s)" if args.spawn_node else ""))
    with RateProgress("payments sent", total) as tick:
        if args.embedded:
            result = simulate.run_embedded(
                workload, payments=args.payments, duration=args.duration, rate=args.rate, batch=args.batch,
                checkpoint_interval=args.checkpoint_interval, progress=tick,
            )
        else:
            prefix = args.topics_prefix
            if prefix is None and args.spawn_node:
                prefix = f"parsec.sim.{int(time.time())}"  # a private cluster: fresh topics and group
            # one partition per spawned node unless told: a node commits its partitions' transactions
            # one after another, so a second partition per node adds its wait to every payment's
            # latency (docs/operations.md); without spawned nodes, the topics' long-standing 4
            partitions = args.partitions or max(args.spawn_node, 0) or 4
            config = simulate.kafka_config(settings, prefix=prefix, partitions=partitions)
            result = simulate.run_kafka(
                workload, config, payments=args.payments, duration=args.duration, rate=args.rate,
                checkpoint_interval=args.checkpoint_interval, spawn=args.spawn_node,
                follow_balances=args.follow_balances, drain_timeout=args.drain_timeout, progress=tick,
            )
    out_console(args.json).print(render(result))  # with --json: stderr, stdout is the JSON document
    if args.json:
        print_json(result.to_dict())
    return 0 if result.complete else 1


def _partitions(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"a topic needs at least one partition, not {n}")
    return n


def cmd_multi_hop(args: argparse.Namespace) -> int:
    """``--multi-hop``: random multi-hop payments on the embedded network (infrastructure/tools/multihop.py)."""
    from infrastructure.cli.console import RateProgress, err_console, out_console, print_json
    from infrastructure.tools import multihop

    cfg = multihop.MultiHopConfig(
        parties=args.parties, channels=args.channels if args.channels is not None else 150,
        payments=args.payments if args.payments is not None else 1000, failing_hops=args.failing_hops,
        uncooperative=args.uncooperative, seed=args.seed, rate=args.multi_hop_rate, save_state=args.save_state)
    try:
        cfg.validate()
    except ValueError as err:
        err_console.print(f"[red]parsec simulate --multi-hop[/]: {err}")
        return 2
    err_console.print(f"[bold]parsec simulate --multi-hop[/]: {cfg.parties} parties, {cfg.channels} channels, "
                      f"{cfg.payments:,} payments, {cfg.failing_hops:.0%} failing hops, "
                      f"{cfg.uncooperative:.0%} uncooperative (embedded network, simulated clock)")
    import logging

    quiet = logging.getLogger("parsec.mediation")  # a line per payment and per re-signed transaction
    level, quiet.level = quiet.level, max(quiet.getEffectiveLevel(), logging.ERROR)
    try:
        with RateProgress("payments finished", cfg.payments) as tick:
            result = multihop.run(cfg, progress=tick)
    finally:
        quiet.setLevel(level)
    out_console(args.json).print(render_multi_hop(result.to_dict()))
    if args.json:
        print_json(result.to_dict(), amounts=MULTI_HOP_AMOUNTS)
    return 0 if result.ok and not result.pending else 1


MULTI_HOP_AMOUNTS = ("fees_paid", "deposits", "balances", "locked", "amount")  # money: strings in JSON


def render_multi_hop(d: dict[str, Any]) -> Table:
    t = Table(title=f"Multi-hop simulation ({d['parties']} parties, {d['channels']} channels, seed {d['seed']})")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("failing hops / uncooperative parties",
              f"{len(d['failing_parties'])} / {len(d['uncooperative_parties'])}")
    t.add_row("payments attempted", f"{d['attempted']:,}")
    t.add_row("succeeded", f"{d['succeeded']:,}")
    t.add_row("failed", f"{d['failed']:,}")
    for reason, n in sorted(d["failed_by_reason"].items()):
        t.add_row(f"  failed: {reason}", f"{n:,}")
    if d["on_chain"]:
        t.add_row("left to the chain (payer withheld its unlock)", f"{d['on_chain']:,}")
    if d["pending"]:
        t.add_row("[red]still pending[/]", f"{d['pending']:,}")
    t.add_row("success rate", f"{d['success_rate']:.1%}" if d["success_rate"] is not None else "-")
    t.add_row("routes tried / payments retried", f"{d['attempts']:,} / {d['retried']:,}")
    t.add_row("hops mean / max", f"{d['hops']['mean']} / {d['hops']['max']}")
    t.add_row("fees paid", f"{d['fees_paid']:,}")
    tc = d["time_to_complete_s"]
    t.add_row("time to complete p50 / p99 / max (simulated s)", f"{tc['p50']} / {tc['p99']} / {tc['max']}")
    t.add_row("simulated time / clock moves / rounds",
              f"{d['simulated_seconds']:,} s / {d['clock_moves']:,} / {d['rounds']:,}")
    t.add_row("wall time", f"{d['wall_seconds']:.2f} s")
    t.add_row("payments/s (wall)", f"{d['payments_per_s']:,.1f}")
    for kind, n in sorted(d["transactions"].items()):
        t.add_row(f"transactions: {kind}", f"{n:,}")
    t.add_row("locks expired", f"{d['locks_expired']:,}")
    t.add_row("secrets registered on-chain", f"{d['secrets_registered']:,}")
    t.add_row("closes asked for locks", f"{d['closes_for_locks']:,}")
    for reason, n in sorted(d["refused"].items()):
        t.add_row(f"refused: {reason}", f"{n:,}")
    for name, c in d["checks"].items():
        mark = "[green]ok[/]" if c["ok"] else "[red]FAILED[/]"
        t.add_row(f"check: {name.replace('_', ' ')}", mark)
    held = d["checks"]["nothing_locked_but_uncooperative"]["held_by_uncooperative"]
    if held:
        t.add_row("  locks held by uncooperative parties",
                  f"{len(held)} in {len({x['channel'] for x in held})} channel(s)")
    return t


def render(result: Any) -> Table:
    d = result.to_dict()
    t = Table(title=f"Simulation ({d['mode']}, {d['channels']} channels"
                    + (f", {d['nodes']} spawned node(s)" if d["nodes"] else "") + ")")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("messages sent", f"{d['sent']:,}")
    for kind, n in sorted(d["sent_by_kind"].items()):
        t.add_row(f"  of which {kind}", f"{n:,}")
    t.add_row("payments accepted", f"{d['accepted']:,}")
    for reason, n in sorted(d["rejected"].items()):
        t.add_row(f"rejected: {reason}", f"{n:,}")
    t.add_row("no-ops (duplicates)", f"{d['no_op']:,}")
    t.add_row("checkpoints requested", f"{d['checkpoints_requested']:,}")
    t.add_row("offered load", f"{d['offered_rate']:,.0f}/s" if d["offered_rate"] else "as fast as possible")
    t.add_row("time (first sent → last accepted)", f"{d['seconds']:.2f} s")
    t.add_row("throughput (accepted/s)", f"{d['payments_per_s']:,.0f}")
    lat = d["latency_ms"]
    if lat:
        t.add_row("latency p50 / p90 / p99 / max (ms)", f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']}")
    for part, label in (("to_event", "of it: until the node wrote the event"),
                        ("event_to_read", "of it: its commit and the read")):
        q = (d.get("latency_split_ms") or {}).get(part)
        if q:
            t.add_row(f"  {label}, p50 / p90 / p99 (ms)", f"{q['p50']} / {q['p90']} / {q['p99']}")
    if not d["complete"]:
        t.add_row("[red]incomplete[/]", "; ".join(d["notes"]))
    return t


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_simulate)
    p.add_argument("--embedded", action="store_true", help="apply in-process on a fresh SQLite store (no Kafka)")
    add_workload_flags(p, channels=50, payments=None, seed=7, duplicates=0.0, invalid=0.0, checkpoint_interval=100,
                       batch=200)
    p.set_defaults(channels=None)  # 50, or 150 with --multi-hop
    m = p.add_argument_group("multi-hop (--multi-hop: mediated payments between random parties, embedded, "
                             "simulated clock; --channels default 150, --payments default 1000)")
    m.add_argument("--multi-hop", action="store_true",
                   help="simulate multi-hop payments over a random network of mediation agents")
    m.add_argument("--parties", type=int, default=50, help="parties of the random network (default 50)")
    m.add_argument("--failing-hops", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of parties that take a lock and never forward it (default 0)")
    m.add_argument("--uncooperative", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of parties that withhold the unlocks they owe (default 0)")
    m.add_argument("--multi-hop-rate", type=float, default=5.0, metavar="PER_S",
                   help="payments started per simulated second (default 5)")
    m.add_argument("--save-state", action="store_true",
                   help="agents save their state at every flush, as deployed (slower)")
    p.add_argument("--duration", type=float, help="seconds to keep sending")
    p.add_argument("--rate", type=float, default=0.0, help="payments/s to offer (0 = as fast as possible)")
    p.add_argument("--out-of-order", type=float, default=0.0, help="fraction shuffled within --distance (0-1)")
    p.add_argument("--distance", type=int, default=4, help="how far a shuffled message moves (default 4)")
    p.add_argument("--spawn-node", type=int, default=0, metavar="N", help="start N node processes (fresh topics)")
    p.add_argument("--topics-prefix", help="use topics <prefix>.inbound etc. (default: the node's topics)")
    p.add_argument("--partitions", type=_partitions, default=0,
                   help="partitions of topics created here (default: one per --spawn-node process, else 4)")
    p.add_argument("--follow-balances", action="store_true",
                   help="Kafka: run the balances read model here; the clock stops when it is up to date")
    p.add_argument("--drain-timeout", type=float, default=60.0,
                   help="seconds without progress after which waiting for outcomes stops (default 60)")
    p.add_argument("--json", action="store_true",
                   help="print the figures as one JSON document on stdout (the table goes to stderr)")
