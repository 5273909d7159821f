"""The ``parsec`` command line.

Every subcommand reads its settings from flags, then ``PARSEC_*`` environment
variables, then defaults (see ``parsec --help``). A refused input prints its
reason and exits with status 2; no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.errors import ParsecError
from domain.money import format_amount
from infrastructure.config import EVENT_STORES, Settings

console = Console()
if not console.is_terminal:  # piped or logged: no terminal width to respect
    console = Console(width=160)
err_console = Console(stderr=True)
log = logging.getLogger("parsec")

EPILOG = """\
environment variables (flags win over them):
  PARSEC_DATA_DIR         where the embedded SQLite stores live (default ~/.local/share/parsec)
  PARSEC_EVENT_STORE      sqlite | kafka | memory (default sqlite)
  PARSEC_KAFKA_BOOTSTRAP  Kafka bootstrap servers (default 127.0.0.1:9092)
  PARSEC_KAFKA_SECURITY_PROTOCOL  PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
  PARSEC_KAFKA_SASL_MECHANISM     SCRAM-SHA-512 (default with SASL) | SCRAM-SHA-256 | PLAIN
  PARSEC_KAFKA_SASL_USERNAME      the SASL principal's name
  PARSEC_KAFKA_SASL_PASSWORD      its password (or PARSEC_KAFKA_SASL_PASSWORD_FILE: a file holding it)
  PARSEC_KAFKA_SSL_CAFILE, _CERTFILE, _KEYFILE, _CHECK_HOSTNAME  TLS: CA, client certificate and key
  PARSEC_KAFKA_REPLICATION_FACTOR   replicas of topics Parsec creates (default -1: the broker's)
  PARSEC_KAFKA_MIN_INSYNC_REPLICAS  their min.insync.replicas (unset: the broker's default)
  PARSEC_POSTGRES_DSN     PostgreSQL for read models (default: SQLite in the data dir)
  PARSEC_ETH_RPC          Ethereum JSON-RPC URL (default: the in-process chain)
  PARSEC_LOG_LEVEL        DEBUG | INFO | WARNING (default INFO)
  PARSEC_PROJECTION_PLUGINS  modules with read models of your own (see docs/projections.md)
node and topic settings: parsec node --help
"""


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


class RateProgress:
    """A progress bar with the running rate: ``with RateProgress("payments", total) as tick: tick(n)``."""

    def __init__(self, description: str, total: int | None) -> None:
        self.progress = _progress()
        self.description, self.total, self.count = description, total, 0

    def __enter__(self) -> Callable[[int], None]:
        self.progress.__enter__()
        self.task = self.progress.add_task(self.description, total=self.total, rate="")
        return self.tick

    def tick(self, n: int) -> None:
        self.count += n
        elapsed = self.progress.tasks[0].elapsed or 1e-9
        self.progress.update(self.task, completed=self.count, rate=f"{self.count / elapsed:,.0f}/s")

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)


def stop_on_signals(what: str) -> threading.Event:
    """An event set by SIGTERM or Ctrl-C, for long-running commands that stop cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the current %s", signal.Signals(signum).name, what)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def short(value: object, n: int = 10) -> str:
    text = str(value)
    return text if len(text) <= n + 2 else text[: n + 2] + "…"


# --- demo ----------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from domain.application import ChannelService
    from infrastructure.demo import Demo, fresh_demo_store

    path = fresh_demo_store(settings.data_dir)
    settings.event_store = "sqlite"
    service = ChannelService(env=settings.application_env(sqlite_path=path))
    log.info("event store: SQLite at %s (fresh for this demo)", path)
    chain = None
    if not args.no_chain:
        from infrastructure.demo_chain import DemoChain

        chain = DemoChain(service, settings.eth_rpc, seed=args.seed)
        log.info(
            "chain: %s, contract %s, BTC token %s, node (operator) %s",
            settings.eth_rpc or "in-process py-evm", chain.contract.address, chain.token.address, chain.node.address,
        )
    demo = Demo(
        service,
        channels=args.channels,
        payments=args.payments,
        seed=args.seed,
        duplicate_rate=args.duplicates,
        invalid_rate=args.invalid,
        checkpoint_interval=args.checkpoint_interval,
        batch_size=args.batch,
        chain=chain,
    )
    with RateProgress("payments", args.payments) as tick:
        result = demo.run(progress=tick)
    demo.settle(result, args.settle)

    if chain is None:
        _demo_channels_table(args, result, service)
    else:
        _demo_chain_tables(args, result, service, chain, path)

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
        import json

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
        print(json.dumps(figures))
    return 0


def _demo_channels_table(args: argparse.Namespace, result, service) -> None:
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
    from projections.runner import ProjectionRunner
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
    ProjectionRunner(source_for(service), store, [Balances(), Settlements()], known_events=ours).catch_up()
    return store


def _demo_chain_tables(args: argparse.Namespace, result, service, chain, path) -> None:
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


# --- verify --------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from domain.protocol import SignedInvoice

    raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    tx = SignedInvoice.from_json(raw)
    table = Table(title="Valid signed invoice", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows = [
        ("channel", str(tx.channel)),
        ("sequence", str(tx.sequence)),
        ("invoice id", str(tx.invoice_id)),
        ("buyer", f"{tx.buyer_address} ({tx.buyer})" if tx.buyer_address != tx.buyer else tx.buyer),
        ("supplier", tx.supplier_address),
        ("price", f"{format_amount(tx.price, tx.currency)} {tx.currency.value} ({tx.price} {tx.currency.unit})"),
        ("buyer total", f"{format_amount(tx.buyer_total, tx.currency)} {tx.currency.value}"),
        ("transaction hash", "0x" + tx.transaction_hash.hex()),
        ("previous", f"{tx.hash_pointer_to_previous.transaction_id} 0x{tx.hash_pointer_to_previous.transaction_hash.hex()}"),
        ("signed for", f"chain {tx.domain.chain_id}, contract {tx.domain.verifying_contract}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    return 0


def cmd_amount(args: argparse.Namespace, settings: Settings) -> int:
    from domain.money import Currency, parse_amount

    cur = Currency.parse(args.currency)
    value = parse_amount(args.amount, cur)
    console.print(f"{value} {cur.unit}")
    return 0


# --- parser ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parsec",
        description=(
            "Parsec: Ethereum state channels whose every transaction is an event in Kafka. "
            "Buyers sign hash-linked invoices; nodes verify and order them, keep balances, "
            "and settle on-chain."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", help="directory for embedded stores (env PARSEC_DATA_DIR)")
    parser.add_argument("--event-store", choices=EVENT_STORES, help="event store (env PARSEC_EVENT_STORE)")
    parser.add_argument("--kafka", dest="kafka_bootstrap", help="Kafka bootstrap servers (env PARSEC_KAFKA_BOOTSTRAP)")
    kafka = parser.add_argument_group("Kafka security (flags win over the PARSEC_KAFKA_* variables)")
    kafka.add_argument("--kafka-security-protocol", metavar="PROTOCOL",
                       help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (env PARSEC_KAFKA_SECURITY_PROTOCOL)")
    kafka.add_argument("--kafka-sasl-mechanism", metavar="MECHANISM",
                       help="SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (env PARSEC_KAFKA_SASL_MECHANISM)")
    kafka.add_argument("--kafka-sasl-username", metavar="NAME", help="SASL principal (env PARSEC_KAFKA_SASL_USERNAME)")
    kafka.add_argument("--kafka-sasl-password-file", metavar="FILE",
                       help="a file holding the SASL password (env PARSEC_KAFKA_SASL_PASSWORD[_FILE]; "
                            "no flag takes the password itself)")
    kafka.add_argument("--kafka-ssl-cafile", metavar="PEM", help="CA of the brokers' certificates (env PARSEC_KAFKA_SSL_CAFILE)")
    parser.add_argument("--postgres", dest="postgres_dsn", help="PostgreSQL DSN for read models (env PARSEC_POSTGRES_DSN)")
    parser.add_argument("--eth-rpc", help="Ethereum JSON-RPC URL; unset = in-process chain (env PARSEC_ETH_RPC)")
    parser.add_argument("--log-level", help="DEBUG, INFO or WARNING (env PARSEC_LOG_LEVEL)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a simulated network of channels on the embedded defaults",
        description=(
            "Open channels between generated parties (deterministic keys from --seed), stream signed "
            "payments through the command handlers on a fresh embedded SQLite event store, and print "
            "the channels' balances and checkpoint requests. A few duplicates and invalid messages are "
            "mixed in: duplicates are no-ops, invalid ones are refused with their reason. Unless "
            "--no-chain: the channels are also opened on the in-process Ethereum chain (or --eth-rpc) "
            "with the contract and a BTC token deployed, the node's wallet operates for every "
            "participant, every checkpoint (each m-th sequence) is sent and confirmed on-chain, and "
            "--settle channels are closed and settled at the end (the chain's clock is advanced past "
            "the challenge period)."
        ),
    )
    demo.add_argument("--channels", type=int, default=20, help="channels to open (default 20)")
    demo.add_argument("--payments", type=int, default=2000, help="payments to send (default 2000)")
    demo.add_argument("--seed", type=int, default=7, help="seed for keys and the workload (default 7)")
    demo.add_argument("--duplicates", type=float, default=0.02, help="fraction of payments sent twice (default 0.02)")
    demo.add_argument("--invalid", type=float, default=0.01, help="fraction with an invalid variant (default 0.01)")
    demo.add_argument("--checkpoint-interval", type=int, default=50, help="m: checkpoint every m-th sequence (default 50)")
    demo.add_argument("--batch", type=int, default=100, help="payments applied per store transaction (default 100)")
    demo.add_argument("--show", type=int, default=20, help="channels to list in the table (default 20)")
    demo.add_argument("--json", action="store_true", help="also print the run's figures as JSON")
    demo.add_argument(
        "--no-chain", action="store_true",
        help="only the event store: no chain, no contract, no on-chain checkpoints (the fast, older demo)",
    )
    demo.add_argument("--settle", type=int, default=3, help="channels to settle on-chain at the end (default 3)")
    demo.set_defaults(func=cmd_demo)

    verify = sub.add_parser(
        "verify",
        help="check a signed invoice (JSON) and show what it says",
        description=(
            "Validate one signed invoice: currency, amounts, the buyer address against its key, the "
            "low-s signature against the buyer's key over the EIP-712 digest. Prints its fields and "
            "transaction hash, or the reason it is refused (exit status 2). Whether it extends its "
            "channel's chain is the node's decision, not checked here."
        ),
    )
    verify.add_argument("file", help="a JSON file, or - for standard input")
    verify.set_defaults(func=cmd_verify)

    amount = sub.add_parser(
        "amount",
        help="convert a decimal amount to the smallest unit (exactly)",
        description="Parse a decimal amount exactly: 'parsec amount 0.05 ETH' prints 50000000000000000 wei.",
    )
    amount.add_argument("amount", help="decimal string, e.g. 0.05")
    amount.add_argument("currency", help="ETH or BTC")
    amount.set_defaults(func=cmd_amount)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Later modules add subcommands here (node, send, balances, bench, …).
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _load_extra_commands() -> None:
    import importlib

    EXTRA_COMMANDS.clear()
    for name in ("projections.cli", "infrastructure.node_cli", "infrastructure.settler_cli", "infrastructure.bench_cli",
                 "infrastructure.simulate_cli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            err_console.print(f"[yellow]warning[/]: commands from {name} are unavailable: {exc}")
            continue
        EXTRA_COMMANDS.append(module.register)


def kafka_flags_env(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment with the Kafka security flags laid over it (the flags win; a password file
    given by flag wins over a password in the environment)."""
    env = dict(environ)
    for flag, suffix in (("kafka_security_protocol", "SECURITY_PROTOCOL"), ("kafka_sasl_mechanism", "SASL_MECHANISM"),
                         ("kafka_sasl_username", "SASL_USERNAME"), ("kafka_sasl_password_file", "SASL_PASSWORD_FILE"),
                         ("kafka_ssl_cafile", "SSL_CAFILE")):
        value = getattr(args, flag, None)
        if value:
            env[f"PARSEC_KAFKA_{suffix}"] = value
            if suffix == "SASL_PASSWORD_FILE":
                env.pop("PARSEC_KAFKA_SASL_PASSWORD", None)
                env.pop("KAFKA_SASL_PASSWORD", None)
    return env


def settings_from(args: argparse.Namespace) -> Settings:
    import os
    from pathlib import Path

    settings = Settings.from_env(kafka_flags_env(args, dict(os.environ)))
    if args.data_dir:
        settings.data_dir = Path(args.data_dir).expanduser()
    if args.event_store:
        settings.event_store = args.event_store
    if args.kafka_bootstrap:
        settings.kafka_bootstrap = args.kafka_bootstrap
    if args.postgres_dsn:
        settings.postgres_dsn = args.postgres_dsn
    if args.eth_rpc:
        settings.eth_rpc = args.eth_rpc
    if args.log_level:
        settings.log_level = args.log_level
    settings.validate()
    return settings


def main(argv: list[str] | None = None) -> int:
    _load_extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        settings = settings_from(args)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(message)s",
            handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=args.debug)],
        )
        return int(args.func(args, settings) or 0)
    except ParsecError as err:
        if args.debug:
            raise
        err_console.print(f"[bold red]{err.reason}[/]: {err}")
        return 2
    except (ValueError, OSError) as err:
        if args.debug:
            raise
        err_console.print(f"[bold red]error[/]: {err}")
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
