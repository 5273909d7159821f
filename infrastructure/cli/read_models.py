"""``parsec projections …``, ``parsec balances``, ``parsec settlements``, ``parsec history``.

Loaded by ``infrastructure.cli`` through ``register(subparsers)``; every
command is ``func(args, settings) -> int``. Queries first catch the read
models up with the log (exactly once, so harmless next to a running
``parsec projections run``); ``--no-catch-up`` only reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from domain.money import format_amount
from infrastructure import bootstrap
from infrastructure.cli.console import (
    READ_MODEL_AMOUNTS,
    console,
    err_console,
    out_console,
    print_json,
    short,
)
from infrastructure.cli.options import add_command, channel_id
from infrastructure.settings import Settings
from projections import registry
from projections.balances import channel_balances, participant_balances
from projections.history import payment_history
from projections.runner import rebuild
from projections.settlements import STATES, settlements
from projections.store import ReadModelStore

log = logging.getLogger("parsec.projections")


def _amount(value: int | None, currency: str | None) -> str:
    if value is None:
        return ""
    return format_amount(value, currency) if currency else str(value)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("sqlite", "postgres"), help="read-model database (default: postgres "
                   "when a DSN is set, else SQLite next to the event store)")
    p.add_argument("--db", help="SQLite read-model file (default: readmodels.sqlite next to the event store)")
    p.add_argument("--schema", default="public", help="PostgreSQL schema for the read models (default public)")
    p.add_argument("--events-db", help="SQLite event store file (default <data dir>/events.sqlite, or the "
                   "last `parsec demo`'s, <data dir>/demo/events.sqlite, when there is none)")
    p.add_argument("--settlement-topic", help="Kafka: the settler's store, followed beside the events topic for "
                   "the settlements read model (env PARSEC_SETTLEMENT_TOPIC, default parsec.settlement.events)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import read models from MODULE (its READ_MODELS list); env PARSEC_PROJECTION_PLUGINS")


def _events_db(args: argparse.Namespace, settings: Any) -> str | None:
    """The SQLite event store to read: --events-db; else ``<data dir>/events.sqlite``; else, when only
    the demo has written one, the demo's (so that ``parsec balances`` after ``parsec demo`` just works)."""
    if args.events_db or settings.event_store != "sqlite":
        return args.events_db
    if not bootstrap.events_path(settings).exists():
        from infrastructure.cli.demo import demo_events_path

        demo = demo_events_path(settings.data_dir)
        if demo.exists():
            log.info("reading the last `parsec demo`'s event store, %s, and its read models beside it "
                     "(--events-db to choose another)", demo)
            args.events_db = str(demo)
            args.demo_log = True
    return args.events_db


def _store(args: argparse.Namespace, settings: Any) -> ReadModelStore:
    events_db = _events_db(args, settings)
    backend, db = args.backend, args.db
    if getattr(args, "demo_log", False) and backend is None and db is None:
        # the demo's log is not the deployment's: its read models are the demo's SQLite file (which the
        # demo wrote), never the PostgreSQL store a DSN points at (one store, one log)
        backend = "sqlite"
    return bootstrap.read_model_store(settings, backend, db=db, schema=args.schema, events_db=events_db)


def _models(args: argparse.Namespace, settings: Settings, names: list[str] | None = None) -> list:
    registry.load_plugins([*args.plugin, *settings.plugin_modules])
    if not names:
        return list(registry.read_models().values())
    return [registry.get(n) for n in names]


def _known_events() -> set[str]:
    return set().union(*(m.handled_events for m in registry.read_models().values()))


def _source(args: argparse.Namespace, settings: Any) -> Any:
    if getattr(args, "settlement_topic", None):
        settings.settlement_topic = args.settlement_topic
    return bootstrap.event_source(settings, _events_db(args, settings))


def _catch_up(args: argparse.Namespace, settings: Any, store: ReadModelStore, names: list[str]) -> None:
    if getattr(args, "no_catch_up", False):
        return
    runner = bootstrap.projection_runner(_source(args, settings), store, _models(args, settings, names),
                                         known_events=_known_events())
    n = runner.catch_up()
    if n:
        log.info("caught up %d event(s) from the log", n)


def _print_json(rows: list[Any]) -> None:
    """The rows as one JSON array; amounts as decimal strings of the smallest unit (JSON numbers are
    doubles: a consumer rounds wei past 2**53)."""
    print_json(rows, amounts=READ_MODEL_AMOUNTS, indent=1)


# --- projections list / rebuild / run / show ------------------------------------------
def cmd_list(args: argparse.Namespace, settings: Any) -> int:
    """Read models, their positions and the log head."""
    models = _models(args, settings)
    store = _store(args, settings)
    positions = store.all_positions()
    logs = store.all_sources()
    try:
        source = _source(args, settings)
        heads = {p: source.head(p) for p in source.partitions()}
    except Exception as err:  # listing works without a log
        log.debug("no event source: %s", err)
        heads = {}
    table = RichTable(title=f"Read models ({store.describe()})")
    for col in ("name", "tables", "events handled", "built from (log)", "positions (partition: position)",
                "log head"):
        table.add_column(col)
    for m in models:
        pos = positions.get(m.name, {})
        table.add_row(
            m.name,
            ", ".join(t.name for t in m.tables),
            ", ".join(sorted(e.partition(".")[2] or e for e in m.handled_events)),
            logs.get(m.name, ""),
            ", ".join(f"{p}: {v}" for p, v in sorted(pos.items())) or "not built",
            ", ".join(f"{p}: {h}" for p, h in sorted(heads.items())) or "?",
        )
    if args.json:
        print(json.dumps({m.name: {str(p): v for p, v in positions.get(m.name, {}).items()} for m in models}))
    else:
        console.print(table)
    return 0


def cmd_rebuild(args: argparse.Namespace, settings: Any) -> int:
    """Drop read models and replay the whole log into them, in one pass (default: all of them)."""
    models = _models(args, settings, args.names)
    label = ", ".join(m.name for m in models)
    store = _store(args, settings)
    source = _source(args, settings)
    progress = Progress(
        TextColumn(f"[bold]rebuild {label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
    )
    with progress:
        task = progress.add_task(label, total=None, rate="")

        def started(total: int) -> None:
            progress.update(task, total=total)

        def advanced(n: int) -> None:
            progress.advance(task, n)
            elapsed = progress.tasks[0].elapsed or 1e-9
            progress.update(task, rate=f"{progress.tasks[0].completed / elapsed:,.0f} events/s")

        result = rebuild(
            source, store, models, batch_size=args.batch_size, on_start=started, on_progress=advanced,
            known_events=_known_events(),
        )
    out_console(args.json).print(
        f"rebuilt [bold]{label}[/] in {store.describe()}: {result.events:,} events in "
        f"{result.seconds:.2f} s = [bold]{result.rate:,.0f} events/s[/]"
    )
    if args.json:
        print(json.dumps({"name": result.name, "read_models": [m.name for m in models], "events": result.events, "seconds": round(result.seconds, 3),
                          "events_per_s": round(result.rate, 1), "backend": store.dialect}))
    return 0


def cmd_run(args: argparse.Namespace, settings: Any) -> int:
    """Follow the log and keep read models current (Ctrl-C stops)."""
    models = _models(args, settings, args.names)
    store = _store(args, settings)
    source = _source(args, settings)
    runner = bootstrap.projection_runner(source, store, models, batch_size=args.batch_size,
                                         known_events=_known_events())
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping (signal %d): the current batch commits or rolls back, positions stay exact", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    log.info("following %s into %s: %s", settings.event_store, store.describe(), ", ".join(m.name for m in models))
    try:
        runner.run_forever(stop, poll_interval=args.poll)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        store.close()
        close = getattr(source, "close", None)
        if close is not None:
            close()
    log.info("stopped after %d event(s), %d batch(es), %d retry(ies); skipped: %s",
             runner.stats.events, runner.stats.batches, runner.stats.retries, dict(runner.stats.skipped) or "none")
    return 0


def cmd_show(args: argparse.Namespace, settings: Any) -> int:
    """Print a read model's tables (any read model, plugins too)."""
    (model,) = _models(args, settings, [args.name])
    store = _store(args, settings)
    _catch_up(args, settings, store, [model.name])
    out = {}
    for t in model.tables:
        rows = store.select(t, order_by=t.key, limit=args.limit)
        amounts = [c.name for c in t.columns if c.kind == "amount"]
        out[t.name] = [{k: str(v) if k in amounts and v is not None else v for k, v in r.items()} for r in rows]
        table = RichTable(title=f"{t.name} ({len(rows)} row(s){' shown' if args.limit else ''})")
        for c in t.columns:
            table.add_column(c.name, justify="right" if c.kind != "text" else "left")
        for r in rows:
            table.add_row(*(short(r[c.name], 16) if r[c.name] is not None else "" for c in t.columns))
        if not args.json:
            console.print(table)
    if args.json:
        print(json.dumps(out, default=str, indent=1))
    return 0


# --- queries ------------------------------------------------------------------------
def cmd_balances(args: argparse.Namespace, settings: Any) -> int:
    """Channel balances and participant totals (balances read model)."""
    store = _store(args, settings)
    _catch_up(args, settings, store, ["balances"])
    if args.participant:
        rows = participant_balances(store, args.participant)
        if args.json:
            _print_json(rows)
            return 0
        _print_participants(rows)
        return 0
    channels = channel_balances(store, args.channel)
    if args.json:
        _print_json(channels)
        return 0
    if args.channel and not channels:
        err_console.print(f"no channel {args.channel} in the balances read model")
        return 1
    table = RichTable(title=f"Channel balances ({len(channels)})")
    for col in ("channel", "cur", "A", "B", "deposit A", "deposit B", "sent A", "sent B",
                "locked A", "locked B", "balance A", "balance B", "seq", "head", "status"):
        table.add_column(col, justify="left" if col in ("channel", "cur", "A", "B", "head", "status") else "right")
    for c in channels:
        cur = c.currency
        table.add_row(
            short(c.channel_id, 8), cur, short(c.participants[0]), short(c.participants[1]),
            *(_amount(v, cur) for v in (*c.deposits, *c.sent, *c.locked, *c.balances)),
            str(c.sequence), short(c.head_hash, 8), c.status,
        )
    console.print(table)
    if not args.channel:
        _print_participants(participant_balances(store))
    return 0


def _print_participants(rows: list) -> None:
    table = RichTable(title=f"Participants ({len(rows)})")
    for col in ("address", "cur", "channels", "deposited", "sent", "received", "locked", "balance"):
        table.add_column(col, justify="left" if col in ("address", "cur") else "right")
    for p in rows:
        table.add_row(p.address, p.currency, str(p.channels),
                      *(_amount(v, p.currency) for v in (p.deposited, p.sent, p.received, p.locked, p.balance)))
    console.print(table)


def cmd_settlements(args: argparse.Namespace, settings: Any) -> int:
    """Checkpoints, settlements and disputes with their on-chain state."""
    store = _store(args, settings)
    _catch_up(args, settings, store, ["settlements"])
    rows = settlements(store, args.channel, args.state)
    if args.json:
        _print_json(rows)
        return 0
    currencies = {c.channel_id: c.currency for c in channel_balances(store)} if _has(store, "balances") else {}
    table = RichTable(title=f"Checkpoints, settlements and disputes ({len(rows)})")
    for col in ("channel", "kind", "seq", "state", "reason", "balance A", "balance B", "requested at",
                "tx hash", "block", "gas"):
        table.add_column(col, justify="right" if col in ("seq", "balance A", "balance B", "block", "gas") else "left")
    for s in rows:
        cur = currencies.get(s.channel_id)
        seq = f"{s.from_sequence}–{s.sequence}" if s.from_sequence is not None else str(s.sequence)
        table.add_row(
            short(s.channel_id, 8), s.kind, seq, s.state, s.reason or "",
            _amount(s.balances[0], cur), _amount(s.balances[1], cur),
            str(s.requested_at or ""), short(s.tx_hash or "", 10), str(s.block or ""), str(s.gas or ""),
        )
    console.print(table)
    return 0


def _has(store: ReadModelStore, name: str) -> bool:
    return bool(store.positions(name))


def cmd_history(args: argparse.Namespace, settings: Any) -> int:
    """A channel's payments in sequence order with their hash links."""
    store = _store(args, settings)
    _catch_up(args, settings, store, ["history"])
    rows = payment_history(store, args.channel, limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        err_console.print(f"no payments for channel {args.channel} in the history read model")
        return 1
    table = RichTable(title=f"Payments of channel {args.channel} ({len(rows)})")
    for col in ("seq", "invoice", "buyer", "supplier", "price", "buyer total", "buyer bal.", "supplier bal.",
                "tx hash", "previous"):
        table.add_column(col, justify="right" if col in ("seq", "price", "buyer total", "buyer bal.",
                                                         "supplier bal.") else "left")
    for p in rows:
        cur = p.currency
        table.add_row(
            str(p.sequence), short(p.invoice_id, 8), short(p.buyer), short(p.supplier),
            _amount(p.price, cur), _amount(p.buyer_total, cur), _amount(p.buyer_balance, cur),
            _amount(p.supplier_balance, cur), short(p.transaction_hash, 10), short(p.previous_hash, 10),
        )
    console.print(table)
    return 0


# --- registration ---------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    proj = sub.add_parser(
        "projections",
        help="read models: list, rebuild from the log, follow the log",
        description="Read models are rebuilt from the event log and kept current by a runner that records "
        "its log position in the same transaction as the rows it changes (exactly once).",
    )
    psub = proj.add_subparsers(dest="projections_command", metavar="ACTION", required=True)

    p = add_command(psub, cmd_list)
    _common(p)
    p.add_argument("--json", action="store_true")

    p = add_command(psub, cmd_rebuild)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="read models (see `parsec projections list`; default: all, in one pass over the log)")
    _common(p)
    p.add_argument("--batch-size", type=int, default=1000, help="events per transaction (default 1000)")
    p.add_argument("--json", action="store_true", help="also print the result as JSON")

    p = add_command(psub, cmd_run)
    p.add_argument("names", nargs="*", help="read models to run (default: all)")
    _common(p)
    p.add_argument("--batch-size", type=int, default=500, help="events per transaction (default 500)")
    p.add_argument("--poll", type=float, default=0.2, help="seconds between polls when caught up (default 0.2)")

    p = add_command(psub, cmd_show)
    p.add_argument("name")
    _common(p)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-catch-up", action="store_true", help="only read; do not apply new events first")

    p = add_command(sub, cmd_balances)
    p.add_argument("--channel", type=channel_id, help="one channel id (a UUID)")
    p.add_argument("--participant", help="one participant address: totals per currency")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-catch-up", action="store_true", help="only read; do not apply new events first")

    p = add_command(sub, cmd_settlements)
    p.add_argument("--channel", type=channel_id, help="one channel id (a UUID)")
    p.add_argument("--state", choices=STATES)
    _common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-catch-up", action="store_true", help="only read; do not apply new events first")

    p = add_command(sub, cmd_history)
    p.add_argument("--channel", type=channel_id, required=True, help="channel id (a UUID)")
    p.add_argument("--limit", type=int, default=None)
    _common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-catch-up", action="store_true", help="only read; do not apply new events first")
