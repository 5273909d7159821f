"""The channel's life on-chain with a node beside it: ``parsec channel open`` opens on anvil and the node
learns of it on the control topic, signed by the opener's keystore; deposits and operators too;
``parsec send pay --key`` pays from a keystore; the close's terms come from the node's books; and
``parsec channel status`` shows the chain beside the read model."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from infrastructure.chain import ChannelContract
from infrastructure.node import Sender
from tests.integration.cli.conftest import PERIOD
from tests.integration.contract.chain import ETHER
from tests.integration.node.harness import reader, running_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain]


def test_open_deposit_operator_pay_and_close_reach_the_node(cli, contract, keystores, node_config, anvil, tmp_path):
    # in-process node sharing the GIL with this test: a roomy session keeps it in its group
    config = node_config(session_timeout_ms=30000, min_challenge_period=PERIOD)
    topics = ("--events-topic", config.events_topic, "--inbound-topic", config.inbound_topic,
              "--control-topic", config.control_topic, "--rejected-topic", config.rejected_topic)
    cli.base = (*cli.base, "--kafka", config.kafka_bootstrap, "--data-dir", str(tmp_path / "data"))
    on = ("--contract", contract, *topics)
    alice, bob, operator = keystores("alice"), keystores("bob"), keystores("operator")
    cid = uuid.uuid4()
    with running_node(config):
        service = reader(config)
        opened = cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key,
                          "--deposit", "1", "--channel", str(cid), "--challenge-period", str(PERIOD))
        assert opened["node"]["sent"] == "open" and opened["node"]["topic"] == config.control_topic
        wait_for(lambda: _opened(service, cid), 30, "the node opened the channel")
        view = service.get_channel(cid)
        assert view.participants == (alice.address, bob.address) and view.deposits == (ETHER, 0)
        assert service.get_channel_aggregate(cid).domain.verifying_contract == contract

        deposited = cli.json("channel", "deposit", *on, *cli.signed(bob), "--channel", str(cid), "--amount", "0.5")
        assert deposited["node"]["sent"] == "deposit"
        wait_for(lambda: service.get_channel(cid).deposits == (ETHER, ETHER // 2), 30, "B's deposit at the node")

        cli.json("channel", "set-operator", *on, *cli.signed(alice), "--operator", operator.address,
                 "--channel", str(cid))
        assert ChannelContract(anvil, contract).operator_of(alice.address) == operator.address
        wait_for(lambda: service.get_channel_aggregate(cid).operator_of(alice.address) == operator.address, 30,
                 "A's operator at the node")

        # payments from the keystores (`parsec send pay --key`), signed on the node's head
        status, out, err = cli.run("send", "pay", *topics, *cli.signed(alice), "--channel", str(cid),
                                   "--amount", "0.25")
        assert status == 0, err
        wait_for(lambda: service.get_channel(cid).sequence == 1, 30, "A's payment")
        assert cli.run("send", "pay", *topics, *cli.signed(bob), "--channel", str(cid), "--amount", "0.05")[0] == 0
        wait_for(lambda: service.get_channel(cid).sequence == 2, 30, "B's payment")
        # a checkpoint request signed by the operator's keystore
        assert cli.run("send", "checkpoint", *topics, *cli.signed(operator), "--channel", str(cid))[0] == 0
        wait_for(lambda: service.get_channel(cid).checkpoint_sequence == 2, 30, "the operator's checkpoint")

        cli.base = (*cli.base, "--event-store", "kafka")
        # the read model in this test's own SQLite file: a shared PostgreSQL schema holds positions
        # from other tests' logs (see docs/projections.md, "One store, one log")
        status_out = cli.json("channel", "status", *on, "--channel", str(cid), "--backend", "sqlite",
                              "--settlement-topic", config.events_topic + ".settler")
        assert status_out["on_chain"]["deposit_b"] == str(ETHER // 2)
        model = status_out["read_model"]
        assert model is not None, status_out.get("read_model_error")
        assert (model["sequence"], model["balance_a"], model["balance_b"]) == (
            2, str(8 * ETHER // 10), str(7 * ETHER // 10))

        # cooperative close on the node's balances: Bob signs them, Alice closes
        terms = tmp_path / "close.json"
        signed = cli.json("channel", "sign-close", *on, *cli.signed(bob), "--channel", str(cid), "--out", str(terms))
        assert (signed["terms"]["balanceA"], signed["terms"]["balanceB"], signed["terms"]["sequence"]) == (
            str(8 * ETHER // 10), str(7 * ETHER // 10), 2)
        bob_before = anvil.eth.get_balance(bob.address)
        closed = cli.json("channel", "close", *on, *cli.signed(alice), "--cosigned", str(terms))
        assert (closed["channel"]["payout_a"], closed["channel"]["payout_b"]) == (
            str(8 * ETHER // 10), str(7 * ETHER // 10))
        assert anvil.eth.get_balance(bob.address) - bob_before == 7 * ETHER // 10

        # a unilateral close takes its evidence from the node: the counterparty's latest payment to the closer
        other = uuid.uuid4()
        cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key, "--deposit", "1",
                 "--channel", str(other), "--challenge-period", str(PERIOD))
        wait_for(lambda: _opened(service, other), 30, "the node opened the second channel")
        assert cli.run("send", "pay", *topics, *cli.signed(alice), "--channel", str(other), "--amount", "0.1")[0] == 0
        wait_for(lambda: service.get_channel(other).sequence == 1, 30, "A's payment on the second channel")
        closed = cli.json("channel", "close", *on, *cli.signed(bob), "--channel", str(other))
        assert closed["close"] == "unilateral" and closed["proofs"] == [f"sequence 1 by {alice.address}"]
        assert (closed["channel"]["status"], closed["channel"]["sent_a"], closed["channel"]["balance_b"]) == (
            "closed-by-b", str(ETHER // 10), str(ETHER // 10))

        # `parsec send open --key`: the node's half alone, as the open's retry message prints it
        third = uuid.uuid4()
        status, out, err = cli.run("send", "open", *topics, *cli.signed(alice), "--counterparty", bob.public_key,
                                   "--channel", str(third), "--deposit-a", "1", "--challenge-period", str(PERIOD),
                                   "--chain-id", str(anvil.eth.chain_id), "--contract", contract)
        assert status == 0, err
        wait_for(lambda: _opened(service, third), 30, "the node opened the channel sent with send open --key")
        assert service.get_channel(third).participants == (alice.address, bob.address)

        # a pending lock: the node's balances leave it out, so sign-close on them is refused (signing would
        # hand the lock to whoever the balances say, while the other side may still claim it)
        secret = b"\x07" * 32
        lock = service.get_channel_aggregate(other).sign_next(
            alice.key, kind="lockedTransfer", price=ETHER // 100, invoice_id=uuid.uuid4(), at=int(time.time()),
            terms={"amount": str(ETHER // 100), "secretHash": "0x" + hashlib.sha256(secret).hexdigest(),
                   "expiry": int(time.time()) + PERIOD // 2, "paymentId": str(uuid.uuid4()),
                   "initiator": alice.address, "target": bob.address})
        sender = Sender(config)
        sender.payment(lock).get(timeout=15)
        sender.close()
        wait_for(lambda: service.get_channel(third).sequence == 0 and service.get_channel(other).locked[0] > 0, 30,
                 "the lock at the node")
        status, _, err = cli.run("channel", "sign-close", *on, *cli.signed(bob), "--channel", str(other),
                                 "--out", str(tmp_path / "locked.json"))
        assert status == 65 and "pending locks" in err, err
        service.close()


def _opened(service, cid) -> bool:
    try:
        service.get_channel(cid)
    except Exception:
        return False
    return True
