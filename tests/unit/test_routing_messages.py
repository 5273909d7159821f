"""ChannelUpdate: signing, verification on construction, tampering, fee math, newer-wins."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.crypto import PrivateKey
from domain.errors import InvalidAmount, InvalidSignature, MalformedMessage, WrongSigner
from domain.protocol import SigningDomain
from domain.routing import CHANNEL_UPDATE_TYPE, ChannelUpdate, proportional_fee, sign_channel_update

DOMAIN = SigningDomain(chain_id=1337, verifying_contract="0xF2E246BB76DF876Cef8b38ae84130F4F55De395b")
OTHER = SigningDomain(chain_id=1, verifying_contract="0xF2E246BB76DF876Cef8b38ae84130F4F55De395b")
KEY = PrivateKey.from_seed("routing-forwarder")
CHANNEL = uuid.UUID(int=7, version=4)


def update(**kw) -> ChannelUpdate:
    fields = dict(fee_base=10, fee_proportional=2_500, expiry_delta=600, issued_at=1_700_000_000) | kw
    return sign_channel_update(KEY, DOMAIN, CHANNEL, **fields)


def test_the_struct_is_the_one_the_issue_names():
    assert CHANNEL_UPDATE_TYPE.encode_type == (
        "ChannelUpdate(bytes16 channelId,address participant,uint256 feeBase,uint32 feeProportional,"
        "uint64 expiryDelta,uint64 issuedAt)")


def test_signed_update_round_trips_through_json_and_verifies():
    u = update()
    doc = json.loads(u.to_json())
    assert set(doc) == {"channelId", "participant", "feeBase", "feeProportional", "expiryDelta", "issuedAt",
                        "signature", "domain"}
    assert doc["feeBase"] == "10"  # amounts as strings at the edge
    again = ChannelUpdate.from_json(u.to_json())
    assert again == u and again.digest == u.digest and len(u.digest) == 32


@pytest.mark.parametrize("field,value", [
    ("feeBase", "11"), ("feeProportional", 2_501), ("expiryDelta", 601), ("issuedAt", 1_700_000_001),
    ("channelId", str(uuid.UUID(int=8, version=4))),
])
def test_any_altered_field_is_refused(field, value):
    doc = json.loads(update().to_json())
    doc[field] = value
    with pytest.raises(WrongSigner):
        ChannelUpdate.parse(doc)


def test_another_domain_or_someone_elses_key_is_refused():
    doc = json.loads(update().to_json())
    doc["domain"] = OTHER.to_dict()
    with pytest.raises(WrongSigner):
        ChannelUpdate.parse(doc)
    doc = json.loads(update().to_json())
    doc["participant"] = "0x" + "12" * 20
    with pytest.raises(WrongSigner, match="was signed by"):
        ChannelUpdate.parse(doc)
    doc = json.loads(update().to_json())
    doc["signature"] = "0x" + "00" * 65
    with pytest.raises(InvalidSignature):
        ChannelUpdate.parse(doc)


def test_bad_values_are_refused_before_signing_or_verifying():
    with pytest.raises(MalformedMessage):
        update(expiry_delta=0)
    with pytest.raises(MalformedMessage):
        update(fee_proportional=2**32)
    with pytest.raises(InvalidAmount):
        update(fee_base=-1)
    doc = json.loads(update().to_json())
    doc["expiryDelta"] = "600"  # integers, not strings, for the non-amount fields
    with pytest.raises(MalformedMessage):
        ChannelUpdate.parse(doc)


def test_fee_is_base_plus_ppm_rounded_down():
    u = update(fee_base=10, fee_proportional=2_500)
    assert u.fee_for(0) == 10
    assert u.fee_for(1_000_000) == 10 + 2_500
    assert u.fee_for(399) == 10  # 399 * 2500 / 1e6 = 0.9975: rounded down
    assert u.fee_for(400) == 11
    assert proportional_fee(10**30, 0, 1) == 10**24  # exact on wei-sized amounts
    with pytest.raises(InvalidAmount):
        u.fee_for(-1)


def test_newer_issued_at_supersedes_for_the_same_channel_and_participant():
    old, new = update(issued_at=100), update(issued_at=101, fee_base=0)
    assert new.supersedes(old) and not old.supersedes(new) and not old.supersedes(old)
    assert old.supersedes(None)
    elsewhere = sign_channel_update(KEY, DOMAIN, uuid.UUID(int=9, version=4), fee_base=0, fee_proportional=0,
                                    expiry_delta=1, issued_at=500)
    assert not elsewhere.supersedes(old)
