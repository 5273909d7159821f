"""Executor + watcher: channel requests become transactions, chain events come back as domain events.

Runs on the in-process chain always and on anvil with ``-m "integration and chain"``.
"""

from __future__ import annotations

import time

from domain.settlement import IntentKind, IntentStatus, intent_id
from infrastructure.chain import OnChainStatus
from tests.integration.contract.chain import ETHER
from tests.integration.settlement.harness import PERIOD, Node


def onchain_balances(node: Node, cid):
    state = node.chain.channels.channel(cid)
    return state.balance_a, state.balance_b


def test_checkpoints_land_on_chain_with_exactly_the_aggregates_balances(node: Node) -> None:
    ledger = node.open_channel(ETHER, ETHER // 2, interval=3)
    a, b = ledger.a, ledger.b
    node.pay(ledger, a, 100, 200)
    node.pay(ledger, b, 30)  # sequence 3: the first checkpoint
    node.run()
    view = node.service.get_channel(ledger.channel_id)
    assert view.confirmed_sequence == 3
    assert onchain_balances(node, ledger.channel_id) == view.balances
    node.pay(ledger, a, 5, 6, 7)  # 6: the second; only alice's proof is new (bob's is recorded)
    node.run()
    view = node.service.get_channel(ledger.channel_id)
    assert view.confirmed_sequence == 6
    assert onchain_balances(node, ledger.channel_id) == view.balances
    state = node.chain.channels.channel(ledger.channel_id)
    assert (state.seq_a, state.sent_a, state.seq_b, state.sent_b) == (6, 318, 3, 30)
    gas = [g for g in node.executor.stats.gas if g.kind == "checkpoint"]
    assert len(gas) == 2 and all(20_000 < g.gas_used < 200_000 for g in gas)
    confirmed = node.executor.intent(intent_id(IntentKind.CHECKPOINT, ledger.channel_id, 6))
    assert confirmed.status == IntentStatus.CONFIRMED.value and confirmed.gas_used == gas[-1].gas_used


def test_a_settlement_closes_then_settles_with_payouts_equal_to_the_balances(node: Node) -> None:
    ledger = node.open_channel(ETHER, ETHER, interval=100)
    node.pay(ledger, ledger.a, 1000, 2000)
    node.pay(ledger, ledger.b, 500)
    balances = node.service.get_channel(ledger.channel_id).balances
    node.service.request_settlement(ledger.channel_id, node.now)
    node.run()
    assert node.chain.channels.channel(ledger.channel_id).is_closed
    assert node.service.get_channel(ledger.channel_id).status == "settling"
    node.run()  # the challenge period is not over: nothing settles
    assert node.chain.channels.channel(ledger.channel_id).is_closed
    node.advance(PERIOD + 1)
    node.run()
    assert node.chain.channels.channel(ledger.channel_id).status is OnChainStatus.SETTLED
    view = node.service.get_channel(ledger.channel_id)
    assert view.status == "closed"
    channel = node.service.get_channel_aggregate(ledger.channel_id)
    assert tuple(channel.final_balances.values()) == balances == (ETHER - 2500, ETHER + 2500)
    kinds = [g.kind for g in node.executor.stats.gas]
    assert kinds == ["close", "settle"]


def test_a_stale_close_by_the_counterparty_loses_to_the_watchtowers_update(node: Node) -> None:
    ledger = node.open_channel(ETHER, ETHER, interval=100)
    a, b = ledger.a, ledger.b
    (bob_pays,) = node.pay(ledger, b, 200)
    node.pay(ledger, a, 100, 400, 500)  # alice has sent 1000 by sequence 4
    # alice closes herself (not through the node) with bob's proof only, hiding her payments
    node.chain.channels.close(node.a.wallet, ledger.channel_id, [bob_pays])
    node.run()
    state = node.chain.channels.channel(ledger.channel_id)
    assert (state.seq_a, state.sent_a) == (4, 1000)  # the watchtower's update
    assert node.service.get_channel(ledger.channel_id).status == "settling"  # no more payments
    assert [g.kind for g in node.executor.stats.gas] == ["update"]
    node.advance(PERIOD + 1)
    node.run()
    assert node.chain.channels.channel(ledger.channel_id).status is OnChainStatus.SETTLED
    channel = node.service.get_channel_aggregate(ledger.channel_id)
    assert list(channel.final_balances.values()) == [ETHER - 800, ETHER + 800]


def test_a_crash_between_submitted_and_confirmed_sends_nothing_twice(node: Node) -> None:
    ledger = node.open_channel(ETHER, 0, interval=2)
    node.pay(ledger, ledger.a, 10, 20)
    node.executor.catch_up()
    # send, but crash before the receipt is looked at: the intent is stored as submitted
    executor = node.executor
    executor._poll = lambda report=None: None  # the receipt is never collected
    executor.tick(node.now)
    iid = intent_id(IntentKind.CHECKPOINT, ledger.channel_id, 2)
    assert executor.intent(iid).status == IntentStatus.SUBMITTED.value
    tx_hash = executor.intent(iid).tx_hash
    # anvil mines a sent transaction a moment after accepting it: count nonces once it is mined
    node.chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    nonce = node.chain.w3.eth.get_transaction_count(node.operator.address)

    node.crash()
    node.run()
    assert node.chain.w3.eth.get_transaction_count(node.operator.address) == nonce  # nothing new sent
    stored = node.executor.intent(iid)
    assert (stored.status, stored.tx_hash) == (IntentStatus.CONFIRMED.value, tx_hash)
    assert node.service.get_channel(ledger.channel_id).confirmed_sequence == 2
    # the log is not re-read from the start: the position survived
    assert node.executor.position(0) is not None and node.executor.open_intents() == []


def test_a_crash_after_raising_before_sending_checks_the_chain_first(node: Node) -> None:
    ledger = node.open_channel(ETHER, 0, interval=2)
    node.pay(ledger, ledger.a, 10, 20)
    node.executor.catch_up()  # the intent is stored as pending; no tick
    iid = intent_id(IntentKind.CHECKPOINT, ledger.channel_id, 2)
    # meanwhile someone else (a second node) records the same proof
    proof = node.service.get_channel_aggregate(ledger.channel_id).latest[node.a.address]
    from domain.protocol import SignedInvoice

    receipt = node.chain.channels.checkpoint(node.b.wallet, ledger.channel_id, [SignedInvoice.parse(proof)])
    node.crash()
    nonce = node.chain.w3.eth.get_transaction_count(node.operator.address)
    node.run()
    assert node.chain.w3.eth.get_transaction_count(node.operator.address) == nonce
    stored = node.executor.intent(iid)
    assert (stored.status, stored.tx_hash) == (IntentStatus.CONFIRMED.value, receipt.tx_hash)


def test_a_revert_becomes_a_failed_intent_with_its_reason(node: Node) -> None:
    ledger = node.open_channel(ETHER, 0, interval=2)
    node.pay(ledger, ledger.a, 10, 20)
    # the node is no longer bob's operator: its checkpoint of alice's proof (paying bob) reverts
    node.chain.channels.set_operator(node.b.wallet, "0x" + "00" * 20)
    node.run()
    stored = node.executor.intent(intent_id(IntentKind.CHECKPOINT, ledger.channel_id, 2))
    assert stored.status == IntentStatus.FAILED.value
    assert "NotPayee" in stored.error
    assert node.executor.open_intents() == [] and len(node.executor.stats.gave_up) == 1  # final: no retry
    assert node.service.get_channel(ledger.channel_id).confirmed_sequence == 0


def test_nonces_resync_after_someone_else_uses_the_operator_wallet(node: Node) -> None:
    ledger = node.open_channel(ETHER, 0, interval=1)
    node.pay(ledger, ledger.a, 10)
    node.run()
    # the operator wallet sends a transaction behind the executor's back: its counter is stale
    node.chain.channels.set_operator(node.operator.wallet, node.operator.address)
    node.pay(ledger, ledger.a, 20)
    node.run()
    assert node.service.get_channel(ledger.channel_id).confirmed_sequence == 2


def test_a_dispute_carries_the_payments_since_the_checkpoint_onto_the_chain(node: Node) -> None:
    ledger = node.open_channel(ETHER, ETHER // 2, interval=3)
    a, b = ledger.a, ledger.b
    node.pay(ledger, a, 100, 200)
    node.pay(ledger, b, 30)  # sequence 3: a checkpoint of bob's proof (alice's too)
    node.run()
    assert node.service.get_channel(ledger.channel_id).confirmed_sequence == 3
    node.pay(ledger, b, 40)
    node.pay(ledger, a, 50)  # sequence 5: the last disputed payment pays bob (served by the node)
    node.service.request_dispute(ledger.channel_id, node.now)
    node.run()
    iid = intent_id(IntentKind.DISPUTE, ledger.channel_id, 5)
    stored = node.executor.intent(iid)
    assert stored.status == IntentStatus.CONFIRMED.value, stored.error
    view = node.service.get_channel(ledger.channel_id)
    assert view.confirmed_sequence == 5
    state = node.chain.channels.channel(ledger.channel_id)
    assert (state.seq_a, state.sent_a, state.seq_b, state.sent_b) == (5, 350, 4, 70)
    assert onchain_balances(node, ledger.channel_id) == view.balances == (ETHER - 280, ETHER // 2 + 280)
    gas = [g for g in node.executor.stats.gas if g.kind == "dispute"]
    assert len(gas) == 1 and 20_000 < gas[0].gas_used < 200_000
    assert stored.gas_used == gas[0].gas_used and stored.tx_hash == gas[0].tx_hash
    assert node.executor.open_intents() == []


def test_defect9_a_dispute_of_5000_payments_lands_in_steps_each_within_a_block(node: Node) -> None:
    """The request names a range of the log; the executor sends it a chunk at a time, each step
    continuing from the head the previous one recorded, until the chain holds the whole chain."""
    ledger = node.open_channel(10**9, 10**9, interval=10**6)  # never checkpointed
    a, b = ledger.a, ledger.b
    count = 5000
    for i in range(count):
        node.pay(ledger, a if i % 3 else b, 7)
    node.service.request_dispute(ledger.channel_id, node.now)
    deadline = time.monotonic() + 300
    while node.service.get_channel(ledger.channel_id).confirmed_sequence < count and time.monotonic() < deadline:
        node.run(rounds=1)
    view = node.service.get_channel(ledger.channel_id)
    assert view.confirmed_sequence == count
    state = node.chain.channels.channel(ledger.channel_id)
    assert state.head_sequence == count
    assert onchain_balances(node, ledger.channel_id) == view.balances
    steps = node.chain.channels.contract.events.Disputed.get_logs(
        from_block=0, argument_filters={"channelId": ledger.channel_id.bytes})
    assert [e["args"]["payments"] for e in steps] == [node.executor.dispute_chunk] * (count // node.executor.dispute_chunk)
    gas = [node.chain.w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"] for e in steps]
    assert max(gas) < 3_000_000  # each step far below a block's gas limit
    node.run(rounds=1)
    assert node.executor.open_intents() == []
    stored = node.executor.intent(intent_id(IntentKind.DISPUTE, ledger.channel_id, count))
    assert len(str(stored.payload)) < 100  # the intent names the range; the payments stay in the log
