"""The channel contract verifies exactly the signatures domain/ makes, and refuses the rest.

Every test runs on both backends (see conftest.py). Settlement is triggered by carol, a third
party, so that alice's and bob's ETH balances change by exactly their payouts (no gas).
"""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest
from eth_utils import function_signature_to_4byte_selector

from domain.protocol import SigningDomain, sign_cooperative_close
from infrastructure.chain import (
    ETH,
    ChannelContract,
    ContractReverted,
    OnChainStatus,
    advance_time,
)
from infrastructure.chain import events as ev
from infrastructure.chain.artifacts import load_artifact
from infrastructure.chain.connection import latest_timestamp
from tests.integration.contract.chain import BTC, ETHER, Chain
from tests.integration.contract.payments import PaymentChain, high_s, with_signature

PERIOD = 3600


def open_eth(chain: Chain, deposit_a: int = ETHER, deposit_b: int = 0) -> tuple[UUID, PaymentChain]:
    cid = uuid.uuid4()
    chain.channels.open_channel(
        chain.alice.wallet, cid, chain.bob.address, deposit=deposit_a, challenge_period=PERIOD
    )
    if deposit_b:
        chain.channels.deposit(chain.bob.wallet, cid, deposit_b)
    return cid, PaymentChain(cid, chain.channels.domain)


def eth_balance(chain: Chain, address: str) -> int:
    return chain.w3.eth.get_balance(address)


def reverts(name: str):
    return pytest.raises(ContractReverted, match=rf"reverted with {name}\(")


# ---------------------------------------------------------------- happy paths
def test_open_and_deposit_record_state_and_events(chain: Chain) -> None:
    cid = uuid.uuid4()
    opened = chain.channels.open_channel(
        chain.alice.wallet, cid, chain.bob.address, deposit=2 * ETHER, challenge_period=PERIOD
    )
    deposited = chain.channels.deposit(chain.bob.wallet, cid, ETHER)

    state = chain.channels.channel(cid)
    assert (state.status, state.deposit_a, state.deposit_b) == (OnChainStatus.OPEN, 2 * ETHER, ETHER)
    (event,) = opened.events
    assert isinstance(event, ev.ChannelOpened)
    assert (event.channel_id, event.a, event.b, event.deposit) == (
        cid,
        chain.alice.address,
        chain.bob.address,
        2 * ETHER,
    )
    assert deposited.events[0] == ev.Deposited(
        deposited.block_number, deposited.tx_hash, 0, cid, chain.bob.address, ETHER, ETHER
    )
    with reverts("ChannelExists"):
        chain.channels.open_channel(
            chain.alice.wallet, cid, chain.bob.address, deposit=1, challenge_period=PERIOD
        )
    with reverts("NotParticipant"):
        chain.channels.deposit(chain.carol.wallet, cid, 1)

    # a fresh proxy (a restarted node) finds the parameters and the history from events alone
    watcher = ChannelContract(chain.w3, chain.channels.address)
    assert watcher.params(cid).as_tuple() == (chain.alice.address, chain.bob.address, ETH, PERIOD)
    history = [e for e in watcher.events(opened.block_number) if getattr(e, "channel_id", None) == cid]
    assert history == [opened.events[0], deposited.events[0]]


def test_checkpoint_records_each_participants_latest_signed_payment(chain: Chain) -> None:
    cid, payments = open_eth(chain, ETHER, ETHER)
    a, b = chain.alice, chain.bob
    payments.pay(a.key, b.address, 100)
    payments.pay(b.key, a.address, 30)
    payments.pay(a.key, b.address, 50)

    # each side submits what the other signed (the proofs that pay it)
    chain.channels.checkpoint(b.wallet, cid, [payments.latest_of(a.address)])
    receipt = chain.channels.checkpoint(a.wallet, cid, [payments.latest_of(b.address)])

    state = chain.channels.channel(cid)
    assert (state.seq_a, state.sent_a, state.seq_b, state.sent_b) == (3, 150, 2, 30)
    assert state.head_sequence == 3
    assert (state.balance_a, state.balance_b) == (ETHER - 120, ETHER + 120)
    assert receipt.events[0] == ev.Checkpointed(
        receipt.block_number, receipt.tx_hash, 0, cid, b.address, 2, 30
    )  # bob's proof

    with reverts("StaleProof"):  # only a newer sequence replaces a recorded proof
        chain.channels.checkpoint(b.wallet, cid, [payments.payments[0]])
    with reverts("NotPayee"):  # a buyer never submits its own proof
        chain.channels.checkpoint(a.wallet, cid, [payments.pay(a.key, b.address, 1)])


def test_operator_acts_for_its_participant(chain: Chain) -> None:
    cid, payments = open_eth(chain)
    a, b, node = chain.alice, chain.bob, chain.carol
    proof = payments.pay(a.key, b.address, 10)
    with reverts("NotPayee"):
        chain.channels.checkpoint(node.wallet, cid, [proof])
    chain.channels.set_operator(b.wallet, node.address)
    try:
        chain.channels.checkpoint(node.wallet, cid, [proof])
        assert chain.channels.channel(cid).sent_a == 10
    finally:
        chain.channels.set_operator(b.wallet, ETH)


def test_stale_close_loses_to_the_counterpartys_newer_state(chain: Chain) -> None:
    cid, payments = open_eth(chain, ETHER, ETHER)
    a, b = chain.alice, chain.bob
    payments.pay(b.key, a.address, 200)  # 1: bob pays alice
    stale = payments.pay(a.key, b.address, 100)  # 2: alice pays bob
    payments.pay(a.key, b.address, 400)  # 3
    newest = payments.pay(a.key, b.address, 500)  # 4: alice has sent 1000 in total

    # alice closes with bob's proof only, hiding what she paid
    closed = chain.channels.close(a.wallet, cid, [payments.latest_of(b.address)])
    assert isinstance(closed.events[0], ev.ChannelClosedLog) and closed.events[0].closer == a.address
    # the closer may update too, but only with proofs that pay it, and only newer ones
    with reverts("NotPayee"):
        chain.channels.update(a.wallet, cid, [newest])
    with reverts("StaleProof"):
        chain.channels.update(a.wallet, cid, [payments.latest_of(b.address)])
    # bob answers with alice's newest state; an older one of hers would have been beaten too
    chain.channels.update(b.wallet, cid, [stale])
    with reverts("StaleProof"):
        chain.channels.update(b.wallet, cid, [stale])
    updated = chain.channels.update(b.wallet, cid, [newest])
    assert isinstance(updated.events[0], ev.StateUpdated)
    assert (updated.events[0].buyer, updated.events[0].sequence, updated.events[0].buyer_total) == (
        a.address,
        4,
        1000,
    )

    with reverts("ChallengePeriodNotOver"):
        chain.channels.settle(chain.carol.wallet, cid)
    advance_time(chain.w3, PERIOD)
    with reverts("ChallengePeriodOver"):
        chain.channels.update(b.wallet, cid, [newest])
    before_a, before_b = eth_balance(chain, a.address), eth_balance(chain, b.address)
    settled = chain.channels.settle(chain.carol.wallet, cid)
    assert eth_balance(chain, a.address) - before_a == ETHER - 1000 + 200
    assert eth_balance(chain, b.address) - before_b == ETHER - 200 + 1000
    assert settled.events[-1] == ev.ChannelSettled(
        settled.block_number, settled.tx_hash, settled.events[-1].log_index, cid, ETHER - 800, ETHER + 800
    )
    assert chain.channels.channel(cid).status is OnChainStatus.SETTLED
    with reverts("AlreadySettled"):
        chain.channels.settle(chain.carol.wallet, cid)
    with reverts("ChannelExists"):  # the id is burnt: old signatures can never count again
        chain.channels.open_channel(a.wallet, cid, b.address, deposit=1, challenge_period=PERIOD)


def test_cooperative_close_pays_out_at_once(chain: Chain) -> None:
    cid, payments = open_eth(chain, ETHER, ETHER // 2)
    a, b = chain.alice, chain.bob
    payments.pay(a.key, b.address, 7)
    domain = chain.channels.domain
    expiry = latest_timestamp(chain.w3) + PERIOD
    sig_a = sign_cooperative_close(a.key, domain, cid, ETHER - 7, ETHER // 2 + 7, 1, expiry)
    sig_b = sign_cooperative_close(b.key, domain, cid, ETHER - 7, ETHER // 2 + 7, 1, expiry)

    def close(balance_a: int, balance_b: int, close_expiry: int = expiry):
        return chain.channels.cooperative_close(
            chain.carol.wallet, cid, balance_a=balance_a, balance_b=balance_b, sequence=1,
            expiry=close_expiry, signature_a=sig_a, signature_b=sig_b,
        )

    with reverts("BalancesDoNotMatchDeposits"):
        close(ETHER, ETHER)
    with reverts("WrongSigner"):  # the expiry is signed: it cannot be extended
        close(ETHER - 7, ETHER // 2 + 7, expiry + 1)
    with reverts("WrongSigner"):  # bob's balance raised by the submitter: signatures no longer match
        close(ETHER - 8, ETHER // 2 + 8)
    before_a, before_b = eth_balance(chain, a.address), eth_balance(chain, b.address)
    receipt = close(ETHER - 7, ETHER // 2 + 7)
    assert eth_balance(chain, a.address) - before_a == ETHER - 7
    assert eth_balance(chain, b.address) - before_b == ETHER // 2 + 7
    assert any(isinstance(e, ev.CooperativelyClosed) and e.sequence == 1 for e in receipt.events)
    assert chain.channels.channel(cid).status is OnChainStatus.SETTLED


def test_disputed_settlement_replays_the_signed_chain(chain: Chain) -> None:
    cid, payments = open_eth(chain, ETHER, ETHER)
    a, b = chain.alice, chain.bob
    for i in range(3):
        payments.pay(a.key, b.address, 10 + i)
        payments.pay(b.key, a.address, 1)
    last_of_a = payments.pay(a.key, b.address, 5)  # 7: the chain ends paying bob

    receipt = chain.channels.dispute(b.wallet, cid, payments.payments)  # from genesis: no head
    state = chain.channels.channel(cid)
    assert (state.seq_a, state.sent_a, state.seq_b, state.sent_b) == (7, 38, 6, 3)
    (event,) = receipt.events
    assert isinstance(event, ev.Disputed) and event.payments == 7
    assert event.head_hash == last_of_a.transaction_hash

    # later payments continue from the recorded head, during the challenge period too
    more = [
        payments.pay(b.key, a.address, 2),
        payments.pay(a.key, b.address, 3),
        payments.pay(b.key, a.address, 4),
    ]
    chain.channels.close(b.wallet, cid, [])
    chain.channels.dispute(a.wallet, cid, more, head=last_of_a)
    state = chain.channels.channel(cid)
    assert (state.seq_a, state.sent_a, state.seq_b, state.sent_b) == (9, 41, 10, 9)
    assert state.status is OnChainStatus.CLOSED_BY_B


def test_disputed_settlement_refuses_a_broken_chain(chain: Chain) -> None:
    cid, payments = open_eth(chain, ETHER, ETHER)
    a, b, carol = chain.alice, chain.bob, chain.carol
    p1 = payments.pay(a.key, b.address, 10)
    p2 = payments.pay(b.key, a.address, 3)
    p3 = payments.pay(a.key, b.address, 10)
    forged = with_signature(p3, carol.key.sign_digest(p3.transaction_hash))

    with reverts("BrokenHashLink"):  # p2 is missing: p3 does not point to p1
        chain.channels.dispute(b.wallet, cid, [p1, p3])
    with reverts("WrongSigner"):
        chain.channels.dispute(b.wallet, cid, [p1, p2, forged])
    with reverts("NotPayee"):  # the chain's last payment must pay the submitter
        chain.channels.dispute(a.wallet, cid, [p1, p2, p3])
    with reverts("NotPayee"):
        chain.channels.dispute(carol.wallet, cid, [p1, p2, p3])
    chain.channels.dispute(a.wallet, cid, [p1, p2])
    p4 = payments.pay(b.key, a.address, 1)
    with reverts("HeadMismatch"):  # the re-supplied head must be the recorded one
        chain.channels.dispute(a.wallet, cid, [p3, p4], head=p1)
    with reverts("BrokenHashLink"):  # skips p3
        chain.channels.dispute(a.wallet, cid, [p4], head=p2)
    chain.channels.dispute(a.wallet, cid, [p3, p4], head=p2)
    assert chain.channels.channel(cid).head_sequence == 4


def test_disputed_settlement_checks_totals(chain: Chain) -> None:
    cid = uuid.uuid4()
    chain.channels.open_channel(
        chain.alice.wallet, cid, chain.bob.address, deposit=100, challenge_period=PERIOD
    )
    payments = PaymentChain(cid, chain.channels.domain)
    a, b = chain.alice, chain.bob
    payments.pay(a.key, b.address, 60)
    # the next one claims a total of 55, below the previous 60: a total never decreases (the rule is
    # kind-agnostic since issue 14: a lock kind's price moves lockedAmount, not buyerTotal)
    payments.totals[a.address] -= 15
    bad_total = payments.pay(a.key, b.address, 10)
    with reverts("BadBuyerTotal"):
        chain.channels.dispute(b.wallet, cid, payments.payments)
    assert bad_total.sequence == 2
    # a total above the previous one + price is the buyer's own signed loss: accepted ("at least",
    # because the other buyer's recorded proof may be older than the head)
    skips = PaymentChain(cid, chain.channels.domain)
    skips.pay(a.key, b.address, 60)
    skips.totals[a.address] += 5
    skips.pay(a.key, b.address, 10)
    chain.channels.dispute(b.wallet, cid, skips.payments)
    assert chain.channels.channel(cid).sent_a == 75
    # a state paying more than the deposits is recorded; settle clamps it
    cid2 = uuid.uuid4()
    chain.channels.open_channel(a.wallet, cid2, b.address, deposit=100, challenge_period=PERIOD)
    good = PaymentChain(cid2, chain.channels.domain)
    good.pay(a.key, b.address, 60)
    good.pay(a.key, b.address, 50)  # 110 > alice's deposit of 100
    chain.channels.dispute(b.wallet, cid2, good.payments)
    assert chain.channels.channel(cid2).sent_a == 110
    chain.channels.close(b.wallet, cid2, [])
    advance_time(chain.w3, PERIOD)
    settled = chain.channels.settle(chain.carol.wallet, cid2)
    assert any(isinstance(e, ev.ChannelSettled) and (e.balance_a, e.balance_b) == (0, 100) for e in settled.events)


# ---------------------------------------------------------------- adversarial
def test_non_participants_cannot_close_or_update(chain: Chain) -> None:
    cid, payments = open_eth(chain)
    proof = payments.pay(chain.alice.key, chain.bob.address, 10)
    with reverts("NotParticipant"):
        chain.channels.close(chain.carol.wallet, cid, [])
    chain.channels.close(chain.alice.wallet, cid, [])
    with reverts("NotPayee"):
        chain.channels.update(chain.carol.wallet, cid, [proof])
    with reverts("NotOpen"):
        chain.channels.close(chain.bob.wallet, cid, [])


def test_signatures_for_another_chain_or_contract_are_refused(chain: Chain) -> None:
    cid, payments = open_eth(chain)
    a, b = chain.alice, chain.bob
    other_chain = SigningDomain(chain_id=chain.w3.eth.chain_id + 1, verifying_contract=chain.channels.address)
    other_contract = ChannelContract.deploy(chain.w3, chain.deployer.wallet, chain.token.address)
    for domain in (other_chain, other_contract.domain):
        replayed = payments.pay(a.key, b.address, 10, domain=domain)
        with reverts("WrongSigner"):
            chain.channels.checkpoint(b.wallet, cid, [replayed])
    # and a payment signed for another channel of the same two parties
    other_cid, other_payments = open_eth(chain)
    with reverts("WrongSigner"):
        chain.channels.checkpoint(b.wallet, cid, [other_payments.pay(a.key, b.address, 10)])
    assert other_cid != cid


def test_malleable_and_malformed_signatures_are_refused(chain: Chain) -> None:
    cid, payments = open_eth(chain)
    proof = payments.pay(chain.alice.key, chain.bob.address, 10)
    with reverts("HighS"):
        chain.channels.checkpoint(chain.bob.wallet, cid, [high_s(proof)])
    sig = proof.invoice_signature
    with reverts("BadSignatureV"):
        chain.channels.checkpoint(
            chain.bob.wallet, cid, [with_signature(proof, sig[:64] + bytes([sig[64] - 27]))]
        )
    chain.channels.checkpoint(chain.bob.wallet, cid, [proof])  # the low-s original is fine


def test_a_state_paying_more_than_the_deposits_is_recorded_and_clamped_at_settle(chain: Chain) -> None:
    a, b = chain.alice, chain.bob
    # recorded as signed (no recording-time solvency check), paid out at most the deposits
    cid, payments = open_eth(chain, deposit_a=1000, deposit_b=0)
    too_much = payments.pay(a.key, b.address, 1001)
    chain.channels.checkpoint(b.wallet, cid, [too_much])
    assert chain.channels.channel(cid).sent_a == 1001
    assert (chain.channels.channel(cid).balance_a, chain.channels.channel(cid).balance_b) == (0, 1000)
    chain.channels.close(b.wallet, cid, [])
    advance_time(chain.w3, PERIOD)
    before_a, before_b = eth_balance(chain, a.address), eth_balance(chain, b.address)
    settled = chain.channels.settle(chain.carol.wallet, cid)
    assert eth_balance(chain, b.address) - before_b == 1000
    assert eth_balance(chain, a.address) == before_a
    assert settled.events[-1].balance_a == 0 and settled.events[-1].balance_b == 1000
    # a top-up makes the same state solvent: paid exactly
    cid, payments = open_eth(chain, deposit_a=1000, deposit_b=0)
    too_much = payments.pay(a.key, b.address, 1001)
    chain.channels.deposit(a.wallet, cid, 1)
    chain.channels.close(b.wallet, cid, [too_much])
    advance_time(chain.w3, PERIOD)
    before_b = eth_balance(chain, b.address)
    chain.channels.settle(chain.carol.wallet, cid)
    assert eth_balance(chain, b.address) - before_b == 1001


def test_unsupported_token_is_refused(chain: Chain) -> None:
    with reverts("UnsupportedToken"):
        chain.channels.open_channel(
            chain.alice.wallet,
            uuid.uuid4(),
            chain.bob.address,
            deposit=0,
            challenge_period=PERIOD,
            token=chain.channels.address,
        )


def test_eth_payout_is_safe_against_reentrancy(chain: Chain) -> None:
    artifact = load_artifact("Reentrant")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    from infrastructure.chain.channels import _transact  # deploying a test-only contract

    address = _transact(
        chain.w3, chain.carol.wallet, factory.constructor(chain.channels.address), 0, None, "deploy"
    )["contractAddress"]
    attacker = chain.w3.eth.contract(address=address, abi=artifact.abi)
    contract = chain.channels.contract
    channels = chain.channels

    def as_attacker(data: str, value: int = 0) -> None:
        _transact(
            chain.w3,
            chain.carol.wallet,
            attacker.functions.execute(data),
            value,
            channels._decoder,
            "execute",
        )

    for mode in (1, 2):
        cid = uuid.uuid4()
        as_attacker(contract.encode_abi("open", [cid.bytes, chain.bob.address, ETH, PERIOD, ETHER]), ETHER)
        channels.deposit(chain.bob.wallet, cid, ETHER)
        params = channels.params(cid)
        assert params.a == address
        channels.close(chain.bob.wallet, cid, [])
        advance_time(chain.w3, PERIOD)
        settle = contract.encode_abi("settle", [cid.bytes, params.as_tuple()])
        withdraw = contract.encode_abi("withdraw", [address])
        _transact(
            chain.w3,
            chain.carol.wallet,
            attacker.functions.arm(mode, settle if mode == 1 else withdraw),
            0,
            None,
            "arm",
        )
        before_contract = eth_balance(chain, channels.address)
        before_bob = eth_balance(chain, chain.bob.address)
        receipt = channels.settle(chain.carol.wallet, cid)
        assert eth_balance(chain, chain.bob.address) - before_bob == ETHER
        if mode == 1:  # re-entered settle: blocked, and the attacker got exactly its balance
            assert attacker.functions.attempts().call() == 1
            assert attacker.functions.reentered().call() is False
            assert attacker.functions.lastErrorSelector().call() == function_signature_to_4byte_selector(
                "Reentrancy()"
            )
            assert eth_balance(chain, channels.address) == before_contract - 2 * ETHER
        else:  # refused the payment: it waits as a credit, bob was paid regardless
            assert any(
                isinstance(e, ev.PayoutDeferred) and (e.owner, e.amount) == (address, ETHER) for e in receipt.events
            )
            assert channels.withdrawable(address) == ETHER
            with pytest.raises(ContractReverted, match="TransferFailed"):  # still refusing: kept
                channels.withdraw(chain.carol.wallet, address)
            assert channels.withdrawable(address) == ETHER
            before_attacker = eth_balance(chain, address)
            _transact(chain.w3, chain.carol.wallet, attacker.functions.arm(0, b""), 0, None, "arm")
            as_attacker(withdraw)  # the owner itself may withdraw too
            assert eth_balance(chain, address) - before_attacker == ETHER
            assert channels.withdrawable(address) == 0
            with reverts("NothingToWithdraw"):
                channels.withdraw(chain.carol.wallet, address)


def test_btc_channel_end_to_end(chain: Chain) -> None:
    a, b = chain.alice, chain.bob
    token = chain.token
    for party in (a, b):
        token.mint(chain.deployer.wallet, party.address, 10 * BTC)
        token.approve(party.wallet, chain.channels.address, 2**256 - 1)
    start_a, start_b = token.balance_of(a.address), token.balance_of(b.address)
    cid = uuid.uuid4()
    chain.channels.open_channel(
        a.wallet, cid, b.address, deposit=2 * BTC, challenge_period=PERIOD, token=token.address
    )
    chain.channels.deposit(b.wallet, cid, BTC)
    payments = PaymentChain(cid, chain.channels.domain, currency="BTC")
    first = payments.pay(a.key, b.address, 50_000)
    assert first.buyer_address.startswith("1")  # a P2PKH address: the buyer named in BTC's format
    payments.pay(b.key, a.address, 20_000)
    payments.pay(a.key, b.address, 30_000)

    chain.channels.checkpoint(b.wallet, cid, [payments.latest_of(a.address)])
    chain.channels.close(a.wallet, cid, [payments.latest_of(b.address)])
    advance_time(chain.w3, PERIOD)
    chain.channels.settle(chain.carol.wallet, cid)
    assert token.balance_of(a.address) - start_a == -60_000
    assert token.balance_of(b.address) - start_b == 60_000
    assert token.balance_of(chain.channels.address) == 0

    # an ETH-denominated signature does not verify in a BTC channel
    cid2 = uuid.uuid4()
    chain.channels.open_channel(
        a.wallet, cid2, b.address, deposit=BTC, challenge_period=PERIOD, token=token.address
    )
    eth_priced = PaymentChain(cid2, chain.channels.domain, currency="ETH").pay(a.key, b.address, 1)
    with reverts("WrongSigner"):
        chain.channels.checkpoint(b.wallet, cid2, [eth_priced])
