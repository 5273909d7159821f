"""Properties of the Channel over random payment sequences (hypothesis)."""

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.channel import Channel
from domain.crypto import recover_public_key
from domain.errors import ParsecError
from domain.protocol import GENESIS_HASH, SignedInvoice
from tests.builders import ALICE, BOB, T0, addr, open_channel

action = st.tuples(
    st.sampled_from(["pay", "pay", "pay", "repeat", "overspend", "gap"]),
    st.booleans(),  # True: Alice pays, else Bob
    st.integers(min_value=1, max_value=400),
)


def replay(events) -> Channel:
    aggregate = None
    for e in events:
        aggregate = e.mutate(aggregate)
    return aggregate


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deposit_a=st.integers(min_value=0, max_value=1000),
    deposit_b=st.integers(min_value=0, max_value=1000),
    actions=st.lists(action, max_size=30),
)
def test_random_payment_sequences_keep_the_channel_sound(deposit_a, deposit_b, actions):
    channel, ledger = open_channel(deposit_a, deposit_b, channel_id=uuid.UUID(int=deposit_a * 7919 + deposit_b))
    events = list(channel.collect_events())
    accepted: list[SignedInvoice] = []
    for kind, alice_pays, price in actions:
        payer = ALICE if alice_pays else BOB
        before = dict(channel.balances)
        if kind == "repeat" and accepted:
            channel.accept_payment(accepted[-1], T0)
        elif kind == "gap":
            ledger.pay(payer, 1, advance=False)
            try:
                channel.accept_payment(ledger.pay(payer, 1, advance=False, sequence=ledger.sequence + 2), T0)
            except ParsecError:
                pass
        else:
            if kind == "overspend":
                price = channel.balance_of(addr(payer)) + price
            tx = ledger.pay(payer, price, advance=False)
            try:
                channel.accept_payment(tx, T0)
            except ParsecError:
                assert channel.balances == before  # a refused payment changes no balance
                continue
            ledger.pay(payer, price)  # the client's view advances only when accepted
            accepted.append(tx)
        events += channel.collect_events()

        # the sum of both balances always equals the deposits; none is negative
        balances = channel.balances
        assert sum(balances.values()) == deposit_a + deposit_b
        assert min(balances.values()) >= 0

    # the hash-pointer chain verifies: each points at the previous digest, each is the buyer's
    previous = GENESIS_HASH
    for seq, tx in enumerate(accepted, start=1):
        assert tx.sequence == seq and tx.hash_pointer_to_previous.transaction_hash == previous
        assert recover_public_key(tx.transaction_hash, tx.invoice_signature)[1:] != b""
        previous = tx.transaction_hash
    assert channel.head_hash == "0x" + previous.hex()

    # balances after each payment are derivable from the events alone
    for e in events:
        if type(e).__name__ == "PaymentAccepted":
            assert sum(e.balances) == deposit_a + deposit_b

    # replaying the stored events reproduces the same state
    again = replay(events)
    assert again.balances == channel.balances
    assert again.sequence == channel.sequence and again.head_hash == channel.head_hash
    assert again.hashes == channel.hashes and again.version == channel.version
