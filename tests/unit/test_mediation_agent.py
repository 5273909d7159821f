"""The mediation agent end to end on the embedded network (one store, a simulated secret registry,
a clock the test moves): every party runs its own agent; what the agents sign is applied by the
same Channel aggregate a node runs."""

from __future__ import annotations

import uuid

import pytest

from domain.channel import ChannelParameters
from domain.hop_messages import LockFailed
from infrastructure.mediation.agent import (
    AgentConfig,
    MediationAgent,
    MemoryAgentStore,
    Misbehaviour,
    output_from_json,
    output_to_json,
)
from infrastructure.mediation.embedded import EmbeddedNetwork
from infrastructure.tools.workload import DEV_DOMAIN, ChannelPlan, make_parties

T0 = 1_800_000_000
DEPOSIT = 10**9
AMOUNT = 1_000_000
PARAMS = ChannelParameters(challenge_period=3600, checkpoint_interval=10_000, checkpoint_timeout=3600)
CFG = AgentConfig()


def _network(edges, names=("A", "M1", "M2", "B", "M3"), configs=None):
    net = EmbeddedNetwork(now=T0)
    parties = dict(zip(names, make_parties(f"agent/{uuid.uuid4().hex[:6]}", len(names)), strict=True))
    channels = {}
    for x, y in edges:
        plan = ChannelPlan(uuid.uuid4(), parties[x], parties[y], (DEPOSIT, DEPOSIT), domain=DEV_DOMAIN)
        channels[x + y] = net.service.open_channel(**plan.open_kwargs(PARAMS, at=T0))
    agents = {n: net.add(MediationAgent(p.key, net.port, config=(configs or {}).get(n, CFG)))
              for n, p in parties.items()}
    net.pump()
    return net, agents, channels


def _view(net, cid):
    return net.service.get_channel(cid)


def _fees():
    fee2 = AMOUNT * 1000 // 10**6
    return (AMOUNT + fee2) * 1000 // 10**6, fee2


def _assert_paid_through(net, channels):
    fee1, fee2 = _fees()
    assert _view(net, channels["AM1"]).balances == (DEPOSIT - AMOUNT - fee1 - fee2, DEPOSIT + AMOUNT + fee1 + fee2)
    assert _view(net, channels["M1M2"]).balances == (DEPOSIT - AMOUNT - fee2, DEPOSIT + AMOUNT + fee2)
    assert _view(net, channels["M2B"]).balances == (DEPOSIT - AMOUNT, DEPOSIT + AMOUNT)


def _conserved(net, channels):
    for cid in channels.values():
        ch = net.service.get_channel_aggregate(cid)
        assert sum(ch.balances.values()) + sum(ch.locked_of(p) for p in ch.participants) == 2 * DEPOSIT
        assert min(ch.balances.values()) >= 0


LINE = [("A", "M1"), ("M1", "M2"), ("M2", "B")]


def test_three_hops_succeed_with_each_forwarder_keeping_its_fee():
    net, agents, channels = _network(LINE)
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.advance(1)
    outcome = agents["A"].payment(pid).to_json()
    assert outcome["status"] == "succeeded" and outcome["fee"] == str(sum(_fees()))
    assert [h["to"] for h in outcome["route"]] == [agents[n].me for n in ("M1", "M2", "B")]
    _assert_paid_through(net, channels)
    assert all(_view(net, c).locked == (0, 0) for c in channels.values())
    assert not any(a.busy() for a in agents.values())
    _conserved(net, channels)


def test_a_silent_hop_lets_the_lock_expire_and_the_payer_retries_another_route():
    # the cheapest route is the two hops through the silent M1; the other goes A → M3 → M2 → B
    edges = [("A", "M1"), ("M1", "B"), ("A", "M3"), ("M3", "M2"), ("M2", "B")]
    silent = AgentConfig(misbehaviour=Misbehaviour(never_forward=True))
    net, agents, channels = _network(edges, configs={"M1": silent})
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.advance(1)
    p = agents["A"].payment(pid)
    assert p.status == "pending" and _view(net, channels["AM1"]).locked[0] > 0
    assert [h["to"] for h in p.attempts[0].route] == [agents["M1"].me, agents["B"].me]
    # A's lock expires after the route's expiries; the node removes it LOCK_EXPIRY_MARGIN later
    while p.status == "pending" and net.now < T0 + 4 * 3600:
        net.advance(30)
    assert p.status == "succeeded", p.to_json()
    assert [a.status for a in p.attempts] == ["failed", "succeeded"] and "expired" in p.attempts[0].reason
    assert [h["to"] for h in p.attempts[1].route] == [agents[n].me for n in ("M3", "M2", "B")]
    assert _view(net, channels["AM1"]).balances == (DEPOSIT, DEPOSIT)  # the silent hop's lock came back
    assert _view(net, channels["M1B"]).balances == (DEPOSIT, DEPOSIT)
    assert _view(net, channels["M2B"]).balances == (DEPOSIT - AMOUNT, DEPOSIT + AMOUNT)
    assert all(_view(net, c).locked == (0, 0) for c in channels.values())
    assert agents["A"].counters["expiriesSent"] == 1
    _conserved(net, channels)


def test_an_upstream_that_withholds_its_unlock_makes_the_mediator_register_the_secret_and_close():
    stingy = AgentConfig(misbehaviour=Misbehaviour(withhold_unlocks=True))
    net, agents, channels = _network(LINE, configs={"A": stingy})
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.advance(1)
    # downstream of M1 everyone is paid off-chain; A's lock to M1 stays pending
    fee1, fee2 = _fees()
    assert _view(net, channels["M2B"]).balances == (DEPOSIT - AMOUNT, DEPOSIT + AMOUNT)
    assert _view(net, channels["M1M2"]).balances == (DEPOSIT - AMOUNT - fee2, DEPOSIT + AMOUNT + fee2)
    assert _view(net, channels["AM1"]).locked == (AMOUNT + fee1 + fee2, 0)
    assert agents["A"].payment(pid).status == "pending"
    lock_expiry = net.service.get_channel_aggregate(channels["AM1"]).pending_locks(agents["A"].me)[0].expiry
    while net.now < lock_expiry - CFG.reveal_timeout:
        net.advance(60)
    # the danger zone: M1 registers the secret (before the lock's expiry) and closes the channel
    (secret, registered_at), = net.chain.secrets.values()
    assert registered_at < lock_expiry
    assert net.chain.closes == [channels["AM1"]]
    assert agents["M1"].counters["secretsRegistered"] == 1 and agents["M1"].counters["closesForLocks"] == 1
    _conserved(net, channels)


def test_a_target_that_reveals_only_on_chain_still_gets_every_hop_paid():
    on_chain = AgentConfig(reveal_offchain=False)
    net, agents, channels = _network(LINE, configs={"B": on_chain})
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.advance(1)
    assert len(net.chain.secrets) == 1  # B registered; every hop learnt the secret from the chain
    assert agents["A"].payment(pid).status == "succeeded"
    _assert_paid_through(net, channels)
    assert all(_view(net, c).locked == (0, 0) for c in channels.values())


def test_a_mediator_restarted_from_its_saved_state_carries_the_payment_on():
    net, agents, channels = _network(LINE)
    store = MemoryAgentStore()
    m2 = agents["M2"]
    restarted = MediationAgent(m2.key, net.port, config=CFG, store=store)
    net.agents[m2.me] = restarted
    for e in net.service.recorder.select_notifications(1, 1000):  # a restarted agent reads the log again
        restarted.on_event(net.service.mapper.to_domain_event(e), net.now, replaying=True)
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.pump()
    # M2 crashes right after it saved its state: a new agent loads it and rebuilds its mirror
    again = MediationAgent(m2.key, net.port, config=CFG, store=store)
    for e in net.service.recorder.select_notifications(1, 1000):
        again.on_event(net.service.mapper.to_domain_event(e), net.now, replaying=True)
    net.agents[m2.me] = again
    net.advance(1)
    assert agents["A"].payment(pid).status == "succeeded"
    _assert_paid_through(net, channels)


def test_a_lock_failed_from_someone_else_than_the_payee_is_ignored():
    net, agents, channels = _network(LINE, configs={"M1": AgentConfig(misbehaviour=Misbehaviour(never_forward=True))})
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.advance(1)
    attempt = agents["A"].payment(pid).attempts[0]
    forged = LockFailed.signed(agents["B"].key, DEV_DOMAIN, channel_id=channels["AM1"],
                               secret_hash=bytes.fromhex(attempt.secret_hash), reason="no capacity",
                               recipient=agents["A"].me)
    agents["A"].on_hop(forged, net.now)
    agents["A"].flush(net.now)
    assert agents["A"].payment(pid).status == "pending" and attempt.status == "pending"
    real = LockFailed.signed(agents["M1"].key, DEV_DOMAIN, channel_id=channels["AM1"],
                             secret_hash=bytes.fromhex(attempt.secret_hash), reason="no capacity",
                             recipient=agents["A"].me)
    agents["A"].on_hop(real, net.now)
    agents["A"].flush(net.now)
    assert attempt.status == "failed" and attempt.reason == "no capacity"


@pytest.mark.parametrize("name", ["ForwardLock", "SendUnlock", "PaymentFailed"])
def test_outputs_survive_their_json(name):
    from domain import mediation as core

    h, pid, cid = b"\x11" * 32, uuid.uuid4(), uuid.uuid4()
    out = {"ForwardLock": core.ForwardLock(uuid.uuid4(), h, pid, 5, 9, "0xA", "0xB", (cid,)),
           "SendUnlock": core.SendUnlock(uuid.uuid4(), cid, h, b"\x22" * 32),
           "PaymentFailed": core.PaymentFailed(uuid.uuid4(), pid, h, "lock expired", True)}[name]
    assert output_from_json(output_to_json(out)) == out


def test_an_announced_policy_is_recorded_and_routes_go_around_an_expensive_forwarder():
    edges = [("A", "M1"), ("M1", "B"), ("A", "M3"), ("M3", "B")]
    net, agents, channels = _network(edges, configs={"M1": AgentConfig(fee_ppm=50_000, fee_base=10)})
    net.advance(1)  # M1 announces its policy on its channels; the others keep the defaults
    m1 = agents["M1"].me
    assert net.service.get_channel_aggregate(channels["M1B"]).fee_policy(m1)["fee_ppm"] == 50_000
    assert net.service.get_channel_aggregate(channels["AM3"]).fee_policy(agents["M3"].me) is None
    pid = agents["A"].pay(agents["B"].me, AMOUNT, net.now)
    net.advance(1)
    p = agents["A"].payment(pid)
    assert p.status == "succeeded" and p.attempts[0].route[0]["to"] == agents["M3"].me
    assert p.attempts[0].fee == AMOUNT * 1000 // 10**6

    from projections.channel_graph import ChannelGraph, graph_channels
    from projections.runner import rebuild
    from projections.source import source_for
    from projections.sqlite import SQLiteStore

    store = SQLiteStore(":memory:")
    rebuild(source_for(net.service), store, ChannelGraph())
    (row,) = [g for g in graph_channels(store) if g.channel_id == str(channels["M1B"])]
    way = row.ab if row.ab.source == m1 else row.ba
    assert (way.fee_base, way.fee_ppm) == (10, 50_000)


class _Silent:
    """A Network that takes everything and answers nothing (as Kafka: outcomes come from the log)."""

    def __init__(self) -> None:
        self.submitted: list[bytes] = []

    def submit(self, raw, channel):
        self.submitted.append(raw)

    def send_hop(self, message): ...

    def register_secret(self, channel, secret): ...

    def close_channel(self, channel): ...

    def announce(self, update): ...


def test_a_refusal_read_from_the_rejected_topic_is_acted_on_at_once():
    net, agents, channels = _network(LINE)
    port = _Silent()
    a = MediationAgent(agents["A"].key, port, config=CFG)
    for n in net.service.recorder.select_notifications(1, 1000):
        a.on_event(net.service.mapper.to_domain_event(n), net.now)
    pid = a.pay(agents["B"].me, AMOUNT, net.now)
    a.flush(net.now)
    (raw,) = port.submitted
    cid = channels["AM1"]
    # the slot was taken: the lock is signed again on the head the mirror has and sent at once (this
    # mirror has not moved, so the signature is the same: invoice id and signing are deterministic)
    a.on_refused(cid, raw, "ConflictingPayment", "sequence 1 holds another transaction", net.now)
    a.flush(net.now)
    assert port.submitted == [raw, raw]
    # a refusal that will repeat (the node says the payer cannot afford it): the attempt fails now,
    # not after the 30 s timeout, and the payer tries again (here: no other route)
    a.on_refused(cid, port.submitted[-1], "Overspend", "exceeds the buyer's balance", net.now)
    a.flush(net.now)
    p = a.payment(pid)
    assert p.attempts[0].status == "failed" and "Overspend" in p.attempts[0].reason
    # a refusal of bytes this agent did not send changes nothing
    before = [x.status for x in p.attempts]
    a.on_refused(cid, b"{}", "Overspend", "", net.now)
    assert [x.status for x in a.payment(pid).attempts] == before
