"""``parsec demo``: the main job on the embedded defaults (the demo's wiring is in infrastructure.tools.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from domain.money import format_amount
from infrastructure import bootstrap
from infrastructure.cli.console import RateProgress, log, out_console, print_json, short
from infrastructure.cli.options import add_command, add_workload_flags, workload_args
from infrastructure.settings import Settings


def demo_events_path(data_dir: Path) -> Path:
    """Where the demo keeps its event store (and its read models beside it): ``parsec balances``,
    ``history`` and ``settlements`` read it when the data dir has no event store of its own."""
    return Path(data_dir) / "demo" / "events.sqlite"


# --- demo ----------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run a simulated network of channels on the embedded defaults.

    Open channels between generated parties (deterministic keys from --seed), stream signed payments
    through the command handlers on a fresh embedded SQLite event store, and print the channels'
    balances and checkpoint requests. A few duplicates and invalid messages are mixed in: duplicates are
    no-ops, invalid ones are refused with their reason. Unless --no-chain: the channels are also opened
    on the in-process Ethereum chain (or --eth-rpc) with the contract and a BTC token deployed, the
    node's wallet operates for every participant, every checkpoint (each m-th sequence) is sent and
    confirmed on-chain, and --settle channels are closed and settled at the end (the chain's clock is
    advanced past the challenge period).
    """
    from infrastructure.tools.demo import Demo, fresh_demo_store

    if not args.no_chain and settings.eth_rpc is None:
        _need_the_in_process_chain()  # before the previous demo's data is replaced
    path = fresh_demo_store(demo_events_path(settings.data_dir))
    settings.event_store = "sqlite"
    service = bootstrap.channel_service(settings, sqlite_path=path)
    log.info("event store: SQLite at %s (fresh for this demo)", path)
    chain = None
    if not args.no_chain:
        from infrastructure.tools.demo import DemoChain

        chain = DemoChain(service, settings.eth_rpc, seed=args.seed)
        log.info(
            "chain: %s, contract %s, BTC token %s, node (operator) %s",
            settings.eth_rpc or "in-process py-evm", chain.contract.address, chain.token.address, chain.node.address,
        )
    demo = Demo(service, chain=chain, **workload_args(args))
    with RateProgress("payments", args.payments) as tick:
        result = demo.run(progress=tick)
    demo.settle(result, args.settle)

    console = out_console(args.json)  # with --json the tables go to stderr: stdout is the JSON document
    if chain is None:
        _demo_channels_table(args, result, service, console)
    else:
        _demo_chain_tables(args, result, service, chain, path, console)

    summary = Table(title="Run")
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("messages sent", f"{result.sent:,}")
    summary.add_row("payments accepted", f"{result.accepted:,}")
    summary.add_row("duplicates (no-op)", f"{result.duplicates:,}")
    for reason, n in sorted(result.rejected.items()):
        summary.add_row(f"rejected: {reason}", f"{n:,}")
    summary.add_row("checkpoints requested", f"{result.checkpoints:,}")
    figures_chain = None
    if chain is not None:
        figures_chain = _chain_figures(result, service, chain)
        summary.add_row("checkpoints confirmed on-chain", f"{figures_chain['checkpoints_confirmed']:,}")
        summary.add_row("channels settled on-chain", f"{figures_chain['settled']:,}")
        summary.add_row("time on the chain (incl. setup)", f"{chain.seconds:.2f} s")
    summary.add_row("wall time (payments + checkpoints)", f"{result.seconds:.2f} s")
    summary.add_row("payments/s", f"{result.payments_per_s:,.0f}")
    console.print(summary)
    if args.json:
        figures = {
            "sent": result.sent,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": dict(result.rejected),
            "checkpoints": result.checkpoints,
            "seconds": round(result.seconds, 3),
            "payments_per_s": round(result.payments_per_s, 1),
        }
        if figures_chain is not None:
            figures["chain"] = figures_chain
            figures["chain_seconds"] = round(chain.seconds, 3)
        print_json(figures)
    return 0


def _need_the_in_process_chain() -> None:
    """Refuse before any work when the in-process chain's optional dependencies are not installed."""
    import importlib.util

    from infrastructure.cli.exits import UsageError

    missing = [m for m in ("eth_tester", "eth") if importlib.util.find_spec(m) is None]  # eth: py-evm
    if missing:
        raise UsageError(
            f"the demo's in-process Ethereum chain needs eth-tester and py-evm ({', '.join(missing)} not installed): "
            "pip install 'parsec[chain-tester]'; or run it on a node with --eth-rpc URL (scripts/anvil start), "
            "or without a chain: parsec demo --no-chain")


def _demo_channels_table(args: argparse.Namespace, result, service, console) -> None:
    table = Table(title=f"Channels ({min(args.show, len(result.channels))} of {len(result.channels)})")
    for col in ("channel", "cur", "A", "B", "deposit A", "deposit B", "balance A", "balance B", "seq", "checkpoint"):
        table.add_column(col, justify="right" if col not in ("channel", "cur", "A", "B") else "left")
    for plan in result.channels[: args.show]:
        view = service.get_channel(plan.channel_id)
        cur = view.currency
        table.add_row(
            short(view.channel_id, 8),
            cur,
            short(view.participants[0]),
            short(view.participants[1]),
            format_amount(view.deposits[0], cur),
            format_amount(view.deposits[1], cur),
            format_amount(view.balances[0], cur),
            format_amount(view.balances[1], cur),
            str(view.sequence),
            str(view.checkpoint_sequence),
        )
    console.print(table)


def _read_models(service, path):
    """The balances and settlements read models, built from the demo's event log."""
    from projections.balances import Balances
    from projections.settlements import Settlements
    from projections.source import source_for
    from projections.sqlite import SQLiteStore

    db = path.parent / "readmodels.sqlite"
    for suffix in ("", "-wal", "-shm"):
        p = db.parent / (db.name + suffix)
        if p.exists():
            p.unlink()
    store = SQLiteStore(db)
    from infrastructure.settlement.aggregates import ProcessCursor, SettlementIntent

    ours = [  # the process manager's own events: stored in the same log, no demo read model needs them
        f"{cls.__name__}.{name}"
        for cls, names in (
            (SettlementIntent, ("IntentRaised", "TransactionSubmitted", "TransactionConfirmed",
                                "TransactionFailed", "IntentSuperseded")),
            (ProcessCursor, ("CursorCreated", "CursorMoved")),
        )
        for name in names
    ]
    bootstrap.projection_runner(source_for(service), store, [Balances(), Settlements()], known_events=ours).catch_up()
    return store


def _demo_chain_tables(args: argparse.Namespace, result, service, chain, path, console) -> None:
    from infrastructure.chain import events as chain_events
    from projections.balances import channel_balances
    from projections.settlements import settlements

    store = _read_models(service, path)
    payouts = {e.channel_id: (e.balance_a, e.balance_b) for e in chain.watcher.seen if isinstance(e, chain_events.ChannelSettled)}
    shown = result.settled + [p for p in result.channels if p not in result.settled]
    table = Table(
        title=f"Channels: read model beside the chain ({min(args.show, len(shown))} of {len(shown)})",
        caption="on-chain: the balances the contract has recorded (open) or paid out (settled); ✓ = equal to the "
        "read model's balances at that sequence",
    )
    for col in ("channel", "cur", "status", "seq", "balance A", "balance B", "confirmed",
                "on-chain", "head", "chain A", "chain B", "✓"):
        table.add_column(col, justify="left" if col in ("channel", "cur", "status", "on-chain") else "right")
    for plan in shown[: args.show]:
        cid = plan.channel_id
        (row,) = channel_balances(store, str(cid))
        cur = row.currency
        onchain = chain.onchain(plan)
        if cid in payouts:
            chain_a, chain_b = payouts[cid]
            expected = row.balances
            head = "—"
        else:
            chain_a, chain_b = onchain.balance_a, onchain.balance_b
            head = str(onchain.head_sequence)
            rows = [s for s in settlements(store, str(cid)) if s.kind == "checkpoint" and s.sequence == onchain.head_sequence]
            expected = rows[0].balances if rows else (plan.deposits if onchain.head_sequence == 0 else (None, None))
        ok = (chain_a, chain_b) == tuple(expected)
        table.add_row(
            short(cid, 8), cur, row.status, str(row.sequence),
            format_amount(row.balances[0], cur), format_amount(row.balances[1], cur), str(row.confirmed_sequence),
            onchain.status.name.lower(), head, format_amount(chain_a, cur), format_amount(chain_b, cur),
            "[green]✓[/]" if ok else "[red]✗[/]",
        )
    console.print(table)
    gas = Table(title="Gas used per operation (receipts)")
    for col in ("operation", "transactions", "average gas", "total gas"):
        gas.add_column(col, justify="left" if col == "operation" else "right")
    for op, n, avg, total in chain.gas.rows():
        gas.add_row(op, f"{n:,}", f"{avg:,}", f"{total:,}")
    console.print(gas)


def _chain_figures(result, service, chain) -> dict:
    confirmed = sum(1 for g in chain.executor.stats.gas if g.kind == "checkpoint")
    settled = sum(1 for p in result.settled if service.get_channel(p.channel_id).status == "closed")
    return {
        "checkpoints_confirmed": confirmed,
        "settled": settled,
        "gas": {op: {"transactions": n, "average": avg, "total": total} for op, n, avg, total in chain.gas.rows()},
        "gave_up": len(chain.executor.stats.gave_up),
    }




def register(sub: argparse._SubParsersAction) -> None:
    demo = add_command(sub, cmd_demo)
    add_workload_flags(demo, channels=20, payments=2000, seed=7, duplicates=0.02, invalid=0.01, checkpoint_interval=50,
                       batch=100)
    demo.add_argument("--show", type=int, default=20, help="channels to list in the table (default 20)")
    demo.add_argument("--json", action="store_true",
                      help="print the run's figures as one JSON document on stdout (the tables go to stderr)")
    demo.add_argument(
        "--no-chain", action="store_true",
        help="only the event store: no chain, no contract, no on-chain checkpoints (the fast, older demo)",
    )
    demo.add_argument("--settle", type=int, default=3, help="channels to settle on-chain at the end (default 3)")
