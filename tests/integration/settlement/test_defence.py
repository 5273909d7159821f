"""The watchtower never gives up, and the newest co-signed state is what settles (issue 10, defects 1 and 4).

Given a channel whose participants kept paying each other after the chain last heard of it, when
the counterparty closes with a stale state, then the node's watchtower answers before the challenge
period ends, and the payouts are exactly the newest state both parties signed: in every order of
the later payments, with and without a checkpoint between, in ETH and in the BTC token, whether the
node operates for both participants or for ours only. Runs on eth-tester and anvil.
"""

from __future__ import annotations

import uuid

import pytest

from domain.channel import ChannelParameters
from infrastructure.chain import ETH, OnChainStatus
from tests.builders import Ledger
from tests.integration.contract.chain import BTC, ETHER
from tests.integration.settlement.harness import PERIOD, Node

A_FIRST, B_FIRST = "A's later payment first", "B's later payment first"


def open_channel(node: Node, currency: str, deposit_a: int, deposit_b: int) -> Ledger:
    cid = uuid.uuid4()
    contract = node.chain.channels
    token = ETH
    if currency == "BTC":
        token = node.chain.token.address
        for party in (node.a, node.b):
            node.chain.token.mint(node.chain.deployer.wallet, party.address, 10 * BTC)
            node.chain.token.approve(party.wallet, contract.address, 2**256 - 1)
    contract.open_channel(node.a.wallet, cid, node.b.address, deposit=deposit_a, challenge_period=PERIOD, token=token)
    if deposit_b:
        contract.deposit(node.b.wallet, cid, deposit_b)
    node.service.open_channel(
        channel_id=cid, public_key_a=node.a.key.public_key, public_key_b=node.b.key.public_key, currency=currency,
        deposit_a=deposit_a, deposit_b=deposit_b, parameters=ChannelParameters(PERIOD, 10**6, 10**6),
        domain=contract.domain, at=node.now,
    )
    return Ledger(cid, a=node.a.key, b=node.b.key, domain=contract.domain, currency=currency)


def run_until(node: Node, done, what: str, rounds: int = 30) -> None:
    for _ in range(rounds):
        node.run(rounds=1)
        if done():
            return
    raise AssertionError(f"not done after {rounds} rounds: {what}")


def payouts(node: Node, ledger: Ledger) -> tuple[int, int]:
    logs = node.chain.channels.contract.events.ChannelSettled.get_logs(
        from_block=0, argument_filters={"channelId": ledger.channel_id.bytes})
    (settled,) = logs
    return settled["args"]["balanceA"], settled["args"]["balanceB"]


def settle(node: Node, ledger: Ledger) -> tuple[int, int]:
    node.advance(PERIOD + 1)
    run_until(node, lambda: node.chain.channels.channel(ledger.channel_id).status is OnChainStatus.SETTLED, "settle")
    return payouts(node, ledger)


@pytest.mark.parametrize("currency", ["ETH", "BTC"])
@pytest.mark.parametrize("checkpoint_between", [True, False], ids=["checkpoint-between", "no-checkpoint"])
@pytest.mark.parametrize("order", [A_FIRST, B_FIRST])
def test_defect1_a_stale_close_is_answered_and_the_newest_co_signed_state_settles(
    node: Node, currency: str, checkpoint_between: bool, order: str
) -> None:
    unit = BTC if currency == "BTC" else ETHER
    # B deposits nothing: each later payment of B to A is funded only by A's later payments to B,
    # which are not on-chain when B closes (the case the old contract refused as Overdraft)
    ledger = open_channel(node, currency, unit, 0)
    a, b = ledger.a, ledger.b
    node.pay(ledger, a, unit // 100)
    node.pay(ledger, b, unit // 200)
    if checkpoint_between:
        node.service.request_checkpoint(ledger.channel_id, node.now)
        run_until(node, lambda: node.service.get_channel(ledger.channel_id).confirmed_sequence == 2, "checkpoint")
    later = [(a, unit // 50), (b, unit // 40)] if order == A_FIRST else [(b, unit // 400), (a, unit // 50)]
    for payer, price in later:
        node.pay(ledger, payer, price)
    newest = node.service.get_channel(ledger.channel_id).balances

    # B closes with its stale state: none of the payments after the checkpoint (or none at all)
    node.chain.channels.close(node.b.wallet, ledger.channel_id, [])
    run_until(node, lambda: node.chain.channels.channel(ledger.channel_id).head_sequence == 4, "the watchtower")
    state = node.chain.channels.channel(ledger.channel_id)
    assert (state.seq_a, state.seq_b) == (max(s for s, (p, _) in enumerate(later, 3) if p is a),
                                          max(s for s, (p, _) in enumerate(later, 3) if p is b))
    assert node.executor.stats.gave_up == []
    assert settle(node, ledger) == newest
    assert tuple(node.service.get_channel_aggregate(ledger.channel_id).final_balances.values()) == newest


def test_defect1_operating_for_our_side_only_the_dispute_records_our_own_later_payment(node: Node) -> None:
    """Our node is A's operator, not B's: it may not submit A's own proofs (they pay B), so it
    records them through the paper's dispute from the chain's head, which ends with B's payment
    to A: B's own signature covers the hash links to A's payment before it."""
    node.chain.channels.set_operator(node.b.wallet, ETH)  # B withdraws our operator right
    ledger = open_channel(node, "ETH", ETHER, 0)
    a, b = ledger.a, ledger.b
    node.pay(ledger, a, 10**16)
    node.pay(ledger, b, 2 * 10**15)
    node.chain.channels.checkpoint(node.b.wallet, ledger.channel_id, [ledger.last_of(a)])  # B records A's
    node.chain.channels.checkpoint(node.operator.wallet, ledger.channel_id, [ledger.last_of(b)])
    node.pay(ledger, a, 2 * 10**16)  # 3: A pays B
    node.pay(ledger, b, 25 * 10**15)  # 4: B pays A, funded by payment 3
    newest = node.service.get_channel(ledger.channel_id).balances
    node.chain.channels.close(node.b.wallet, ledger.channel_id, [])
    run_until(node, lambda: node.chain.channels.channel(ledger.channel_id).head_sequence == 4, "the watchtower")
    state = node.chain.channels.channel(ledger.channel_id)
    assert (state.seq_a, state.seq_b) == (3, 4)  # A's own payment 3 recorded too
    (disputed,) = node.chain.channels.contract.events.Disputed.get_logs(
        from_block=0, argument_filters={"channelId": ledger.channel_id.bytes})
    assert node.chain.w3.eth.get_transaction(disputed["transactionHash"])["from"] == node.operator.address
    assert settle(node, ledger) == newest


def test_defect1_the_defence_outlasts_failures_until_the_challenge_period_ends(node: Node) -> None:
    """The watchtower cannot submit at first (A had withdrawn our operator right); it keeps trying,
    later each time, and lands as soon as it can, before the deadline."""
    ledger = open_channel(node, "ETH", ETHER, 0)
    a, b = ledger.a, ledger.b
    node.pay(ledger, a, 10**16)
    node.pay(ledger, b, 5 * 10**15)
    newest = node.service.get_channel(ledger.channel_id).balances
    node.chain.channels.set_operator(node.a.wallet, ETH)
    node.chain.channels.set_operator(node.b.wallet, ETH)
    node.chain.channels.close(node.b.wallet, ledger.channel_id, [])
    for _ in range(4):
        node.run(rounds=1)
        node.advance(20)  # past the retry's backoff
    assert node.chain.channels.channel(ledger.channel_id).head_sequence == 0
    assert node.executor.stats.gave_up == []  # failed several times, never given up
    node.chain.channels.set_operator(node.a.wallet, node.operator.address)
    node.chain.channels.set_operator(node.b.wallet, node.operator.address)
    for _ in range(10):
        node.advance(31)
        node.run(rounds=1)
        if node.chain.channels.channel(ledger.channel_id).head_sequence == 2:
            break
    assert node.chain.channels.channel(ledger.channel_id).head_sequence == 2
    assert settle(node, ledger) == newest


def test_defect4_the_closer_answers_the_counterpartys_later_update_and_gets_106(node: Node) -> None:
    """Deposits 100/10. Alice closed without Bob's latest proof (the old contract refused it as
    Overdraft(110, 0, 12)); Bob then records Alice's later payment; Alice's node, the closer, can
    still answer with Bob's newer proof (the old contract said NotCounterparty). She gets 106, not 94."""
    ledger = open_channel(node, "ETH", 100, 10)
    a, b = ledger.a, ledger.b
    node.pay(ledger, a, 6)  # 1: Alice pays Bob 6
    node.pay(ledger, b, 12)  # 2: Bob pays Alice 12, solvent only with Alice's 6
    node.pay(ledger, a, 1)  # 3: Alice pays Bob 1 more
    node.pay(ledger, b, 1)  # 4: and Bob pays 1 back
    assert node.service.get_channel(ledger.channel_id).balances == (106, 4)
    node.chain.channels.set_operator(node.b.wallet, ETH)  # our node acts for Alice only
    node.chain.channels.close(node.a.wallet, ledger.channel_id, [])
    node.chain.channels.update(node.b.wallet, ledger.channel_id, [ledger.last_of(a)])  # Bob is quick
    assert node.chain.channels.channel(ledger.channel_id).head_sequence == 3
    run_until(node, lambda: node.chain.channels.channel(ledger.channel_id).seq_b == 4, "Alice's answer")
    assert node.executor.stats.gave_up == []
    assert settle(node, ledger) == (106, 4)
