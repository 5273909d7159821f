"""``parsec send`` against a running node: open, pay (signed from seeded keys or a file), deposit,
set-operator, a checkpoint by the operator, settle: every control request signed."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey
from domain.protocol import HashPointer, Invoice, sign_invoice
from infrastructure.cli import main
from infrastructure.node.messages import partition_of
from infrastructure.tools.workload import make_parties
from tests.integration.node.harness import reader, running_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_parsec_send_open_pay_settle(node_config, capsys, tmp_path):
    # in-process node sharing the GIL with this test: a roomy session keeps it in its group
    config = node_config(session_timeout_ms=30000)
    topics = ["--events-topic", config.events_topic, "--inbound-topic", config.inbound_topic,
              "--control-topic", config.control_topic, "--rejected-topic", config.rejected_topic]
    channel = uuid.uuid4()
    a, b = make_parties("cli", 2)

    def send(*args: str) -> dict:
        assert main(["--kafka", config.kafka_bootstrap, "send", *args, *topics]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    with running_node(config):
        service = reader(config)
        sent = send("open", "--seed", "cli", "--channel", str(channel), "--deposit-a", "1", "--deposit-b", "0.5")
        assert (sent["topic"], sent["partition"]) == (config.control_topic, partition_of(channel, 4))
        wait_for(lambda: _exists(service, channel), 30, "the channel opened")
        sent = send("pay", "--seed", "cli", "--channel", str(channel), "--from", "A", "--amount", "0.25")
        assert sent["topic"] == config.inbound_topic and sent["sequence"] == 1 and sent["offset"] >= 0
        wait_for(lambda: service.get_channel(channel).sequence == 1, 30, "the payment applied")
        # a pre-signed payment from a file: B pays A back
        ch = service.get_channel_aggregate(channel)
        tx = sign_invoice(
            Invoice(invoice_address=a.address, price=10**17, currency="ETH"), key=b.key, channel=channel,
            invoice_id=uuid.uuid4(), sequence=2,
            previous=HashPointer(transaction_id=uuid.UUID(ch.head_id), transaction_hash=bytes.fromhex(ch.head_hash[2:])),
            buyer_total=10**17, domain=ch.domain,
        )
        path = tmp_path / "tx.json"
        path.write_bytes(tx.to_json())
        assert send("pay", "--file", str(path))["sequence"] == 2
        wait_for(lambda: service.get_channel(channel).sequence == 2, 30, "the filed payment applied")
        # signed control requests: B's deposit, A's operator registration, a checkpoint by that operator
        assert send("deposit", "--channel", str(channel), "--seed", "cli", "--from", "B", "--amount", "0.1")[
            "signer"] == b.address
        wait_for(lambda: service.get_channel(channel).deposits[1] == 6 * 10**17, 30, "B's deposit")
        operator = eth_address_from_public_key(PrivateKey.from_seed("cli-operator").public_key)
        send("set-operator", "--channel", str(channel), "--seed", "cli", "--as", "A", "--operator", operator)
        wait_for(lambda: service.get_channel_aggregate(channel).operator_of(a.address) == operator, 30,
                 "A's operator registered")
        assert send("checkpoint", "--channel", str(channel), "--operator-seed", "cli-operator")["signer"] == operator
        wait_for(lambda: service.get_channel(channel).checkpoint_sequence == 2, 30, "the operator's checkpoint")
        sent = send("settle", "--channel", str(channel), "--seed", "cli", "--as", "B")
        assert sent["signer"] == b.address and sent["nonce"] > 0
        wait_for(lambda: service.get_channel(channel).status == "settling", 30, "settlement requested")
        settled = [e for e in service.channel_events(channel) if type(e).__name__ == "SettlementRequested"]
        assert settled[0].requested_by == b.address
    view = service.get_channel(channel)
    assert view.participants == (a.address, b.address)
    assert view.balances == (10**18 - 25 * 10**16 + 10**17, 6 * 10**17 + 25 * 10**16 - 10**17)
    checkpoints = [e for e in service.channel_events(channel) if type(e).__name__ == "CheckpointRequested"]
    assert [(e.sequence, e.requested_by) for e in checkpoints] == [(2, operator)]
    service.close()


def _exists(service, channel) -> bool:
    try:
        service.get_channel(channel)
    except Exception:
        return False
    return True
