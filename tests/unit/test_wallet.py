"""The payer's wallet: its record, the no-fork rule, crash recovery and reconciling with a channel's log.

The channel's log here is a real ChannelService on the in-memory event store (the same command
handlers a node runs), fed the exact bytes the wallet sent; the Kafka transport and topics are
tested for real in tests/integration/client/.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from domain.channel import ChannelParameters
from domain.crypto import PrivateKey
from domain.errors import Overspend
from domain.protocol import GENESIS, SignedInvoice
from infrastructure import bootstrap
from infrastructure.client import (
    ChannelTerms,
    Delivery,
    DeliveryUnknown,
    KafkaAcknowledgements,
    PaymentRefused,
    PaymentState,
    UntrackedChannel,
    Wallet,
    WalletRecord,
)
from infrastructure.client.acks import Refusal
from infrastructure.settings import Settings
from infrastructure.tools.workload import DEV_DOMAIN

A = PrivateKey.from_seed("wallet-test/a")
B = PrivateKey.from_seed("wallet-test/b")


def address(key: PrivateKey) -> str:
    from domain.addresses import eth_address_from_public_key

    return eth_address_from_public_key(key.public_key)


class Collecting:
    """A transport that keeps what it was handed (and can fail on demand)."""

    name = "collect"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.lock = threading.Lock()
        self.fail: Exception | None = None

    def send(self, raw: bytes, channel: uuid.UUID) -> Delivery:
        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.sent.append(raw)
            return Delivery(0, len(self.sent) - 1)

    def close(self) -> None:
        pass


class LogAcks(KafkaAcknowledgements):
    """The acknowledgements of a ChannelService fed by hand; refusals given by the test."""

    def __init__(self, service: Any) -> None:
        super().__init__(service, {}, inbound_topic="in", rejected_topic="rej")
        self.refused: dict[str, Refusal] = {}

    def refusals(self, channel: uuid.UUID, invoice_ids: set[str], since: float) -> dict[str, Refusal]:
        return {i: r for i, r in self.refused.items() if i in invoice_ids}

    def close(self) -> None:
        pass


def terms(channel: uuid.UUID, deposit_a: int = 10**18, deposit_b: int = 0) -> ChannelTerms:
    return ChannelTerms(channel=channel, participant_a=address(A), participant_b=address(B), currency="ETH",
                        deposit_a=deposit_a, deposit_b=deposit_b, domain=DEV_DOMAIN)


@pytest.fixture
def channel() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def service(channel):
    svc = bootstrap.channel_service(Settings(event_store="memory"))
    svc.open_channel(channel_id=channel, public_key_a=A.public_key, public_key_b=B.public_key, currency="ETH",
                     deposit_a=10**18, deposit_b=0, parameters=ChannelParameters(3600, 1000, 3600),
                     domain=DEV_DOMAIN, at=0)
    return svc


def wallet(path: Path, key: PrivateKey = A, transport: Any = None, acks: Any = None, **kw: Any) -> Wallet:
    return Wallet(WalletRecord(path), key, transport=transport, acks=acks, **kw)


def test_payments_form_one_hash_chain_in_the_record(tmp_path, channel):
    w = wallet(tmp_path / "w.sqlite", transport=Collecting())
    w.track(terms(channel))
    paid = [w.pay(channel, 10 + i) for i in range(5)]
    assert [p.sequence for p in paid] == [1, 2, 3, 4, 5]
    assert all(p.state is PaymentState.SENT for p in paid)
    txs = [SignedInvoice.from_json(p.raw) for p in paid]
    assert txs[0].hash_pointer_to_previous == GENESIS
    for before, after in zip(txs, txs[1:], strict=False):
        assert after.hash_pointer_to_previous == before.pointer
    assert [t.buyer_total for t in txs] == [10, 21, 33, 46, 60]
    st = w.channel(channel)
    assert (st.sequence, st.head, st.my_total) == (5, txs[-1].pointer, 60)


def test_concurrent_pay_calls_from_threads_get_distinct_sequences(tmp_path, channel, service):
    transport = Collecting()
    w = wallet(tmp_path / "w.sqlite", transport=transport)
    w.track(terms(channel))
    errors: list[BaseException] = []

    def pay_many() -> None:
        try:
            for _ in range(15):
                w.pay(channel, 7)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=pay_many) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    txs = sorted((SignedInvoice.from_json(r) for r in transport.sent), key=lambda t: t.sequence)
    assert [t.sequence for t in txs] == list(range(1, 91))
    # the node applies every one of them, in order: no fork, no gap
    results = service.accept_payments(txs, at=1)
    assert Counter(r.outcome.value for r in results) == {"accepted": 90}
    assert service.get_channel(channel).sent[0] == 90 * 7


def _pay_in_process(path: str, channel: str, n: int) -> None:
    w = wallet(Path(path))
    for _ in range(n):
        w.sign_next(uuid.UUID(channel), 3)


def test_concurrent_processes_share_the_record_without_forking(tmp_path, channel):
    path = tmp_path / "w.sqlite"
    wallet(path).track(terms(channel))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_pay_in_process, args=(str(path), str(channel), 20)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    payments = wallet(path).payments(channel)
    assert [p.sequence for p in payments] == list(range(1, 61))
    for before, after in zip(payments, payments[1:], strict=False):
        assert after.previous == before.pointer


def test_one_live_payment_per_sequence_is_a_constraint_of_the_record(tmp_path, channel):
    w = wallet(tmp_path / "w.sqlite")
    w.track(terms(channel))
    p = w.sign_next(channel, 5)
    twin = p.__class__(**{**p.__dict__, "tx_hash": "0x" + "ab" * 32})
    with pytest.raises(sqlite3.IntegrityError):
        w.record.insert_payment(twin)


def test_a_crash_between_record_and_send_resends_the_identical_bytes(tmp_path, channel, service):
    path = tmp_path / "w.sqlite"

    def crash(_payment: Any) -> None:
        raise KeyboardInterrupt("killed after recording, before sending")

    first = Collecting()
    w = wallet(path, transport=first, after_record=crash)
    w.track(terms(channel))
    with pytest.raises(KeyboardInterrupt):
        w.pay(channel, 100)
    assert first.sent == []
    (recorded,) = w.payments(channel)
    assert recorded.state is PaymentState.RECORDED
    w.record.close()

    again = Collecting()
    w2 = wallet(path, transport=again)
    resent = w2.resend()
    assert again.sent == [recorded.raw]  # the same bytes, not a new signature
    assert resent[0].state is PaymentState.SENT and resent[0].attempts == 1
    nxt = w2.pay(channel, 50)
    assert nxt.sequence == 2 and nxt.previous == recorded.pointer
    # the node takes both, and the repeat of the first is a no-op
    txs = [SignedInvoice.from_json(r) for r in [recorded.raw, recorded.raw, nxt.raw]]
    assert [r.outcome.value for r in service.accept_payments(txs, at=1)] == ["accepted", "duplicate", "accepted"]


def test_an_unknown_delivery_stays_recorded_and_is_resent_before_the_next_payment(tmp_path, channel):
    t = Collecting()
    w = wallet(tmp_path / "w.sqlite", transport=t)
    w.track(terms(channel))
    t.fail = DeliveryUnknown("broker down")
    with pytest.raises(DeliveryUnknown):
        w.pay(channel, 1)
    (p,) = w.payments(channel)
    assert (p.state, p.attempts) == (PaymentState.RECORDED, 1)
    t.fail = None
    second = w.pay(channel, 2)
    assert t.sent == [p.raw, second.raw]
    assert [q.state for q in w.payments(channel)] == [PaymentState.SENT, PaymentState.SENT]


def test_a_refusal_frees_its_sequence_and_voids_what_chains_on_it(tmp_path, channel):
    t = Collecting()
    w = wallet(tmp_path / "w.sqlite", transport=t)
    w.track(terms(channel))
    first = w.pay(channel, 1)
    second = w.sign_next(channel, 2)  # recorded, not yet sent: it chains on the refused one
    t.fail = PaymentRefused("Overspend", "payment exceeds the balance", 422)
    third = w.sign_next(channel, 3)
    with pytest.raises(PaymentRefused):
        w.send(w.record.payment(channel, w.address, 2))  # type: ignore[arg-type]
    states = {p.sequence: (p.state, p.reason) for p in w.payments(channel)}
    assert states == {1: (PaymentState.SENT, None), 2: (PaymentState.REJECTED, "Overspend"),
                      3: (PaymentState.VOID, "Superseded")}
    t.fail = None
    assert w.resend() == []  # a void or rejected payment is never sent
    again = w.pay(channel, 2)
    assert again.sequence == 2 and again.previous == first.pointer and again.tx_hash != second.tx_hash
    assert third.tx_hash not in {p.tx_hash for p in w.payments(channel, (PaymentState.SENT,))}


def test_local_refusals(tmp_path, channel):
    w = wallet(tmp_path / "w.sqlite", transport=Collecting())
    with pytest.raises(UntrackedChannel):
        w.pay(channel, 1)
    w.track(terms(channel, deposit_a=10))
    with pytest.raises(Overspend):
        w.pay(channel, 11)
    assert w.payments(channel) == []


def test_reconcile_takes_acceptances_refusals_and_the_counterparty_payments(tmp_path, channel, service):
    acks = LogAcks(service)
    ta, tb = Collecting(), Collecting()
    wa = wallet(tmp_path / "a.sqlite", A, ta, acks)
    wb = wallet(tmp_path / "b.sqlite", B, tb, acks)
    wa.track(terms(channel))
    wb.track(terms(channel))
    p1, p2 = wa.pay(channel, 100), wa.pay(channel, 200)
    service.accept_payments([SignedInvoice.from_json(r) for r in ta.sent], at=1)
    r = wa.reconcile(channel)
    assert (r.accepted, r.unsettled, r.node_sequence) == ([1, 2], 0, 2)

    # B learns A's payments, then pays back on the channel's head
    rb = wb.reconcile(channel)
    assert rb.counterparty == [1, 2]
    stb = wb.channel(channel)
    assert (stb.sequence, stb.their_total, stb.balance) == (2, 300, 300)
    assert stb.their_latest["sequence"] == 2
    back = wb.pay(channel, 50)
    assert back.sequence == 3 and back.previous == p2.pointer
    service.accept_payments([SignedInvoice.from_json(back.raw)], at=2)

    # A, unaware, signs on its own head: the node refuses it (its sequence is taken)
    stale = wa.pay(channel, 10)
    assert stale.sequence == 3
    (result,) = service.accept_payments([SignedInvoice.from_json(stale.raw)], at=3)
    acks.refused[str(stale.invoice_id)] = Refusal(result.reason, str(result))
    r = wa.reconcile(channel)
    assert r.counterparty == [3]
    assert wa.record.payment(channel, wa.address, 3, stale.tx_hash).state in (PaymentState.REJECTED,
                                                                              PaymentState.VOID)
    st = wa.channel(channel)
    assert (st.sequence, st.my_total, st.their_total) == (3, 300, 50)
    fresh = wa.pay(channel, 10)
    assert fresh.sequence == 4
    (ok,) = service.accept_payments([SignedInvoice.from_json(fresh.raw)], at=4)
    assert ok.outcome.value == "accepted"
    assert wa.reconcile(channel).accepted == [4]
    assert p1.state is PaymentState.SENT  # records handed out are snapshots; the record moved on


def test_terms_from_an_open_request_and_from_json(channel):
    from infrastructure.node.messages import OpenChannelRequest

    req = OpenChannelRequest(channel=channel, public_key_a="0x" + A.public_key.hex(),
                             public_key_b="0x" + B.public_key.hex(), deposit_a=5, deposit_b=7,
                             chain_id=DEV_DOMAIN.chain_id, contract=DEV_DOMAIN.verifying_contract)
    t = ChannelTerms.from_open_request(req)
    assert (t.participant_a, t.participant_b, t.deposit_a, t.deposit_b) == (address(A), address(B), 5, 7)
    doc = {"channel": str(channel), "participantA": address(A), "participantB": address(B), "currency": "ETH",
           "depositA": "5", "depositB": "7", "chainId": DEV_DOMAIN.chain_id,
           "contract": DEV_DOMAIN.verifying_contract}
    assert ChannelTerms.parse(doc) == t
    with pytest.raises(ValueError, match="depositA"):
        ChannelTerms.parse({**doc, "depositA": 5})
    assert t.state_for(address(B)).role == "B"
