"""Multi-hop payments on a real node on Kafka (issue 14): each party runs its own mediation agent
(``infrastructure/mediation/kafka.py``) that follows the events and hops topics, signs its locked
transfers, unlocks and expiries from the log's state and sends them through the inbound topic.

Topology: A – M1 – M2 – B, one channel per pair, every deposit on both sides.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest

from domain import kinds
from domain.application import ChannelView
from domain.routing import DEFAULT_EXPIRY_DELTA, DEFAULT_FEE_BASE, DEFAULT_FEE_PPM
from infrastructure import bootstrap
from infrastructure.mediation.agent import AgentConfig, Misbehaviour
from infrastructure.node import Sender
from infrastructure.tools.workload import DEV_DOMAIN, ChannelPlan, make_parties
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

DEPOSIT = 10**12
AMOUNT = 1_000_000


def _line(seed: str) -> tuple[list, list[ChannelPlan]]:
    parties = make_parties(f"{seed}/{uuid.uuid4().hex[:6]}", 4)
    plans = [ChannelPlan(uuid.uuid4(), x, y, (DEPOSIT, DEPOSIT), domain=DEV_DOMAIN)
             for x, y in zip(parties, parties[1:], strict=False)]
    return parties, plans


@contextlib.contextmanager
def _line_running(config, parties, plans, tmp_path, configs) -> Iterator[tuple]:
    """The node running, the line's channels opened, and one agent per party following the log:
    yields (reader, agents)."""
    with harness.running_node(config):
        sender = Sender(config)
        harness.open_channels(sender, plans, challenge_period=3600)
        reader = harness.reader(config)
        harness.wait_opened(reader, plans)
        services = [bootstrap.mediation_service(config, p.key, config=c, store_path=tmp_path / f"{p.name}.json",
                                                interval=0.1).start()
                    for p, c in zip(parties, configs, strict=True)]
        try:
            mirror = services[0].agent.channels
            harness.wait_for(lambda: len(mirror) == 3, 30, "A's agent sees the three channels")
            # a party's own policy must be in the log before A prices a route over it (until then A
            # assumes the defaults, e.g. a 600 s expiry delta, and its lock would live that much longer)
            announcing = {p.address for p, c in zip(parties, configs, strict=True) if _announces(c)}
            harness.wait_for(lambda: all(mirror[plan.channel_id].fee_policy(x) for plan in plans
                                         for x in (plan.a.address, plan.b.address) if x in announcing),
                             30, "the parties' announced policies in the log")
            yield reader, services
        finally:
            for s in services:
                s.stop()
            sender.close()


def _announces(c: AgentConfig) -> bool:
    return (c.fee_base, c.fee_ppm, c.expiry_delta) != (DEFAULT_FEE_BASE, DEFAULT_FEE_PPM, DEFAULT_EXPIRY_DELTA)


def _views(reader, plans) -> list[ChannelView]:
    return [reader.get_channel(p.channel_id) for p in plans]


def _settled(reader, plans) -> bool:
    return all(v.locked == (0, 0) for v in _views(reader, plans))


def test_a_three_hop_payment_completes_and_every_hop_earns_its_fee(node_config, tmp_path):
    config = node_config()
    parties, plans = _line("3hop")
    cfg = AgentConfig(fee_ppm=1000, fee_base=0)
    dear = AgentConfig(fee_ppm=2000, fee_base=7)  # M2 announces its own policy (Channel.FeePolicySet)
    with _line_running(config, parties, plans, tmp_path, [cfg, cfg, dear, cfg]) as (reader, (a, m1, m2, b)):
        assert a.agent.channels[plans[2].channel_id].fee_policy(m2.me)["fee_ppm"] == 2000
        started = time.monotonic()
        pid = a.pay(b.me, AMOUNT)
        outcome = a.wait(pid, 60)
        took = time.monotonic() - started
        assert outcome["status"] == "succeeded", outcome
        harness.wait_for(lambda: _settled(reader, plans), 30, "every lock unlocked")
    fee2 = 7 + AMOUNT * 2000 // 10**6      # M2 forwards AMOUNT to B, at its announced policy
    fee1 = (AMOUNT + fee2) * 1000 // 10**6  # M1 forwards AMOUNT + fee2 to M2
    assert outcome["fee"] == str(fee1 + fee2) and [h["to"] for h in outcome["route"]] == [m1.me, m2.me, b.me]
    am1, m1m2, m2b = _views(reader, plans)
    assert am1.balances == (DEPOSIT - AMOUNT - fee1 - fee2, DEPOSIT + AMOUNT + fee1 + fee2)
    assert m1m2.balances == (DEPOSIT - AMOUNT - fee2, DEPOSIT + AMOUNT + fee2)
    assert m2b.balances == (DEPOSIT - AMOUNT, DEPOSIT + AMOUNT)
    # what each party earned across its channels: the initiator pays amount + fees, each mediator keeps its fee
    assert am1.balances[1] + m1m2.balances[0] - 2 * DEPOSIT == fee1
    assert m1m2.balances[1] + m2b.balances[0] - 2 * DEPOSIT == fee2
    assert all(v.locked == (0, 0) for v in (am1, m1m2, m2b))
    for p, v in zip(plans, (am1, m1m2, m2b), strict=True):
        replayed, events = harness.replay(reader, p.channel_id)
        assert ChannelView.of(replayed) == v
        assert [e.kind for e in events if type(e).__name__ == "PaymentAccepted"] == ["lockedTransfer", "unlock"]
        assert [type(e).__name__ for e in events].count("FeePolicySet") == (1 if p is not plans[0] else 0)
    assert harness.read_rejected(config) == []
    print(f"3-hop payment on Kafka: {took:.2f} s from pay to the initiator's unlock accepted")
    reader.close()


def test_a_hop_that_never_forwards_lets_the_payers_lock_expire_and_no_one_loses(node_config, tmp_path):
    config = node_config()
    parties, plans = _line("silent")
    # locks as short as a mediator takes them (a forwarded lock must outlive the reveal timeout plus the
    # node's LOCK_EXPIRY_MARGIN): B's lock would last 35 s and each hop adds 3 s, so A's lasts 41 s
    quick = AgentConfig(final_expiry=35, expiry_delta=3, reveal_timeout=2, max_attempts=2)
    silent = AgentConfig(**{**quick.__dict__, "misbehaviour": Misbehaviour(never_forward=True)})
    with _line_running(config, parties, plans, tmp_path, [quick, silent, quick, quick]) as (reader, (a, m1, _m2, b)):
        pid = a.pay(b.me, AMOUNT)
        harness.wait_for(lambda: reader.get_channel(plans[0].channel_id).locked[0] > 0, 30, "A's lock accepted")
        # A's lock expires 41 s from now; the node takes its removal LOCK_EXPIRY_MARGIN later
        outcome = a.wait(pid, 41 + kinds.LOCK_EXPIRY_MARGIN + 30)
        assert outcome["status"] == "failed", outcome
        harness.wait_for(lambda: _settled(reader, plans), 30, "the lock removed")
        assert m1.agent.counters["forwarded"] == 0
    am1, m1m2, m2b = _views(reader, plans)
    assert am1.balances == (DEPOSIT, DEPOSIT) and m1m2.balances == (DEPOSIT, DEPOSIT) and m2b.balances == (DEPOSIT, DEPOSIT)
    kinds_seen = [e.kind for e in harness.replay(reader, plans[0].channel_id)[1] if type(e).__name__ == "PaymentAccepted"]
    assert kinds_seen == ["lockedTransfer", "lockExpired"]
    assert "lock expired" in outcome["attempts"][0]["reason"]
    reader.close()


def test_a_mediator_down_when_its_lock_arrives_forwards_it_once_restarted(node_config, tmp_path):
    """M2's agent stops (as a crash would leave it: its state file as last saved) before A pays; M1's
    lock to M2 waits in the log; a new agent started from M2's state file rebuilds its mirror, takes the
    lock (an event after its saved positions) and forwards it: the payment completes."""
    config = node_config()
    parties, plans = _line("restart")
    cfg = AgentConfig()
    with _line_running(config, parties, plans, tmp_path, [cfg] * 4) as (reader, (a, m1, m2, b)):
        m2.stop()
        pid = a.pay(b.me, AMOUNT)
        harness.wait_for(lambda: reader.get_channel(plans[1].channel_id).locked[0] > 0, 30, "M1's lock to M2")
        assert a.payment(pid)["status"] == "pending"
        again = bootstrap.mediation_service(config, parties[2].key, config=cfg,
                                            store_path=tmp_path / f"{parties[2].name}.json", interval=0.1).start()
        try:
            outcome = a.wait(pid, 60)
            assert outcome["status"] == "succeeded", outcome
            harness.wait_for(lambda: _settled(reader, plans), 30, "every lock unlocked")
        finally:
            again.stop()
        assert again.agent.counters["forwarded"] == 1
    m2b = reader.get_channel(plans[2].channel_id)
    assert m2b.balances == (DEPOSIT - AMOUNT, DEPOSIT + AMOUNT)
    reader.close()
