"""Drive a Channel aggregate directly and collect its events (no store, no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from domain.channel import Channel, ChannelParameters
from domain.protocol import GENESIS, HashPointer, Invoice, SigningDomain, sign_invoice
from infrastructure.tools.workload import Party, make_parties

DOMAIN = SigningDomain(chain_id=1337, verifying_contract="0xF2E246BB76DF876Cef8b38ae84130F4F55De395b")
PARAMS = ChannelParameters(challenge_period=3600, checkpoint_interval=3, checkpoint_timeout=600)
PARTIES = make_parties("projections-unit", 4)


@dataclass
class Driver:
    channel: Channel
    parties: tuple[Party, Party]
    events: list[Any] = field(default_factory=list)
    head: HashPointer = GENESIS
    n: int = 0

    @classmethod
    def open(cls, deposits: tuple[int, int] = (10**18, 5 * 10**17), currency: str = "ETH", a: int = 0, b: int = 1,
             seed: int = 1) -> Driver:
        ch = Channel.open(
            channel_id=uuid.UUID(int=seed, version=4), public_key_a=PARTIES[a].public_key,
            public_key_b=PARTIES[b].public_key, currency=currency, deposit_a=deposits[0], deposit_b=deposits[1],
            parameters=PARAMS, domain=DOMAIN, at=1_000,
        )
        d = cls(ch, (PARTIES[a], PARTIES[b]))
        d.collect()
        return d

    def collect(self) -> list[Any]:
        new = list(self.channel.collect_events())
        self.events += new
        return new

    def pay(self, payer: int, price: int) -> list[Any]:
        buyer, supplier = self.parties[payer], self.parties[1 - payer]
        self.n += 1
        tx = sign_invoice(
            Invoice(invoice_address=supplier.address, price=price, currency=self.channel.currency),
            key=buyer.key, channel=self.channel.id, invoice_id=uuid.UUID(int=10_000 + self.n, version=4),
            sequence=self.channel.sequence + 1, previous=self.head,
            buyer_total=self.channel.sent[buyer.address] + price, domain=DOMAIN,
        )
        self.channel.accept_payment(tx, at=2_000)
        self.head = tx.pointer
        return self.collect()
