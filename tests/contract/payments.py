"""Signing a channel's payments with domain/ exactly as a Parsec client would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from uuid import UUID

from domain.crypto import SECP256K1_N, PrivateKey
from domain.protocol import GENESIS, HashPointer, Invoice, SignedInvoice, SigningDomain, sign_invoice
from infrastructure.chain import PaymentTuple, payment_tuple


@dataclass
class PaymentChain:
    """The hash-linked payments of one channel, signed by its two participants' keys."""

    channel: UUID
    domain: SigningDomain
    currency: str = "ETH"
    payments: list[SignedInvoice] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def head(self) -> HashPointer:
        return self.payments[-1].pointer if self.payments else GENESIS

    def pay(
        self, buyer: PrivateKey, supplier: str, price: int, *, domain: SigningDomain | None = None
    ) -> SignedInvoice:
        from domain.addresses import eth_address_bytes, to_checksum_address

        address = to_checksum_address(eth_address_bytes(buyer.public_key))
        total = self.totals.get(address, 0) + price
        signed = sign_invoice(
            Invoice(invoice_address=supplier, price=price, currency=self.currency, invoice_type="coffee"),
            key=buyer,
            channel=self.channel,
            invoice_id=uuid.uuid4(),
            sequence=len(self.payments) + 1,
            previous=self.head,
            buyer_total=total,
            domain=domain or self.domain,
        )
        if domain is None:
            self.payments.append(signed)
            self.totals[address] = total
        return signed

    def latest_of(self, buyer: str) -> SignedInvoice:
        return next(p for p in reversed(self.payments) if p.buyer == buyer)


def with_signature(proof: SignedInvoice | PaymentTuple, signature: bytes) -> PaymentTuple:
    t = payment_tuple(proof)
    return (*t[:7], signature[:32], signature[32:64], signature[64])


def high_s(proof: SignedInvoice) -> PaymentTuple:
    """The same signature in its malleable high-s form (s' = n - s, v flipped): valid for ecrecover."""
    sig = proof.invoice_signature
    s = int.from_bytes(sig[32:64], "big")
    flipped = SECP256K1_N - s
    v = 55 - sig[64]  # 27 <-> 28
    return with_signature(proof, sig[:32] + flipped.to_bytes(32, "big") + bytes([v]))
