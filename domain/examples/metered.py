"""Example transaction-kind plugin: metered usage (``PARSEC_KIND_PLUGINS=domain.examples.metered``).

A seller meters what a buyer uses (API calls, kWh, GB) and the buyer signs each reading: the terms
say which meter, how many units and at what unit price, and the price must be exactly units × unit
price. The effect is a payment's (the price moves to the seller), so on-chain it is an ordinary
balance proof; the read models see ``kind == "meteredUsage"`` with its terms in the event.

Nothing of Parsec is edited to add it: a module with a ``TRANSACTION_KINDS`` list, loaded by
``domain.kinds.load_plugins`` (the ``kind_plugins`` setting), is enough. Every node, client and
auditor that must accept the kind loads the same module (a node without it refuses the transaction
as ``UnknownTransactionKind``, recorded with that reason on the rejected topic).
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from pydantic import Field

from domain.eip712 import StructType
from domain.errors import AmountOutOfRange
from domain.kinds import Circumstances, Direction, TransactionKind
from domain.wire import AmountField, Message


class MeteredUsageTerms(Message):
    meter_id: UUID = Field(alias="meterId")
    units: int = Field(gt=0, le=2**64 - 1)
    unit_price: AmountField = Field(alias="unitPrice")


class MeteredUsage(TransactionKind):
    name = "meteredUsage"
    terms_model = MeteredUsageTerms
    terms_type = StructType.parse("MeteredUsage(bytes16 meterId,uint64 units,uint256 unitPrice)")

    def struct(self, terms: Message) -> dict[str, object]:
        t: MeteredUsageTerms = terms  # type: ignore[assignment]
        return {"meterId": t.meter_id.bytes, "units": t.units, "unitPrice": t.unit_price}

    def effect(self, price: int, terms: Message | None, before: Direction, when: Circumstances) -> Direction:
        t: MeteredUsageTerms = terms  # type: ignore[assignment]
        if price != t.units * t.unit_price:
            raise AmountOutOfRange(f"price {price} is not {t.units} units × {t.unit_price}")
        return replace(before, sent=before.sent + price)


TRANSACTION_KINDS = [MeteredUsage()]
