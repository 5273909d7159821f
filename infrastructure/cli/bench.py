"""``parsec bench``: run the benchmark suite, write JSON, print a table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from infrastructure.cli.options import add_command
from infrastructure.settings import Settings

RAIDEN_NOTE = "Raiden TokenNetwork (raiden-contracts data/gas.json)"


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Measure payments/s, latency, replay and gas beside the machine's limits (JSON).

    Run the benchmark suite and print a table; --json FILE writes the document (--json - prints it alone). Limits are measured in the
    same run: secp256k1 recoveries/s per core with the library the node uses, the raw produce/consume
    rate of the same Kafka client on messages of the same size. Sections whose service is unreachable
    are listed under 'skipped'.
    """
    from infrastructure.cli.console import console, err_console
    from infrastructure.tools import bench

    sections = args.sections.split(",") if args.sections else None
    bootstrap = None if args.no_kafka else settings.kafka  # bootstrap, security, replication
    err_console.print("[bold]parsec bench[/]: measuring (limits first, then Parsec's figures)…")
    import logging

    logging.getLogger("kafka").setLevel(logging.WARNING)
    result = bench.run(sections=sections, quick=args.quick, kafka_bootstrap=bootstrap,
                       postgres_dsn=settings.postgres_dsn)
    document = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if args.json == "-":  # stdout is the JSON document only; the table goes to stderr
        err_console.print(render(result))
        sys.stdout.write(document)
        return 0
    if args.json:
        Path(args.json).write_text(document)
        err_console.print(f"wrote {args.json}")
    console.print(render(result))
    return 0


def render(result: dict[str, Any]) -> Table:
    table = Table(title=f"Parsec benchmark, {result['machine']['cores']} cores, {result['date']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("beside", justify="left")
    limits = result.get("limits", {})
    recover = limits.get("recover_per_s_per_core")
    cores = limits.get("cores") or 1
    pps = result.get("payments_per_s", {})
    for where in ("embedded", "kafka"):
        value = pps.get(where)
        if value is not None:
            ratio = f"{value / (recover * cores):.0%} of recover × cores" if recover else ""
            vs = (result.get("against_limits") or {}).get(f"{where}_payments_per_s") or {}
            if vs.get("ratio_to_verify_limit"):
                ratio += f", {vs['ratio_to_verify_limit']:.0%} of verification alone"
            if vs.get("floor"):
                ratio += f"; floor {vs['floor']:,}"
            table.add_row(f"payments/s ({where})", f"{value:,}", ratio)
    mh = result.get("multihop")
    if mh:
        direct = pps.get("embedded")
        table.add_row("multi-hop payments/s (embedded, wall)", f"{mh['payments_per_s']:,}",
                      f"{mh['hops_mean']} hops mean, {mh['parties']} parties, {mh['channels']} channels"
                      + (f"; direct payments {direct:,}/s" if direct else ""))
        table.add_row("multi-hop payments/s, agents saving state", f"{mh['payments_per_s_saving_state']:,}", "")
        lat_mh = mh["latency"]
        table.add_row("multi-hop latency p50 / max (rounds)", f"{lat_mh['rounds_p50']} / {lat_mh['rounds_max']}",
                      f"one payment at a time; {lat_mh['simulated_s_p50']} / {lat_mh['simulated_s_max']} simulated s")
    lat = result.get("latency_ms")
    if lat:
        table.add_row("latency p50 / p99 (ms), Kafka", f"{lat.get('p50')} / {lat.get('p99')}",
                      f"at an offered load of {lat.get('offered_load', '?')}")
    kafka_run = result.get("kafka_run") or {}
    run = kafka_run.get("throughput")
    if run:
        table.add_row("Kafka run", f"{run['payments']:,} payments",
                      f"{run['nodes']} node process(es), {run['partitions']} partitions, {run['seconds']} s; "
                      f"read-model balances equal: {run.get('balances_equal', '?')} channels")
    for row in kafka_run.get("by_nodes") or ():
        cost = (f"{row['node_cpu_us_per_payment']} µs node CPU per payment, "
                f"{row['payments_per_s_per_core_on_paper']:,}/s per core on paper"
                if row.get("node_cpu_us_per_payment") else "")
        table.add_row(f"payments/s (Kafka, {row['nodes']} node process(es))", f"{row['payments_per_s']:,}", cost)
    paper = (kafka_run.get("on_paper") or {}).get("node_cpu_payments_per_s_per_core")
    if paper:
        table.add_row("payments/s on paper, N cores of nodes", f"N × {paper:,}",
                      f"e.g. 8 cores: {8 * paper:,}; producer, broker and read model elsewhere")
    for row in kafka_run.get("latency_by_load") or ():
        split = (f"; to the node's event {row['to_event_p50_ms']} / {row['to_event_p99_ms']}, "
                 f"commit and read {row['event_to_read_p50_ms']} / {row['event_to_read_p99_ms']}"
                 if "to_event_p50_ms" in row else "")
        table.add_row(f"latency at {row['offered_per_s']:,}/s offered: p50 / p99 (ms)",
                      f"{row['p50_ms']} / {row['p99_ms']}", f"achieved {row['achieved_per_s']:,}/s{split}")
    if recover:
        table.add_row("limit: secp256k1 recover/s per core", f"{recover:,}", f"× {cores} cores")
    for key, label in (("sign_per_s_per_core", "limit: sign/s per core"),
                       ("keccak_200B_per_s_per_core", "limit: keccak(200 B)/s per core"),
                       ("kafka_raw_msgs_per_s", "limit: Kafka client produce→consume msgs/s"),
                       ("confluent_kafka_raw_msgs_per_s", "confluent-kafka produce→consume msgs/s")):
        if limits.get(key):
            table.add_row(key if not label else label, f"{limits[key]:,}", "")
    verify = result.get("verification", {})
    for k, v in verify.items():
        table.add_row(k.replace("_", " "), f"{v:,}", "")
    for backend, rate in (result.get("replay_events_per_s") or {}).items():
        table.add_row(f"read-model rebuild events/s ({backend}, all models)", f"{rate:,}",
                      "floor 100,000, target 200,000" if backend == "sqlite" else "")
    gas = (result.get("gas") or {}).get("comparison", {})
    for op, row in gas.items():
        table.add_row(f"gas: {op}", f"{row['parsec']:,}", f"Raiden {row['raiden']:,} ({row['saving_pct']}% less)")
    dispute = (result.get("gas") or {}).get("disputed_settlement")
    if dispute:
        table.add_row("gas: disputed settlement per payment", f"{dispute['marginal_gas_per_payment']:,}", "")
    for name, why in (result.get("skipped") or {}).items():
        table.add_row(f"skipped: {name}", "", why)
    return table


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_bench)
    p.add_argument("--json", metavar="FILE", help="write the JSON document to FILE (- : to stdout, the table to stderr)")
    p.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run, figures are noisier)")
    p.add_argument("--sections", help="comma-separated subset, e.g. limits,embedded,gas")
    p.add_argument("--no-kafka", action="store_true", help="skip the sections that need a Kafka broker")
