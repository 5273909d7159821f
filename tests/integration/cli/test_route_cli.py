"""``parsec route`` over channels opened the user's way: ``parsec channel open`` on anvil, the node
learning of them on Kafka, payments moving capacity, and the graph read model caught up from the
node's events topic into this test's own SQLite file."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.cli.conftest import PERIOD
from tests.integration.contract.chain import ETHER
from tests.integration.node.harness import reader, running_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain]


def test_route_finds_the_two_hop_path_with_the_forwarders_fee(cli, contract, keystores, node_config, tmp_path):
    config = node_config(session_timeout_ms=30000, min_challenge_period=PERIOD)
    topics = ("--events-topic", config.events_topic, "--inbound-topic", config.inbound_topic,
              "--control-topic", config.control_topic, "--rejected-topic", config.rejected_topic)
    cli.base = (*cli.base, "--kafka", config.kafka_bootstrap, "--data-dir", str(tmp_path / "data"))
    on = ("--contract", contract, *topics)
    alice, bob, carol = keystores("alice"), keystores("bob"), keystores("carol")
    ab, bc = uuid.uuid4(), uuid.uuid4()
    with running_node(config):
        service = reader(config)
        cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key,
                 "--deposit", "1", "--channel", str(ab), "--challenge-period", str(PERIOD))
        cli.json("channel", "open", *on, *cli.signed(bob), "--counterparty", carol.public_key,
                 "--deposit", "0.5", "--channel", str(bc), "--challenge-period", str(PERIOD))
        wait_for(lambda: _opened(service, ab) and _opened(service, bc), 30, "the node opened both channels")
        assert cli.run("send", "pay", *topics, *cli.signed(alice), "--channel", str(ab), "--amount", "0.25")[0] == 0
        wait_for(lambda: service.get_channel(ab).sequence == 1, 30, "A's payment")
        service.close()

    cli.base = (*cli.base, "--event-store", "kafka")
    # this test's own SQLite read models: a shared PostgreSQL schema holds other tests' logs
    route = ("route", "--events-topic", config.events_topic, "--backend", "sqlite",
             "--db", str(tmp_path / "graph.sqlite"), "--settlement-topic", config.events_topic + ".settler")
    out = cli.json(*route, "--from", alice.address, "--to", carol.address, "--amount", "0.1")
    (only,) = out
    fee = ETHER // 10 * 1_000 // 1_000_000  # bob's default policy: 0.1 %, no base fee
    assert only["path"] == [alice.address, bob.address, carol.address]
    assert (only["total_fee"], only["total_amount"]) == (str(fee), str(ETHER // 10 + fee))
    assert [h["channel_id"] for h in only["hops"]] == [str(ab), str(bc)]
    assert [h["amount"] for h in only["hops"]] == [str(ETHER // 10 + fee), str(ETHER // 10)]

    status, text, _ = cli.run(*route, "--from", alice.address, "--to", carol.address, "--amount", "0.1")
    assert status == 0 and "Routes from" in text and "0.0001" in text

    # alice has 0.75 left after her payment: 0.8 cannot cross her channel; carol cannot pay back at all
    status, _, err = cli.run(*route, "--from", alice.address, "--to", carol.address, "--amount", "0.8")
    assert status != 0 and "cannot carry" in err
    status, _, err = cli.run(*route, "--from", carol.address, "--to", alice.address, "--amount", "0.1")
    assert status != 0 and "cannot carry" in err


def _opened(service, cid) -> bool:
    try:
        service.get_channel(cid)
    except Exception:
        return False
    return True
