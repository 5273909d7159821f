"""Issue 14: the mediated transfer's off-chain messages are signed by their sender and verified on construction."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey
from domain.hop_messages import (
    LOCK_FAILED_TYPE_STRING,
    REVEAL_SECRET_TYPE_STRING,
    SECRET_REQUEST_TYPE_STRING,
    HopMessageSignatureInvalid,
    LockFailed,
    MalformedHopMessage,
    RevealSecret,
    SecretRequest,
    parse_hop_message,
    secret_hash_of,
)
from domain.protocol import SigningDomain

DOMAIN = SigningDomain(chain_id=31337, verifying_contract="0x" + "11" * 20)
OTHER_DOMAIN = SigningDomain(chain_id=1, verifying_contract="0x" + "11" * 20)
ALICE = PrivateKey.from_seed("alice")
BOB = PrivateKey.from_seed("bob")
BOB_ADDRESS = eth_address_from_public_key(BOB.public_key)
SECRET = bytes(range(32))


def _messages():
    return [
        SecretRequest.signed(ALICE, DOMAIN, payment_id=uuid.UUID(int=7), secret_hash=secret_hash_of(SECRET),
                             amount=10**18, expiry=1_800_000_000, recipient=BOB_ADDRESS),
        RevealSecret.signed(ALICE, DOMAIN, secret=SECRET, recipient=BOB_ADDRESS),
        LockFailed.signed(ALICE, DOMAIN, channel_id=uuid.UUID(int=9), secret_hash=secret_hash_of(SECRET),
                          reason="expiry too short", recipient=BOB_ADDRESS),
    ]


def test_struct_strings_are_fixed():
    assert SECRET_REQUEST_TYPE_STRING == ("SecretRequest(bytes16 paymentId,bytes32 secretHash,uint256 amount,"
                                          "uint64 expiry,address sender,address recipient)")
    assert REVEAL_SECRET_TYPE_STRING == "RevealSecret(bytes32 secret,address sender,address recipient)"
    assert LOCK_FAILED_TYPE_STRING == ("LockFailed(bytes16 channelId,bytes32 secretHash,string reason,"
                                       "address sender,address recipient)")
    for message in _messages():
        assert message.TYPE.encode_type in (SECRET_REQUEST_TYPE_STRING, REVEAL_SECRET_TYPE_STRING,
                                            LOCK_FAILED_TYPE_STRING)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_sign_verify_and_json_round_trip(index):
    message = _messages()[index]
    assert message.sender == eth_address_from_public_key(ALICE.public_key)
    data = message.to_json()
    again = parse_hop_message(data, DOMAIN)
    assert again == message
    assert again.message_id == message.message_id
    assert all(isinstance(v, str) for v in data.values())


def test_amounts_are_decimal_strings_in_json():
    data = _messages()[0].to_json()
    assert data["amount"] == str(10**18)
    assert data["expiry"] == "1800000000"
    assert data["paymentId"] == str(uuid.UUID(int=7))
    data["amount"] = 10**18
    with pytest.raises(MalformedHopMessage):
        parse_hop_message(data, DOMAIN)


@pytest.mark.parametrize("index,field,value", [
    (0, "amount", "1"), (0, "expiry", "1"), (0, "recipient", eth_address_from_public_key(ALICE.public_key)),
    (1, "secret", "0x" + "ab" * 32), (2, "reason", "no route"), (2, "channelId", str(uuid.UUID(int=10))),
])
def test_tampered_field_does_not_verify(index, field, value):
    data = _messages()[index].to_json()
    data[field] = value
    with pytest.raises((HopMessageSignatureInvalid, MalformedHopMessage)):
        parse_hop_message(data, DOMAIN)


def test_other_domain_does_not_verify():
    for message in _messages():
        with pytest.raises(HopMessageSignatureInvalid):
            parse_hop_message(message.to_json(), OTHER_DOMAIN)


def test_signed_by_another_key_is_refused():
    message = _messages()[1]
    with pytest.raises(HopMessageSignatureInvalid):
        dataclasses.replace(message, sender=eth_address_from_public_key(BOB.public_key),
                            recipient=eth_address_from_public_key(ALICE.public_key))


@pytest.mark.parametrize("data", [
    None, [], {"type": "nope"}, {"type": "revealSecret"},
    {"type": "revealSecret", "secret": "0x00", "sender": "x", "recipient": "y", "signature": "0x"},
])
def test_malformed_json_is_refused(data):
    with pytest.raises(MalformedHopMessage):
        parse_hop_message(data, DOMAIN)


def test_unknown_field_is_refused():
    data = _messages()[1].to_json()
    data["extra"] = "1"
    with pytest.raises(MalformedHopMessage):
        parse_hop_message(data, DOMAIN)


def test_reveal_secret_names_its_hash():
    assert _messages()[1].secret_hash == secret_hash_of(SECRET)
