"""``parsec verify`` and ``parsec amount``: a signed invoice checked, an amount converted exactly."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from domain.money import format_amount
from infrastructure.cli.console import console
from infrastructure.cli.options import add_command
from infrastructure.settings import Settings


# --- verify --------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Check a signed invoice (JSON) and show what it says.

    Validate one signed invoice: currency, amounts, the buyer address against its key, the low-s
    signature against the buyer's key over the EIP-712 digest. Prints its fields and transaction hash,
    or the reason it is refused (exit status 65). Whether it extends its channel's chain is the node's
    decision, not checked here.
    """
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
    """Convert a decimal amount to the smallest unit (exactly).

    Parse a decimal amount exactly: 'parsec amount 0.05 ETH' prints 50000000000000000 wei.
    """
    from domain.money import Currency, parse_amount

    cur = Currency.parse(args.currency)
    value = parse_amount(args.amount, cur)
    console.print(f"{value} {cur.unit}")
    return 0




def register(sub: argparse._SubParsersAction) -> None:
    verify = add_command(sub, cmd_verify)
    verify.add_argument("file", help="a JSON file, or - for standard input")

    amount = add_command(sub, cmd_amount)
    amount.add_argument("amount", help="decimal string, e.g. 0.05")
    amount.add_argument("currency", help="ETH or BTC")
