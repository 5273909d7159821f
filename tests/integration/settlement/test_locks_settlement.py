"""Hashed timelocks through the settlement process: a secret registered on request, a settle that
decides every pending lock (``settleWithLocks``).

Runs on the in-process chain always and on anvil with ``-m "integration and chain"``.
"""

from __future__ import annotations

import hashlib
import os

from domain.settlement import IntentKind, IntentStatus, intent_id
from infrastructure.chain import OnChainStatus
from infrastructure.chain import events as ev
from infrastructure.chain.connection import latest_timestamp
from infrastructure.node.messages import RegisterSecretRequest, SettlementRequest
from tests.integration.contract.chain import ETHER
from tests.integration.settlement.harness import PERIOD, Node

# the registry is contract-wide and the chain is shared by the tests: fresh secrets per run
SECRET, NEVER_TOLD, B_NEVER_TOLD = os.urandom(32), os.urandom(32), os.urandom(32)


def _past(node: Node, expiry: int) -> None:
    """Past the challenge period and past ``expiry`` on the chain's clock."""
    node.advance(max(PERIOD + 1, expiry - latest_timestamp(node.chain.w3) + 2))


def _settled(node: Node, cid) -> ev.ChannelSettled:
    (settled,) = node.chain.channels.channel_events(cid, ev.ChannelSettled)
    return settled


def _selector(node: Node, tx_hash: str) -> bytes:
    return bytes(node.chain.w3.eth.get_transaction(tx_hash)["input"][:4])


def test_a_registered_secret_pays_its_lock_to_the_receiver_at_settle(node: Node) -> None:
    ledger = node.open_channel(ETHER, ETHER, interval=100)
    cid, a = ledger.channel_id, ledger.a  # A pays M, the channel's B (node.b)
    expiry = node.now + PERIOD // 2
    node.pay(ledger, a, 1000)
    for tx in (ledger.lock(a, 300, SECRET, expiry), ledger.lock(a, 50, NEVER_TOLD, expiry)):
        node.service.accept_payment(tx, node.now)
    h = hashlib.sha256(SECRET).digest()

    # M asks for its secret to be registered (a signed request, as a node receives it): registered once
    domain = node.service.get_channel_aggregate(cid).domain
    ask = RegisterSecretRequest(channel=cid, secret="0x" + SECRET.hex()).signed(node.b.key, domain, expiry=node.now + 3600)
    assert node.service.request_secret_registration(cid, SECRET, node.now, auth=ask.authenticate(domain))
    node.run()
    revealed = node.chain.channels.secret_revealed_at(h)
    assert revealed > 0
    iid = intent_id(IntentKind.REGISTER_SECRET, cid, 0, subject="0x" + h.hex())
    stored = node.executor.intent(iid)
    assert stored.status == IntentStatus.CONFIRMED.value
    assert [g.kind for g in node.executor.stats.gas] == ["register-secret"]
    channel = node.service.get_channel_aggregate(cid)
    assert channel.secret_registered_at(h) == revealed
    recorded = [e for e in node.service.channel_events(cid) if type(e).__name__ == "SecretRegistered"]
    assert [(e.secret_hash, e.revealed_at, e.tx_hash) for e in recorded] == [("0x" + h.hex(), revealed, stored.tx_hash)]
    # a second run (and a restarted node) sends nothing; asking again is a no-op
    node.run()
    node.crash().run()
    assert [g.kind for g in node.executor.stats.gas] == []  # the rebuilt executor sent nothing
    assert not node.service.request_secret_registration(cid, SECRET, node.now, requested_by=node.b.address)
    assert node.chain.channels.secret_revealed_at(h) == revealed

    # M asks for settlement: the close records A's proof with its two locks
    settle = SettlementRequest(channel=cid).signed(node.b.key, domain, expiry=node.now + 3600)
    node.service.request_settlement(cid, node.now, auth=settle.authenticate(domain))
    node.run()
    state = node.chain.channels.channel(cid)
    assert state.is_closed and state.has_locks and state.seq_a == 3
    _past(node, expiry)
    node.run()
    assert node.chain.channels.channel(cid).status is OnChainStatus.SETTLED
    settled = _settled(node, cid)
    selector = node.chain.channels.contract.get_function_by_name("settleWithLocks").signature
    assert _selector(node, settled.tx_hash).hex() == node.chain.w3.keccak(text=selector)[:4].hex()
    # M gets the registered lock (300); the lock never told goes back to A (50)
    assert (settled.balance_a, settled.balance_b) == (ETHER - 1300, ETHER + 1300)
    channel = node.service.get_channel_aggregate(cid)
    assert channel.status == "closed"
    assert list(channel.final_balances.values()) == [ETHER - 1300, ETHER + 1300]


def test_locks_never_registered_go_back_to_their_senders(node: Node) -> None:
    ledger = node.open_channel(ETHER, ETHER, interval=100)
    cid, a, b = ledger.channel_id, ledger.a, ledger.b
    expiry = node.now + PERIOD // 2
    node.pay(ledger, a, 400)
    node.service.accept_payment(ledger.lock(a, 250, NEVER_TOLD, expiry), node.now)
    node.service.accept_payment(ledger.lock(b, 70, B_NEVER_TOLD, expiry), node.now)  # B's side has a lock too
    node.service.request_settlement(cid, node.now)
    node.run()
    state = node.chain.channels.channel(cid)
    assert state.is_closed and state.locks_hash_a != bytes(32) and state.locks_hash_b != bytes(32)
    _past(node, expiry)
    node.run()
    assert node.chain.channels.channel(cid).status is OnChainStatus.SETTLED
    settled = _settled(node, cid)
    assert (settled.balance_a, settled.balance_b) == (ETHER - 400, ETHER + 400)
    assert [g.kind for g in node.executor.stats.gas] == ["close", "settle"]
    assert list(node.service.get_channel_aggregate(cid).final_balances.values()) == [ETHER - 400, ETHER + 400]
