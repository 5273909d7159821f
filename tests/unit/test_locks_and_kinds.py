"""Hashed timelocks in the signed state, and the catalogue of transaction kinds (issue 14)."""

from __future__ import annotations

import uuid

import pytest
from eth_abi.packed import encode_packed

from domain import kinds
from domain.channel import Channel, PaymentOutcome
from domain.crypto import keccak
from domain.errors import (
    CumulativeTotalMismatch,
    LockAlreadyPending,
    LockAmountMismatch,
    LockedAmountMismatch,
    LockLifetimeTooLong,
    LockNotExpired,
    LockNotFound,
    LocksRootMismatch,
    MalformedMessage,
    Overspend,
    TooManyLocks,
    UnknownTransactionKind,
    WrongSecret,
)
from domain.kinds import LOCK_EXPIRY_MARGIN
from domain.locks import MAX_PENDING_LOCKS, NO_LOCKS_ROOT, Lock, locks_root, secret_hash, unpack_locks
from domain.protocol import SignedInvoice
from domain.reorder import ReorderWindow
from tests.builders import ALICE, BOB, PARAMS, T0, addr, open_channel

S1, S2 = b"\x11" * 32, b"\x22" * 32
H1 = secret_hash(S1)


def replay(events) -> Channel:
    aggregate = None
    for e in events:
        aggregate = e.mutate(aggregate)
    return aggregate


def test_the_packed_lock_and_root_are_the_contracts():
    a = Lock(amount=10**18, secret_hash=H1, expiry=1_700_000_600)
    b = Lock(amount=5, secret_hash=secret_hash(S2), expiry=1_700_000_300)
    expected = encode_packed(["uint64", "uint128", "bytes32"], [a.expiry, a.amount, a.secret_hash])
    assert a.packed() == expected and len(expected) == 56
    assert locks_root([a, b]) == keccak(a.packed() + b.packed())
    assert locks_root([a, b]) != locks_root([b, a])  # the order of adding counts
    assert locks_root([]) == NO_LOCKS_ROOT
    assert unpack_locks(a.packed() + b.packed()) == [a, b]
    assert H1.hex() == "02d449a31fbb267c8f352e9968a79e3e5fc95c1bbeaa502fd6454ebde5a4bedc"  # sha256, not keccak


def test_a_locked_transfer_holds_the_amount_and_an_unlock_pays_it():
    ch, led = open_channel(1000, 500)
    a, b = addr(ALICE), addr(BOB)
    assert ch.accept_payment(led.lock(ALICE, 300, S1, T0 + 600), T0) is PaymentOutcome.ACCEPTED
    assert (ch.balance_of(a), ch.locked_of(a), ch.balance_of(b)) == (700, 300, 500)
    assert ch.pending_locks(a) == [Lock(300, H1, T0 + 600)]
    ch.accept_payment(led.pay(ALICE, 100), T0)  # a payment while a lock is pending carries the lock state
    assert led.last.locked_amount == 300 and led.last.locks_root == locks_root(ch.pending_locks(a))
    ch.accept_payment(led.unlock(ALICE, S1), T0 + 10)
    assert (ch.balance_of(a), ch.locked_of(a), ch.balance_of(b), ch.sent[a]) == (600, 0, 900, 400)
    events = ch.collect_events()
    accepted = [e for e in events if type(e).__name__ == "PaymentAccepted"]
    assert [(e.kind, e.transferred, e.locked) for e in accepted] == [
        ("lockedTransfer", 0, [300, 0]), ("payment", 100, [300, 0]), ("unlock", 300, [0, 0])]
    assert replay(events).__dict__ == ch.__dict__


def test_a_lock_expires_only_after_its_expiry_and_the_margin():
    ch, led = open_channel(1000, 0)
    ch.accept_payment(led.lock(ALICE, 300, S1, T0 + 600), T0)
    with pytest.raises(LockNotExpired):
        ch.accept_payment(led.expire(ALICE, H1, advance=False), T0 + 600 + LOCK_EXPIRY_MARGIN)
    ch.accept_payment(led.expire(ALICE, H1), T0 + 601 + LOCK_EXPIRY_MARGIN)
    assert (ch.balance_of(addr(ALICE)), ch.locked_of(addr(ALICE)), ch.balance_of(addr(BOB))) == (1000, 0, 0)


@pytest.mark.parametrize("case, error", [
    ("beyond spendable", Overspend),
    ("longer than the challenge period", LockLifetimeTooLong),
    ("already expired", LockLifetimeTooLong),
    ("same secret twice", LockAlreadyPending),
    ("wrong locked amount", LockedAmountMismatch),
    ("wrong root", LocksRootMismatch),
    ("total moved", CumulativeTotalMismatch),
    ("price is not the amount", LockAmountMismatch),
])
def test_locked_transfers_the_channel_refuses(case, error):
    ch, led = open_channel(1000, 0)
    ch.accept_payment(led.lock(ALICE, 100, S2, T0 + 60), T0)
    overrides = {
        "beyond spendable": dict(amount=901),
        "longer than the challenge period": dict(expiry=T0 + PARAMS.challenge_period + 1),
        "already expired": dict(expiry=T0),
        "same secret twice": dict(secret=S2),
        "wrong locked amount": dict(locked_amount=150),
        "wrong root": dict(locks_root=b"\x01" * 32),
        "total moved": dict(buyer_total=5),
    }.get(case, {})
    args = dict(amount=200, secret=S1, expiry=T0 + 600)
    args.update({k: overrides.pop(k) for k in list(overrides) if k in args})
    if case == "price is not the amount":
        tx = led.lock(ALICE, 200, S1, T0 + 600, advance=False, terms={
            **led.lock(ALICE, 200, S1, T0 + 600, advance=False).terms, "amount": "199"})
    else:
        tx = led.lock(ALICE, args["amount"], args["secret"], args["expiry"], advance=False, **overrides)
    before = dict(ch.__dict__)
    with pytest.raises(error):
        ch.accept_payment(tx, T0)
    assert ch.__dict__ == before  # a refusal changes nothing


def test_unlocks_and_expiries_the_channel_refuses():
    ch, led = open_channel(1000, 0)
    ch.accept_payment(led.lock(ALICE, 100, S1, T0 + 60), T0)
    wrong = led.unlock(ALICE, S1, advance=False, terms={"secretHash": "0x" + H1.hex(), "secret": "0x" + S2.hex()})
    with pytest.raises(WrongSecret):
        ch.accept_payment(wrong, T0)
    unknown = led.unlock(ALICE, S1, advance=False, terms={"secretHash": "0x" + secret_hash(S2).hex(),
                                                          "secret": "0x" + S2.hex()})
    with pytest.raises(LockNotFound):
        ch.accept_payment(unknown, T0)
    with pytest.raises(CumulativeTotalMismatch):  # an unlock must move the lock into the total
        ch.accept_payment(led.unlock(ALICE, S1, advance=False, buyer_total=0), T0)


def test_the_pending_lock_cap():
    ch, led = open_channel(10**6, 0)
    for i in range(MAX_PENDING_LOCKS):
        ch.accept_payment(led.lock(ALICE, 1, i.to_bytes(32, "big"), T0 + 600), T0)
    with pytest.raises(TooManyLocks):
        ch.accept_payment(led.lock(ALICE, 1, b"\xff" * 32, T0 + 600, advance=False), T0)
    assert len(ch.pending_locks(addr(ALICE))) == MAX_PENDING_LOCKS


def test_kinds_and_terms_are_checked_when_a_message_is_parsed():
    ch, led = open_channel(1000, 0)
    doc = led.lock(ALICE, 100, S1, T0 + 60, advance=False).to_dict()
    assert SignedInvoice.parse(doc).terms_hash != b"\0" * 32
    with pytest.raises(UnknownTransactionKind, match="no transaction kind 'gift'"):
        SignedInvoice.parse({**doc, "kind": "gift"})
    with pytest.raises(MalformedMessage, match="secretHash"):
        SignedInvoice.parse({**doc, "terms": {**doc["terms"], "secretHash": "0x12"}})
    with pytest.raises(MalformedMessage):
        SignedInvoice.parse({**doc, "terms": {**doc["terms"], "extra": 1}})
    with pytest.raises(MalformedMessage, match="carries no terms"):
        SignedInvoice.parse({**led.pay(ALICE, 5, advance=False).to_dict(), "terms": {"a": 1}})
    altered = {**doc, "terms": {**doc["terms"], "expiry": doc["terms"]["expiry"] + 1}}
    with pytest.raises(Exception, match="was not made by the buyer's key"):  # the terms are signed
        SignedInvoice.parse(altered)
    assert SignedInvoice.from_json(SignedInvoice.parse(doc).to_json()).to_dict() == doc


def test_the_reorder_window_and_dedupe_cover_every_kind():
    ch, led = open_channel(1000, 0)
    first = led.lock(ALICE, 100, S1, T0 + 60)
    second = led.unlock(ALICE, S1)
    window = ReorderWindow(size=8)
    ready, refused = window.offer(second, ch.sequence, T0)
    assert (ready, refused) == ([], [])
    ready, _ = window.offer(first, ch.sequence, T0)
    for tx in ready:
        ch.accept_payment(tx, T0)
    for tx in window.release(ch.id, ch.sequence):
        ch.accept_payment(tx, T0)
    assert ch.sequence == 2 and ch.balance_of(addr(BOB)) == 100
    assert ch.accept_payment(first, T0) is PaymentOutcome.DUPLICATE


def test_a_catalogue_refuses_a_second_kind_of_the_same_name_or_terms():
    class Again(kinds.TransactionKind):
        name = "unlock"

    class Clone(kinds.TransactionKind):
        name = "clone"
        terms_model = kinds.UnlockTerms
        terms_type = kinds.Unlock.terms_type

    with pytest.raises(ValueError, match="already registered"):
        kinds.register(Again())
    with pytest.raises(ValueError, match="terms type"):
        kinds.register(Clone())
    assert kinds.register(kinds.Unlock()) is kinds.get("unlock")
    assert set(kinds.BUILT_IN) <= set(kinds.kinds())


def test_old_payment_events_replay_without_the_new_fields():
    ch, led = open_channel(1000, 0)
    ch.accept_payment(led.pay(ALICE, 10), T0)
    events = ch.collect_events()
    for e in events:
        for name in ("kind", "transferred", "locked", "locks"):
            e.__dict__.pop(name, None)
    rebuilt = replay(events)
    assert rebuilt.balance_of(addr(BOB)) == 10 and rebuilt.locked_of(addr(ALICE)) == 0
    assert uuid.UUID(str(rebuilt.id)) == ch.id


def test_the_worked_example_in_docs_protocol_md():
    from pathlib import Path

    from domain.crypto import PrivateKey
    from domain.protocol import GENESIS, Invoice, sign_invoice
    from tests.builders import DOMAIN

    alice, bob = PrivateKey.from_seed("alice"), PrivateKey.from_seed("bob")
    lock = Lock(amount=250, secret_hash=secret_hash(b"\x11" * 32), expiry=1_700_000_600)
    terms = {"amount": "250", "secretHash": "0x" + lock.secret_hash.hex(), "expiry": lock.expiry,
             "paymentId": str(uuid.UUID(int=1)), "initiator": addr(alice), "target": addr(bob)}
    tx = sign_invoice(Invoice(invoice_address=addr(bob), price=250, currency="ETH"), key=alice,
                      channel=uuid.UUID(int=42), invoice_id=uuid.UUID(int=2), sequence=1, previous=GENESIS,
                      buyer_total=0, domain=DOMAIN, locked_amount=250, locks_root=locks_root([lock]),
                      kind="lockedTransfer", terms=terms)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for line in (f"packed lock  {lock.packed().hex()}", f"locksRoot    0x{locks_root([lock]).hex()}",
                 f"terms        0x{tx.terms_hash.hex()}", f"digest       0x{tx.transaction_hash.hex()}"):
        assert line in doc
