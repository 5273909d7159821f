"""Properties of the Channel over random payments, locked transfers, unlocks and lock expiries in both
directions with an advancing clock (hypothesis state machine): money is conserved, no balance goes below
zero, at most 160 pending locks, and replaying the recorded events gives the live state."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.channel import Channel
from domain.errors import ParsecError
from domain.kinds import LOCK_EXPIRY_MARGIN
from domain.locks import MAX_PENDING_LOCKS
from tests.builders import ALICE, BOB, PARAMS, T0, addr, open_channel

PARTIES = (ALICE, BOB)


def replay(events) -> Channel:
    aggregate = None
    for e in events:
        aggregate = e.mutate(aggregate)
    return aggregate


class ChannelWithLocks(RuleBasedStateMachine):
    @initialize(deposit_a=st.integers(0, 2_000), deposit_b=st.integers(0, 2_000))
    def open(self, deposit_a: int, deposit_b: int) -> None:
        self.channel, self.ledger = open_channel(deposit_a, deposit_b, channel_id=uuid.uuid4())
        self.deposits = deposit_a + deposit_b
        self.events = list(self.channel.collect_events())
        self.now = T0
        self.secrets: dict[bytes, bytes] = {}  # secret hash -> secret, for every lock ever made
        self.n = 0

    def _try(self, tx) -> bool:
        """Offer ``tx``; on a refusal nothing may change. Returns whether it was accepted."""
        before = dict(self.channel.__dict__)
        try:
            self.channel.accept_payment(tx, self.now)
        except ParsecError:
            assert self.channel.__dict__ == before
            return False
        self.events += self.channel.collect_events()
        return True

    @rule(who=st.sampled_from(PARTIES), price=st.integers(1, 900))
    def pay(self, who, price: int) -> None:
        tx = self.ledger.pay(who, price, advance=False)
        if self._try(tx):
            self.ledger.advance(tx)

    @rule(who=st.sampled_from(PARTIES), amount=st.integers(1, 900), lifetime=st.integers(-5, PARAMS.challenge_period + 5))
    def lock(self, who, amount: int, lifetime: int) -> None:
        self.n += 1
        secret = self.n.to_bytes(32, "big")
        tx = self.ledger.lock(who, amount, secret, self.now + lifetime, advance=False)
        if self._try(tx):
            self.ledger.advance(tx)
            self.secrets[tx.parsed_terms.secret_hash] = secret
            assert 0 < lifetime <= PARAMS.challenge_period

    @precondition(lambda self: any(self.ledger.locks.get(addr(p)) for p in PARTIES))
    @rule(who=st.sampled_from(PARTIES), pick=st.integers(0, 1_000))
    def unlock(self, who, pick: int) -> None:
        pending = self.ledger.locks.get(addr(who)) or []
        if not pending:
            return
        secret = self.secrets[pending[pick % len(pending)].secret_hash]
        payee = addr(BOB if who is ALICE else ALICE)
        received = self.channel.balance_of(payee)
        tx = self.ledger.unlock(who, secret, advance=False)
        assert self._try(tx)
        self.ledger.advance(tx)
        assert self.channel.balance_of(payee) > received

    @precondition(lambda self: any(self.ledger.locks.get(addr(p)) for p in PARTIES))
    @rule(who=st.sampled_from(PARTIES), pick=st.integers(0, 1_000))
    def expire(self, who, pick: int) -> None:
        pending = self.ledger.locks.get(addr(who)) or []
        if not pending:
            return
        lock = pending[pick % len(pending)]
        tx = self.ledger.expire(who, lock.secret_hash, advance=False)
        accepted = self._try(tx)
        assert accepted == (self.now > lock.expiry + LOCK_EXPIRY_MARGIN)
        if accepted:
            self.ledger.advance(tx)

    @rule(seconds=st.integers(1, 2 * PARAMS.challenge_period))
    def wait(self, seconds: int) -> None:
        self.now += seconds

    @invariant()
    def money_is_conserved_and_nothing_below_zero(self) -> None:
        ch = self.channel
        spendable = sum(ch.balance_of(p) for p in ch.participants)
        locked = sum(ch.locked_of(p) for p in ch.participants)
        assert spendable + locked == self.deposits
        assert all(ch.balance_of(p) >= 0 and ch.locked_of(p) >= 0 for p in ch.participants)
        assert all(len(ch.pending_locks(p)) <= MAX_PENDING_LOCKS for p in ch.participants)

    @invariant()
    def replay_equals_live(self) -> None:
        assert replay(self.events).__dict__ == self.channel.__dict__


ChannelWithLocks.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestChannelWithLocks = ChannelWithLocks.TestCase
