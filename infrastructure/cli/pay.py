"""``parsec pay`` and ``parsec wallet``: the payer's client (infrastructure/client, docs/client.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from infrastructure import bootstrap
from infrastructure.cli.console import RateProgress, console, err_console, print_json
from infrastructure.cli.exits import Exit, UsageError
from infrastructure.cli.mediate import MEDIATION_FIELDS, pay_to
from infrastructure.cli.options import (
    TOPIC_FIELDS,
    add_command,
    add_key_flags,
    add_settings_flags,
    channel_id,
    key_from,
)
from infrastructure.settings import Settings

PAY_EPILOG = """\
The wallet's record (PARSEC_WALLET_PATH, default ~/.parsec/wallet.sqlite) holds each channel's head
and every payment signed, with its exact bytes. A payment is recorded before it is sent; one whose
delivery is unknown is re-sent as the same bytes by the next `parsec pay` or `parsec wallet sync`,
never signed again. `parsec wallet channels|payments` show the record.

The API token comes from --token-file, PARSEC_WALLET_API_TOKEN_FILE or PARSEC_WALLET_API_TOKEN
(never a flag value: it would show in `ps` and in shell history).
"""

EXIT_TEST_HOOK = 75  # what exit-after-record exits with: recognisably not a failure of the command


def _test_hook(settings: Settings) -> Any:
    """PARSEC_WALLET_TEST_HOOK: stop between recording a payment and sending it (tests only)."""
    hook = settings.wallet_test_hook
    if not hook:
        return None

    def after_record(payment: Any) -> None:
        note = {"testHook": hook, "channel": str(payment.channel), "sequence": payment.sequence,
                "transactionHash": payment.tx_hash}
        print(json.dumps(note), file=sys.stderr, flush=True)
        if hook == "exit-after-record":
            os._exit(EXIT_TEST_HOOK)  # no clean-up: as abrupt as a crash
        while True:  # pause-after-record: until the test kills this process
            time.sleep(3600)

    return after_record


def _settings_with_api(settings: Settings, args: argparse.Namespace) -> Settings:
    update: dict[str, Any] = {}
    if getattr(args, "token_file", None):
        update["wallet_api_token_file"] = Path(args.token_file)
    return settings.model_copy(update=update) if update else settings


# --- pay ---------------------------------------------------------------------------
def cmd_pay(args: argparse.Namespace, settings: Settings) -> int:
    """Pay the counterparty of a channel (--channel), or anyone across a route of channels (--to).

    The payment extends this wallet's own record of the channel (its head, its cumulative total), is
    signed with --key (a keystore file), written to the record, then sent to the inbound topic (Kafka)
    or, with --to-api URL, to the REST API (POST /v1/payments). Then it waits up to --wait seconds for
    the node's answer (its events topic, or its rejected topic with the reason). A channel not in the
    record yet is tracked from the node's log first. Earlier payments whose delivery is unknown are
    re-sent, as they are, before a new one is signed. Exit status 65: refused (reason printed).

    With --to ADDRESS the payment crosses a route (the cheapest of the routes the log's channels
    offer): this key's mediation agent locks the amount plus the fees in its first channel, the
    hops forward it, the payee reveals the secret and the unlocks come back. It waits up to --wait
    seconds and prints the outcome, the route and the fees; another route is tried if one fails.
    """
    from domain.errors import UnknownChannel
    from domain.money import Currency, parse_amount
    from infrastructure.client import DeliveryUnknown, PaymentRefused, PaymentState, UntrackedChannel

    if args.to:
        return pay_to(args, settings)
    settings = _settings_with_api(settings, args)
    channel = uuid.UUID(args.channel)
    key = key_from(args, settings)
    wallet = bootstrap.wallet(settings, key, after_record=_test_hook(settings))
    try:
        try:
            state = wallet.channel(channel)
        except UntrackedChannel:
            if not args.json:
                err_console.print(f"channel {channel} is not in the wallet's record: tracking it from the node's log")
            state = wallet.track_from_node(channel)
        price = parse_amount(args.amount, Currency.parse(state.currency))
        if args.wait > 0:
            try:  # learn the counterparty's payments and earlier outcomes before signing on the head
                wallet.reconcile(channel)
            except (UnknownChannel, OSError) as err:
                if not args.json:
                    err_console.print(f"[yellow]not reconciled before paying[/]: {err}")
        if args.count < 1:
            raise UsageError(f"--count must be at least 1, got {args.count}")
        paid = []
        # --count N: N payments, each signed on the one before it and recorded before it is sent;
        # the node's answers are awaited once, after the last
        with RateProgress("payments", args.count) if args.count > 1 and not args.json else nullcontext(None) as tick:
            for _ in range(args.count):
                try:
                    paid.append(wallet.pay(channel, price, args.invoice_type))
                except DeliveryUnknown as err:
                    raise DeliveryUnknown(f"{err}; the payment is recorded and will be re-sent, as signed, by the "
                                          "next `parsec pay` or `parsec wallet sync`") from err
                except PaymentRefused:
                    _report(args, wallet.record.payments(channel, wallet.address, newest_first=True, limit=1)[0],
                            state, wallet.transport.name)
                    raise
                if tick is not None:
                    tick(1)
        if args.wait > 0:
            try:
                wallet.wait(channel, timeout=args.wait)
            except (UnknownChannel, OSError) as err:
                if not args.json:
                    err_console.print(f"[yellow]could not read the node's answer[/]: {err}")
        paid = [wallet.record.payment(channel, wallet.address, p.sequence, p.tx_hash) or p for p in paid]
        if args.count == 1:
            _report(args, paid[0], state, wallet.transport.name)
        else:
            _report_many(args, paid, state, wallet.transport.name)
        if any(p.state in (PaymentState.REJECTED, PaymentState.VOID) for p in paid):
            return Exit.REFUSED
        return 0
    finally:
        wallet.close()


def _report(args: argparse.Namespace, payment: Any, state: Any, transport: str) -> None:
    from domain.money import Currency, format_amount

    doc = {"transport": transport, **payment.to_json()}
    if args.json:
        print_json(doc)
        return
    cur = Currency.parse(state.currency)
    where = f" (partition {payment.partition}, offset {payment.offset})" if payment.partition is not None else ""
    console.print(f"payment {payment.sequence} of channel {payment.channel}: "
                  f"{format_amount(payment.price, cur)} {cur.value} to {state.counterparty}: "
                  f"[bold]{payment.state.value}[/]{where}")
    if payment.reason:
        console.print(f"  {payment.reason}: {payment.detail}")
    console.print(f"  transaction hash {payment.tx_hash}")


def _report_many(args: argparse.Namespace, paid: list[Any], state: Any, transport: str) -> None:
    from collections import Counter

    from domain.money import Currency, format_amount

    states = Counter(p.state.value for p in paid)
    if args.json:
        print_json({"transport": transport, "count": len(paid), "states": dict(states),
                    "total": str(sum(p.price for p in paid)), "payments": [p.to_json() for p in paid]})
        return
    cur = Currency.parse(state.currency)
    console.print(f"{len(paid)} payments of channel {state.channel} (sequences {paid[0].sequence}-{paid[-1].sequence}), "
                  f"{format_amount(sum(p.price for p in paid), cur)} {cur.value} to {state.counterparty}: "
                  + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    for p in paid:
        if p.reason:
            console.print(f"  payment {p.sequence}: {p.reason}: {p.detail}")


# --- wallet ------------------------------------------------------------------------
def cmd_wallet(args: argparse.Namespace, settings: Settings) -> int:
    """The wallet's record: its channels and payments; track a channel; re-send and reconcile.

    track: start keeping a channel, from its terms (--terms FILE, JSON: channel, participantA,
    participantB, currency, depositA, depositB, chainId, contract) or from the node's log.
    channels / payments: what the record holds (no key needed). sync: re-send every payment whose
    delivery is unknown (the same bytes) and take the node's answers for every tracked channel.
    """
    action = args.action
    if action in ("channels", "payments"):
        record = bootstrap.wallet_record(settings)
        try:
            return _show(args, record)
        finally:
            record.close()
    from infrastructure.client import ChannelTerms

    wallet = bootstrap.wallet(_settings_with_api(settings, args), key_from(args, settings), send=action == "sync")
    try:
        if action == "track":
            channel = uuid.UUID(args.channel) if args.channel else None
            if args.terms:
                terms = ChannelTerms.parse(json.loads(Path(args.terms).read_text()))
                if channel is not None and terms.channel != channel:
                    raise ValueError(f"--terms are for channel {terms.channel}, not {channel}")
                state = wallet.track(terms)
            elif channel is not None:
                state = wallet.track_from_node(channel)
            else:
                raise ValueError("wallet track needs --channel ID (read from the node) or --terms FILE")
            _print_channels(args, [state])
            return 0
        # sync
        resent = wallet.resend(uuid.UUID(args.channel) if args.channel else None)
        reports = []
        for st in wallet.channels():
            if args.channel and str(st.channel) != str(uuid.UUID(args.channel)):
                continue
            reports.append(wallet.reconcile(st.channel))
        if args.json:
            print_json({"resent": [p.to_json() for p in resent], "channels": [r.to_json() for r in reports]})
        else:
            console.print(f"re-sent {len(resent)} payment(s)")
            for r in reports:
                console.print(f"{r.channel}: node at {r.node_sequence}; accepted {len(r.accepted)}, rejected "
                              f"{len(r.rejected)}, void {len(r.void)}, from the counterparty {len(r.counterparty)}; "
                              f"{r.unsettled} unsettled")
        return 0
    finally:
        wallet.close()


def _show(args: argparse.Namespace, record: Any) -> int:
    from infrastructure.client import PaymentState

    if args.action == "channels":
        _print_channels(args, record.channels())
        return 0
    channel = uuid.UUID(args.channel) if args.channel else None
    states = (PaymentState(args.state),) if args.state else None
    payments = record.payments(channel, None, states, limit=args.limit, newest_first=True)
    if args.json:
        print_json([p.to_json() for p in payments])
        return 0
    from rich.table import Table

    table = Table(title=f"payments in {record.path}")
    for col in ("channel", "seq", "price", "total", "state", "reason", "partition/offset", "hash"):
        table.add_column(col)
    for p in payments:
        where = f"{p.partition}/{p.offset}" if p.partition is not None else ""
        table.add_row(str(p.channel)[:8] + "…", str(p.sequence), str(p.price), str(p.buyer_total), p.state.value,
                      p.reason or "", where, p.tx_hash[:12] + "…")
    console.print(table)
    return 0


def _print_channels(args: argparse.Namespace, states: list[Any]) -> None:
    if args.json:
        print_json([s.to_json() for s in states])
        return
    from rich.table import Table

    table = Table(title="channels in the wallet's record")
    for col in ("channel", "me", "role", "counterparty", "currency", "sequence", "paid", "received", "balance",
                "node at", "status"):
        table.add_column(col)
    for s in states:
        table.add_row(str(s.channel), s.me, s.role, s.counterparty, s.currency, str(s.sequence), str(s.my_total),
                      str(s.their_total), str(s.balance), str(s.node_sequence), s.status)
    console.print(table)


def _api_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to-api", dest="wallet_api_url", metavar="URL", default=argparse.SUPPRESS,
                   help="send to the REST API at URL (POST /v1/payments) instead of Kafka "
                        "(env PARSEC_WALLET_API_URL)")
    p.add_argument("--token-file", metavar="FILE", help="a file holding the API's bearer token "
                                                        "(env PARSEC_WALLET_API_TOKEN_FILE / PARSEC_WALLET_API_TOKEN)")
    p.set_defaults(settings_flags=tuple(p.get_default("settings_flags") or ()) + ("wallet_api_url",))


def register(sub: argparse._SubParsersAction) -> None:
    pay = add_command(sub, cmd_pay, epilog=PAY_EPILOG)
    add_key_flags(pay)
    where = pay.add_mutually_exclusive_group(required=True)
    where.add_argument("--channel", type=channel_id, help="the channel id: pay its counterparty directly")
    where.add_argument("--to", metavar="ADDRESS",
                       help="pay ADDRESS across a route of channels (hashed timelocks; the hops must run "
                            "`parsec mediate`); exit 0 succeeded, 65 failed, 2 still in flight after --wait")
    pay.add_argument("--amount", required=True, help="decimal amount in the channel's currency, e.g. 0.01; with --to "
                                                     "what ADDRESS receives (the fees come on top)")
    pay.add_argument("--currency", help="--to: the currency (default: the one of this key's channels)")
    pay.add_argument("--invoice-type", default="", help="what the payment is for (signed with it)")
    pay.add_argument("--count", type=int, default=1,
                     help="pay --amount this many times, each payment signed on the one before (default 1)")
    pay.add_argument("--wait", type=float, default=15.0,
                     help="seconds to wait for the node's answer (default 15; 0: do not wait or reconcile)")
    pay.add_argument("--json", action="store_true", help="one JSON document (amounts as strings)")
    _api_flags(pay)
    add_settings_flags(pay, "wallet_path", *TOPIC_FIELDS, *MEDIATION_FIELDS, "contract")

    wallet = add_command(sub, cmd_wallet, epilog=PAY_EPILOG)
    wallet.add_argument("action", choices=("channels", "payments", "track", "sync"))
    add_key_flags(wallet)
    wallet.add_argument("--channel", type=channel_id, help="track: the channel to read from the node; payments/sync: only this one")
    wallet.add_argument("--terms", help="track: a JSON file of the channel's terms instead of the node's log")
    wallet.add_argument("--state", choices=("recorded", "sent", "accepted", "rejected", "void"),
                        help="payments: only those in this state")
    wallet.add_argument("--limit", type=int, default=100, help="payments: at most this many, newest first")
    wallet.add_argument("--json", action="store_true", help="one JSON document (amounts as strings)")
    _api_flags(wallet)
    add_settings_flags(wallet, "wallet_path", *TOPIC_FIELDS)
