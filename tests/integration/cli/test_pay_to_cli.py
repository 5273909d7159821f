"""``parsec pay --to``: a payment across three channels opened the user's way (``parsec channel open``
on anvil, deposits on-chain, the node learning of them on Kafka), the hops' agents running as
``parsec mediate`` runs them (``MediationService``), the payer's agent inside the command."""

from __future__ import annotations

import uuid

import pytest

from infrastructure import bootstrap
from infrastructure.mediation.kafka import agent_config
from tests.integration.cli.conftest import PERIOD
from tests.integration.contract.chain import ETHER
from tests.integration.node.harness import reader, running_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain]

# locks that fit the contract's 60 s challenge period: B's lasts 35 s, each hop adds 5 s
TIMES = {"mediation_final_expiry": 35, "mediation_expiry_delta": 5, "mediation_reveal_timeout": 3}


def test_pay_to_crosses_three_channels_and_reports_route_and_fees(cli, contract, keystores, node_config, tmp_path):
    config = node_config(session_timeout_ms=30000, min_challenge_period=PERIOD).model_copy(update=TIMES)
    topics = ("--events-topic", config.events_topic, "--inbound-topic", config.inbound_topic,
              "--control-topic", config.control_topic, "--rejected-topic", config.rejected_topic)
    cli.base = (*cli.base, "--kafka", config.kafka_bootstrap, "--data-dir", str(tmp_path / "data"))
    on = ("--contract", contract, *topics)
    a, m1, m2, b = (keystores(n) for n in ("alice", "mediator-1", "mediator-2", "bob"))
    channels = [uuid.uuid4() for _ in range(3)]
    with running_node(config):
        service = reader(config)
        for (payer, payee), cid in zip(((a, m1), (m1, m2), (m2, b)), channels, strict=True):
            cli.json("channel", "open", *on, *cli.signed(payer), "--counterparty", payee.public_key,
                     "--deposit", "1", "--channel", str(cid), "--challenge-period", str(PERIOD))
        wait_for(lambda: all(_opened(service, c) for c in channels), 30, "the node opened the three channels")
        hops = [bootstrap.mediation_service(config, k.key, config=agent_config(config), store_path=tmp_path / f"{k.address}.json",
                                 interval=0.1).start() for k in (m1, m2, b)]
        try:
            # the hops' short expiry deltas must be in the log before the payer prices a route
            wait_for(lambda: all(service.get_channel_aggregate(c).fee_policy(k.address)
                                 for c, k in ((channels[1], m1), (channels[2], m2))), 30, "the hops' policies")
            pay = ("pay", *topics, "--hops-topic", config.hops_topic, "--mediation-dir", str(tmp_path / "payer"),
                   *[x for k, v in TIMES.items() for x in ("--" + k.replace("_", "-"), str(v))],
                   *cli.signed(a), "--to", b.address, "--amount", "0.1", "--wait", "60")
            out = cli.json(*pay)
            wait_for(lambda: all(service.get_channel(c).locked == (0, 0) for c in channels), 30, "every lock unlocked")
            status, text, _ = cli.run(*pay[:-2], "--amount", "0.05", "--wait", "60")
        finally:
            for h in hops:
                h.stop()
        views = [service.get_channel(c) for c in channels]
        service.close()
    amount = ETHER // 10
    fee2 = amount * 1000 // 10**6
    fee1 = (amount + fee2) * 1000 // 10**6
    assert out["status"] == "succeeded", out
    assert (out["amount"], out["fee"]) == (str(amount), str(fee1 + fee2))
    assert [h["to"] for h in out["route"]] == [m1.address, m2.address, b.address]
    assert [h["amount"] for h in out["route"]] == [str(amount + fee1 + fee2), str(amount + fee2), str(amount)]
    assert status == 0 and "succeeded" in text and "fees paid" in text
    # both payments: the second of 0.05 with its own fees
    half = ETHER // 20
    g2 = half * 1000 // 10**6
    g1 = (half + g2) * 1000 // 10**6
    assert views[0].balances == (ETHER - amount - fee1 - fee2 - half - g1 - g2, amount + fee1 + fee2 + half + g1 + g2)
    assert views[2].balances == (ETHER - amount - half, amount + half)
    assert all(v.locked == (0, 0) for v in views)


def _opened(service, cid) -> bool:
    try:
        return service.get_channel(cid).status == "open"
    except Exception:
        return False
