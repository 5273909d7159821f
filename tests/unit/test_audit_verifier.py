"""The auditor's verifier (infrastructure/audit/verifier.py) on the events a real ChannelService stores.

Given the records of an honest log (an embedded ChannelService on the in-memory store: its stored
events encoded as the Kafka event store encodes them), the verifier passes every channel and its
replayed balances are the service's. Each tampering of one record is then named: its channel, the
sequence it concerns and a specific reason; a repeated record is a duplicate, and fine.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import ChannelService
from domain.protocol import HashPointer
from infrastructure.audit.verifier import RawRecord, Verifier
from infrastructure.kafka.codec import encode_event
from tests.builders import ALICE, BOB, CAROL, DOMAIN, PARAMS, T0, Ledger, addr

# --- an honest log ---------------------------------------------------------------------------------


def _open(service: ChannelService, a=ALICE, b=BOB, deposits=(10_000, 5_000)) -> Ledger:
    cid = uuid.uuid4()
    service.open_channel(channel_id=cid, public_key_a=a.public_key, public_key_b=b.public_key, currency="ETH",
                         deposit_a=deposits[0], deposit_b=deposits[1], parameters=PARAMS, domain=DOMAIN, at=T0)
    return Ledger(cid, a=a, b=b)


def _records(service: ChannelService) -> list[RawRecord]:
    """The service's stored events as Kafka records (infrastructure/kafka/codec.py), one partition."""
    out = []
    for n in service.recorder.select_notifications(start=1, limit=100_000):
        stored = StoredEvent(originator_id=n.originator_id, originator_version=n.originator_version,
                             topic=n.topic, state=n.state)
        key, value, headers = encode_event(stored)
        out.append(RawRecord(0, len(out), key, value, tuple(headers)))
    return out


@pytest.fixture
def log():
    """Two channels: 12 payments both ways in one (checkpoints every 5th), 7 then a settlement and a
    close in the other; the service that accepted them, the ledgers, the records."""
    service = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    one, two = _open(service), _open(service, ALICE, CAROL)
    for i in range(12):
        payer = BOB if i % 4 == 3 else ALICE
        service.accept_payment(one.pay(payer, 100 + i), at=T0 + i)
        if i < 7:
            service.accept_payment(two.pay(ALICE, 50), at=T0 + i)
    service.deposit(one.channel_id, addr(BOB), 1_000)
    service.request_checkpoint(two.channel_id, at=T0 + 20)
    service.confirm_checkpoint(two.channel_id, 5, "0x" + "ab" * 32, 7)
    service.request_settlement(two.channel_id, at=T0 + 30)
    service.close_channel(two.channel_id, at=T0 + 40)
    yield service, one, two, _records(service)
    service.close()


def _verify(records: list[RawRecord]) -> Verifier:
    v = Verifier()
    for rec in records:
        v.check(rec)
    return v


def _value(rec: RawRecord) -> dict:
    return json.loads(rec.value)


def _with_value(rec: RawRecord, doc: dict) -> RawRecord:
    return replace(rec, value=json.dumps(doc).encode())


def _topic(rec: RawRecord) -> str:
    return dict(rec.headers)["es.topic"].decode()


def _payment(records: list[RawRecord], ledger: Ledger, sequence: int) -> int:
    """The index of the PaymentAccepted record of ``sequence`` in ``ledger``'s channel."""
    for i, rec in enumerate(records):
        if rec.key == str(ledger.channel_id).encode() and _topic(rec).endswith("PaymentAccepted") \
                and _value(rec)["sequence"] == sequence:
            return i
    raise AssertionError(f"no payment {sequence}")


def _only_violation(v: Verifier, ledger: Ledger):
    bad = [c for c in v.channels.values() if not c.ok]
    assert [c.channel for c in bad] == [str(ledger.channel_id)], [c.violation for c in bad]
    return bad[0].violation


# --- the honest log passes -------------------------------------------------------------------------


def test_an_honest_log_passes_and_its_replayed_balances_are_the_services(log):
    service, one, two, records = log
    v = _verify(records)
    assert v.violations == []
    for ledger in (one, two):
        audit = v.channels[str(ledger.channel_id)]
        live = service.get_channel(ledger.channel_id)
        summary = audit.summary()
        assert summary["ok"] and summary["balances"] == list(live.balances)
        assert summary["sequence"] == live.sequence and summary["status"] == live.status
        assert audit.events == len(service.channel_events(ledger.channel_id))
    assert v.channels[str(two.channel_id)].summary()["status"] == "closed"


def test_a_repeated_record_is_a_duplicate_and_is_not_counted_twice(log):
    """MirrorMaker after a restart writes records again, at new offsets."""
    _, one, _, records = log
    i = _payment(records, one, 6)
    again = [replace(r, offset=100 + n) for n, r in enumerate(records[i - 3:i + 1])]
    v = _verify(records[:i + 1] + again + records[i + 1:])
    assert v.violations == []
    assert sum(c.duplicates for c in v.channels.values()) == 4  # the slice holds both channels' records
    honest = _verify(records).channels[str(one.channel_id)].summary()
    assert v.channels[str(one.channel_id)].summary()["balances"] == honest["balances"]


# --- each tampering, named -------------------------------------------------------------------------


def test_a_price_changed_in_the_signed_transaction_breaks_its_signature(log):
    _, one, _, records = log
    i = _payment(records, one, 3)
    doc = _value(records[i])
    doc["transaction"]["price"] = str(int(doc["transaction"]["price"]) + 1)
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.sequence, bad.reason, bad.event, bad.offset) == (3, "BadSignature", "PaymentAccepted", i), bad


def test_a_price_changed_and_signed_again_by_the_buyer_is_a_total_mismatch(log):
    """The buyer signs a cheaper payment with the same buyerTotal: its signature is good, the sum is not."""
    _, one, _, records = log
    i = _payment(records, one, 2)
    honest = _value(records[i])
    replay = Ledger(one.channel_id, a=ALICE, b=BOB)
    replay.pay(ALICE, 100)
    forged = replay.pay(ALICE, 50, buyer_total=201)  # the honest second payment was 101, total 201
    doc = {**honest, "price": 50, "transaction": forged.to_dict(),
           "transaction_hash": "0x" + forged.transaction_hash.hex(), "invoice_id": str(forged.invoice_id)}
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.sequence, bad.reason) == (2, "TotalMismatch")


def test_a_balance_the_event_claims_that_the_payments_do_not_give_is_named(log):
    _, one, _, records = log
    i = _payment(records, one, 3)
    doc = _value(records[i])
    doc["balances"] = [doc["balances"][0] + 5, doc["balances"][1] - 5]
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.sequence, bad.reason) == (3, "BalanceMismatch")


def test_a_broken_hash_link_is_named(log):
    """A transaction the buyer signed over another previous hash (its signature is good)."""
    _, one, _, records = log
    i = _payment(records, one, 3)
    honest = _value(records[i])
    replay = Ledger(one.channel_id, a=ALICE, b=BOB)
    replay.pay(ALICE, 100)
    replay.pay(ALICE, 101)
    forged = replay.pay(ALICE, 102, previous=HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\1" * 32))
    assert forged.buyer_total == int(honest["buyer_total"])
    doc = {**honest, "transaction": forged.to_dict(), "transaction_hash": "0x" + forged.transaction_hash.hex(),
           "invoice_id": str(forged.invoice_id)}
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.sequence, bad.reason) == (3, "BrokenHashLink")


def test_a_signature_replaced_by_the_counterpartys_is_named(log):
    _, one, _, records = log
    i = _payment(records, one, 5)
    doc = _value(records[i])
    # Bob's valid signature of his own payment 4, put on Alice's payment 5
    doc["transaction"]["invoiceSignature"] = _value(records[_payment(records, one, 4)])["transaction"][
        "invoiceSignature"]
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.sequence, bad.reason) == (5, "BadSignature")


def test_the_signature_of_the_other_participant_with_the_event_naming_another_buyer_is_named(log):
    """The event says Bob bought what Alice signed."""
    _, one, _, records = log
    i = _payment(records, one, 2)
    doc = _value(records[i])
    doc["buyer"], doc["supplier"] = doc["supplier"], doc["buyer"]
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.sequence, bad.reason) == (2, "BadSignature")


def test_an_event_dropped_from_the_middle_is_a_gap(log):
    _, one, _, records = log
    i = _payment(records, one, 7)
    v = _verify(records[:i] + records[i + 1:])
    bad = _only_violation(v, one)
    after = next(r for r in records[i + 1:] if r.key == records[i].key)  # the channel's next record
    assert (bad.reason, bad.event, bad.offset) == ("SequenceGap", _topic(after).rpartition(".")[2], after.offset)
    assert bad.sequence == 6  # the payments reached 6; what follows is missing 7


def test_an_event_of_another_channel_spliced_in_is_named(log):
    """Channel two's payment 3 under channel one's key, at channel one's next version."""
    _, one, two, records = log
    i = _payment(records, one, 4)
    foreign = records[_payment(records, two, 4)]
    headers = dict(records[i].headers)
    spliced = replace(foreign, key=records[i].key, headers=tuple(
        (k, headers["es.version"] if k == "es.version" else val) for k, val in foreign.headers))
    v = _verify(records[:i] + [spliced] + records[i:])
    bad = _only_violation(v, one)
    assert (bad.sequence, bad.reason, bad.offset) == (4, "WrongChannel", spliced.offset)


def test_the_same_version_with_other_content_is_a_fork(log):
    _, one, _, records = log
    i = _payment(records, one, 8)
    doc = _value(records[i])
    doc["balances"] = list(reversed(doc["balances"]))
    v = _verify(records + [replace(_with_value(records[i], doc), offset=999)])
    bad = _only_violation(v, one)
    assert (bad.reason, bad.offset) == ("Fork", 999)


def test_a_checkpoint_with_other_balances_is_named(log):
    _, one, _, records = log
    i = next(n for n, r in enumerate(records) if r.key == str(one.channel_id).encode()
             and _topic(r).endswith("CheckpointRequested"))
    doc = _value(records[i])
    doc["balances"][0] -= 1
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), one)
    assert (bad.event, bad.sequence, bad.reason) == ("CheckpointRequested", 5, "BalanceMismatch")


def test_a_close_with_other_balances_is_named(log):
    _, _, two, records = log
    i = next(n for n, r in enumerate(records) if _topic(r).endswith("ChannelClosed"))
    doc = _value(records[i])
    doc["balances"] = [doc["balances"][0] - 10, doc["balances"][1] + 10]
    records[i] = _with_value(records[i], doc)
    bad = _only_violation(_verify(records), two)
    assert (bad.event, bad.reason) == ("ChannelClosed", "BalanceMismatch")


@pytest.mark.parametrize("value", [b"not json", b'{"sequence": "x"}', b"{}"])
def test_a_record_it_cannot_decode_is_a_violation_not_a_crash(log, value):
    _, one, _, records = log
    i = _payment(records, one, 9)
    records[i] = replace(records[i], value=value)
    bad = _only_violation(_verify(records), one)
    assert bad.reason in {"Undecodable", "MalformedEvent"}
    assert (bad.offset, bad.event) == (i, "PaymentAccepted")


def test_a_record_without_event_headers_is_undecodable():
    v = Verifier()
    bad = v.check(RawRecord(3, 17, b"junk", b"{}", ()))
    assert (bad.channel, bad.partition, bad.offset, bad.reason) == ("?", 3, 17, "Undecodable")
    assert v.violations == [bad]


# --- the state file: a later run continues -----------------------------------------------------------


def test_a_run_continued_from_the_state_file_ends_where_one_run_does(log, tmp_path):
    from infrastructure.audit import state

    _, one, _, records = log
    half = len(records) // 2
    first = _verify(records[:half])
    state.save(tmp_path / "s.json", "A.events", {0: half}, first)
    positions, later = state.load(tmp_path / "s.json", "A.events")
    assert positions == {0: half}
    for rec in records[half - 2:]:  # two records again (a duplicate after a restart), then the rest
        later.check(rec)
    whole = _verify(records)
    assert later.violations == [] and later.records == len(records) + 2
    assert [c.summary() | {"duplicates": 0} for c in later.channels.values()] == \
        [c.summary() for c in whole.channels.values()]
    assert sum(c.duplicates for c in later.channels.values()) == 2


def test_a_state_file_of_another_topic_is_refused(log, tmp_path):
    from infrastructure.audit import state

    state.save(tmp_path / "s.json", "A.events", {}, _verify(log[3]))
    with pytest.raises(state.StateMismatch, match="not 'B.events'"):
        state.load(tmp_path / "s.json", "B.events")
