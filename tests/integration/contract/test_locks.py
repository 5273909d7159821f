"""Issue 14 on-chain: hashed timelocks recorded in proofs, the secret registry, and the settle and
unlock paths that decide them. Adversarial: each test names the attack or the invariant it checks.

Every test runs on both backends (conftest.py) with fresh parties; payouts are triggered by a
third party, so a participant's ETH balance changes by exactly its payout.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from uuid import UUID

import pytest

from domain.eip712 import StructType
from domain.protocol import GENESIS, Invoice, SignedInvoice, sign_invoice
from infrastructure.chain import ContractReverted, advance_time
from infrastructure.chain import events as ev
from infrastructure.chain.channels import locks_root, pack_lock
from infrastructure.chain.connection import latest_timestamp
from tests.integration.contract.chain import Chain, Party, party
from tests.integration.contract.payments import address_of

PERIOD = 3600
LOCKED_TRANSFER = StructType.parse(
    "LockedTransfer(uint256 amount,bytes32 secretHash,uint64 expiry,bytes16 paymentId,address initiator,"
    "address target)"
)
UNLOCK = StructType.parse("Unlock(bytes32 secretHash,bytes32 secret)")
LOCK_EXPIRED = StructType.parse("LockExpired(bytes32 secretHash)")
ZERO = b"\0" * 32


def reverts(name: str):
    return pytest.raises(ContractReverted, match=rf"reverted with {name}\(")


@dataclass(frozen=True)
class Lock:
    expiry: int
    amount: int
    secret: bytes

    @property
    def secret_hash(self) -> bytes:
        return hashlib.sha256(self.secret).digest()

    @property
    def packed(self) -> bytes:
        return pack_lock(self.expiry, self.amount, self.secret_hash)


@dataclass
class Ledger:
    """One channel's hash-linked transactions of every kind, with each buyer's total and pending locks."""

    channel: UUID
    domain: object
    txs: list[SignedInvoice] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    locks: dict[str, list[Lock]] = field(default_factory=dict)

    def blob(self, buyer: str) -> bytes:
        return b"".join(lock.packed for lock in self.locks.get(buyer, []))

    def _sign(self, buyer, supplier: str, price: int, terms_hash: bytes, kind: str,
              terms: dict | None = None) -> SignedInvoice:
        address = address_of(buyer)
        blob = self.blob(address)
        signed = sign_invoice(
            Invoice(invoice_address=supplier, price=price, currency="ETH", invoice_type=kind),
            key=buyer,
            channel=self.channel,
            invoice_id=uuid.uuid4(),
            sequence=len(self.txs) + 1,
            previous=self.txs[-1].pointer if self.txs else GENESIS,
            buyer_total=self.totals.get(address, 0),
            domain=self.domain,
            locked_amount=sum(lock.amount for lock in self.locks.get(address, [])),
            locks_root=locks_root(blob),
            kind=kind,
            terms=terms,
        )
        assert signed.terms_hash == terms_hash  # the domain's catalogue hashes the terms as the contract's spec says
        self.txs.append(signed)
        return signed

    def pay(self, buyer, supplier: str, price: int) -> SignedInvoice:
        address = address_of(buyer)
        self.totals[address] = self.totals.get(address, 0) + price
        return self._sign(buyer, supplier, price, ZERO, "payment")

    def lock(self, buyer, supplier: str, amount: int, expiry: int) -> tuple[SignedInvoice, Lock]:
        address = address_of(buyer)
        lock = Lock(expiry, amount, os.urandom(32))
        self.locks.setdefault(address, []).append(lock)
        payment_id = uuid.uuid4()
        terms = LOCKED_TRANSFER.hash_struct({
            "amount": amount, "secretHash": lock.secret_hash, "expiry": expiry,
            "paymentId": payment_id.bytes, "initiator": address, "target": supplier,
        })
        as_json = {"amount": str(amount), "secretHash": "0x" + lock.secret_hash.hex(), "expiry": expiry,
                   "paymentId": str(payment_id), "initiator": address, "target": supplier}
        return self._sign(buyer, supplier, amount, terms, "lockedTransfer", as_json), lock

    def unlock(self, buyer, supplier: str, lock: Lock) -> SignedInvoice:
        address = address_of(buyer)
        self.locks[address].remove(lock)
        self.totals[address] = self.totals.get(address, 0) + lock.amount
        terms = UNLOCK.hash_struct({"secretHash": lock.secret_hash, "secret": lock.secret})
        as_json = {"secretHash": "0x" + lock.secret_hash.hex(), "secret": "0x" + lock.secret.hex()}
        return self._sign(buyer, supplier, lock.amount, terms, "unlock", as_json)

    def expire(self, buyer, supplier: str, lock: Lock) -> SignedInvoice:
        self.locks[address_of(buyer)].remove(lock)
        terms = LOCK_EXPIRED.hash_struct({"secretHash": lock.secret_hash})
        return self._sign(buyer, supplier, lock.amount, terms, "lockExpired", {"secretHash": "0x" + lock.secret_hash.hex()})


@dataclass
class Setup:
    chain: Chain
    a: Party
    b: Party
    third: Party
    cid: UUID
    ledger: Ledger

    def eth(self, p: Party) -> int:
        return self.chain.w3.eth.get_balance(p.address)

    def held(self) -> int:
        return self.chain.w3.eth.get_balance(self.chain.channels.address)


def opened(chain: Chain, deposit_a: int = 1000, deposit_b: int = 500) -> Setup:
    tag = uuid.uuid4().hex[:8]
    a, b, third = (party(chain.w3, f"parsec-issue14/{tag}/{n}") for n in ("a", "b", "third"))
    cid = uuid.uuid4()
    chain.channels.open_channel(a.wallet, cid, b.address, deposit=deposit_a, challenge_period=PERIOD)
    if deposit_b:
        chain.channels.deposit(b.wallet, cid, deposit_b)
    return Setup(chain, a, b, third, cid, Ledger(cid, chain.channels.domain))


def latest(ledger: Ledger, buyer: str) -> SignedInvoice:
    return next(t for t in reversed(ledger.txs) if t.buyer == buyer)


def test_the_secret_registry_keeps_the_first_registration(chain: Chain) -> None:
    s = opened(chain)
    secret = os.urandom(32)
    digest = hashlib.sha256(secret).digest()
    assert chain.channels.secret_revealed_at(digest) == 0
    first = chain.channels.register_secret(s.third.wallet, secret)
    assert [(e.secret_hash, e.secret) for e in first.events] == [(digest, secret)]
    at = chain.channels.secret_revealed_at(digest)
    assert at == latest_timestamp(chain.w3) and at > 0
    advance_time(chain.w3, 10)
    again = chain.channels.register_secret(s.a.wallet, secret)
    assert again.events == ()  # nothing new: no event
    assert chain.channels.secret_revealed_at(digest) == at  # the first registration stands
    more = [os.urandom(32) for _ in range(3)]
    chain.channels.register_secrets(s.third.wallet, [secret, *more])
    for m in more:
        assert chain.channels.secret_revealed_at(hashlib.sha256(m).digest()) > 0
    assert chain.channels.secret_revealed_at(digest) == at


def _two_sided(chain: Chain) -> tuple[Setup, Lock, Lock, Lock]:
    """A pays B 100, locks 200 (L1) and 50 (L2) to B; B pays A 30 and locks 40 (L3) to A.
    A closes with B's latest proof, B updates with A's."""
    s = opened(chain)
    now = latest_timestamp(chain.w3)
    a, b, ledger = s.a, s.b, s.ledger
    ledger.pay(a.key, b.address, 100)
    _, l1 = ledger.lock(a.key, b.address, 200, now + PERIOD // 2)
    ledger.pay(b.key, a.address, 30)
    _, l2 = ledger.lock(a.key, b.address, 50, now + PERIOD // 2)
    _, l3 = ledger.lock(b.key, a.address, 40, now + PERIOD // 2)
    chain.channels.close(a.wallet, s.cid, [latest(ledger, b.address)])
    chain.channels.update(b.wallet, s.cid, [latest(ledger, a.address)])
    return s, l1, l2, l3


def test_settle_with_locks_decides_every_lock_and_pays_exactly_the_deposits(chain: Chain) -> None:
    s, l1, l2, l3 = _two_sided(chain)
    chain.channels.register_secret(s.b.wallet, l1.secret)  # B learnt L1's secret: it pays B
    chain.channels.register_secret(s.a.wallet, l3.secret)  # L3 pays A; L2's secret never shows
    advance_time(chain.w3, PERIOD)
    with reverts("LocksPending"):  # the lock-free settle refuses a channel with locks recorded
        chain.channels.settle(s.third.wallet, s.cid)
    blob_a, blob_b = s.ledger.blob(s.a.address), s.ledger.blob(s.b.address)
    with reverts("LocksRootMismatch"):  # L2 left out: A's locks would not match the root
        chain.channels.settle_with_locks(s.third.wallet, s.cid, l1.packed, blob_b)
    with reverts("LocksRootMismatch"):  # reordered
        chain.channels.settle_with_locks(s.third.wallet, s.cid, l2.packed + l1.packed, blob_b)
    with reverts("LocksRootMismatch"):  # B's locks not supplied
        chain.channels.settle_with_locks(s.third.wallet, s.cid, blob_a, b"")
    before_a, before_b, held = s.eth(s.a), s.eth(s.b), s.held()
    chain.channels.settle_with_locks(s.third.wallet, s.cid, blob_a, blob_b)
    # base = 1000 + 30 - 100 = 930; A's locks paying B: 200 (L2 returns); B's paying A: 40
    paid_a, paid_b = s.eth(s.a) - before_a, s.eth(s.b) - before_b
    assert (paid_a, paid_b) == (930 + 40 - 200, 1500 - 770)
    assert paid_a + paid_b == 1500 and held - s.held() == 1500
    with reverts("AlreadySettled"):
        chain.channels.settle_with_locks(s.third.wallet, s.cid, blob_a, blob_b)


def test_a_secret_registered_after_expiry_does_not_pay(chain: Chain) -> None:
    s = opened(chain)
    now = latest_timestamp(chain.w3)
    _, lock = s.ledger.lock(s.a.key, s.b.address, 300, now + 60)
    chain.channels.close(s.b.wallet, s.cid, [latest(s.ledger, s.a.address)])
    advance_time(chain.w3, 120)
    chain.channels.register_secret(s.b.wallet, lock.secret)  # too late: after the lock's expiry
    assert chain.channels.secret_revealed_at(lock.secret_hash) > lock.expiry
    advance_time(chain.w3, PERIOD)
    before_a, before_b = s.eth(s.a), s.eth(s.b)
    chain.channels.settle_with_locks(s.third.wallet, s.cid, lock.packed, b"")
    assert (s.eth(s.a) - before_a, s.eth(s.b) - before_b) == (1000, 500)  # the lock went back to A


def test_an_undecided_lock_is_refused(chain: Chain) -> None:
    """A lock that outlives the challenge period (the domain refuses one) blocks a deciding settle."""
    s = opened(chain)
    now = latest_timestamp(chain.w3)
    _, lock = s.ledger.lock(s.a.key, s.b.address, 300, now + 10 * PERIOD)
    chain.channels.close(s.b.wallet, s.cid, [latest(s.ledger, s.a.address)])
    advance_time(chain.w3, PERIOD)
    with reverts("LockUndecided"):
        chain.channels.settle_with_locks(s.third.wallet, s.cid, lock.packed, b"")


@pytest.mark.parametrize("stale", ["lock still pending", "smaller total"])
def test_a_stale_state_hiding_a_paid_lock_is_beaten_in_the_challenge_period(chain: Chain, stale: str) -> None:
    s = opened(chain)
    now = latest_timestamp(chain.w3)
    a, b, ledger = s.a, s.b, s.ledger
    ledger.pay(a.key, b.address, 100)
    older_total = latest(ledger, a.address)
    _, lock = ledger.lock(a.key, b.address, 250, now + PERIOD // 2)
    pending = latest(ledger, a.address)
    ledger.unlock(a.key, b.address, lock)  # B revealed the secret off-chain: A paid the lock
    newest = latest(ledger, a.address)
    # B checkpointed an older proof of A; A closes hoping it stands (the lock unpaid: returned to A)
    chain.channels.checkpoint(b.wallet, s.cid, [pending if stale == "lock still pending" else older_total])
    chain.channels.close(a.wallet, s.cid, [])
    chain.channels.update(b.wallet, s.cid, [newest])  # B's newer state, in the challenge period
    state = chain.channels.channel(s.cid)
    assert state.sent_a == 350
    assert chain.channels.contract.functions.locksHashOf(s.cid.bytes, 0).call() == ZERO
    advance_time(chain.w3, PERIOD)
    before_a, before_b = s.eth(a), s.eth(b)
    chain.channels.settle(s.third.wallet, s.cid)  # no lock recorded any more: the plain settle
    assert (s.eth(a) - before_a, s.eth(b) - before_b) == (650, 850)


def test_held_locks_unlock_once_and_only_with_the_recorded_locks(chain: Chain) -> None:
    s, l1, l2, l3 = _two_sided(chain)
    chain.channels.register_secret(s.b.wallet, l1.secret)
    advance_time(chain.w3, PERIOD)
    blob_a, blob_b = s.ledger.blob(s.a.address), s.ledger.blob(s.b.address)
    held_before, before_a, before_b = s.held(), s.eth(s.a), s.eth(s.b)
    with reverts("LocksRootMismatch"):  # a wrong locked amount for A
        chain.channels.settle_holding_locks(
            s.third.wallet, s.cid, locked_a=249, root_a=locks_root(blob_a), locked_b=40, root_b=locks_root(blob_b)
        )
    receipt = chain.channels.settle_holding_locks(
        s.third.wallet, s.cid, locked_a=250, root_a=locks_root(blob_a), locked_b=40, root_b=locks_root(blob_b)
    )
    # base 930: A gets at least 930 - 250 = 680, B at least 1500 - (930 + 40) = 530; 290 held
    assert (s.eth(s.a) - before_a, s.eth(s.b) - before_b) == (680, 530)
    assert held_before - s.held() == 1210
    (held,) = [e for e in receipt.events if isinstance(e, ev.LocksHeld)]
    assert (held.channel_id, held.base, held.total, held.held) == (s.cid, 930, 1500, 290)
    with reverts("LocksRootMismatch"):  # A's locks without L2
        chain.channels.unlock(s.third.wallet, s.cid, base=930, total=1500, locks_a=l1.packed, locks_b=blob_b)
    with reverts("LocksRootMismatch"):  # a forged base
        chain.channels.unlock(s.third.wallet, s.cid, base=1500, total=1500, locks_a=blob_a, locks_b=blob_b)
    unlocked = chain.channels.unlock(s.third.wallet, s.cid, base=930, total=1500, locks_a=blob_a, locks_b=blob_b)
    assert [(e.to_a, e.to_b) for e in unlocked.events if isinstance(e, ev.LocksUnlocked)] == [(50, 240)]
    # L1 (200) to B, L2 (50) back to A, L3 (40, never registered) back to B
    assert (s.eth(s.a) - before_a, s.eth(s.b) - before_b) == (680 + 50, 530 + 40 + 200)
    assert held_before - s.held() == 1500
    with reverts("NothingToUnlock"):  # a lock is paid at most once
        chain.channels.unlock(s.third.wallet, s.cid, base=930, total=1500, locks_a=blob_a, locks_b=blob_b)


def test_unlocking_the_maximum_160_locks_fits_a_block(chain: Chain) -> None:
    s = opened(chain, deposit_a=10**6, deposit_b=0)
    now = latest_timestamp(chain.w3)
    locks = [Lock(now + PERIOD // 2, 100 + i, os.urandom(32)) for i in range(160)]
    s.ledger.locks[s.a.address] = list(locks)  # A's proof after adding the 160th lock
    last, pid = locks[-1], uuid.uuid4()
    terms = {"amount": str(last.amount), "secretHash": "0x" + last.secret_hash.hex(), "expiry": last.expiry,
             "paymentId": str(pid), "initiator": s.a.address, "target": s.b.address}
    terms_hash = LOCKED_TRANSFER.hash_struct({**terms, "amount": last.amount, "secretHash": last.secret_hash,
                                              "paymentId": pid.bytes})
    proof = s.ledger._sign(s.a.key, s.b.address, last.amount, terms_hash, "lockedTransfer", terms)
    chain.channels.close(s.b.wallet, s.cid, [proof])
    chain.channels.register_secrets(s.b.wallet, [lock.secret for lock in locks[::2]])  # half pay B
    advance_time(chain.w3, PERIOD)
    blob = s.ledger.blob(s.a.address)
    total_locked = sum(lock.amount for lock in locks)
    chain.channels.settle_holding_locks(s.third.wallet, s.cid, locked_a=total_locked, root_a=locks_root(blob))
    before_a, before_b = s.eth(s.a), s.eth(s.b)
    receipt = chain.channels.unlock(s.third.wallet, s.cid, base=10**6, total=10**6, locks_a=blob)
    to_b = sum(lock.amount for lock in locks[::2])
    assert (s.eth(s.a) - before_a, s.eth(s.b) - before_b) == (total_locked - to_b, to_b)
    print(f"unlock of 160 locks: {receipt.gas_used} gas")
    assert receipt.gas_used < 30_000_000


def test_dispute_over_a_chain_with_lock_kinds(chain: Chain) -> None:
    s = opened(chain)
    now = latest_timestamp(chain.w3)
    a, b, ledger = s.a, s.b, s.ledger
    ledger.pay(a.key, b.address, 10)
    _, la = ledger.lock(a.key, b.address, 100, now + PERIOD // 2)
    ledger.pay(b.key, a.address, 5)
    _, lb = ledger.lock(b.key, a.address, 20, now + PERIOD // 2)
    ledger.unlock(a.key, b.address, la)  # A pays la: total 110, no lock left
    _, la2 = ledger.lock(a.key, b.address, 30, now + PERIOD // 2)
    ledger.expire(b.key, a.address, lb)  # B's lock expired off-chain: back to B
    _, lb2 = ledger.lock(b.key, a.address, 7, now + PERIOD // 2)
    ledger.pay(a.key, b.address, 1)  # the last pays B: B disputes
    chain.channels.dispute(b.wallet, s.cid, ledger.txs)
    state = chain.channels.channel(s.cid)
    assert (state.sent_a, state.seq_a, state.sent_b, state.seq_b) == (111, 9, 5, 8)
    hashes = [chain.channels.contract.functions.locksHashOf(s.cid.bytes, i).call() for i in (0, 1)]
    assert all(h != ZERO for h in hashes)
    # a decreasing total anywhere in the chain is refused, whatever the kind
    bad = Ledger(uuid.uuid4(), chain.channels.domain)
    chain.channels.open_channel(a.wallet, bad.channel, b.address, deposit=100, challenge_period=PERIOD)
    bad.pay(a.key, b.address, 50)
    bad.totals[a.address] = 40
    bad.lock(a.key, b.address, 10, now + 60)
    with reverts("BadBuyerTotal"):
        chain.channels.dispute(b.wallet, bad.channel, bad.txs)
    # the channel settles with the locks the chain left pending: la2 (A's) paid, lb2 (B's) returned
    chain.channels.register_secret(b.wallet, la2.secret)
    chain.channels.close(b.wallet, s.cid, [])
    advance_time(chain.w3, PERIOD)
    before_a, before_b = s.eth(a), s.eth(b)
    chain.channels.settle_with_locks(s.third.wallet, s.cid, la2.packed, lb2.packed)
    # base = 1000 + 5 - 111 = 894; minus la2 (30) = 864
    assert (s.eth(a) - before_a, s.eth(b) - before_b) == (864, 1500 - 864)


def test_a_head_with_another_lock_state_is_not_the_recorded_head(chain: Chain) -> None:
    """Equivocation: the buyer signs two transactions at the recorded sequence and total, differing
    only in their locks; the other one cannot stand in for the recorded head."""
    s = opened(chain)
    now = latest_timestamp(chain.w3)
    a, b, ledger = s.a, s.b, s.ledger
    ledger.pay(a.key, b.address, 10)
    recorded, _ = ledger.lock(a.key, b.address, 100, now + 600)
    chain.channels.checkpoint(b.wallet, s.cid, [recorded])
    twin = Ledger(s.cid, chain.channels.domain, txs=[ledger.txs[0]], totals={a.address: 10})
    twin.lock(a.key, b.address, 1, now + 600)
    next_tx = ledger.pay(b.key, a.address, 3)
    with reverts("HeadMismatch"):
        chain.channels.dispute(a.wallet, s.cid, [next_tx], head=twin.txs[-1])
    chain.channels.dispute(a.wallet, s.cid, [next_tx], head=recorded)
    assert chain.channels.channel(s.cid).seq_b == 3

