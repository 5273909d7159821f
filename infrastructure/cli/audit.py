"""``parsec audit``: verify a copy of the events topic on one's own, trusting only the signatures.

A business unit that receives a copy of Parsec's events topic (MirrorMaker 2 writes it to its own
cluster as ``A.<topic>``) reads it here and nothing else: no node, no database, nothing of the
origin. The checks are infrastructure/audit/verifier.py's; this module reads (reader.py), keeps the
positions between runs (state.py), prints the table and writes the report (report.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.table import Table as RichTable

from domain.money import format_amount
from infrastructure.audit import report as audit_report
from infrastructure.audit import state as audit_state
from infrastructure.audit.reader import LogReader, UnknownTopic
from infrastructure.audit.verifier import Verifier
from infrastructure.cli.console import RateProgress, out_console, print_json, short
from infrastructure.cli.exits import Exit, UsageError
from infrastructure.cli.options import add_command


def cmd_audit(args: argparse.Namespace, settings: Any) -> int:
    """Verify a copy of the events topic: signatures, hash links, sequences, totals and balances.

    Reads every record of --topic (any name, e.g. MirrorMaker's A.parsec.node.events; partitions
    discovered) on the cluster of --kafka, read_committed, without a consumer group. For each channel
    it replays the signed transactions through a fresh channel opened from the open event's terms and
    compares what every event claims with the replay. The same event written twice (same channel and
    version, same bytes) is a duplicate, counted once; the same version with other bytes is a Fork.
    Prints one row per channel: ok, or the first bad event (partition, offset, sequence, reason).

    exit status: 0 every channel verified; 65 a violation (the report names each)."""
    # 65 means "a violation" here: a wrong state file or topic is a usage error (64), never 65
    positions: dict[int, int] = {}
    verifier = Verifier()
    if args.state is not None and not args.from_scratch and args.state.exists():
        try:
            positions, verifier = audit_state.load(args.state, args.topic)
        except audit_state.StateMismatch as exc:
            raise UsageError(str(exc)) from None
    started = time.monotonic()
    records_before, read = verifier.records, 0
    reader = LogReader(args.topic, settings.kafka.kafka_python(), timeout=args.timeout)
    try:
        try:
            partitions = reader.partitions()
        except UnknownTopic as exc:
            raise UsageError(str(exc)) from None
        ends = reader.ends(partitions)
        todo = sum(max(0, ends[p] - positions.get(p, 0)) for p in partitions)
        with RateProgress(f"audit {args.topic}", todo) as tick:
            for batch in reader.read(positions, ends):
                for rec in batch:
                    verifier.check(rec)
                read += len(batch)
                tick(len(batch))
            tick(max(0, todo - read))  # offsets also count transaction markers: the bar ends full
    finally:
        reader.close()
    positions = {p: max(positions.get(p, 0), ends[p]) for p in partitions}
    seconds = time.monotonic() - started
    run = {"records_read": verifier.records - records_before, "seconds": round(seconds, 3),
           "records_per_second": round(read / seconds) if seconds > 0 else None,
           "continued": bool(records_before)}
    if args.state is not None:
        audit_state.save(args.state, args.topic, positions, verifier)
    doc = audit_report.build(verifier, topic=args.topic, bootstrap=settings.kafka_bootstrap, positions=positions,
                             run=run)
    report_path = args.report or settings.audit_report  # where the dashboard's Audit page reads it
    if report_path is not None:
        audit_report.write(Path(report_path).expanduser(), doc)
    if args.json:
        print_json(doc, indent=1)
    _print_table(doc, out_console(args.json), args.limit)
    return Exit.OK if doc["ok"] else Exit.REFUSED


def _print_table(doc: dict[str, Any], console: Any, limit: int) -> None:
    rows = doc["channels"]
    table = RichTable(title=f"Audit of {doc['topic']}: {doc['channels_ok']}/{doc['channels_checked']} channels ok, "
                            f"{doc['events']} events, {doc['duplicates']} duplicates")
    for col in ("channel", "result", "events", "dup", "sequence", "balance A", "balance B", "where", "detail"):
        table.add_column(col, justify="right" if col in ("events", "dup", "sequence") else "left",
                         overflow="fold" if col == "detail" else "ellipsis")
    shown = 0
    for row in rows:
        bad = row.get("violation")
        if bad is None and shown >= limit:
            continue
        shown += bad is None
        currency = row.get("currency", "ETH")
        balances = [format_amount(int(x), currency) for x in row.get("balances", [])] or ["", ""]
        where = f"p{bad['partition']}@{bad['offset']} v{bad['version']}" if bad else ""
        table.add_row(short(row["channel"], 12), f"[bold red]{bad['reason']}[/]" if bad else "[green]ok[/]",
                      str(row["events"]), str(row["duplicates"]),
                      str(bad["sequence"] if bad else row.get("sequence", "")), *balances, where,
                      f"{bad['event']}: {bad['detail']}" if bad else "")
    for bad in doc["violations"]:
        if bad["channel"] == "?":
            table.add_row("?", f"[bold red]{bad['reason']}[/]", "", "", "", "", "",
                          f"p{bad['partition']}@{bad['offset']}", bad["detail"])
    console.print(table)
    hidden = sum(1 for r in rows if "violation" not in r) - shown
    run = doc["run"]
    console.print(f"{run['records_read']} records read in {run['seconds']:.1f}s "
                  f"({run['records_per_second'] or 0:,}/s)" + (f"; {hidden} more ok channels not shown "
                                                                 "(--limit)" if hidden > 0 else ""))
    if doc["violations"]:
        console.print(f"[bold red]{len(doc['violations'])} violation(s)[/]")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_audit)
    # the global --kafka, also after the command (SUPPRESS: not given here leaves the global one)
    p.add_argument("--kafka", dest="kafka_bootstrap", default=argparse.SUPPRESS, metavar="BOOTSTRAP",
                   help="bootstrap servers of the cluster holding the copy (env PARSEC_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", required=True, help="the copy of the events topic, e.g. A.parsec.node.events")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report (money as strings) here "
                   "(default: PARSEC_AUDIT_REPORT, where the dashboard's Audit page reads it)")
    p.add_argument("--json", action="store_true", help="print the JSON report on standard output")
    p.add_argument("--state", type=Path, metavar="FILE",
                   help="the auditor's own positions and per-channel state: the next run continues from them")
    p.add_argument("--from-scratch", action="store_true", help="ignore --state's content and read from the start")
    p.add_argument("--limit", type=int, default=50, help="at most this many ok channels in the table (default 50; "
                                                        "violations are always shown)")
    p.add_argument("--timeout", type=_positive, default=30.0,
                   help="seconds without progress before the read gives up (default 30)")

