"""``parsec mediate`` (a party's mediation agent, long-running) and ``parsec pay --to`` (a multi-hop
payment across a route): ``infrastructure/mediation/kafka.py`` behind both."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from infrastructure.cli.console import console, err_console, print_json, short, stop_on_signals
from infrastructure.cli.exits import Exit
from infrastructure.cli.options import TOPIC_FIELDS, add_command, add_key_flags, add_settings_flags, key_from
from infrastructure.settings import Settings

log = logging.getLogger("parsec.mediation")

MEDIATION_FIELDS = ("hops_topic", "mediation_dir", "mediation_reveal_timeout", "mediation_expiry_delta",
                    "mediation_fee_base", "mediation_fee_ppm", "mediation_final_expiry", "mediation_max_attempts")
PAYMENT_AMOUNTS = frozenset({"amount", "fee", "totalAmount"})
STILL_IN_FLIGHT = 2  # pay --to: neither succeeded nor failed within --wait (the locks are pending)

MEDIATE_EPILOG = """\
A party's agent must run while any of its locks is pending: it forwards the locks it receives,
asks for and reveals secrets, unlocks what it owes, takes back what expired, and registers a secret
on-chain (then closes the channel) when a payer does not unlock in time. Its state is one file per
address under PARSEC_MEDIATION_DIR; a restarted agent carries on from it. With --eth-rpc and
--contract it also watches the chain's secret registry.
"""


def mediation_service(args: argparse.Namespace, settings: Settings, key: Any) -> Any:
    from infrastructure import bootstrap

    contract = None
    if settings.eth_rpc and settings.contract:
        from infrastructure.chain import ChannelContract, connect

        contract = ChannelContract(connect(settings.eth_rpc), settings.contract)
    return bootstrap.mediation_service(settings, key, contract=contract)


def cmd_mediate(args: argparse.Namespace, settings: Settings) -> int:
    """Run this key's mediation agent: forward, claim and settle multi-hop payments (until stopped).

    The agent follows the events topic (every channel: the graph it routes over and its own locks),
    the hops topic (secret requests, reveals and failed locks addressed to it) and, if a contract is
    configured, the chain's secret registry. Fees and expiry delta come from PARSEC_MEDIATION_*.
    """
    from infrastructure.metrics import serve_configured

    service = mediation_service(args, settings, key_from(args, settings))
    serve_configured(settings, "mediate")
    log.info("mediation agent of %s: fee %d + %d ppm, expiry delta %d s, reveal timeout %d s", service.me,
             settings.mediation_fee_base, settings.mediation_fee_ppm, settings.mediation_expiry_delta,
             settings.mediation_reveal_timeout)
    stop = stop_on_signals("pass")
    service.stopped = stop
    try:
        service.run()
    finally:
        service.stop()
    return 0


def pay_to(args: argparse.Namespace, settings: Settings) -> int:
    """``parsec pay --to ADDRESS --amount X``: a payment across a route of channels (hashed timelocks)."""
    from domain.addresses import parse_eth_address
    from domain.money import format_amount, parse_amount

    target = parse_eth_address(args.to)
    service = mediation_service(args, settings, key_from(args, settings))
    try:
        started = time.monotonic()
        service.step()  # the channels as the log has them now
        mine = [c for c in service.agent.channels.values() if service.me in c.participants and c.status == "open"]
        if not mine:
            raise ValueError(f"{service.me} has no open channel in the log: open one first (`parsec channel open`)")
        currency = args.currency or mine[0].currency
        amount = parse_amount(args.amount, currency)
        pid = service.pay(target, amount, currency=currency)
        if not args.json:
            err_console.print(f"paying {format_amount(amount, currency)} {currency} to {short(target)} "
                              f"across a route (payment {pid})")
        service.start()
        outcome = service.wait(pid, args.wait)
        outcome["seconds"] = round(time.monotonic() - started, 3)
    finally:
        service.stop()
    if args.json:
        print_json(outcome, amounts=PAYMENT_AMOUNTS, indent=1)
    else:
        _print_outcome(outcome, currency)
    if outcome["status"] == "succeeded":
        return 0
    return Exit.REFUSED if outcome["status"] == "failed" else STILL_IN_FLIGHT


def _print_outcome(outcome: dict[str, Any], currency: str) -> None:
    from rich.table import Table

    from domain.money import format_amount

    def fmt(v: str | None) -> str:
        return "" if v is None else format_amount(int(v), currency)

    status = outcome["status"]
    colour = {"succeeded": "green", "failed": "red"}.get(status, "yellow")
    console.print(f"payment {outcome['paymentId']} to {outcome['target']}: [bold {colour}]{status}[/] after "
                  f"{outcome['seconds']:.2f} s" + (f": {outcome['reason']}" if outcome["reason"] else ""))
    if status == "pending":
        console.print("  still in flight: its locks are pending; `parsec mediate` with this key carries it on")
    for i, a in enumerate(outcome["attempts"], 1):
        t = Table(title=f"attempt {i}: {a['status']}" + (f" ({a['reason']})" if a["reason"] else ""))
        for col in ("hop", "channel", "from", "to", "amount", "fee"):
            t.add_column(col, justify="right" if col in ("hop", "amount", "fee") else "left")
        for n, h in enumerate(a["route"], 1):
            t.add_row(str(n), h["channel"][:8] + "…", short(h["from"]), short(h["to"]), fmt(h["amount"]), fmt(h["fee"]))
        console.print(t)
    if outcome["fee"] is not None:
        console.print(f"fees paid: {fmt(outcome['fee'])} {currency}")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_mediate, epilog=MEDIATE_EPILOG)
    add_key_flags(p)
    p.add_argument("--contract", dest="contract", default=argparse.SUPPRESS,
                   help="the ParsecChannels contract whose secret registry to watch (env PARSEC_CONTRACT)")
    p.set_defaults(settings_flags=("contract",))
    add_settings_flags(p, *MEDIATION_FIELDS, *TOPIC_FIELDS, "metrics_port")
