"""Issue 10, defect 3, on a real broker: the node refuses unauthenticated control messages.

Given a node that trusts one settler, when the control topic carries an unsigned settle, a
settle signed by a stranger, a request signed for another contract, a high-s signature, an
expired checkpoint, a replayed dispute and notices forged by someone who is not the settler,
then each is in the rejected topic exactly once with its reason and none changed its channel;
while requests signed by a participant, by the operator a participant registered, and notices
signed by the configured settler are applied.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import SECP256K1_N, PrivateKey
from domain.protocol import SigningDomain
from infrastructure.node import (
    CheckpointConfirmedNotice,
    CheckpointRequest,
    ClosedOnChainNotice,
    DisputeRequest,
    Sender,
    SetOperatorRequest,
    SettlementRequest,
    SettleNotice,
)
from infrastructure.node.messages import channel_key, encode_control, partition_of
from infrastructure.tools.workload import DEV_DOMAIN, make_channels
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

SETTLER = PrivateKey.from_seed("parsec-test/auth/settler")
OPERATOR = PrivateKey.from_seed("parsec-test/auth/operator")
STRANGER = PrivateKey.from_seed("parsec-test/auth/stranger")
ELSEWHERE = SigningDomain(chain_id=DEV_DOMAIN.chain_id, verifying_contract="0x" + "e1" * 20)


def _address(key: PrivateKey) -> str:
    return eth_address_from_public_key(key.public_key)


def _high_s(wire: bytes) -> bytes:
    data = json.loads(wire)
    sig = bytes.fromhex(data["signature"][2:])
    s = int.from_bytes(sig[32:64], "big")
    data["signature"] = "0x" + (sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])).hex()
    return json.dumps(data).encode()


def test_defect3_unauthenticated_control_messages_are_refused_and_change_nothing(node_config):
    config = node_config(settlers=_address(SETTLER), session_timeout_ms=30000)
    x, y = make_channels(f"auth-{uuid.uuid4().hex[:6]}", 2)
    refused: dict[bytes, str] = {}  # raw control message -> the reason it must be refused with

    with harness.running_node(config):
        sender = Sender(config)
        service = harness.reader(config)

        def control(raw: bytes, channel: uuid.UUID) -> None:
            p = partition_of(channel, config.partitions)
            sender.raw(config.control_topic, p, channel_key(channel), raw).get(timeout=15)

        def refuse(raw: bytes, channel: uuid.UUID, reason: str) -> None:
            refused[raw] = reason
            control(raw, channel)

        def names(plan) -> list[str]:
            return [type(e).__name__ for e in service.channel_events(plan.channel_id)]

        harness.open_channels(sender, [x, y])
        harness.wait_opened(service, [x, y])
        for _ in range(3):
            sender.payment(x.pay(10**12))
        sender.payment(y.pay(10**12)).get(timeout=15)
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [x, y]) == {x.channel_id: 3, y.channel_id: 1}, 30, "payments applied")
        control(encode_control(x.sign_request(SetOperatorRequest(channel=x.channel_id, participant=x.a.address,
                                                           operator=_address(OPERATOR)))), x.channel_id)

        cid = x.channel_id
        refuse(encode_control(SettlementRequest(channel=cid)), cid, "UnsignedRequest")
        refuse(encode_control(SettlementRequest(channel=cid).signed(STRANGER, DEV_DOMAIN)), cid, "UnauthorizedRequest")
        refuse(encode_control(SettlementRequest(channel=cid).signed(x.a.key, ELSEWHERE)), cid, "UnauthorizedRequest")
        refuse(_high_s(encode_control(x.sign_request(SettlementRequest(channel=cid)))), cid, "BadRequestSignature")
        refuse(encode_control(x.sign_request(CheckpointRequest(channel=cid), expiry=int(time.time()) - 60)), cid,
               "RequestExpired")
        # a participant's checkpoint is applied; a forged confirmation of it is not, the settler's is
        control(encode_control(x.sign_request(CheckpointRequest(channel=cid))), cid)
        refuse(encode_control(CheckpointConfirmedNotice(channel=cid, sequence=3, tx_hash="0x" + "ff" * 32, block=9)
                              .signed(STRANGER, DEV_DOMAIN)), cid, "UnauthorizedRequest")
        control(encode_control(CheckpointConfirmedNotice(channel=cid, sequence=3, tx_hash="0x" + "aa" * 32, block=8)
                               .signed(SETTLER, DEV_DOMAIN)), cid)
        harness.wait_for(lambda: service.get_channel(cid).confirmed_sequence == 3, 30, "the settler's confirmation")

        sender.payment(x.pay(10**12)).get(timeout=15)
        harness.wait_for(lambda: service.get_channel(cid).sequence == 4, 30, "payment 4")
        control(encode_control(CheckpointRequest(channel=cid).signed(OPERATOR, DEV_DOMAIN)), cid)  # A's operator
        dispute = encode_control(x.sign_request(DisputeRequest(channel=cid), by=1))
        control(dispute, cid)
        refuse(dispute + b" ", cid, "ReplayedRequest")  # the same signed request again (one more byte of JSON
        # whitespace, so that the test can tell the two records apart; the node reads the same request)
        refuse(encode_control(ClosedOnChainNotice(channel=cid, payouts=[0, 10**18 + 10**16], at=1)
                              .signed(STRANGER, DEV_DOMAIN)), cid, "UnauthorizedRequest")

        # channel Y: the configured settler's settle and closed notices are applied
        control(encode_control(SettleNotice(channel=y.channel_id, reason="chain: closed by B")
                               .signed(SETTLER, DEV_DOMAIN)), y.channel_id)
        payouts = [10**18 - 10**12, 10**16 + 10**12]
        control(encode_control(ClosedOnChainNotice(channel=y.channel_id, payouts=payouts, at=1_800_000_000)
                               .signed(SETTLER, DEV_DOMAIN)), y.channel_id)

        rejected: list = []

        def all_refused() -> bool:
            rejected[:] = harness.read_rejected(config)
            return len(rejected) >= len(refused)

        harness.wait_for(all_refused, 60, f"{len(refused)} rejections")
        harness.wait_for(lambda: "DisputeRequested" in names(x) and service.get_channel(y.channel_id).status == "closed",
                 30, "the dispute and the close applied")
        time.sleep(1.0)  # anything the node still wrongly applies or refuses would show by now
        rejected[:] = harness.read_rejected(config)
        sender.close()

    assert Counter(r.raw for r in rejected) == Counter(list(refused)), "each refused message once, nothing else"
    for r in rejected:
        assert r.reason == refused[r.raw], (r.reason, r.message, r.raw[:120])
        assert r.source_topic == config.control_topic and r.message
    by_reason = Counter(r.reason for r in rejected)
    assert by_reason == Counter({"UnauthorizedRequest": 4, "UnsignedRequest": 1, "BadRequestSignature": 1,
                                 "RequestExpired": 1, "ReplayedRequest": 1})

    # nothing refused changed channel X: exactly the accepted requests' events, in order
    assert names(x) == ["ChannelOpened", "PaymentAccepted", "PaymentAccepted", "PaymentAccepted",
                        "OperatorRegistered", "CheckpointRequested", "CheckpointConfirmed", "PaymentAccepted",
                        "CheckpointRequested", "DisputeRequested"]
    events = service.channel_events(x.channel_id)
    checkpoints = [e for e in events if type(e).__name__ == "CheckpointRequested"]
    assert [(e.sequence, e.requested_by) for e in checkpoints] == [(3, x.a.address), (4, _address(OPERATOR))]
    (confirmed,) = [e for e in events if type(e).__name__ == "CheckpointConfirmed"]
    assert (confirmed.sequence, confirmed.tx_hash, confirmed.block) == (3, "0x" + "aa" * 32, 8)
    (disputed,) = [e for e in events if type(e).__name__ == "DisputeRequested"]
    assert disputed.requested_by == x.b.address and disputed.nonce > 0
    view = service.get_channel(x.channel_id)
    assert (view.status, view.sequence, view.confirmed_sequence) == ("open", 4, 3)
    assert view.balances == x.expected_balances()

    assert names(y)[-2:] == ["SettlementRequested", "ChannelClosed"]
    closed = service.channel_events(y.channel_id)[-1]
    assert closed.balances == payouts and closed.at == 1_800_000_000
    service.close()


def test_defect3_a_node_that_trusts_no_settler_refuses_every_notice(node_config):
    config = node_config(session_timeout_ms=30000)  # no settlers configured
    (plan,) = make_channels(f"auth-none-{uuid.uuid4().hex[:6]}", 1)
    with harness.running_node(config):
        sender = Sender(config)
        service = harness.reader(config)
        harness.open_channels(sender, [plan])
        harness.wait_for(lambda: harness.sequences(service, [plan])[plan.channel_id] >= 0, 30, "channel opened")
        notice = SettleNotice(channel=plan.channel_id, reason="chain").signed(SETTLER, DEV_DOMAIN)
        sender.control(notice).get(timeout=15)
        rejected: list = []

        def one() -> bool:
            rejected[:] = harness.read_rejected(config)
            return bool(rejected)

        harness.wait_for(one, 30, "the notice refused")
        sender.close()
    assert [r.reason for r in rejected] == ["UnauthorizedRequest"]
    assert "trusts no settler" in rejected[0].message
    assert service.get_channel(plan.channel_id).status == "open"
    service.close()
