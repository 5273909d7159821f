"""Issue 14: the mediated transfer's pure core, several parties' cores driven by hand over a tiny in-test network."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from domain import mediation as m

A, M1, M2, B = ("0x" + c * 40 for c in "abcd")
SECRET = bytes(range(32))
H = hashlib.sha256(SECRET).digest()
PAYMENT = uuid.UUID(int=1)
T0 = 1_000_000


def params(me, **kw):
    base = dict(reveal_timeout=10, expiry_delta=30, fee_base=1, fee_ppm=1000, lock_expiry_margin=5)
    base.update(kw)
    return m.MediationParameters(me=me, **base)


class Network:
    """Turns each party's outputs into the other parties' inputs; keeps balances and the chain's secrets."""

    def __init__(self, route, behaviour=None, first_expiry=None, **kw):
        self.route = list(route)
        self.behaviour = behaviour or {}
        self.params = {p: params(p, reveal_offchain=self.behaviour.get(p) != "onchain", **kw) for p in route}
        self.state = {p: m.MediationState() for p in route}
        self.channels = {uuid.UUID(int=100 + i): (route[i], route[i + 1]) for i in range(len(route) - 1)}
        self.locks = {}  # channel -> (amount, expiry)
        self.balance = dict.fromkeys(route, 0)
        self.registered = {}  # secret hash -> time registered on-chain
        self.now = T0
        self.log = []
        self.sent = []  # every lock added, in route order: (amount, expiry)
        self.first_expiry = first_expiry or T0 + 40 * len(route)

    def channel(self, payer):
        return next(c for c, (a, _) in self.channels.items() if a == payer)

    def deliver(self, party, event):
        if self.behaviour.get(party) == "silent" and not isinstance(event, m.Tick):
            return
        self.state[party], outputs = m.transition(self.params[party], self.state[party], event)
        for out in outputs:
            self.log.append((party, out))
            self.handle(party, out)

    def handle(self, party, out):
        if isinstance(out, m.ForwardLock):
            i = self.route.index(party)
            if i + 1 >= len(self.route) or self.behaviour.get(party) == "noroute":
                self.deliver(party, m.ForwardFailed(out.secret_hash, "no route"))
                return
            ch, payee = self.channel(party), self.route[i + 1]
            amount, expiry = out.amount, out.expiry
            if party == self.route[0]:  # the initiator's pathfinder adds the fees of the hops ahead
                for p in reversed(self.route[1:-1]):
                    amount += self.params[p].fee(amount)
                expiry = self.first_expiry
            self.locks[ch] = (amount, expiry)
            self.sent.append((amount, expiry))
            self.deliver(party, m.LockSent(ch, payee, out.payment_id, out.secret_hash, amount, expiry, self.now))
            self.deliver(payee, m.LockReceived(ch, party, out.payment_id, out.secret_hash, amount, expiry,
                                               out.initiator, out.target, self.now))
        elif isinstance(out, m.RequestSecret):
            self.deliver(out.to, m.SecretRequested(party, out.payment_id, out.secret_hash, out.amount, out.expiry,
                                                   self.now))
        elif isinstance(out, m.RevealSecretTo):
            self.deliver(out.to, m.SecretLearned(out.secret, "peer", self.now))
        elif isinstance(out, m.SendUnlock):
            self.settle(out.channel, out.secret_hash, paid=True)
        elif isinstance(out, m.ExpireLock):  # the chain pays the payee if s was registered by the expiry
            _, expiry = self.locks.get(out.channel, (0, 0))
            self.settle(out.channel, out.secret_hash, paid=self.registered.get(out.secret_hash, expiry + 1) <= expiry)
        elif isinstance(out, m.FailLock):
            self.deliver(out.to, m.LockFailedReceived(out.channel, out.secret_hash, out.reason))
        elif isinstance(out, m.RegisterSecret):
            h = hashlib.sha256(out.secret).digest()
            if h not in self.registered:
                self.registered[h] = self.now
                for p in self.route:
                    self.deliver(p, m.SecretLearned(out.secret, "chain", self.now))
        elif isinstance(out, m.CloseForLock):
            _, expiry = self.locks[out.channel]
            paid = out.secret_hash in self.registered and self.registered[out.secret_hash] <= expiry
            self.settle(out.channel, out.secret_hash, paid=paid)

    def settle(self, channel, secret_hash, paid):
        if channel not in self.locks:
            return  # already settled
        amount, _ = self.locks.pop(channel)
        payer, payee = self.channels[channel]
        if paid:
            self.balance[payer] -= amount
            self.balance[payee] += amount
        event = m.LockUnlocked(channel, secret_hash) if paid else m.LockRemoved(channel, secret_hash)
        self.deliver(payer, event)
        self.deliver(payee, event)

    def start(self, amount=1000):
        self.deliver(self.route[0], m.PaymentStarted(PAYMENT, SECRET, H, amount, self.route[-1], self.now))

    def run_until(self, end, step=1):
        while self.now < end:
            self.now += step
            for p in self.route:
                self.deliver(p, m.Tick(self.now))

    def outputs(self, party, kind):
        return [o for p, o in self.log if p == party and isinstance(o, kind)]


def test_happy_path_every_lock_unlocked_and_fees_earned():
    net = Network([A, M1, M2, B])
    net.start(1000)
    assert net.outputs(A, m.PaymentSucceeded)
    assert not net.locks
    amounts = [net.locks.get(c) for c in net.channels]
    assert amounts == [None, None, None]
    assert net.balance[B] == 1000
    assert net.balance[M2] == net.params[M2].fee(1000)
    assert net.balance[M1] > 0 and net.balance[A] == -(1000 + net.balance[M1] + net.balance[M2])
    sent = [o for _, o in net.log if isinstance(o, m.ForwardLock)]
    assert [o.expiry for o in sent[1:]] == [net.first_expiry - 30, net.first_expiry - 60]
    assert all(not s.transfers for s in net.state.values())  # pruned


def test_hop_that_never_forwards_the_initiator_expires_and_fails():
    net = Network([A, M1, M2, B], behaviour={M1: "silent"})
    net.start()
    net.run_until(net.first_expiry + 5)
    assert not net.outputs(A, m.ExpireLock)  # not before expiry + margin
    net.run_until(net.first_expiry + 6)
    assert len(net.outputs(A, m.ExpireLock)) == 1
    [failed] = net.outputs(A, m.PaymentFailed)
    assert failed.retryable and failed.reason == "lock expired"
    assert net.balance[A] == 0


def test_uncooperative_upstream_mediator_goes_on_chain_in_the_danger_zone():
    net = Network([A, M1, M2, B])
    real = net.settle

    def m1_never_unlocks(channel, secret_hash, paid):
        if net.channels[channel][0] == M1 and paid and net.now < net.locks[channel][1] - 10:
            return  # M1 does not sign the unlock to M2
        real(channel, secret_hash, paid)
    net.settle = m1_never_unlocks
    net.start()
    m2_expiry = net.first_expiry - 30
    assert not net.outputs(M2, m.CloseForLock)
    net.run_until(m2_expiry - 11)
    assert not net.outputs(M2, m.CloseForLock) and not net.outputs(M2, m.RegisterSecret)
    net.run_until(m2_expiry - 10)
    assert len(net.outputs(M2, m.RegisterSecret)) == 1 and len(net.outputs(M2, m.CloseForLock)) == 1
    assert net.balance[M2] == net.params[M2].fee(1000)  # paid on-chain
    assert net.balance[B] == 1000


def test_target_reveals_only_on_chain():
    net = Network([A, M1, M2, B], behaviour={B: "onchain"})
    net.start()
    assert net.outputs(B, m.RegisterSecret) and not net.outputs(B, m.RevealSecretTo)
    assert net.balance[B] == 1000 and net.balance[M1] > 0 and net.balance[M2] > 0
    assert net.outputs(A, m.PaymentSucceeded)


@pytest.mark.parametrize("behaviour,kw,reason", [
    ({M2: "noroute"}, {}, "no route"),
    ({}, {"first_expiry": T0 + 60}, "expiry too short"),
])
def test_fail_back_reaches_the_initiator(behaviour, kw, reason):
    net = Network([A, M1, M2, B], behaviour=behaviour, **kw)
    net.start()
    [failed] = net.outputs(A, m.PaymentFailed)
    assert failed.reason == reason and failed.retryable
    assert not net.outputs(A, m.RevealSecretTo)
    net.run_until(net.first_expiry + 6)
    assert all(v == 0 for v in net.balance.values())
    assert not net.locks


def test_every_input_is_idempotent():
    p = params(M1)
    lock = m.LockReceived(uuid.UUID(int=1), A, PAYMENT, H, 1000, T0 + 100, A, B, T0)
    s1, out1 = m.transition(p, m.MediationState(), lock)
    s2, out2 = m.transition(p, s1, lock)
    assert [type(o) for o in out1] == [m.ForwardLock] and out2 == [] and s2 == s1
    sent = m.LockSent(uuid.UUID(int=2), M2, PAYMENT, H, out1[0].amount, out1[0].expiry, T0)
    s3, _ = m.transition(p, s2, sent)
    learned = m.SecretLearned(SECRET, "peer", T0 + 1)
    s4, out4 = m.transition(p, s3, learned)
    assert {type(o) for o in out4} == {m.SendUnlock, m.RevealSecretTo}
    s5, out5 = m.transition(p, s4, learned)
    assert out5 == [] and s5 == s4
    assert m.transition(p, s4, m.Tick(T0 + 95))[1]  # danger zone
    s6, _ = m.transition(p, s4, m.Tick(T0 + 95))
    assert m.transition(p, s6, m.Tick(T0 + 96))[1] == []


def test_output_ids_are_deterministic():
    p = params(M1)
    lock = m.LockReceived(uuid.UUID(int=1), A, PAYMENT, H, 1000, T0 + 100, A, B, T0)
    assert m.transition(p, m.MediationState(), lock)[1] == m.transition(p, m.MediationState(), lock)[1]


def test_state_json_round_trip():
    net = Network([A, M1, M2, B], behaviour={B: "silent"})
    net.start()
    for party, state in net.state.items():
        text = json.dumps(state.to_json())
        assert m.MediationState.from_json(json.loads(text)) == state, party
    assert any(state.transfers for state in net.state.values())


def test_initiator_ignores_a_secret_request_that_does_not_match():
    p = params(A)
    s, _ = m.transition(p, m.MediationState(), m.PaymentStarted(PAYMENT, SECRET, H, 1000, B, T0))
    for request in (m.SecretRequested(M1, PAYMENT, H, 1000, T0 + 100, T0),
                    m.SecretRequested(B, PAYMENT, H, 999, T0 + 100, T0),
                    m.SecretRequested(B, PAYMENT, H, 1000, T0 + 10, T0)):
        _, out = m.transition(p, s, request)
        assert [type(o) for o in out] == [m.InputIgnored]
    _, out = m.transition(p, s, m.SecretRequested(B, PAYMENT, H, 1000, T0 + 100, T0))
    assert [type(o) for o in out] == [m.RevealSecretTo]


def test_forwarded_amount_is_the_largest_that_covers_the_fee():
    p = params(M1, fee_base=3, fee_ppm=12_345)
    for incoming in range(0, 5000, 7):
        out = p.forwarded_amount(incoming)
        assert out <= 0 or out + p.fee(out) <= incoming
        assert (out + 1) + p.fee(out + 1) > incoming


def test_parameters_and_secret_are_checked():
    with pytest.raises(m.InvalidMediationParameters):
        m.MediationParameters(me=A, reveal_timeout=10, expiry_delta=10)
    with pytest.raises(m.SecretMismatch):
        m.transition(params(A), m.MediationState(), m.PaymentStarted(PAYMENT, SECRET, b"\0" * 32, 1, B, T0))


def test_mediator_does_not_unlock_an_expired_outgoing_lock():
    p = params(M1)
    s, out = m.transition(p, m.MediationState(), m.LockReceived(uuid.UUID(int=1), A, PAYMENT, H, 1000, T0 + 100,
                                                                  A, B, T0))
    s, _ = m.transition(p, s, m.LockSent(uuid.UUID(int=2), M2, PAYMENT, H, out[0].amount, out[0].expiry, T0))
    _, late = m.transition(p, s, m.SecretLearned(SECRET, "chain", out[0].expiry + 1))
    assert not [o for o in late if isinstance(o, m.SendUnlock)]  # the payee can no longer claim it on-chain
    assert [o for o in late if isinstance(o, m.RevealSecretTo)]  # but I still claim upstream


def test_target_requests_the_secret_only_with_time_to_claim():
    p = params(B)
    _, out = m.transition(p, m.MediationState(), m.LockReceived(uuid.UUID(int=3), M2, PAYMENT, H, 1000, T0 + 10,
                                                                  A, B, T0))
    assert [type(o) for o in out] == [m.FailLock]
    _, out = m.transition(p, m.MediationState(), m.LockReceived(uuid.UUID(int=3), M2, PAYMENT, H, 1000, T0 + 11,
                                                                  A, B, T0))
    assert [type(o) for o in out] == [m.RequestSecret] and out[0].to == A
