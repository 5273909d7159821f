"""The settlement executor and watcher against an in-memory chain (a ``Chain`` port of its own).

No node, no EVM: ``FakeChain`` keeps each channel's on-chain record, signs nothing (a
transaction's "raw bytes" name its call) and mines on demand, so each test says exactly
what the chain did and when. The channels live in an in-memory ``ChannelService``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace

import pytest
from eventsourcing.application import AggregateNotFoundError

from domain.application import ChannelService
from domain.channel import ChannelParameters, ChannelStatus
from domain.protocol import SignedInvoice
from domain.settlement import IntentKind, IntentStatus, intent_id
from infrastructure.chain import events as ev
from infrastructure.chain.channels import ChannelParams, OnChainChannel, OnChainStatus, Receipt, TxHash
from infrastructure.chain.errors import ContractReverted
from infrastructure.chain.port import Call, Chain
from infrastructure.chain.sender import NonceTooLow, PreparedTransaction
from infrastructure.settlement import ChainWatcher, SettlementExecutor
from infrastructure.settlement.aggregates import SettlementIntent
from tests.builders import ALICE, BOB, DOMAIN, T0, Ledger, addr

OPERATOR = "0x" + "0e" * 20
PERIOD = 3600


@dataclass
class _Pending:
    prepared: PreparedTransaction
    call: Call


class FakeChain(Chain):
    """One contract's channels in memory; transactions are mined by ``mine()``."""

    def __init__(self, now: int = T0) -> None:
        self.now = now
        self.block = 1
        self.records: dict[uuid.UUID, OnChainChannel] = {}
        self._params: dict[uuid.UUID, ChannelParams] = {}
        self.operators: dict[str, str] = {}
        self.log: list[ev.ChainEvent] = []
        self.prepared: list[Call] = []  # every call signed, in order
        self.broadcasts: list[bytes] = []
        self.pool: dict[str, _Pending] = {}  # known to the node, not mined
        self.receipts: dict[str, Receipt] = {}
        self.revert_next: list[str] = []  # custom errors the next prepares raise
        self._signed: dict[bytes, _Pending] = {}
        self._nonce = 0
        self.secrets: dict[bytes, int] = {}  # the registry: sha256(secret) -> when registered

    # ------------------------------------------------------------ the test's side
    def open(self, cid: uuid.UUID, a: str, b: str, deposit_a: int, deposit_b: int) -> None:
        self._params[cid] = ChannelParams(a, b, "0x" + "00" * 20, PERIOD)
        self.records[cid] = OnChainChannel(cid, OnChainStatus.OPEN, deposit_a, deposit_b, 0, 0, 0, 0, 0)

    def close_by(self, cid: uuid.UUID, closer: str) -> None:
        """A participant closes with nothing recorded (a stale close), from its own wallet."""
        rec = self.records[cid]
        status = OnChainStatus.CLOSED_BY_A if closer == self._params[cid].a else OnChainStatus.CLOSED_BY_B
        self.records[cid] = replace(rec, status=status, settle_at=self.now + PERIOD)
        self.block += 1
        self.log.append(ev.ChannelClosedLog(self.block, "0xc105e", 0, cid, closer, self.now + PERIOD))

    def mine(self) -> None:
        for tx_hash, pending in list(self.pool.items()):
            self.block += 1
            events = self._apply(pending.call, tx_hash)
            self.log += events
            self.receipts[tx_hash] = Receipt(TxHash(tx_hash), self.block, 50_000, tuple(events))
            del self.pool[tx_hash]

    def _apply(self, call: Call, tx_hash: str) -> list[ev.ChainEvent]:
        cid, rec = call.channel_id, self.records[call.channel_id]
        a = self._params[cid].a
        out: list[ev.ChainEvent] = []
        for p in call.proofs:
            assert isinstance(p, SignedInvoice)
            if p.buyer == a:
                rec = replace(rec, seq_a=p.sequence, sent_a=p.buyer_total)
            else:
                rec = replace(rec, seq_b=p.sequence, sent_b=p.buyer_total)
            kind = ev.Checkpointed if call.kind is IntentKind.CHECKPOINT else ev.StateUpdated
            out.append(kind(self.block, tx_hash, len(out), cid, str(p.buyer), p.sequence, p.buyer_total))
        if call.kind is IntentKind.CLOSE:
            rec = replace(rec, status=OnChainStatus.CLOSED_BY_A, settle_at=self.now + PERIOD)
            out.append(ev.ChannelClosedLog(self.block, tx_hash, len(out), cid, OPERATOR, self.now + PERIOD))
        if call.kind is IntentKind.REGISTER_SECRET:
            h = hashlib.sha256(call.secret).digest()
            if h not in self.secrets:
                self.secrets[h] = self.now
                out.append(ev.SecretRevealed(self.block, tx_hash, len(out), h, call.secret))
        if call.kind is IntentKind.SETTLE:
            assert rec.is_closed and self.now >= rec.settle_at
            out.append(ev.ChannelSettled(self.block, tx_hash, len(out), cid, rec.balance_a, rec.balance_b))
            rec = replace(rec, status=OnChainStatus.SETTLED)
        self.records[cid] = rec
        return out

    # ------------------------------------------------------------ the port
    @property
    def submitter(self) -> str:
        return OPERATOR

    def channel(self, channel_id: uuid.UUID) -> OnChainChannel:
        return self.records[channel_id]

    def params(self, channel_id: uuid.UUID) -> ChannelParams:
        return self._params[channel_id]

    def operator_of(self, participant: str) -> str:
        return self.operators.get(participant, "0x" + "00" * 20)

    def latest_timestamp(self) -> int:
        return self.now

    def secret_revealed_at(self, secret_hash: bytes) -> int:
        return self.secrets.get(secret_hash, 0)

    def block_number(self) -> int:
        return self.block

    def events(self, from_block: int, to_block: int) -> list[ev.ChainEvent]:
        return [e for e in self.log if from_block <= e.block_number <= to_block]

    def channel_events(self, channel_id: uuid.UUID, *kinds: type[ev.ChainEvent]) -> list[ev.ChainEvent]:
        return [e for e in self.log if type(e) in kinds and getattr(e, "channel_id", None) == channel_id]

    def prepare(self, call: Call, gas: int | None = None) -> PreparedTransaction:
        if self.revert_next:
            raise ContractReverted(self.revert_next.pop(0), {}, b"", call.kind.value)
        self.prepared.append(call)
        raw = f"{call.kind.value}/{call.channel_id}/{self._nonce}".encode()
        prepared = PreparedTransaction(f"0x{len(self.prepared):064x}", OPERATOR, self._nonce, raw)
        self._nonce += 1
        self._signed[raw] = _Pending(prepared, call)
        return prepared

    def broadcast(self, raw: bytes) -> None:
        pending = self._signed[raw]
        self.broadcasts.append(raw)
        if pending.prepared.tx_hash in self.receipts:
            raise NonceTooLow("nonce already used")
        self.pool[pending.prepared.tx_hash] = pending

    def receipt(self, tx_hash: str) -> Receipt | None:
        return self.receipts.get(tx_hash)

    def is_known(self, tx_hash: str) -> bool:
        return tx_hash in self.pool or tx_hash in self.receipts

    def resync_nonce(self) -> None:
        pass


class Setup:
    """One channel (alice, bob) served by a node operating for both, with its executor and watcher."""

    def __init__(self, interval: int = 5) -> None:
        self.service = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.chain = FakeChain()
        self.cid = uuid.uuid4()
        a, b = addr(ALICE), addr(BOB)
        self.chain.open(self.cid, a, b, 1000, 500)
        self.chain.operators = {a: OPERATOR, b: OPERATOR}
        self.service.open_channel(
            channel_id=self.cid, public_key_a=ALICE.public_key, public_key_b=BOB.public_key, currency="ETH",
            deposit_a=1000, deposit_b=500, parameters=ChannelParameters(PERIOD, interval, 60), domain=DOMAIN, at=T0,
        )
        self.ledger = Ledger(self.cid)
        self.start()

    def start(self) -> None:
        """(Re)build the executor and watcher from the store alone, as after a restart."""
        self.executor = SettlementExecutor(self.service, self.chain)
        self.watcher = ChainWatcher(self.executor)

    def pay(self, *prices: int) -> None:
        for price in prices:
            self.service.accept_payment(self.ledger.pay(ALICE, price), self.chain.now)

    def round(self) -> None:
        self.executor.catch_up()
        self.executor.tick(self.chain.now)
        self.chain.mine()
        self.watcher.poll(self.chain.now)
        self.executor.tick(self.chain.now)

    def stored(self, kind: IntentKind, sequence: int, attempt: int = 0) -> SettlementIntent:
        return self.executor.intent(intent_id(kind, self.cid, sequence, attempt))


@pytest.fixture
def node() -> Setup:
    return Setup()


def test_a_checkpoint_request_becomes_one_checkpoint_transaction_and_a_confirmation(node: Setup) -> None:
    node.pay(10, 20, 30, 40, 50)  # the 5th payment is the checkpoint interval
    node.round()
    node.round()
    assert [(c.kind, [p.sequence for p in c.proofs]) for c in node.chain.prepared] == [(IntentKind.CHECKPOINT, [5])]
    assert node.chain.records[node.cid].seq_a == 5
    assert node.service.get_channel(node.cid).confirmed_sequence == 5
    assert node.stored(IntentKind.CHECKPOINT, 5).status == IntentStatus.CONFIRMED.value
    assert node.executor.open_intents() == []


def test_a_submitted_transaction_reread_after_a_restart_is_not_sent_twice(node: Setup) -> None:
    node.pay(10, 20, 30, 40, 50)
    node.executor.catch_up()
    node.executor.tick(node.chain.now)  # signed, saved as submitted, broadcast: not mined yet
    stored = node.stored(IntentKind.CHECKPOINT, 5)
    assert stored.status == IntentStatus.SUBMITTED.value and stored.raw_tx

    node.start()  # the node still knows the transaction: nothing is broadcast again
    assert len(node.chain.broadcasts) == 1
    node.round()
    assert len(node.chain.prepared) == 1 and len(node.chain.broadcasts) == 1
    assert node.stored(IntentKind.CHECKPOINT, 5).status == IntentStatus.CONFIRMED.value
    assert node.service.get_channel(node.cid).confirmed_sequence == 5


def test_a_submitted_transaction_the_node_forgot_is_broadcast_again_as_the_same_bytes(node: Setup) -> None:
    node.pay(10, 20, 30, 40, 50)
    node.executor.catch_up()
    node.executor.tick(node.chain.now)
    node.chain.pool.clear()  # e.g. the node restarted with an empty pool

    node.start()
    assert node.chain.broadcasts[0] == node.chain.broadcasts[1] and len(node.chain.prepared) == 1
    node.round()
    assert len(node.chain.prepared) == 1
    assert node.service.get_channel(node.cid).confirmed_sequence == 5


def test_a_transient_revert_is_retried(node: Setup) -> None:
    node.pay(10, 20, 30, 40, 50)
    node.chain.revert_next = ["ChallengePeriodNotOver"]
    node.round()
    assert node.stored(IntentKind.CHECKPOINT, 5).status == IntentStatus.FAILED.value
    node.round()
    assert node.stored(IntentKind.CHECKPOINT, 5, attempt=1).status == IntentStatus.CONFIRMED.value
    assert node.executor.stats.gave_up == [] and node.executor.stats.reverts == {"ChallengePeriodNotOver": 1}
    assert node.service.get_channel(node.cid).confirmed_sequence == 5


def test_a_revert_that_would_repeat_is_given_up_at_once(node: Setup) -> None:
    node.pay(10, 20, 30, 40, 50)
    node.chain.revert_next = ["NotPayee"]
    node.round()
    node.round()
    assert node.chain.prepared == []
    stored = node.stored(IntentKind.CHECKPOINT, 5)
    assert stored.status == IntentStatus.FAILED.value and "NotPayee" in stored.error
    assert [g.intent.intent_id for g in node.executor.stats.gave_up] == [stored.id]
    assert node.executor.open_intents() == []
    assert node.service.get_channel(node.cid).confirmed_sequence == 0


def test_a_stale_close_is_answered_and_settled_after_the_challenge_period() -> None:
    node = Setup(interval=10)
    node.pay(10, 20, 30)  # below the interval: the chain has none of them
    node.chain.close_by(node.cid, addr(BOB))  # bob closes with nothing recorded
    node.round()  # the watcher sees the close; the answer is sent
    node.round()  # and mined

    # the watchtower answered with alice's latest payment (it pays bob: the operator may submit it)
    assert [(c.kind, [p.sequence for p in c.proofs]) for c in node.chain.prepared] == [(IntentKind.UPDATE, [3])]
    assert (node.chain.records[node.cid].seq_a, node.chain.records[node.cid].sent_a) == (3, 60)
    assert node.service.get_channel_aggregate(node.cid).status == ChannelStatus.SETTLING.value

    # the settle waits for the challenge period ...
    settle_at = node.chain.records[node.cid].settle_at
    node.chain.now = settle_at - 1
    node.round()
    assert [c.kind for c in node.chain.prepared] == [IntentKind.UPDATE]
    # ... and is sent once it is over; the chain's payouts close the channel
    node.chain.now = settle_at
    node.round()
    assert [c.kind for c in node.chain.prepared] == [IntentKind.UPDATE, IntentKind.SETTLE]
    assert node.chain.records[node.cid].status is OnChainStatus.SETTLED
    channel = node.service.get_channel_aggregate(node.cid)
    assert channel.status == ChannelStatus.CLOSED.value
    assert channel.final_balances == {addr(ALICE): 940, addr(BOB): 560}
    assert node.executor.open_intents() == [] and node.executor.stats.gave_up == []


def test_an_old_topic_intent_event_still_reconstructs() -> None:
    """Intents stored under ``infrastructure.settlement.records`` (the module's earlier name) still read."""
    from domain.settlement import Intent

    app = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    intent = Intent(intent_id(IntentKind.CHECKPOINT, uuid.uuid4(), 5), IntentKind.CHECKPOINT, uuid.uuid4(), 5)
    agg = SettlementIntent.raised(intent)
    agg.submitted("0xab", OPERATOR, 7, "0x01")
    stored = [app.mapper.to_stored_event(e) for e in agg.collect_events()]
    old = [replace(s, topic=s.topic.replace(".aggregates:", ".records:")) for s in stored]
    assert old[0].topic == "infrastructure.settlement.records:SettlementIntent.IntentRaised"
    app.recorder.insert_events(old)
    restored = app.repository.get(agg.id)
    assert isinstance(restored, SettlementIntent)
    assert (restored.status, restored.tx_hash, restored.nonce) == (IntentStatus.SUBMITTED.value, "0xab", 7)
    assert restored.intent == intent


def test_an_old_topic_cursor_event_still_resolves() -> None:
    from eventsourcing.utils import resolve_topic

    from infrastructure.settlement.aggregates import ProcessCursor

    assert resolve_topic("infrastructure.settlement.records:ProcessCursor.CursorMoved") is ProcessCursor.CursorMoved
    assert resolve_topic("infrastructure.settlement.records:ProcessCursor") is ProcessCursor


def test_after_a_save_that_wrote_nothing_the_executor_continues_from_its_store(node: Setup) -> None:
    """A commit whose outcome is unknown (a broker outage in the settler's Kafka store) may have written
    nothing while memory moved on; the settler then reloads, and the checkpoint still lands once."""
    node.pay(10, 20, 30, 40, 50)
    recorder = node.service.recorder
    insert = recorder.insert_events

    def refuse_once(*args, **kwargs):
        recorder.insert_events = insert
        raise OSError("commit outcome unknown")

    recorder.insert_events = refuse_once
    with pytest.raises(OSError, match="outcome unknown"):
        node.executor.catch_up()
    with pytest.raises(AggregateNotFoundError):
        node.service.repository.get(intent_id(IntentKind.CHECKPOINT, node.cid, 5, 0))  # nothing was written
    node.round()
    assert node.chain.prepared == []  # memory moved past the request: from memory alone it would stall
    node.executor.reload()
    node.watcher.reload()
    node.round()
    node.round()
    assert [(c.kind, [p.sequence for p in c.proofs]) for c in node.chain.prepared] == [(IntentKind.CHECKPOINT, [5])]
    assert node.service.get_channel(node.cid).confirmed_sequence == 5
