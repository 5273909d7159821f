"""Multi-hop payments when someone will not cooperate, on Kafka and a chain (issue 14).

Every service is real: a node on Kafka, the settler (the settlement process manager) sending
transactions to the ParsecChannels contract on anvil, and one mediation agent per party following
the events topic, the hops topic and the contract's secret registry. The channels are opened
on-chain with their deposits, then on the node.

The chain is a private anvil started for each test: lock expiries are the parties' wall-clock
times and the contract compares them with block times, so the chain's clock must not be ahead of
the wall clock (the shared anvil's is, once other tests advanced it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infrastructure import bootstrap
from infrastructure.chain import ChannelContract, connect, fund, wallet
from infrastructure.chain import events as ev
from infrastructure.chain.connection import advance_time
from infrastructure.mediation.agent import AgentConfig, Misbehaviour
from infrastructure.node import Sender
from infrastructure.tools.workload import ChannelPlan, make_parties
from tests.integration.contract.chain import ETHER, party
from tests.integration.node.harness import running_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain]

ROOT = Path(__file__).resolve().parents[3]
PERIOD = 120  # the channels' challenge period: every lock must live less
AMOUNT = 10**15
# B's lock lives 50 s and each mediator adds 12 s (A's: 74 s); a party that knows the secret and is
# not unlocked registers it 10 s before its incoming lock expires
TIMES = AgentConfig(final_expiry=50, expiry_delta=12, reveal_timeout=10)


@pytest.fixture
def private_anvil(tmp_path_factory) -> Iterator[str]:
    """A fresh anvil per test: a test that advances the chain's clock must not leave it ahead of the
    next one's wall clock."""
    with socket.socket() as s:  # a free port: the shared anvil (and anything else) keeps its own
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PARSEC_ANVIL_PORT": str(port), "PARSEC_ANVIL_STATE": str(tmp_path_factory.mktemp("anvil"))}
    subprocess.run([str(ROOT / "scripts" / "anvil"), "start"], check=True, env=env, capture_output=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([str(ROOT / "scripts" / "anvil"), "stop"], check=False, env=env, capture_output=True)


@contextlib.contextmanager
def _deployment(node_config, url: str, configs: list[AgentConfig], tmp_path: Path):
    """A line A – M1 – M2 – B opened on-chain (the payer of each channel deposits 1 ETH), the node,
    the settler and the four agents running."""
    w3 = connect(url, timeout=10)
    tag = uuid.uuid4().hex[:8]
    deployer, operator = party(w3, f"mh/{tag}/deployer"), party(w3, f"mh/{tag}/operator")
    contract = ChannelContract.deploy(w3, deployer.wallet, deployer.address, min_challenge_period=60)
    parties = make_parties(f"mh/{tag}", 4)
    plans = [ChannelPlan(uuid.uuid4(), x, y, (ETHER, 0), domain=contract.domain)
             for x, y in zip(parties, parties[1:], strict=False)]
    for p in parties:
        w = wallet(p.key)
        fund(w3, w.address, 5 * ETHER)
        contract.set_operator(w, operator.address)
    for plan in plans:
        contract.open_channel(wallet(plan.a.key), plan.channel_id, plan.b.address, deposit=ETHER,
                              challenge_period=PERIOD)
    config = node_config(settlers=operator.address, min_challenge_period=60, session_timeout_ms=10000)
    stop = threading.Event()
    with running_node(config):
        sender = Sender(config)
        for plan in plans:
            sender.control(plan.open_request(challenge_period=PERIOD, checkpoint_interval=1000,
                                             checkpoint_timeout=10**6)).get(timeout=15)
        reader = bootstrap.channel_reader(config)
        wait_for(lambda: all(_status(reader, p.channel_id) == "open" for p in plans), 30, "the channels opened")
        settler = bootstrap.settler(config, ChannelContract(w3, contract.address), operator.wallet,
                                    store_topic=config.events_topic + ".settlement", interval=0.3,
                                    start_block=0)
        threading.Thread(target=settler.run, args=(stop,), daemon=True).start()
        agents = [bootstrap.mediation_service(config, p.key, config=c, store_path=tmp_path / f"{p.name}.json",
                                   contract=ChannelContract(w3, contract.address), interval=0.2).start()
                  for p, c in zip(parties, configs, strict=True)]
        try:
            wait_for(lambda: len(agents[0].agent.channels) == 3, 30, "the agents see the channels")
            # the mediators' short expiry deltas must be in the log before A prices a route (with the
            # default delta of 600 s A's lock would outlive the challenge period)
            mirror = agents[0].agent.channels
            wait_for(lambda: all(mirror[p.channel_id].fee_policy(p.a.address) for p in plans[1:]), 30,
                     "the mediators' announced policies")
            yield w3, contract, plans, agents, reader
        finally:
            for a in agents:
                a.stop()
            stop.set()
            sender.close()
            reader.close()


def _status(reader, cid) -> str | None:
    try:
        return reader.get_channel(cid).status
    except Exception:
        return None


def _fees() -> tuple[int, int]:
    fee2 = AMOUNT * 1000 // 10**6
    return (AMOUNT + fee2) * 1000 // 10**6, fee2


def test_an_upstream_that_never_unlocks_pays_the_mediator_on_chain(private_anvil, node_config, tmp_path):
    stingy = AgentConfig(**{**TIMES.__dict__, "misbehaviour": Misbehaviour(withhold_unlocks=True)})
    with _deployment(node_config, private_anvil, [stingy, TIMES, TIMES, TIMES], tmp_path) as (
            w3, contract, plans, (a, m1, m2, b), reader):
        am1, m1m2, m2b = (p.channel_id for p in plans)
        fee1, fee2 = _fees()
        lock = AMOUNT + fee1 + fee2
        a.pay(b.me, AMOUNT)
        # downstream of M1 everyone is paid off-chain; A keeps its lock to M1 pending
        wait_for(lambda: reader.get_channel(m1m2).locked == (0, 0) and reader.get_channel(m2b).sequence == 2, 60,
                 "M1 → M2 → B unlocked")
        assert reader.get_channel(am1).locked == (lock, 0)
        expiry = reader.get_channel_aggregate(am1).pending_locks(a.me)[0].expiry
        # 10 s before the lock's expiry M1 asks the settler to register the secret and to close
        wait_for(lambda: reader.get_channel(am1).status != "open", 120, "M1 asks for the close of A – M1")
        wait_for(lambda: any(isinstance(e, ev.SecretRevealed) for e in contract.events(0)), 30,
                 "the settler registers M1's secret")
        registered = [e for e in contract.events(0) if isinstance(e, ev.SecretRevealed)]
        assert len(registered) == 1
        revealed_at = contract.secret_revealed_at(registered[0].secret_hash)
        assert 0 < revealed_at <= expiry, "the secret must be on-chain by the lock's expiry"
        wait_for(lambda: contract.channel(am1).status.name.startswith("CLOSED"), 60, "the close mined")
        advance_time(w3, PERIOD + 1)  # the challenge period passes
        wait_for(lambda: reader.get_channel(am1).status == "closed", 90, "the settle (with the lock) mined and told")
        settled = [e for e in contract.events(0) if isinstance(e, ev.ChannelSettled) and e.channel_id == am1]
        assert [(s.balance_a, s.balance_b) for s in settled] == [(ETHER - lock, lock)]
        # M1 ends as if everyone had cooperated: the lock from A on-chain, its own lock paid to M2 off-chain
        assert settled[0].balance_b + reader.get_channel(m1m2).balances[0] - ETHER == fee1
        assert reader.get_channel(m2b).balances == (ETHER - AMOUNT, AMOUNT)
        assert m1.agent.counters["secretsRegistered"] == 1 and m1.agent.counters["closesForLocks"] == 1


def test_a_target_that_reveals_only_on_chain_still_gets_every_hop_paid(private_anvil, node_config, tmp_path):
    on_chain = AgentConfig(**{**TIMES.__dict__, "reveal_offchain": False})
    with _deployment(node_config, private_anvil, [TIMES, TIMES, TIMES, on_chain], tmp_path) as (
            w3, contract, plans, (a, m1, m2, b), reader):
        pid = a.pay(b.me, AMOUNT)
        outcome = a.wait(pid, 90)
        assert outcome["status"] == "succeeded", outcome
        wait_for(lambda: all(reader.get_channel(p.channel_id).locked == (0, 0) for p in plans), 60, "every unlock")
        registered = [e for e in contract.events(0) if isinstance(e, ev.SecretRevealed)]
        assert len(registered) == 1  # B's registration, through the settler; every hop learnt it from the chain
        fee1, fee2 = _fees()
        views = [reader.get_channel(p.channel_id) for p in plans]
        assert views[0].balances == (ETHER - AMOUNT - fee1 - fee2, AMOUNT + fee1 + fee2)
        assert views[1].balances == (ETHER - AMOUNT - fee2, AMOUNT + fee2)
        assert views[2].balances == (ETHER - AMOUNT, AMOUNT)
        assert b.agent.counters["secretsRegistered"] == 1
