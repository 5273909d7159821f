"""The settler's notices on the control topic: their wire format and the control-topic adapter."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey
from domain.errors import MalformedMessage, UnknownChannel
from domain.protocol import SigningDomain
from infrastructure.node.messages import (
    CheckpointConfirmedNotice,
    ClosedOnChainNotice,
    SettleNotice,
    encode_control,
    parse_control,
)
from infrastructure.settlement.control import ControlTopicCommands

CID = uuid.UUID("6a1f6c8e-9f6c-4d59-9a0f-0b8f2f7d1c11")
DOMAIN = SigningDomain(chain_id=1337, verifying_contract="0x" + "c0" * 20)
SETTLER = PrivateKey.from_seed("settler")


def test_notices_round_trip_with_camel_case_fields() -> None:
    confirmed = CheckpointConfirmedNotice(channel=CID, sequence=40, tx_hash="0xab", block=7)
    wire = json.loads(encode_control(confirmed))
    assert wire == {"channel": str(CID), "type": "checkpoint-confirmed", "sequence": 40, "txHash": "0xab", "block": 7}
    assert parse_control(encode_control(confirmed)) == confirmed
    signed = confirmed.signed(SETTLER, DOMAIN, issued_at=1_700_000_000)
    wire = json.loads(encode_control(signed))
    assert wire["issuedAt"] == 1_700_000_000 and len(bytes.fromhex(wire["signature"][2:])) == 65
    assert parse_control(encode_control(signed)) == signed
    closed = ClosedOnChainNotice(channel=CID, payouts=[10**30, 0], at=5)
    assert json.loads(encode_control(closed))["payouts"] == [str(10**30), "0"]  # amounts: strings of digits
    assert parse_control(encode_control(closed)) == closed
    assert parse_control(json.dumps({"type": "closed", "channel": str(CID)}).encode()).payouts is None


def test_a_notice_without_its_fields_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="sequence"):
        parse_control(json.dumps({"type": "checkpoint-confirmed", "channel": str(CID), "txHash": "0x", "block": 1}).encode())


class _Future:
    def get(self, timeout: float) -> None:
        return None


class _Sender:
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def control(self, request: Any) -> _Future:
        self.requests.append(request)
        return _Future()


class _Reader:
    def __init__(self, status: str | None) -> None:
        self.status = status

    def get_channel_aggregate(self, channel_id: uuid.UUID) -> Any:
        if self.status is None:
            raise UnknownChannel(str(channel_id))
        return type("C", (), {"status": self.status, "domain": DOMAIN})()


def test_the_adapter_sends_each_command_to_the_control_topic_signed_by_the_settler() -> None:
    sender = _Sender()
    commands = ControlTopicCommands(sender, _Reader("open"), SETTLER)  # type: ignore[arg-type]
    commands.confirm_checkpoint(CID, 20, "0x01", 3)
    commands.request_settlement(CID, 100, "chain: closed by 0xB")
    commands.close_channel(CID, 200, [1, 2])
    unsigned = [r.model_copy(update={"issued_at": None, "signature": None}) for r in sender.requests]
    assert unsigned == [
        CheckpointConfirmedNotice(channel=CID, sequence=20, tx_hash="0x01", block=3),
        SettleNotice(channel=CID, reason="chain: closed by 0xB"),
        ClosedOnChainNotice(channel=CID, payouts=[1, 2], at=200),
    ]
    settler = eth_address_from_public_key(SETTLER.public_key)
    assert all(parse_control(encode_control(r)).signer(DOMAIN) == settler for r in sender.requests)


@pytest.mark.parametrize("status", ["settling", "closed", None])
def test_no_settlement_request_for_a_channel_that_is_not_open(status: str | None) -> None:
    sender = _Sender()
    ControlTopicCommands(sender, _Reader(status), SETTLER).request_settlement(CID, 1, "chain")  # type: ignore[arg-type]
    assert sender.requests == []
