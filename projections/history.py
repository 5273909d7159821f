"""Payment history: each channel's signed transactions in sequence order, as the log has them."""

from __future__ import annotations

from dataclasses import dataclass

from projections import views
from projections.model import Column, ReadModel, Rows, Table, handles
from projections.store import ReadModelStore

PAYMENTS = Table(
    "payment_history",
    (
        Column("channel_id"),
        Column("sequence", "int"),
        Column("invoice_id"),
        Column("currency"),
        Column("buyer"),
        Column("supplier"),
        Column("price", "amount"),
        Column("buyer_total", "amount"),
        Column("buyer_balance", "amount"),
        Column("supplier_balance", "amount"),
        Column("transaction_hash"),
        Column("previous_hash"),
        Column("previous_id"),
        Column("recorded_at"),
    ),
    key=("channel_id", "sequence"),
    indexes=(("buyer",), ("supplier",)),
)


class PaymentHistory(
    ReadModel, name="history", tables=(PAYMENTS,), reads_views=True,
    description="every accepted payment per channel, in sequence order, with its hash links",
):
    @handles("Channel.PaymentAccepted")
    def paid(self, event: views.PaymentAccepted, rows: Rows) -> None:
        tx = event.transaction
        previous = tx.hashPointerToPrevious
        buyer_balance, supplier_balance = event.balances
        rows.put(
            PAYMENTS,
            dict(
                channel_id=event.originator_id,
                sequence=event.sequence,
                invoice_id=event.invoice_id,
                currency=tx.currency,
                buyer=event.buyer,
                supplier=event.supplier,
                price=event.price,
                buyer_total=event.buyer_total,
                buyer_balance=buyer_balance,
                supplier_balance=supplier_balance,
                transaction_hash=event.transaction_hash,
                previous_hash=previous.transactionHash if previous is not None else None,
                previous_id=previous.transactionID if previous is not None else None,
                recorded_at=event.timestamp.isoformat() if event.timestamp is not None else None,
            ),
        )


@dataclass(frozen=True)
class Payment:
    channel_id: str
    sequence: int
    invoice_id: str
    currency: str
    buyer: str
    supplier: str
    price: int
    buyer_total: int
    buyer_balance: int
    supplier_balance: int
    transaction_hash: str
    previous_hash: str | None
    previous_id: str | None
    recorded_at: str | None


def payment_history(store: ReadModelStore, channel_id: str, limit: int | None = None) -> list[Payment]:
    rows = store.select(PAYMENTS, {"channel_id": str(channel_id)}, order_by=("sequence",), limit=limit)
    return [Payment(**r) for r in rows]
