"""Hashed timelocks in the settlement process: a secret's registration (pure transitions, the Channel's
request and refusals, the signed request and notice) and the executor's plans against an in-memory chain."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace

import pytest

from domain.control import REGISTER_SECRET_TYPE, RegisterSecret
from domain.crypto import PrivateKey
from domain.errors import ReplayedRequest, SecretOfNoPendingLock, UnauthorizedRequest
from domain.locks import locks_root
from domain.settlement import (
    RETRY_BACKOFF,
    ClosedOnChain,
    Confirmed,
    Failed,
    IntentKind,
    IntentStatus,
    ProcessState,
    RecordSecretRegistered,
    ReportGiveUp,
    SecretRegistrationWanted,
    SendTransaction,
    Submitted,
    intent_id,
    transition,
    wanted,
)
from infrastructure.chain.channels import OnChainStatus, locks_hash
from infrastructure.node.messages import (
    RegisterSecretRequest,
    SecretRegisteredNotice,
    encode_control,
    parse_control,
)
from tests.builders import ALICE, BOB, DOMAIN, addr
from tests.unit.test_settlement_executor import PERIOD, Setup

CH = uuid.UUID(int=7)
SECRET = bytes(range(32))
H = "0x" + hashlib.sha256(SECRET).hexdigest()
EXPIRY = 10_000


def run(state, *events):
    outputs = []
    for e in events:
        state, out = transition(state, e)
        outputs += out
    return state, outputs


def wanted_secret() -> SecretRegistrationWanted:
    return SecretRegistrationWanted(CH, H, "0x" + SECRET.hex(), EXPIRY)


# --- pure transitions ----------------------------------------------------------------------------
def test_a_registration_request_is_one_intent_with_an_id_from_channel_and_secret_hash():
    state, out = run(ProcessState(), wanted_secret())
    (send,) = out
    assert isinstance(send, SendTransaction)
    intent = send.intent
    assert intent.kind is IntentKind.REGISTER_SECRET and intent.subject == H and intent.deadline == EXPIRY
    assert intent.intent_id == intent_id(IntentKind.REGISTER_SECRET, CH, 0, subject=H)
    assert intent.intent_id != intent_id(IntentKind.REGISTER_SECRET, CH, 0, subject="0x" + "00" * 32)
    assert intent.payload == ({"secret": "0x" + SECRET.hex(), "secretHash": H},)
    again, out2 = run(state, wanted_secret())  # replayed: nothing sent twice
    assert out2 == [] and again == state


def test_a_confirmed_registration_tells_the_channel_once():
    iid = intent_id(IntentKind.REGISTER_SECRET, CH, 0, subject=H)
    state, out = run(ProcessState(), wanted_secret(), Submitted(iid, "0xaa"),
                     Confirmed(iid, "0xaa", 9, 45_000, revealed_at=5_000))
    assert out[-1] == RecordSecretRegistered(CH, H, 5_000, "0xaa")
    assert state.record(iid).status is IntentStatus.CONFIRMED and state.open_intents() == []
    _, again = run(state, Confirmed(iid, "0xaa", 9, 45_000, revealed_at=5_000))
    assert again == []


def test_a_failed_registration_is_retried_until_the_lock_expires_then_given_up():
    iid = intent_id(IntentKind.REGISTER_SECRET, CH, 0, subject=H)
    state, _ = run(ProcessState(max_attempts=2), wanted_secret())
    for attempt in range(4):  # more than max_attempts: the lock has not expired
        state, out = run(state, Failed(intent_id(IntentKind.REGISTER_SECRET, CH, 0, attempt, subject=H),
                                       "reverted", final=True, at=EXPIRY - 100))
        (send,) = out
        assert send.intent.attempt == attempt + 1 and send.intent.subject == H
        assert send.intent.intent_id == intent_id(IntentKind.REGISTER_SECRET, CH, 0, attempt + 1, subject=H)
        assert send.intent.not_before == EXPIRY - 100 + RETRY_BACKOFF[attempt]
    state, out = run(state, Failed(intent_id(IntentKind.REGISTER_SECRET, CH, 0, 4, subject=H), "late",
                                   final=True, at=EXPIRY + 1))
    assert len(out) == 1 and isinstance(out[0], ReportGiveUp)
    assert state.record(iid).status is IntentStatus.FAILED


# --- the Channel ---------------------------------------------------------------------------------
@pytest.fixture
def node() -> Setup:
    return Setup()


def _lock(node: Setup, payer=ALICE, amount: int = 300, secret: bytes = SECRET, expiry: int | None = None):
    tx = node.ledger.lock(payer, amount, secret, expiry or node.chain.now + PERIOD // 2)
    node.service.accept_payment(tx, node.chain.now)
    return tx


def test_the_channel_records_a_request_only_for_a_pending_locks_secret(node: Setup) -> None:
    _lock(node)
    with pytest.raises(SecretOfNoPendingLock):
        node.service.request_secret_registration(node.cid, bytes(32), node.chain.now)

    def auth_of(key: PrivateKey, nonce: int):
        request = RegisterSecretRequest(channel=node.cid, secret="0x" + SECRET.hex())
        return request.signed(key, DOMAIN, nonce=nonce, expiry=node.chain.now + 60).authenticate(DOMAIN)
    with pytest.raises(UnauthorizedRequest):
        node.service.request_secret_registration(node.cid, SECRET, node.chain.now,
                                                 auth=auth_of(PrivateKey.from_seed("stranger"), 1))
    assert node.service.request_secret_registration(node.cid, SECRET, node.chain.now, auth=auth_of(BOB, 5))
    (e,) = [e for e in node.service.channel_events(node.cid) if type(e).__name__ == "SecretRegistrationRequested"]
    assert (e.secret_hash, e.buyer, e.amount, e.requested_by, e.nonce) == (H, addr(ALICE), 300, addr(BOB), 5)
    assert isinstance(wanted(e), SecretRegistrationWanted) and wanted(e).expiry == e.expiry
    with pytest.raises(ReplayedRequest):
        node.service.request_secret_registration(node.cid, SECRET, node.chain.now, auth=auth_of(BOB, 5))
    # asked for already: a no-op (the process retries it until the lock expires)
    assert not node.service.request_secret_registration(node.cid, SECRET, node.chain.now, auth=auth_of(BOB, 6))


def test_the_signed_request_and_the_notice_on_the_wire() -> None:
    req = RegisterSecretRequest(channel=CH, secret=SECRET.hex()).signed(BOB, DOMAIN, nonce=3, expiry=99)
    assert parse_control(encode_control(req)) == req and req.secret == "0x" + SECRET.hex()
    assert req.authenticate(DOMAIN).signer == addr(BOB)
    assert REGISTER_SECRET_TYPE.encode_type == "RegisterSecret(bytes16 channelId,bytes32 secret,uint64 nonce,uint64 expiry)"
    assert req.typed() == RegisterSecret(CH, SECRET, 3, 99)
    notice = SecretRegisteredNotice(channel=CH, secret_hash=H, revealed_at=5, tx_hash="0xab").signed(
        ALICE, DOMAIN, issued_at=7)
    wire = json.loads(encode_control(notice))
    assert (wire["type"], wire["secretHash"], wire["revealedAt"]) == ("secret-registered", H, 5)
    assert parse_control(encode_control(notice)).signer(DOMAIN) == addr(ALICE)


# --- the executor against an in-memory chain -----------------------------------------------------
def test_the_executor_registers_once_and_an_earlier_registration_confirms_without_a_transaction(node: Setup) -> None:
    _lock(node)
    node.service.request_secret_registration(node.cid, SECRET, node.chain.now)
    node.round()
    assert [c.kind for c in node.chain.prepared] == [IntentKind.REGISTER_SECRET]
    h = bytes.fromhex(H[2:])
    assert node.service.get_channel_aggregate(node.cid).secret_registered_at(h) == node.chain.now
    node.round()
    node.start()
    node.round()
    assert len(node.chain.prepared) == 1

    # another lock whose secret someone else registered first: no transaction, the Channel records it
    other = bytes(range(1, 33))
    _lock(node, amount=20, secret=other)
    node.chain.secrets[hashlib.sha256(other).digest()] = node.chain.now - 5
    node.service.request_secret_registration(node.cid, other, node.chain.now)
    node.round()
    assert len(node.chain.prepared) == 1
    assert node.service.get_channel_aggregate(node.cid).secret_registered_at(
        hashlib.sha256(other).digest()) == node.chain.now - 5


def _closed_with_locks(node: Setup, proof) -> None:
    rec = node.chain.records[node.cid]
    node.chain.records[node.cid] = replace(
        rec, status=OnChainStatus.CLOSED_BY_A, settle_at=node.chain.now, seq_a=proof.sequence,
        sent_a=proof.buyer_total, locks_hash_a=locks_hash(proof.locked_amount, proof.locks_root))
    node.executor.observe([], now=node.chain.now)
    node.executor._apply([ClosedOnChain(node.cid, 0, node.chain.now)])


def test_the_settle_waits_for_an_undecided_lock_then_sends_the_locks_of_the_recorded_sequence(node: Setup) -> None:
    node.pay(10)
    proof = _lock(node, expiry=node.chain.now + 100)
    later = node.ledger.pay(ALICE, 5)  # after the recorded sequence: not what the chain holds
    node.service.accept_payment(later, node.chain.now)
    _closed_with_locks(node, proof)
    node.executor.tick(node.chain.now)
    assert node.chain.prepared == []  # the lock is neither registered nor expired
    node.chain.now += 101
    node.executor.tick(node.chain.now)
    (call,) = node.chain.prepared
    assert call.kind is IntentKind.SETTLE and call.locks is not None
    assert call.locks[1] == b"" and locks_root(node.ledger.locks[addr(ALICE)]) == proof.locks_root
    assert call.locks[0] == b"".join(lock.packed() for lock in node.ledger.locks[addr(ALICE)])


def test_a_recorded_lock_state_the_log_cannot_rebuild_fails_the_settle_with_its_reason(node: Setup) -> None:
    proof = _lock(node, expiry=node.chain.now + 100)
    _closed_with_locks(node, proof)
    rec = node.chain.records[node.cid]
    node.chain.records[node.cid] = replace(rec, locks_hash_a=b"\x01" * 32)
    node.chain.now += 101
    node.executor.tick(node.chain.now)
    assert node.chain.prepared == []
    stored = node.executor.intent(intent_id(IntentKind.SETTLE, node.cid, 0))
    assert stored.status == IntentStatus.FAILED.value
    assert "do not hash to the lock state the contract recorded" in stored.error
