"""The sliding window restores order from hash pointers; what it cannot place is refused."""

import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.channel import PaymentOutcome
from domain.errors import OutOfWindow, ParsecError, WindowExpired
from domain.reorder import ReorderWindow
from tests.builders import ALICE, BOB, T0, open_channel


def feed(window, channel, arrivals, now=T0):
    """Drive a channel through a window the way a node does; returns refusals."""
    refused = []
    for tx in arrivals:
        ready, out = window.offer(tx, channel.sequence, now)
        refused += out
        while ready:
            for r in ready:
                try:
                    channel.accept_payment(r, now)
                except ParsecError as e:
                    refused.append(e)
            ready = window.release(channel.id, channel.sequence)
    return refused


def test_out_of_order_arrivals_are_applied_in_chain_order():
    channel, ledger = open_channel(1000, 1000)
    txs = [ledger.pay(ALICE if i % 2 else BOB, i + 1) for i in range(10)]
    window = ReorderWindow(size=16)
    arrivals = [txs[3], txs[1], txs[2], txs[0], txs[9], txs[5], txs[4], txs[8], txs[7], txs[6]]
    assert feed(window, channel, arrivals) == []
    assert channel.sequence == 10 and len(window) == 0
    assert channel.head_hash == "0x" + txs[-1].transaction_hash.hex()


def test_repeats_inside_the_window_are_harmless():
    channel, ledger = open_channel()
    txs = [ledger.pay(ALICE, 1) for _ in range(4)]
    window = ReorderWindow(size=8)
    feed(window, channel, [txs[2], txs[2], txs[1], txs[0], txs[0], txs[3], txs[1]])
    assert channel.sequence == 4 and channel.sent[channel.participants[0]] == 4
    assert channel.accept_payment(txs[0], T0) is PaymentOutcome.DUPLICATE


def test_too_far_ahead_is_refused_with_a_reason():
    channel, ledger = open_channel()
    txs = [ledger.pay(ALICE, 1) for _ in range(6)]
    window = ReorderWindow(size=3)
    ready, refused = window.offer(txs[5], 0, T0)
    assert ready == [] and isinstance(refused[0].error, OutOfWindow)
    assert "6 ahead" in str(refused[0].error)


def test_a_full_window_pushes_out_the_farthest():
    channel, ledger = open_channel()
    txs = [ledger.pay(ALICE, 1) for _ in range(3)]
    window = ReorderWindow(size=3)
    assert window.offer(txs[1], 0, T0) == ([], [])
    assert window.offer(txs[2], 0, T0) == ([], [])
    assert window.offer(txs[2].model_copy(), 0, T0) == ([], [])  # same hash: held once
    fork3 = ledger.pay(BOB, 1, advance=False, sequence=3, previous=txs[1].pointer)
    assert window.offer(fork3, 0, T0) == ([], [])
    assert window.held(channel.id) == 3
    # one more distinct early arrival overflows: everything at the farthest sequence goes
    fork2 = ledger.pay(BOB, 2, advance=False, sequence=2, previous=txs[0].pointer)
    _, refused = window.offer(fork2, 0, T0)
    assert sorted(r.transaction.sequence for r in refused) == [3, 3]
    assert all(isinstance(r.error, OutOfWindow) for r in refused)
    assert window.held(channel.id) == 2


def test_waiting_too_long_for_a_missing_predecessor_is_refused():
    channel, ledger = open_channel()
    ledger.pay(ALICE, 1)  # lost
    late = ledger.pay(ALICE, 1)
    window = ReorderWindow(size=8, max_wait=30)
    window.offer(late, 0, T0)
    assert window.expire(T0 + 30) == []
    (refused,) = window.expire(T0 + 31)
    assert isinstance(refused.error, WindowExpired) and len(window) == 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 25), dup=st.floats(0, 0.5))
def test_any_shuffle_within_the_window_gives_the_same_channel(seed, n, dup):
    rng = random.Random(seed)
    channel, ledger = open_channel(10_000, 10_000, channel_id=uuid.UUID(int=seed))
    txs = [ledger.pay(rng.choice([ALICE, BOB]), rng.randint(1, 50)) for _ in range(n)]
    arrivals = txs + [t for t in txs if rng.random() < dup]
    rng.shuffle(arrivals)
    assert feed(ReorderWindow(size=n + 1), channel, arrivals) == []
    assert channel.sequence == n
    assert channel.head_hash == "0x" + txs[-1].transaction_hash.hex()
