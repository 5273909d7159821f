"""Forwarding policies in the channel's log: a participant's signed ChannelUpdate becomes
``Channel.FeePolicySet`` (the newer issuedAt wins), the graph read model and the agents' routing read
it, and the node takes it from the control topic like any request."""

from __future__ import annotations

import pytest

from domain.crypto import PrivateKey
from domain.errors import NotAParticipant, WrongDomain, WrongSigner
from domain.protocol import SigningDomain
from domain.routing import sign_channel_update
from infrastructure.node.messages import ChannelUpdateRequest, encode_control, parse_control
from tests.builders import ALICE, BOB, DOMAIN, T0, addr, open_channel

CAROL_KEY = PrivateKey.from_seed("carol/fees")


def _update(key, cid, issued_at, *, fee_base=5, ppm=2_000, delta=120, domain=DOMAIN):
    return sign_channel_update(key, domain, cid, fee_base=fee_base, fee_proportional=ppm, expiry_delta=delta,
                               issued_at=issued_at)


def test_a_participants_update_is_recorded_and_only_a_newer_one_replaces_it():
    ch, _ = open_channel()
    assert ch.fee_policy(addr(BOB)) is None
    assert ch.set_fee_policy(_update(BOB, ch.id, T0), T0)
    assert ch.fee_policy(addr(BOB)) == {"fee_base": 5, "fee_ppm": 2_000, "expiry_delta": 120, "issued_at": T0}
    assert not ch.set_fee_policy(_update(BOB, ch.id, T0, fee_base=99), T0)  # same age: a replay, ignored
    assert not ch.set_fee_policy(_update(BOB, ch.id, T0 - 1, fee_base=99), T0)  # older: ignored
    assert ch.set_fee_policy(_update(BOB, ch.id, T0 + 1, fee_base=7), T0 + 1)
    assert ch.fee_policy(addr(BOB))["fee_base"] == 7 and ch.fee_policy(addr(ALICE)) is None
    events = [type(e).__name__ for e in ch.collect_events()]
    assert events.count("FeePolicySet") == 2


def test_updates_that_cannot_be_right_are_refused():
    ch, _ = open_channel()
    with pytest.raises(NotAParticipant):
        ch.set_fee_policy(_update(CAROL_KEY, ch.id, T0), T0)
    other = SigningDomain(chain_id=DOMAIN.chain_id + 1, verifying_contract=DOMAIN.verifying_contract)
    with pytest.raises(WrongDomain):
        ch.set_fee_policy(_update(BOB, ch.id, T0, domain=other), T0)
    with pytest.raises(Exception, match="after now"):
        ch.set_fee_policy(_update(BOB, ch.id, T0 + 3600), T0)  # dated far ahead: it would win over every honest one


def test_the_control_message_round_trips_and_a_tampered_one_does_not_verify():
    ch, _ = open_channel()
    req = parse_control(encode_control(ChannelUpdateRequest.of(_update(BOB, ch.id, T0))))
    assert isinstance(req, ChannelUpdateRequest) and req.update(DOMAIN).fee_base == 5
    tampered = req.model_copy(update={"fee_proportional": 1})
    with pytest.raises(WrongSigner):
        tampered.update(DOMAIN)
    other = SigningDomain(chain_id=DOMAIN.chain_id + 1, verifying_contract=DOMAIN.verifying_contract)
    with pytest.raises(WrongSigner):
        req.update(other)
