"""Issue 10: a contested channel settles at least at the honest party's newest co-signed state.

One test (or one parametrized family) per defect, named after it. Every test runs on both
backends (see conftest.py), with fresh parties: operators and payees are contract-wide. Payouts
are triggered by a third party, so a participant's balance changes by exactly its payout.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

import pytest

from domain.protocol import HashPointer, SignedInvoice, sign_cooperative_close
from infrastructure.chain import ETH, ChannelContract, ContractReverted, advance_time
from infrastructure.chain import events as ev
from infrastructure.chain.artifacts import load_artifact
from infrastructure.chain.channels import _transact
from infrastructure.chain.connection import latest_timestamp
from tests.integration.contract.chain import BTC, ETHER, MIN_PERIOD, Chain, Party, party
from tests.integration.contract.payments import PaymentChain

PERIOD = 3600


def reverts(name: str):
    return pytest.raises(ContractReverted, match=rf"reverted with {name}\(")


@dataclass
class Parties:
    a: Party  # the opener: in defect 1 the honest victim
    b: Party
    node: Party  # a Parsec node: operator (watchtower) of whoever names it
    third: Party  # settles, withdraws: neither participant


def fresh(chain: Chain) -> Parties:
    tag = uuid.uuid4().hex[:8]
    a, b, node, third = (party(chain.w3, f"parsec-issue10/{tag}/{n}") for n in ("a", "b", "node", "third"))
    for p in (a, b):
        chain.token.mint(chain.deployer.wallet, p.address, 10 * BTC)
        chain.token.approve(p.wallet, chain.channels.address, 2**256 - 1)
    return Parties(a, b, node, third)


def balance(chain: Chain, currency: str, address: str) -> int:
    return chain.w3.eth.get_balance(address) if currency == "ETH" else chain.token.balance_of(address)


def open_channel(
    chain: Chain, p: Parties, deposit_a: int, deposit_b: int, currency: str = "ETH"
) -> tuple[UUID, PaymentChain]:
    cid = uuid.uuid4()
    token = ETH if currency == "ETH" else chain.token.address
    chain.channels.open_channel(p.a.wallet, cid, p.b.address, deposit=deposit_a, challenge_period=PERIOD, token=token)
    if deposit_b:
        chain.channels.deposit(p.b.wallet, cid, deposit_b)
    return cid, PaymentChain(cid, chain.channels.domain, currency=currency)


def settle(chain: Chain, p: Parties, cid: UUID, currency: str) -> tuple[int, int]:
    """Wait out the challenge period, settle (by a third party); return what A and B received."""
    advance_time(chain.w3, PERIOD)
    before = balance(chain, currency, p.a.address), balance(chain, currency, p.b.address)
    chain.channels.settle(p.third.wallet, cid)
    return (
        balance(chain, currency, p.a.address) - before[0],
        balance(chain, currency, p.b.address) - before[1],
    )


# ---------------------------------------------------------------- defect 1
def defect1_history(chain: Chain, p: Parties, *, order: str, checkpoint: bool, currency: str):
    """dA=100, dB=10. A pays B 30, B pays A 8 (checkpointed by A, or not), then the later payments:

    ``before``: A pays B 20, then B pays A 45 (B's total 53 is solvent only with A's 50);
    ``after``: B pays A 25 (B's total 33 is solvent only with A's unrecorded 30), then A pays B 20.
    Returns (cid, payments, B's latest proof, A's latest proof, A's and B's true balances).
    """
    cid, payments = open_channel(chain, p, 100, 10, currency)
    payments.pay(p.a.key, p.b.address, 30)
    first_b = payments.pay(p.b.key, p.a.address, 8)
    if checkpoint:  # A's watchtower records what pays A; B never records A's payments
        chain.channels.checkpoint(p.a.wallet, cid, [first_b])
    if order == "before":
        payments.pay(p.a.key, p.b.address, 20)
        payments.pay(p.b.key, p.a.address, 45)
    else:
        payments.pay(p.b.key, p.a.address, 25)
        payments.pay(p.a.key, p.b.address, 20)
    sent_a, sent_b = payments.totals[p.a.address], payments.totals[p.b.address]
    true_a, true_b = 100 + sent_b - sent_a, 10 + sent_a - sent_b
    assert sent_b > 10  # B's newest total exceeds B's deposit + A's recorded total (0): was Overdraft
    return cid, payments, payments.latest_of(p.b.address), payments.latest_of(p.a.address), (true_a, true_b)


CASES = [
    pytest.param(order, checkpoint, currency, id=f"{order}-{'checkpoint' if checkpoint else 'nocheckpoint'}-{currency}")
    for order in ("before", "after")
    for checkpoint in (True, False)
    for currency in ("ETH", "BTC")
]


@pytest.mark.parametrize("answerer", ["a", "operator"])
@pytest.mark.parametrize(("order", "checkpoint", "currency"), CASES)
def test_defect1_watchtower_answer_is_never_refused_for_solvency_and_pays_at_least_the_true_balance(
    chain: Chain, order: str, checkpoint: bool, currency: str, answerer: str
) -> None:
    p = fresh(chain)
    chain.channels.set_operator(p.a.wallet, p.node.address)
    cid, _, latest_b, _, (true_a, true_b) = defect1_history(
        chain, p, order=order, checkpoint=checkpoint, currency=currency
    )
    chain.channels.close(p.b.wallet, cid, [])  # B closes with a stale state (hiding its payments)
    who = p.a if answerer == "a" else p.node
    updated = chain.channels.update(who.wallet, cid, [latest_b])  # was Overdraft(...)
    assert isinstance(updated.events[0], ev.StateUpdated) and updated.events[0].buyer_total == latest_b.buyer_total
    got_a, got_b = settle(chain, p, cid, currency)
    assert got_a >= true_a and got_b <= true_b
    assert got_a + got_b == 110
    assert got_a == min(100 + latest_b.buyer_total, 110)  # A's own payments hidden: only B loses


@pytest.mark.parametrize(("order", "checkpoint", "currency"), CASES)
def test_defect1_both_newest_proofs_submitted_by_the_operator_of_both_pay_exactly_the_newest_state(
    chain: Chain, order: str, checkpoint: bool, currency: str
) -> None:
    p = fresh(chain)
    chain.channels.set_operator(p.a.wallet, p.node.address)
    chain.channels.set_operator(p.b.wallet, p.node.address)
    cid, _, latest_b, latest_a, (true_a, true_b) = defect1_history(
        chain, p, order=order, checkpoint=checkpoint, currency=currency
    )
    chain.channels.close(p.b.wallet, cid, [])
    # the node answers with both sides' newest proofs, in either order, in one update
    proofs = [latest_b, latest_a] if order == "before" else [latest_a, latest_b]
    chain.channels.update(p.node.wallet, cid, proofs)
    assert settle(chain, p, cid, currency) == (true_a, true_b)


def test_defect1_the_honest_party_alone_reaches_the_newest_state_with_a_dispute_from_the_head(chain: Chain) -> None:
    p = fresh(chain)
    cid, payments, latest_b, _, (true_a, true_b) = defect1_history(
        chain, p, order="before", checkpoint=True, currency="ETH"
    )
    chain.channels.close(p.b.wallet, cid, [])
    # the recorded head is B's payment at 2; the chain since then ends with B's payment to A
    head = payments.payments[1]
    chain.channels.dispute(p.a.wallet, cid, payments.payments[2:], head=head)
    state = chain.channels.channel(cid)
    assert (state.sent_a, state.sent_b) == (payments.totals[p.a.address], latest_b.buyer_total)
    assert settle(chain, p, cid, "ETH") == (true_a, true_b)


# ---------------------------------------------------------------- defect 4
@pytest.mark.parametrize("answer", ["close", "update", "dispute"])
def test_defect4_the_closer_can_record_the_counterpartys_newer_proof_and_gets_its_balance(
    chain: Chain, answer: str
) -> None:
    """dA=100, dB=10: Bob pays Alice 12 (over his deposit, solvent with her later payment), Alice
    pays Bob 7, Bob pays Alice 1: Alice's balance is 100 + 13 - 7 = 106, Bob's 4."""
    p = fresh(chain)
    alice, bob = p.a, p.b
    cid, payments = open_channel(chain, p, 100, 10)
    payments.pay(bob.key, alice.address, 12)
    alices = payments.pay(alice.key, bob.address, 7)
    bobs_latest = payments.pay(bob.key, alice.address, 1)
    if answer == "close":  # her close carrying Bob's latest proof (was Overdraft(110,0,13))
        chain.channels.close(alice.wallet, cid, [bobs_latest])
        chain.channels.update(bob.wallet, cid, [alices])  # Bob records her later payment
    else:
        chain.channels.close(alice.wallet, cid, [])
        chain.channels.update(bob.wallet, cid, [alices])
        if answer == "update":  # was NotCounterparty
            chain.channels.update(alice.wallet, cid, [bobs_latest])
        else:  # from the recorded head (her payment at 2); was BadBuyerTotal: Bob's recorded total is 0
            chain.channels.dispute(alice.wallet, cid, [bobs_latest], head=alices)
    state = chain.channels.channel(cid)
    assert (state.sent_a, state.sent_b) == (7, 13)
    assert settle(chain, p, cid, "ETH") == (106, 4)


# ---------------------------------------------------------------- defect 5
def _co_sign(chain: Chain, p: Parties, cid: UUID, bal_a: int, bal_b: int, sequence: int, expiry: int) -> dict:
    d = chain.channels.domain
    return dict(
        balance_a=bal_a,
        balance_b=bal_b,
        sequence=sequence,
        expiry=expiry,
        signature_a=sign_cooperative_close(p.a.key, d, cid, bal_a, bal_b, sequence, expiry),
        signature_b=sign_cooperative_close(p.b.key, d, cid, bal_a, bal_b, sequence, expiry),
    )


def test_defect5_a_cooperative_close_older_than_the_recorded_head_is_refused(chain: Chain) -> None:
    p = fresh(chain)
    cid, payments = open_channel(chain, p, 100, 100)
    payments.pay(p.a.key, p.b.address, 10)
    expiry = latest_timestamp(chain.w3) + PERIOD
    at_genesis = _co_sign(chain, p, cid, 100, 100, 0, expiry)
    at_one = _co_sign(chain, p, cid, 90, 110, 1, expiry)
    later = payments.pay(p.a.key, p.b.address, 5)
    chain.channels.checkpoint(p.b.wallet, cid, [later])  # head 2
    with reverts("StaleClose"):
        chain.channels.cooperative_close(p.third.wallet, cid, **at_genesis)
    with reverts("StaleClose"):
        chain.channels.cooperative_close(p.third.wallet, cid, **at_one)
    at_head = _co_sign(chain, p, cid, 85, 115, 2, expiry)
    before_b = chain.w3.eth.get_balance(p.b.address)
    chain.channels.cooperative_close(p.third.wallet, cid, **at_head)
    assert chain.w3.eth.get_balance(p.b.address) - before_b == 115


def test_defect5_an_expired_cooperative_close_is_refused(chain: Chain) -> None:
    p = fresh(chain)
    cid, _ = open_channel(chain, p, 100, 0)
    now = latest_timestamp(chain.w3)
    expired = _co_sign(chain, p, cid, 100, 0, 0, now - 1)
    with reverts("CloseExpired"):
        chain.channels.cooperative_close(p.third.wallet, cid, **expired)
    soon = _co_sign(chain, p, cid, 100, 0, 0, now + 120)
    advance_time(chain.w3, 121)
    with reverts("CloseExpired"):
        chain.channels.cooperative_close(p.third.wallet, cid, **soon)
    fine = _co_sign(chain, p, cid, 100, 0, 0, latest_timestamp(chain.w3) + 120)
    chain.channels.cooperative_close(p.third.wallet, cid, **fine)


def test_defect5_a_cooperative_close_after_the_challenge_period_is_refused(chain: Chain) -> None:
    p = fresh(chain)
    cid, _ = open_channel(chain, p, 100, 0)
    far = latest_timestamp(chain.w3) + 100 * PERIOD
    close = _co_sign(chain, p, cid, 100, 0, 0, far)
    chain.channels.close(p.b.wallet, cid, [])
    advance_time(chain.w3, PERIOD)
    with reverts("ChallengePeriodOver"):  # was accepted: a stale co-signed state beat the settlement
        chain.channels.cooperative_close(p.third.wallet, cid, **close)
    chain.channels.settle(p.third.wallet, cid)
    with reverts("AlreadySettled"):
        chain.channels.cooperative_close(p.third.wallet, cid, **close)
    # within the challenge period it is still a way out
    cid, _ = open_channel(chain, p, 100, 0)
    close = _co_sign(chain, p, cid, 60, 40, 0, far)
    chain.channels.close(p.b.wallet, cid, [])
    receipt = chain.channels.cooperative_close(p.third.wallet, cid, **close)
    assert any(isinstance(e, ev.CooperativelyClosed) and e.balance_b == 40 for e in receipt.events)


# ---------------------------------------------------------------- defect 6
def test_defect6_a_dispute_never_wraps_the_sequence_and_the_head_never_goes_back(chain: Chain) -> None:
    p = fresh(chain)
    alice, bob = p.a, p.b
    cid, _ = open_channel(chain, p, 100, 100)
    top = 2**64 - 1
    start = HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\x11" * 32)
    payments = PaymentChain(cid, chain.channels.domain, first_sequence=top - 1, start=start)
    below = payments.pay(bob.key, alice.address, 5)  # sequence 2**64-2
    chain.channels.checkpoint(alice.wallet, cid, [below])
    last = payments.pay(bob.key, alice.address, 5)  # sequence 2**64-1: a dispute may reach the top
    chain.channels.dispute(alice.wallet, cid, [last], head=below)
    assert chain.channels.channel(cid).head_sequence == top
    # the next one would be sequence 0 (wrapped): refused, whoever pays
    wrapped_b, _ = payments.raw(bob.key, alice.address, 5, sequence=0)
    with reverts("SequenceOverflow"):  # was accepted, and Bob's head went back to 0
        chain.channels.dispute(alice.wallet, cid, [wrapped_b], head=last)
    wrapped_a, _ = payments.raw(alice.key, bob.address, 5, sequence=0)
    with reverts("SequenceOverflow"):
        chain.channels.dispute(bob.wallet, cid, [wrapped_a], head=last)
    with reverts("StaleProof"):  # a per-buyer proof only replaces one with a higher sequence
        chain.channels.checkpoint(alice.wallet, cid, [wrapped_b])
    state = chain.channels.channel(cid)
    assert (state.seq_b, state.sent_b, state.head_sequence) == (top, 10, top)


# ---------------------------------------------------------------- defect 7
def _deploy_receiver(chain: Chain, deployer: Party):
    artifact = load_artifact("Reentrant")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    ctor = factory.constructor(chain.channels.address)
    address = _transact(chain.w3, deployer.wallet, ctor, 0, None, "deploy")["contractAddress"]
    return chain.w3.eth.contract(address=address, abi=artifact.abi)


def test_defect7_a_gas_hungry_contract_receiver_is_paid_through_withdraw_called_by_a_third_party(
    chain: Chain,
) -> None:
    p = fresh(chain)
    wallet_contract = _deploy_receiver(chain, p.third)  # a "multisig" needing > 50k gas to accept ETH
    _transact(chain.w3, p.third.wallet, wallet_contract.functions.arm(3, b""), 0, None, "arm")
    channels = chain.channels
    cid = uuid.uuid4()
    open_call = channels.contract.encode_abi("open", [cid.bytes, p.b.address, ETH, PERIOD, ETHER])
    _transact(chain.w3, p.third.wallet, wallet_contract.functions.execute(open_call), ETHER, channels._decoder, "open")
    channels.close(p.b.wallet, cid, [])
    advance_time(chain.w3, PERIOD)
    receipt = channels.settle(p.third.wallet, cid)
    owner = wallet_contract.address
    assert any(isinstance(e, ev.PayoutDeferred) and (e.owner, e.amount) == (owner, ETHER) for e in receipt.events)
    assert channels.withdrawable(owner) == ETHER
    # the wallet never calls anything: a third party sends the credit on, with all the gas it needs
    withdrawn = channels.withdraw(p.third.wallet, owner)
    assert wallet_contract.functions.received().call() == ETHER
    assert chain.w3.eth.get_balance(owner) == ETHER
    assert channels.withdrawable(owner) == 0
    assert withdrawn.events[0] == ev.Withdrawn(
        withdrawn.block_number, withdrawn.tx_hash, withdrawn.events[0].log_index, owner, owner, ETHER
    )


@pytest.mark.parametrize("currency", ["ETH", "BTC"])
def test_defect7_set_payee_redirects_every_payout(chain: Chain, currency: str) -> None:
    p = fresh(chain)
    payee = party(chain.w3, f"parsec-issue10/{uuid.uuid4().hex[:8]}/payee")
    receipt = chain.channels.set_payee(p.a.wallet, payee.address)
    assert receipt.events[0] == ev.PayeeSet(
        receipt.block_number, receipt.tx_hash, receipt.events[0].log_index, p.a.address, payee.address
    )
    assert chain.channels.payee_of(p.a.address) == payee.address
    cid, payments = open_channel(chain, p, 100, 50, currency)
    payments.pay(p.b.key, p.a.address, 20)
    chain.channels.close(p.a.wallet, cid, [payments.latest_of(p.b.address)])
    before_payee, before_a = balance(chain, currency, payee.address), balance(chain, currency, p.a.address)
    got_a, got_b = settle(chain, p, cid, currency)
    assert balance(chain, currency, payee.address) - before_payee == 120
    assert got_b == 30
    assert balance(chain, currency, p.a.address) == before_a
    # a refused ETH payout waits as the participant's credit; withdraw sends it to the payee
    if currency == "ETH":
        refusing = _deploy_receiver(chain, p.third)
        _transact(chain.w3, p.third.wallet, refusing.functions.arm(2, b""), 0, None, "arm")
        chain.channels.set_payee(p.a.wallet, refusing.address)
        cid, _ = open_channel(chain, p, 100, 0)
        chain.channels.close(p.b.wallet, cid, [])
        settle(chain, p, cid, "ETH")
        assert chain.channels.withdrawable(p.a.address) == 100
        chain.channels.set_payee(p.a.wallet, ETH)  # back to itself
        before_a = chain.w3.eth.get_balance(p.a.address)
        chain.channels.withdraw(p.third.wallet, p.a.address)
        assert chain.w3.eth.get_balance(p.a.address) - before_a == 100


def test_defect7_the_operator_cannot_set_its_participants_payee(chain: Chain) -> None:
    p = fresh(chain)
    chain.channels.set_operator(p.a.wallet, p.node.address)
    chain.channels.set_payee(p.node.wallet, p.node.address)  # sets the node's own payee, nobody else's
    assert chain.channels.payee_of(p.a.address) == ETH
    cid, _ = open_channel(chain, p, 100, 0)
    chain.channels.close(p.node.wallet, cid, [])  # the operator may close for A...
    assert settle(chain, p, cid, "ETH") == (100, 0)  # ...but A's money still goes to A
    with reverts("InvalidPayee"):
        chain.channels.set_payee(p.a.wallet, chain.channels.address)
    with reverts("InvalidPayee"):
        chain.channels.set_payee(p.a.wallet, "0x0000000000000000000000000000000000000004")


def test_defect7_counterparties_that_can_never_withdraw_are_refused(chain: Chain) -> None:
    p = fresh(chain)
    for b in (
        chain.channels.address,  # the channel contract itself
        chain.token.address,  # the BTC token
        "0x0000000000000000000000000000000000000000",
        "0x0000000000000000000000000000000000000001",  # ecrecover
        "0x0000000000000000000000000000000000000100",
        "0x000000000000000000000000000000000000fFFF",  # the top of the reserved range
        p.a.address,  # itself
    ):
        with reverts("InvalidCounterparty"):
            chain.channels.open_channel(p.a.wallet, uuid.uuid4(), b, deposit=1, challenge_period=PERIOD)


def test_defect7_a_challenge_period_below_the_minimum_is_refused(chain: Chain) -> None:
    p = fresh(chain)
    assert chain.channels.min_challenge_period == MIN_PERIOD
    for period in (0, 1, MIN_PERIOD - 1):
        with reverts("ChallengePeriodTooShort"):
            chain.channels.open_channel(p.a.wallet, uuid.uuid4(), p.b.address, deposit=1, challenge_period=period)
    chain.channels.open_channel(p.a.wallet, uuid.uuid4(), p.b.address, deposit=1, challenge_period=MIN_PERIOD)
    with reverts("InvalidChallengePeriod"):  # a contract without a minimum cannot be deployed
        ChannelContract.deploy(chain.w3, chain.deployer.wallet, chain.token.address, min_challenge_period=0)
    default = ChannelContract.deploy(chain.w3, chain.deployer.wallet, chain.token.address)
    assert default.min_challenge_period == 3600


# ---------------------------------------------------------------- chunked disputes
DIRECTIONS = "ABBAAABABBBAABABAAABBABBAAABA"  # who pays, payment by payment; ends with A paying Bob


def _chain_of(chain: Chain, p: Parties) -> tuple[UUID, list[SignedInvoice]]:
    cid, payments = open_channel(chain, p, ETHER, ETHER)
    for i, who in enumerate(DIRECTIONS):
        if who == "A":
            payments.pay(p.a.key, p.b.address, 10 + i)
        else:
            payments.pay(p.b.key, p.a.address, 3 + i)
    return cid, payments.payments


def _recorded(chain: Chain, cid: UUID) -> tuple[int, int, int, int]:
    s = chain.channels.channel(cid)
    return (s.seq_a, s.sent_a, s.seq_b, s.sent_b)


def test_a_dispute_split_into_consecutive_chunks_records_the_same_state_as_one_dispute(chain: Chain) -> None:
    p = fresh(chain)
    whole_cid, whole = _chain_of(chain, p)
    chain.channels.dispute(p.b.wallet, whole_cid, whole)
    expected = _recorded(chain, whole_cid)

    # Bob alone: each chunk must end with a payment to Bob (one of Alice's), and continues from
    # the head the previous chunk recorded
    cid, pays = _chain_of(chain, p)
    ends = [i + 1 for i, who in enumerate(DIRECTIONS) if who == "A"][::3] + [len(pays)]
    start, head = 0, None
    for end in sorted(set(ends)):
        if end <= start:
            continue
        chain.channels.dispute(p.b.wallet, cid, pays[start:end], head=head)
        start, head = end, pays[end - 1]
    assert _recorded(chain, cid) == expected

    # the node operating for both may cut anywhere (every 4 payments); the closer may go on
    chain.channels.set_operator(p.a.wallet, p.node.address)
    chain.channels.set_operator(p.b.wallet, p.node.address)
    cid, pays = _chain_of(chain, p)
    chain.channels.dispute(p.node.wallet, cid, pays[:4])
    chain.channels.close(p.a.wallet, cid, [])
    for start in range(4, len(pays), 4):
        chain.channels.dispute(p.node.wallet, cid, pays[start : start + 4], head=pays[start - 1])
    assert _recorded(chain, cid) == expected
    got = settle(chain, p, cid, "ETH")
    sent_a = sum(10 + i for i, w in enumerate(DIRECTIONS) if w == "A")
    sent_b = sum(3 + i for i, w in enumerate(DIRECTIONS) if w == "B")
    assert got == (ETHER + sent_b - sent_a, ETHER + sent_a - sent_b)

