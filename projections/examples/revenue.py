"""Example: revenue per seller per currency, a new service built from the existing log.

A seller is a payment's supplier. Rows are keyed by (seller, currency,
channel), never by seller alone: each channel lives in one partition of the
log, so runners of different partitions never write the same row; the query
sums a seller's channels. Register it with ``--plugin projections.examples.revenue``
(or ``PARSEC_PROJECTION_PLUGINS``) and rebuild it:

    parsec projections rebuild revenue_by_seller --plugin projections.examples.revenue
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.model import Column, ReadModel, Rows, Table, handles
from projections.store import ReadModelStore

REVENUE = Table(
    "revenue_by_seller",
    (
        Column("seller"),
        Column("currency"),
        Column("channel_id"),
        Column("revenue", "amount"),
        Column("payments", "int"),
        Column("last_sequence", "int"),
    ),
    key=("seller", "currency", "channel_id"),
)


class RevenueBySeller(
    ReadModel, name="revenue_by_seller", tables=(REVENUE,),
    description="example: revenue per seller per currency",
):
    @handles("Channel.PaymentAccepted")
    def paid(self, event: Any, rows: Rows) -> None:
        currency = event.transaction["currency"]
        cid = str(event.originator_id)
        row = rows.get(REVENUE, event.supplier, currency, cid) or dict(
            seller=event.supplier, currency=currency, channel_id=cid, revenue=0, payments=0
        )
        row["revenue"] += event.price
        row["payments"] += 1
        row["last_sequence"] = event.sequence
        rows.put(REVENUE, row)


READ_MODELS = [RevenueBySeller()]


@dataclass(frozen=True)
class SellerRevenue:
    seller: str
    currency: str
    revenue: int
    payments: int
    channels: int


def revenue_by_seller(store: ReadModelStore, seller: str | None = None) -> list[SellerRevenue]:
    rows = store.select(REVENUE, {"seller": seller} if seller else None)
    totals: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        t = totals.setdefault((r["seller"], r["currency"]), [0, 0, 0])
        t[0] += r["revenue"]
        t[1] += r["payments"]
        t[2] += 1
    return [SellerRevenue(s, c, *t) for (s, c), t in sorted(totals.items())]
