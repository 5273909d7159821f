"""The one workload generator: parties with keys from a seed, channels between them, signed payments.

The demo, the simulator, the benchmark and the tests build their traffic from these pieces, so a
change to what a payment is (a field, the signing domain) is made once. Signed JSON comes from
``domain.protocol`` only (``sign_invoice`` for a model, ``signed_invoice_json`` for the wire form
at load-generating speed). Seeds are for simulations and tests: a real participant signs with its
own key.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.addresses import Address, eth_address_from_public_key
from domain.channel import ChannelParameters
from domain.crypto import PrivateKey
from domain.money import Currency
from domain.protocol import (
    GENESIS,
    HashPointer,
    Invoice,
    SignedInvoice,
    SigningDomain,
    sign_invoice,
    signed_invoice_json,
)

# The in-process chain's id (eth-tester) and the address its first account's first deployment
# gets: what generated traffic is signed for unless a real deployment is given.
DEV_CHAIN_ID = 131277322940537
DEV_CONTRACT = "0xF2E246BB76DF876Cef8b38ae84130F4F55De395b"
DEV_DOMAIN = SigningDomain(chain_id=DEV_CHAIN_ID, verifying_contract=DEV_CONTRACT)


@dataclass(frozen=True)
class Party:
    name: str
    key: PrivateKey

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    @property
    def address(self) -> Address:
        return eth_address_from_public_key(self.key.public_key)


def make_parties(seed: int | str, count: int) -> list[Party]:
    return [Party(f"party-{i}", PrivateKey.from_seed(f"parsec/{seed}/party/{i}")) for i in range(count)]


@dataclass
class ChannelPlan:
    """The clients' side of one channel: its parties and deposits, what each has sent, the chain's head."""

    channel_id: uuid.UUID
    a: Party
    b: Party
    deposits: tuple[int, int]
    currency: Currency = Currency.ETH
    domain: SigningDomain = DEV_DOMAIN
    sent: list[int] = field(default_factory=lambda: [0, 0])
    sequence: int = 0
    head: HashPointer = GENESIS
    txs: list[SignedInvoice] = field(default_factory=list)  # what ``pay`` signed, in order

    def balance(self, i: int) -> int:
        return self.deposits[i] - self.sent[i] + self.sent[1 - i]

    def expected_balances(self) -> tuple[int, int]:
        return self.balance(0), self.balance(1)

    def party(self, i: int) -> Party:
        return self.a if i == 0 else self.b

    def open_kwargs(self, parameters: ChannelParameters, at: int) -> dict[str, Any]:
        """The arguments of ``ChannelService.open_channel`` for this channel."""
        return dict(channel_id=self.channel_id, public_key_a=self.a.public_key, public_key_b=self.b.public_key,
                    currency=self.currency, deposit_a=self.deposits[0], deposit_b=self.deposits[1],
                    parameters=parameters, domain=self.domain, at=at)

    def open_request(self, **params: Any) -> Any:
        """The open as a node takes it from the control topic, signed by A (the opener)."""
        from infrastructure.node.messages import OpenChannelRequest

        return OpenChannelRequest(
            channel=self.channel_id, public_key_a="0x" + self.a.public_key.hex(),
            public_key_b="0x" + self.b.public_key.hex(), currency=self.currency.value,
            deposit_a=self.deposits[0], deposit_b=self.deposits[1], chain_id=self.domain.chain_id,
            contract=self.domain.verifying_contract, **params,
        ).signed(self.a.key, self.domain)

    def sign_request(self, request: Any, by: int = 0, **kwargs: Any) -> Any:
        """A control request about this channel signed by party ``by`` (0: A, 1: B) for the plan's
        domain; ``kwargs`` go to the request's ``signed`` (nonce, expiry...)."""
        return request.signed(self.party(by).key, self.domain, **kwargs)

    def _signing(self, payer: int, price: int, invoice_id: uuid.UUID | None, invoice_type: str) -> tuple:
        supplier = self.party(1 - payer)
        invoice = Invoice(invoice_address=supplier.address, price=price, currency=self.currency,
                          invoice_type=invoice_type)
        kwargs: dict[str, Any] = dict(key=self.party(payer).key, channel=self.channel_id,
                                      invoice_id=invoice_id or uuid.uuid4(), sequence=self.sequence + 1,
                                      previous=self.head, buyer_total=self.sent[payer] + price, domain=self.domain)
        return invoice, kwargs

    def _advance(self, payer: int, price: int, head: HashPointer) -> None:
        self.sent[payer] += price
        self.sequence += 1
        self.head = head

    def sign(self, price: int, payer: int = 0, *, invoice_id: uuid.UUID | None = None, invoice_type: str = "",
             **overrides: Any) -> SignedInvoice:
        """The next payment of ``payer`` (0: A, 1: B), signed, without advancing the plan;
        ``overrides`` (sequence, previous, buyer_total, key, domain...) forge a variant."""
        invoice, kwargs = self._signing(payer, price, invoice_id, invoice_type)
        kwargs.update(overrides)
        return sign_invoice(invoice, **kwargs, verify=False)  # every receiver verifies

    def pay(self, price: int, payer: int = 0, *, invoice_id: uuid.UUID | None = None,
            invoice_type: str = "") -> SignedInvoice:
        """The next payment of ``payer``, signed, and the plan advanced past it."""
        tx = self.sign(price, payer, invoice_id=invoice_id, invoice_type=invoice_type)
        self._advance(payer, price, tx.pointer)
        self.txs.append(tx)
        return tx

    def pay_json(self, price: int, payer: int = 0, *, invoice_id: uuid.UUID | None = None) -> bytes:
        """``pay`` on the wire at load-generating speed (no model built; ``txs`` is not kept)."""
        invoice, kwargs = self._signing(payer, price, invoice_id, "")
        raw, head = signed_invoice_json(invoice, **kwargs)
        self._advance(payer, price, head)
        return raw

    def forged_json(self, price: int, payer: int = 0, *, invoice_id: uuid.UUID | None = None,
                    signer: PrivateKey | None = None, previous: HashPointer | None = None,
                    buyer_total: int | None = None) -> bytes:
        """A variant a faulty or hostile client would send (the plan does not advance)."""
        invoice, kwargs = self._signing(payer, price, invoice_id, "")
        if previous is not None:
            kwargs["previous"] = previous
        if buyer_total is not None:
            kwargs["buyer_total"] = buyer_total
        raw, _ = signed_invoice_json(invoice, **kwargs, signer=signer)
        return raw


def make_channels(
    seed: int | str,
    count: int,
    *,
    deposits: tuple[int, int] | Sequence[tuple[int, int]] = (10**18, 10**16),
    currencies: Sequence[Currency] = (Currency.ETH,),
    domain: SigningDomain = DEV_DOMAIN,
    parties: Sequence[Party] | None = None,
    rng: random.Random | None = None,
) -> list[ChannelPlan]:
    """``count`` channels with ids from the seed: between fresh pairs of parties (default), or between
    random pairs of ``parties``; ``currencies`` repeat over the channels; ``deposits`` is one pair for
    all or one pair per channel."""
    rng = rng or random.Random(f"parsec/{seed}/channels")
    plans = []
    for i in range(count):
        a, b = rng.sample(list(parties), 2) if parties else make_parties(f"{seed}/{i}", 2)
        pair = deposits[i] if deposits and isinstance(deposits[0], tuple) else deposits
        plans.append(ChannelPlan(uuid.UUID(int=rng.getrandbits(128), version=4), a, b, tuple(pair),  # type: ignore[arg-type]
                                 currency=currencies[i % len(currencies)], domain=domain))
    return plans
