"""Signing a channel's payments with domain/ exactly as a Parsec client would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from uuid import UUID

from domain.addresses import eth_address_bytes, to_checksum_address
from domain.crypto import SECP256K1_N, PrivateKey, keccak
from domain.protocol import (
    GENESIS,
    PAYMENT_TYPE,
    HashPointer,
    Invoice,
    SignedInvoice,
    SigningDomain,
    sign_invoice,
)
from infrastructure.chain import PaymentTuple, payment_tuple


def address_of(key: PrivateKey) -> str:
    return to_checksum_address(eth_address_bytes(key.public_key))


@dataclass
class PaymentChain:
    """The hash-linked payments of one channel, signed by its two participants' keys.

    ``first_sequence`` and ``start`` (what the first payment points to) let a test begin in the
    middle of a chain, e.g. at sequence 2**64-1.
    """

    channel: UUID
    domain: SigningDomain
    currency: str = "ETH"
    payments: list[SignedInvoice] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    first_sequence: int = 1
    start: HashPointer = GENESIS

    @property
    def head(self) -> HashPointer:
        return self.payments[-1].pointer if self.payments else self.start

    @property
    def next_sequence(self) -> int:
        return self.first_sequence + len(self.payments)

    def pay(
        self, buyer: PrivateKey, supplier: str, price: int, *, domain: SigningDomain | None = None
    ) -> SignedInvoice:
        address = address_of(buyer)
        total = self.totals.get(address, 0) + price
        signed = sign_invoice(
            Invoice(invoice_address=supplier, price=price, currency=self.currency, invoice_type="coffee"),
            key=buyer,
            channel=self.channel,
            invoice_id=uuid.uuid4(),
            sequence=self.next_sequence,
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

    def raw(
        self, buyer: PrivateKey, supplier: str, price: int, *, sequence: int, buyer_total: int | None = None
    ) -> tuple[PaymentTuple, bytes]:
        """A payment the domain would refuse to build (e.g. sequence 0), signed as the contract hashes
        it, pointing to the chain's head; returns the contract tuple and its digest. Not appended."""
        address = address_of(buyer)
        total = self.totals.get(address, 0) + price if buyer_total is None else buyer_total
        invoice_id = uuid.uuid4()
        struct = {
            "channelId": self.channel.bytes,
            "sequence": sequence,
            "invoiceId": invoice_id.bytes,
            "buyer": address,
            "supplier": supplier,
            "price": price,
            "buyerTotal": total,
            "lockedAmount": 0,
            "locksRoot": b"\0" * 32,
            "currency": self.currency,
            "invoiceType": "coffee",
            "terms": b"\0" * 32,
            "previous": self.head.transaction_hash,
        }
        digest = self.domain.digest(PAYMENT_TYPE.hash_struct(struct))
        sig = buyer.sign_digest(digest)
        tup: PaymentTuple = (
            sequence,
            invoice_id.bytes,
            address,
            price,
            total,
            0,
            b"\0" * 32,
            keccak(b"coffee"),
            b"\0" * 32,
            self.head.transaction_hash,
            sig[:32],
            sig[32:64],
            sig[64],
        )
        return tup, digest


def with_signature(proof: SignedInvoice | PaymentTuple, signature: bytes) -> PaymentTuple:
    t = payment_tuple(proof)
    return (*t[:10], signature[:32], signature[32:64], signature[64])


def high_s(proof: SignedInvoice) -> PaymentTuple:
    """The same signature in its malleable high-s form (s' = n - s, v flipped): valid for ecrecover."""
    sig = proof.invoice_signature
    s = int.from_bytes(sig[32:64], "big")
    flipped = SECP256K1_N - s
    v = 55 - sig[64]  # 27 <-> 28
    return with_signature(proof, sig[:32] + flipped.to_bytes(32, "big") + bytes([v]))
