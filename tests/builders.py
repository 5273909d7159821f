"""Builders shared by the tests: parties, channels and signed payments."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from domain.addresses import eth_address_from_public_key
from domain.channel import Channel, ChannelParameters
from domain.crypto import PrivateKey, keccak
from domain.eip712 import StructType
from domain.locks import Lock, locks_root, secret_hash
from domain.money import Currency
from domain.protocol import GENESIS, HashPointer, Invoice, SignedInvoice, SigningDomain, sign_invoice
from infrastructure.tools.workload import ChannelPlan, Party

DOMAIN = SigningDomain(chain_id=1337, verifying_contract="0x" + "c0" * 20)
PARAMS = ChannelParameters(challenge_period=3600, checkpoint_interval=5, checkpoint_timeout=60)
T0 = 1_700_000_000

ALICE = PrivateKey.from_seed("alice")
BOB = PrivateKey.from_seed("bob")
CAROL = PrivateKey.from_seed("carol")


def addr(key: PrivateKey) -> str:
    return eth_address_from_public_key(key.public_key)


@dataclass
class Ledger:
    """The clients' side of one channel: who sent what, the head of the chain."""

    channel_id: uuid.UUID
    a: PrivateKey = ALICE
    b: PrivateKey = BOB
    currency: Currency = Currency.ETH
    domain: SigningDomain = DOMAIN
    sent: dict[str, int] = field(default_factory=dict)
    sequence: int = 0
    head: HashPointer = GENESIS
    n: int = 0
    latest: dict[str, SignedInvoice] = field(default_factory=dict)
    locks: dict[str, list[Lock]] = field(default_factory=dict)  # each payer's pending locks, oldest first
    _locks_after: dict[uuid.UUID, list[Lock]] = field(default_factory=dict)

    def last_of(self, payer: PrivateKey) -> SignedInvoice:
        """The latest payment ``payer`` signed in this channel (its balance proof)."""
        return self.latest[addr(payer)]

    def pay(self, payer: PrivateKey, price: int, *, advance: bool = True, **overrides) -> SignedInvoice:
        payee = self.b if payer is self.a else self.a
        self.n += 1
        pending = self.locks.get(addr(payer), [])
        kwargs = dict(
            locked_amount=sum(lock.amount for lock in pending),
            locks_root=locks_root(pending),
            key=payer,
            channel=self.channel_id,
            invoice_id=uuid.UUID(int=(self.channel_id.int + self.n) % 2**128),
            sequence=self.sequence + 1,
            previous=self.head,
            buyer_total=self.sent.get(addr(payer), 0) + price,
            domain=self.domain,
        )
        kwargs.update(overrides)
        tx = sign_invoice(
            Invoice(invoice_address=addr(payee), price=price, currency=self.currency),
            **kwargs,
        )
        if advance:
            self.last = tx
            self.latest[addr(payer)] = tx
            self.sent[addr(payer)] = kwargs["buyer_total"]
            self.sequence = kwargs["sequence"]
            self.head = tx.pointer
        return tx


    # --- hashed timelocks: the payer's side of each kind -----------------------------------------
    def _kind(self, payer: PrivateKey, kind: str, price: int, default_terms: dict, locks_after: list[Lock],
              sent_after: int, advance: bool, **overrides) -> SignedInvoice:
        terms = overrides.pop("terms", default_terms)
        overrides = {"kind": kind, "terms": terms, "buyer_total": sent_after,
                     "locked_amount": sum(lock.amount for lock in locks_after), "locks_root": locks_root(locks_after),
                     **overrides}
        tx = self.pay(payer, price, advance=advance, **overrides)
        self._locks_after[tx.invoice_id] = list(locks_after)
        if advance:
            self.locks[addr(payer)] = list(locks_after)
        return tx

    def advance(self, tx: SignedInvoice) -> None:
        """The client's view moves to ``tx`` (signed with ``advance=False``) once the channel accepted it."""
        payer = str(tx.buyer)
        self.last = tx
        self.latest[payer] = tx
        self.sent[payer] = tx.buyer_total
        self.sequence = tx.sequence
        self.head = tx.pointer
        if tx.invoice_id in self._locks_after:
            self.locks[payer] = self._locks_after.pop(tx.invoice_id)

    def lock(self, payer: PrivateKey, amount: int, secret: bytes, expiry: int, *, advance: bool = True,
             payment_id: uuid.UUID | None = None, target: str | None = None, **overrides) -> SignedInvoice:
        payee = self.b if payer is self.a else self.a
        lock = Lock(amount=amount, secret_hash=secret_hash(secret), expiry=expiry)
        terms = {"amount": str(amount), "secretHash": "0x" + lock.secret_hash.hex(), "expiry": expiry,
                 "paymentId": str(payment_id or uuid.UUID(int=int.from_bytes(secret[:16], "big"))),
                 "initiator": addr(payer), "target": target or addr(payee)}
        return self._kind(payer, "lockedTransfer", amount, terms, [*self.locks.get(addr(payer), []), lock],
                          self.sent.get(addr(payer), 0), advance, **overrides)

    def unlock(self, payer: PrivateKey, secret: bytes, *, advance: bool = True, **overrides) -> SignedInvoice:
        h = secret_hash(secret)
        pending = self.locks.get(addr(payer), [])
        lock = next(x for x in pending if x.secret_hash == h)
        terms = {"secretHash": "0x" + h.hex(), "secret": "0x" + secret.hex()}
        return self._kind(payer, "unlock", lock.amount, terms, [x for x in pending if x is not lock],
                          self.sent.get(addr(payer), 0) + lock.amount, advance, **overrides)

    def expire(self, payer: PrivateKey, secret_hash_: bytes, *, advance: bool = True, **overrides) -> SignedInvoice:
        pending = self.locks.get(addr(payer), [])
        lock = next(x for x in pending if x.secret_hash == secret_hash_)
        return self._kind(payer, "lockExpired", lock.amount, {"secretHash": "0x" + secret_hash_.hex()},
                          [x for x in pending if x is not lock], self.sent.get(addr(payer), 0), advance, **overrides)


def open_channel(
    deposit_a: int = 1000,
    deposit_b: int = 500,
    *,
    channel_id: uuid.UUID | None = None,
    params: ChannelParameters = PARAMS,
    currency: Currency = Currency.ETH,
) -> tuple[Channel, Ledger]:
    cid = channel_id or uuid.uuid4()
    plan = ChannelPlan(cid, Party("alice", ALICE), Party("bob", BOB), (deposit_a, deposit_b), currency=currency,
                       domain=DOMAIN)
    ch = Channel.open(**plan.open_kwargs(params, at=T0))
    return ch, Ledger(cid, currency=currency)


def eth_account_signable(struct_type: StructType, message: dict[str, Any], domain: SigningDomain) -> Any:
    """``message`` as eth-account encodes it for ``domain``: an independent EIP-712 implementation
    that domain/'s digests are checked against."""
    from eth_account.messages import encode_typed_data

    eip712_domain = [("string", "name"), ("string", "version"), ("uint256", "chainId"), ("address", "verifyingContract")]
    full = {
        "types": {name: [{"name": n, "type": t} for t, n in fields]
                  for name, fields in (("EIP712Domain", eip712_domain), (struct_type.name, struct_type.fields))},
        "primaryType": struct_type.name,
        "domain": {"name": "Parsec", "version": "1", "chainId": domain.chain_id,
                   "verifyingContract": domain.verifying_contract},
        "message": message,
    }
    return encode_typed_data(full_message=full)


def signable_digest(signable: Any) -> bytes:
    """The EIP-712 digest of an eth-account signable message."""
    return keccak(b"\x19" + signable.version + signable.header + signable.body)
