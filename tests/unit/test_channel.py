"""The Channel aggregate, given / when / then on its events."""

import uuid

import pytest

from domain.channel import RETAINED_HASHES, Channel, ChannelParameters, ChannelStatus, PaymentOutcome
from domain.errors import (
    BrokenHashPointer,
    ChannelIsClosed,
    ChannelNotOpen,
    ConflictingPayment,
    CumulativeTotalMismatch,
    CurrencyMismatch,
    InvalidChannelParameters,
    NotAParticipant,
    Overspend,
    SequenceGap,
    WrongChannel,
    WrongDomain,
)
from domain.money import Currency
from domain.protocol import HashPointer, SigningDomain
from tests.builders import ALICE, BOB, CAROL, DOMAIN, T0, Ledger, addr, open_channel


def event_names(channel: Channel) -> list[str]:
    return [type(e).__name__ for e in channel.collect_events()]


def test_opening_a_channel_records_who_what_and_the_rules():
    # when
    channel, _ = open_channel(1000, 500)
    # then
    events = channel.collect_events()
    assert [type(e).__name__ for e in events] == ["ChannelOpened"]
    opened = events[0]
    assert opened.participants == [addr(ALICE), addr(BOB)]
    assert opened.deposits == [1000, 500] and opened.currency == "ETH"
    assert (opened.checkpoint_interval, opened.checkpoint_timeout, opened.challenge_period) == (5, 60, 3600)
    assert channel.balances == {addr(ALICE): 1000, addr(BOB): 500}
    assert channel.status == ChannelStatus.OPEN.value


def test_opening_with_bad_parameters_is_refused():
    with pytest.raises(InvalidChannelParameters, match="checkpoint_interval"):
        ChannelParameters(challenge_period=1, checkpoint_interval=0, checkpoint_timeout=1)
    with pytest.raises(InvalidChannelParameters, match="two different"):
        Channel.open(channel_id=uuid.uuid4(), public_key_a=ALICE.public_key, public_key_b=ALICE.public_key,
                     currency="ETH", deposit_a=1, deposit_b=1,
                     parameters=ChannelParameters(1, 1, 1), domain=DOMAIN, at=T0)


def test_a_payment_moves_balance_from_buyer_to_supplier():
    # given
    channel, ledger = open_channel(1000, 500)
    channel.collect_events()
    # when
    outcome = channel.accept_payment(ledger.pay(ALICE, 300), T0)
    # then
    (accepted,) = channel.collect_events()
    assert outcome is PaymentOutcome.ACCEPTED
    assert type(accepted).__name__ == "PaymentAccepted"
    assert (accepted.sequence, accepted.buyer, accepted.supplier, accepted.price) == (1, addr(ALICE), addr(BOB), 300)
    assert accepted.balances == [700, 800]
    assert channel.balances == {addr(ALICE): 700, addr(BOB): 800}
    assert channel.sequence == 1 and channel.head_hash == "0x" + ledger.head.transaction_hash.hex()


def test_payments_flow_both_ways_on_one_hash_chain():
    channel, ledger = open_channel(100, 100)
    for payer, price in [(ALICE, 30), (BOB, 50), (ALICE, 10), (BOB, 5)]:
        channel.accept_payment(ledger.pay(payer, price), T0)
    assert channel.sent == {addr(ALICE): 40, addr(BOB): 55}
    assert channel.balances == {addr(ALICE): 115, addr(BOB): 85}


def test_a_repeated_transaction_is_a_no_op_not_an_error_and_not_a_double_credit():
    channel, ledger = open_channel()
    tx = ledger.pay(ALICE, 10)
    channel.accept_payment(tx, T0)
    channel.collect_events()
    assert channel.accept_payment(tx, T0) is PaymentOutcome.DUPLICATE
    assert channel.collect_events() == []
    assert channel.balance_of(addr(BOB)) == 510


def test_a_different_transaction_at_a_taken_sequence_is_a_conflict():
    channel, ledger = open_channel()
    channel.accept_payment(ledger.pay(ALICE, 10), T0)
    fork = Ledger(ledger.channel_id)
    fork.n = 100
    with pytest.raises(ConflictingPayment):
        channel.accept_payment(fork.pay(ALICE, 11), T0)


def test_the_sequence_and_hash_pointer_must_extend_the_chain_exactly():
    channel, ledger = open_channel()
    channel.accept_payment(ledger.pay(ALICE, 10), T0)
    ledger.pay(ALICE, 10)  # signed but never delivered
    with pytest.raises(SequenceGap, match="1 earlier transaction"):
        channel.accept_payment(ledger.pay(ALICE, 10), T0)
    channel2, ledger2 = open_channel()
    channel2.accept_payment(ledger2.pay(ALICE, 10), T0)
    wrong = HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\x07" * 32)
    with pytest.raises(BrokenHashPointer):
        channel2.accept_payment(ledger2.pay(ALICE, 10, previous=wrong), T0)


def test_no_payment_beyond_what_the_payer_has():
    channel, ledger = open_channel(100, 0)
    channel.accept_payment(ledger.pay(ALICE, 100), T0)
    channel.collect_events()
    with pytest.raises(Overspend, match="exceeds the buyer's balance 0"):
        channel.accept_payment(ledger.pay(ALICE, 1, advance=False), T0)
    assert channel.collect_events() == [] and channel.balances[addr(ALICE)] == 0
    channel.accept_payment(ledger.pay(BOB, 100), T0)  # B received 100 and may spend it


def test_buyer_total_must_be_the_running_total():
    channel, ledger = open_channel()
    with pytest.raises(CumulativeTotalMismatch, match="should be 10"):
        channel.accept_payment(ledger.pay(ALICE, 10, buyer_total=15, advance=False), T0)


def test_payments_from_or_to_strangers_are_refused():
    channel, ledger = open_channel()
    stranger = Ledger(ledger.channel_id, a=CAROL, b=BOB)
    with pytest.raises(NotAParticipant):
        channel.accept_payment(stranger.pay(CAROL, 1), T0)
    to_stranger = Ledger(ledger.channel_id, a=ALICE, b=CAROL)
    with pytest.raises(NotAParticipant, match="counterparty"):
        channel.accept_payment(to_stranger.pay(ALICE, 1), T0)


def test_wrong_channel_domain_or_currency_is_refused():
    channel, ledger = open_channel()
    with pytest.raises(WrongChannel):
        channel.accept_payment(Ledger(uuid.uuid4()).pay(ALICE, 1), T0)
    other_chain = Ledger(ledger.channel_id, domain=SigningDomain(chain_id=5, verifying_contract=DOMAIN.verifying_contract))
    with pytest.raises(WrongDomain, match="chain 5"):
        channel.accept_payment(other_chain.pay(ALICE, 1), T0)
    with pytest.raises(CurrencyMismatch):
        channel.accept_payment(Ledger(ledger.channel_id, currency=Currency.BTC).pay(ALICE, 1), T0)


def test_every_mth_sequence_number_requests_a_checkpoint():
    channel, ledger = open_channel()  # m = 5
    for _ in range(4):
        channel.accept_payment(ledger.pay(ALICE, 1), T0)
    assert "CheckpointRequested" not in event_names(channel)
    channel.accept_payment(ledger.pay(BOB, 1), T0 + 1)
    names = event_names(channel)
    assert names == ["PaymentAccepted", "CheckpointRequested"]
    assert channel.checkpoint_sequence == 5


def test_checkpoint_events_carry_the_balance_proofs():
    channel, ledger = open_channel(1000, 500)
    for payer in (ALICE, BOB, ALICE, ALICE, BOB):
        channel.accept_payment(ledger.pay(payer, 10), T0)
    checkpoint = channel.collect_events()[-1]
    assert type(checkpoint).__name__ == "CheckpointRequested"
    assert checkpoint.reason == "interval" and checkpoint.sequence == 5
    assert checkpoint.balances == [1000 - 30 + 20, 500 - 20 + 30]
    assert sorted(e["sequence"] for e in checkpoint.evidence) == [4, 5]  # each one's latest


def test_the_checkpoint_timeout_requests_a_checkpoint_only_when_there_is_news():
    channel, ledger = open_channel()
    assert not channel.check_timeout(T0 + 3600)  # nothing to checkpoint
    channel.accept_payment(ledger.pay(ALICE, 1), T0 + 10)
    assert not channel.check_timeout(T0 + 59)
    assert channel.check_timeout(T0 + 60)
    assert event_names(channel)[-1] == "CheckpointRequested"
    assert not channel.check_timeout(T0 + 200)  # nothing new since


def test_settlement_stops_payments_and_close_is_final():
    channel, ledger = open_channel()
    channel.accept_payment(ledger.pay(ALICE, 10), T0)
    channel.request_settlement(T0, requested_by="alice")
    assert channel.status == "settling"
    with pytest.raises(ChannelNotOpen):
        channel.accept_payment(ledger.pay(ALICE, 10), T0)
    channel.close(T0 + 700)
    assert channel.final_balances == {addr(ALICE): 990, addr(BOB): 510}
    with pytest.raises(ChannelIsClosed):
        channel.accept_payment(ledger.pay(ALICE, 1), T0)
    with pytest.raises(ChannelIsClosed):
        channel.deposit(addr(ALICE), 1)
    with pytest.raises(ChannelIsClosed):
        channel.close(T0)


def test_a_dispute_names_the_payments_since_the_last_confirmed_checkpoint_without_copying_them():
    channel, ledger = open_channel()
    txs = [ledger.pay(p, 1) for p in (ALICE, BOB, ALICE, BOB, ALICE, BOB, ALICE)]
    for tx in txs:
        channel.accept_payment(tx, T0)
    channel.confirm_checkpoint(5, "0xabc", 12)
    channel.request_dispute(T0, requested_by="bob")
    dispute = channel.collect_events()[-1]
    assert type(dispute).__name__ == "DisputeRequested"
    assert (dispute.from_sequence, dispute.to_sequence) == (6, 7)
    assert dispute.head_hash == "0x" + txs[-1].transaction_hash.hex()
    assert not hasattr(dispute, "transactions")  # the payments stay in their own events


def test_defect9_a_channels_state_stays_bounded_however_long_its_history():
    """Snapshots are one Kafka record: the state must not grow with the number of payments."""
    import json

    channel, ledger = open_channel(10**9, 0, params=ChannelParameters(600, 10**6, 60))
    sizes = []
    for n in range(1, 3 * RETAINED_HASHES + 1):
        channel.accept_payment(ledger.pay(ALICE, 1), T0)
        if n in (RETAINED_HASHES, 3 * RETAINED_HASHES):
            sizes.append(len(json.dumps({k: v for k, v in channel.__dict__.items() if k != "_pending_events"},
                                        default=str)))
    assert len(channel.hashes) == RETAINED_HASHES
    assert sizes[1] <= sizes[0] + 1000  # flat, not linear in the history
    assert sizes[1] < 200_000
    # the retained window still tells a repeat from a fork
    assert channel.accept_payment(ledger.last, T0) is PaymentOutcome.DUPLICATE


def test_deposits_raise_the_balance():
    channel, _ = open_channel(10, 0)
    channel.deposit(addr(BOB), 5)
    assert channel.balances[addr(BOB)] == 5 and channel.total_deposits == 15
    with pytest.raises(NotAParticipant):
        channel.deposit(addr(CAROL), 5)
