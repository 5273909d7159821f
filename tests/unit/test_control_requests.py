"""Issue 10, defect 3: control requests and the settler's notices are authenticated.

The typed data (``domain.control``) is EIP-712 in the payments' domain, its digests are fixed
and agree with eth-account; a signature recovers its signer only over the same domain, channel
and fields, low-s only; the Channel decides who may ask (participants, the operator each
registered), refuses expired and replayed requests, and records the signer and nonce.
"""

from __future__ import annotations

import json
import uuid

import pytest

from domain.application import ChannelService
from domain.channel import Channel
from domain.control import (
    NO_OPERATOR,
    ChannelRequest,
    ControlAction,
    Deposit,
    NoticeKind,
    OpenChannel,
    RequestAuth,
    SetOperator,
    SettlerNotice,
    authorize_settler,
)
from domain.crypto import SECP256K1_N
from domain.errors import (
    BadRequestSignature,
    ChannelNotOpen,
    MalformedMessage,
    NotAParticipant,
    ReplayedRequest,
    RequestExpired,
    UnauthorizedRequest,
    UnsignedRequest,
)
from domain.protocol import SigningDomain
from infrastructure.node.messages import (
    ClosedOnChainNotice,
    DepositRequest,
    OpenChannelRequest,
    SettlementRequest,
    encode_control,
    parse_control,
)
from tests.builders import (
    ALICE,
    BOB,
    CAROL,
    DOMAIN,
    PARAMS,
    T0,
    addr,
    eth_account_signable,
    open_channel,
    signable_digest,
)

CID = uuid.UUID("6a1f6c8e-9f6c-4d59-9a0f-0b8f2f7d1c11")
OTHER_DOMAIN = SigningDomain(chain_id=DOMAIN.chain_id, verifying_contract="0x" + "c1" * 20)
OTHER_CHAIN = SigningDomain(chain_id=DOMAIN.chain_id + 1, verifying_contract=DOMAIN.verifying_contract)
NONCE = 1_700_000_000_000
LATER = T0 + 300


def _eth_account_digest(struct, domain: SigningDomain) -> bytes:
    """The same digest computed by eth-account from the struct's fields and values."""
    values = struct.values()
    message = {k: (v.hex() if isinstance(v, bytes) and len(v) == 32 else v) for k, v in values.items()}
    message = {k: ("0x" + v if isinstance(v, str) and k == "bodyHash" else v) for k, v in message.items()}
    return signable_digest(eth_account_signable(struct.TYPE, message, domain))


def _open_struct(**changes) -> OpenChannel:
    fields = dict(channel_id=CID, currency="ETH", deposit_a=10**18, deposit_b=0, challenge_period=3600,
                  checkpoint_interval=100, checkpoint_timeout=3600, nonce=1, expiry=2)
    fields.update(changes)
    return OpenChannel.of_keys(ALICE.public_key, BOB.public_key, **fields)


STRUCTS = [
    ChannelRequest(CID, ControlAction.SETTLE, NONCE, T0 + 300),
    _open_struct(),
    Deposit(CID, addr(BOB), 5 * 10**17, NONCE, T0 + 300),
    SetOperator(CID, addr(ALICE), addr(CAROL), NONCE, T0 + 300),
    SettlerNotice.checkpoint_confirmed(CID, 40, "0x" + "ab" * 32, 7, T0),
    SettlerNotice.closed(CID, [600, 400], T0, T0),
    SettlerNotice.settle(CID, "chain: closed by 0xB", T0),
]


# --- typed data ----------------------------------------------------------------------
def test_defect3_typed_data_digests_are_a_fixed_vector() -> None:
    request = ChannelRequest(CID, ControlAction.SETTLE, NONCE, T0 + 300)
    assert request.TYPE.encode_type == "ChannelRequest(bytes16 channelId,string action,uint64 nonce,uint64 expiry)"
    assert request.TYPE.type_hash.hex() == "ff4e696c7a1b805fff758a11d914a4fc7b5dcd7851220602b9a0f5a08bbac81b"
    assert request.digest(DOMAIN).hex() == "4c2b4fc0e68ba04628267f23cdb4ad431cf4975edbcd3ed1de980dafff32b8e6"
    notice = SettlerNotice.checkpoint_confirmed(CID, 40, "0x" + "ab" * 32, 7, T0)
    assert notice.body_hash.hex() == "d23dd0f5ff23d7ed21952c246ec55990a320ad588589e47543abe50f60f0b1c9"
    assert notice.digest(DOMAIN).hex() == "5690ab0339187fdd4b4848a9e37807c10c632d86c9a0097d07eca18e05ea5b06"
    assert _open_struct().digest(DOMAIN).hex() == "6771bc1032775c75330545cd63f1f3d7e1229d7abe6726a7a8730a390c377263"
    # deterministic (RFC 6979) signature: the vector a second implementation can check itself against
    assert request.sign(ALICE, DOMAIN).hex() == (
        "f83b584e087d5a3229cc23ff90c8c81056f7bfc281a8b400cb6d8b36e5d039d1"
        "3d6feca734bef8807e5562228636c5a3eb3990603e634256eff83a9d4c57d91b1c"
    )


@pytest.mark.parametrize("struct", STRUCTS, ids=lambda s: type(s).__name__ + getattr(s, "kind", ""))
def test_defect3_every_struct_agrees_with_eth_account(struct) -> None:
    assert struct.digest(DOMAIN) == _eth_account_digest(struct, DOMAIN)


@pytest.mark.parametrize("struct", STRUCTS, ids=lambda s: type(s).__name__ + getattr(s, "kind", ""))
def test_defect3_sign_and_recover_round_trip(struct) -> None:
    sig = struct.sign(BOB, DOMAIN)
    assert struct.recover(DOMAIN, sig) == addr(BOB)
    assert struct.recover(DOMAIN, "0x" + sig.hex()) == addr(BOB)


def test_defect3_a_signature_for_another_domain_channel_action_or_field_recovers_someone_else() -> None:
    request = ChannelRequest(CID, ControlAction.SETTLE, NONCE, T0 + 300)
    sig = request.sign(ALICE, DOMAIN)
    assert request.recover(OTHER_DOMAIN, sig) != addr(ALICE)  # another contract
    assert request.recover(OTHER_CHAIN, sig) != addr(ALICE)  # another chain
    for other in (
        ChannelRequest(uuid.uuid4(), ControlAction.SETTLE, NONCE, T0 + 300),  # another channel
        ChannelRequest(CID, ControlAction.DISPUTE, NONCE, T0 + 300),  # another action
        ChannelRequest(CID, ControlAction.SETTLE, NONCE + 1, T0 + 300),  # another nonce
        ChannelRequest(CID, ControlAction.SETTLE, NONCE, T0 + 301),  # another expiry
    ):
        assert other.recover(DOMAIN, sig) != addr(ALICE)
    deposit = Deposit(CID, addr(BOB), 10, NONCE, LATER)
    assert Deposit(CID, addr(BOB), 11, NONCE, LATER).recover(DOMAIN, deposit.sign(BOB, DOMAIN)) != addr(BOB)
    assert _open_struct(deposit_b=1).recover(DOMAIN, _open_struct().sign(ALICE, DOMAIN)) != addr(ALICE)


def test_defect3_high_s_and_malformed_signatures_are_refused() -> None:
    request = ChannelRequest(CID, ControlAction.CHECKPOINT, NONCE, LATER)
    sig = request.sign(ALICE, DOMAIN)
    s = int.from_bytes(sig[32:64], "big")
    high_s = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(BadRequestSignature, match="high s"):
        request.recover(DOMAIN, high_s)
    for bad in (sig[:64], sig + b"\0", sig[:64] + b"\x05", "0xnothex", b"\0" * 65):
        with pytest.raises(BadRequestSignature):
            request.recover(DOMAIN, bad)
    for missing in (None, "", b""):
        with pytest.raises(UnsignedRequest):
            request.recover(DOMAIN, missing)


def test_defect3_a_settler_notice_from_an_untrusted_key_is_refused() -> None:
    notice = SettlerNotice.closed(CID, [600, 400], T0, T0)
    settler = notice.recover(DOMAIN, notice.sign(CAROL, DOMAIN))
    assert authorize_settler(settler, {addr(CAROL)}) == addr(CAROL)
    forged = notice.recover(DOMAIN, notice.sign(BOB, DOMAIN))
    with pytest.raises(UnauthorizedRequest, match="not a settler this node trusts"):
        authorize_settler(forged, {addr(CAROL)})
    with pytest.raises(UnauthorizedRequest, match="trusts no settler"):
        authorize_settler(settler, set())
    # the body is bound: other payouts, another kind
    sig = notice.sign(CAROL, DOMAIN)
    assert SettlerNotice.closed(CID, [400, 600], T0, T0).recover(DOMAIN, sig) != addr(CAROL)
    assert SettlerNotice.closed(CID, None, T0, T0).recover(DOMAIN, sig) != addr(CAROL)
    assert SettlerNotice(CID, NoticeKind.SETTLE, notice.body_hash, T0).recover(DOMAIN, sig) != addr(CAROL)


# --- the Channel's rules -------------------------------------------------------------
def _auth(key, nonce: int = NONCE, expiry: int = LATER) -> RequestAuth:
    return RequestAuth(addr(key), nonce, expiry)


def _paid_channel() -> Channel:
    ch, ledger = open_channel()
    ch.accept_payment(ledger.pay(ALICE, 10), T0)
    return ch


def test_defect3_a_participant_may_ask_and_its_nonce_is_recorded() -> None:
    ch = _paid_channel()
    assert ch.request_checkpoint(T0, auth=_auth(BOB)) is True
    assert ch.last_nonce(addr(BOB)) == NONCE
    ch.request_dispute(T0, auth=_auth(ALICE, NONCE + 5))
    ch.request_settlement(T0, auth=_auth(ALICE, NONCE + 6))
    events = {type(e).__name__: e for e in ch.collect_events()}
    assert (events["CheckpointRequested"].requested_by, events["CheckpointRequested"].nonce) == (addr(BOB), NONCE)
    assert (events["DisputeRequested"].requested_by, events["DisputeRequested"].nonce) == (addr(ALICE), NONCE + 5)
    assert (events["SettlementRequested"].requested_by, events["SettlementRequested"].nonce) == (
        addr(ALICE), NONCE + 6)
    assert ch.status == "settling" and ch.last_nonce(addr(ALICE)) == NONCE + 6


def test_defect3_a_replayed_request_is_refused_and_changes_nothing() -> None:
    ch = _paid_channel()
    ch.request_dispute(T0, auth=_auth(ALICE))
    version = ch.version
    for nonce in (NONCE, NONCE - 1):  # the same nonce again, or an older one
        with pytest.raises(ReplayedRequest):
            ch.request_dispute(T0, auth=_auth(ALICE, nonce))
    assert ch.version == version
    ch.request_dispute(T0, auth=_auth(BOB, NONCE))  # nonces are per signer
    ch.request_dispute(T0, auth=_auth(ALICE, NONCE + 1))


def test_defect3_an_expired_request_is_refused() -> None:
    ch = _paid_channel()
    with pytest.raises(RequestExpired):
        ch.request_settlement(T0 + 301, auth=_auth(ALICE, expiry=T0 + 300))
    assert ch.status == "open" and ch.last_nonce(addr(ALICE)) == 0
    ch.request_settlement(T0 + 300, auth=_auth(ALICE, expiry=T0 + 300))  # valid up to its expiry second


def test_defect3_a_non_participant_is_refused() -> None:
    ch = _paid_channel()
    with pytest.raises(UnauthorizedRequest, match="neither a participant"):
        ch.request_settlement(T0, auth=_auth(CAROL))
    with pytest.raises(UnauthorizedRequest):
        ch.request_checkpoint(T0, auth=_auth(CAROL))
    with pytest.raises(UnauthorizedRequest):
        ch.request_dispute(T0, auth=_auth(CAROL))
    assert ch.status == "open" and ch.checkpoint_sequence == 0


def test_defect3_operator_registration_works_and_can_be_withdrawn() -> None:
    ch = _paid_channel()
    with pytest.raises(UnauthorizedRequest):  # only the participant registers its own operator
        ch.register_operator(addr(ALICE), addr(CAROL), auth=_auth(BOB), at=T0)
    with pytest.raises(UnauthorizedRequest):
        ch.register_operator(addr(ALICE), addr(CAROL), auth=_auth(CAROL), at=T0)
    ch.register_operator(addr(ALICE), addr(CAROL), auth=_auth(ALICE), at=T0)
    assert ch.operator_of(addr(ALICE)) == addr(CAROL)
    assert ch.request_checkpoint(T0, auth=_auth(CAROL, 7)) is True  # the operator acts for A
    with pytest.raises(ReplayedRequest):
        ch.request_dispute(T0, auth=_auth(CAROL, 7))
    ch.register_operator(addr(ALICE), NO_OPERATOR, auth=_auth(ALICE, NONCE + 1), at=T0)
    with pytest.raises(UnauthorizedRequest):
        ch.request_dispute(T0, auth=_auth(CAROL, 8))
    registered = [e for e in ch.collect_events() if type(e).__name__ == "OperatorRegistered"]
    assert [(e.participant, e.operator, e.requested_by) for e in registered] == [
        (addr(ALICE), addr(CAROL), addr(ALICE)), (addr(ALICE), NO_OPERATOR, addr(ALICE))]


def test_defect3_a_checkpoint_with_nothing_new_consumes_no_nonce() -> None:
    ch, _ = open_channel()
    assert ch.request_checkpoint(T0, auth=_auth(ALICE)) is False
    assert ch.last_nonce(addr(ALICE)) == 0
    assert ch.request_checkpoint(T0, auth=_auth(ALICE)) is False  # its replay: the same no-op


def test_defect3_a_deposit_is_signed_by_its_participant() -> None:
    ch, _ = open_channel()
    with pytest.raises(UnauthorizedRequest):
        ch.deposit(addr(BOB), 100, auth=_auth(ALICE), at=T0)
    with pytest.raises(NotAParticipant):
        ch.deposit(addr(CAROL), 100, auth=_auth(CAROL), at=T0)
    ch.deposit(addr(BOB), 100, auth=_auth(BOB), at=T0)
    with pytest.raises(ReplayedRequest):
        ch.deposit(addr(BOB), 100, auth=_auth(BOB), at=T0)
    with pytest.raises(RequestExpired):
        ch.deposit(addr(BOB), 100, auth=_auth(BOB, NONCE + 1, expiry=T0 - 1), at=T0)
    assert ch.deposits[addr(BOB)] == 600


def test_defect3_an_open_is_signed_by_participant_a() -> None:
    kwargs = dict(channel_id=CID, public_key_a=ALICE.public_key, public_key_b=BOB.public_key, currency="ETH",
                  deposit_a=1000, deposit_b=0, parameters=PARAMS, domain=DOMAIN, at=T0)
    with pytest.raises(UnauthorizedRequest, match="participant A"):
        Channel.open(**kwargs, auth=_auth(BOB))
    with pytest.raises(RequestExpired):
        Channel.open(**kwargs, auth=_auth(ALICE, expiry=T0 - 1))
    ch = Channel.open(**kwargs, auth=_auth(ALICE))
    assert ch.last_nonce(addr(ALICE)) == NONCE
    with pytest.raises(ReplayedRequest):  # A's later requests must go above the open's nonce
        ch.request_checkpoint(T0, auth=_auth(ALICE))


def test_defect3_a_refused_request_is_refused_before_the_channel_state_is_looked_at() -> None:
    ch = _paid_channel()
    ch.request_settlement(T0, auth=_auth(ALICE))
    with pytest.raises(UnauthorizedRequest):  # a stranger learns nothing about the channel's state
        ch.request_settlement(T0, auth=_auth(CAROL))
    with pytest.raises(ChannelNotOpen):
        ch.request_settlement(T0, auth=_auth(ALICE, NONCE + 1))


def test_defect3_trusted_in_process_commands_still_work_without_a_signature() -> None:
    service = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    service.open_channel(channel_id=CID, public_key_a=ALICE.public_key, public_key_b=BOB.public_key,
                         currency="ETH", deposit_a=1000, deposit_b=0, parameters=PARAMS, domain=DOMAIN, at=T0)
    service.deposit(CID, addr(BOB), 10)
    service.request_dispute(CID, T0, requested_by="watchtower")
    service.request_settlement(CID, T0)
    names = [(type(e).__name__, getattr(e, "requested_by", None)) for e in service.channel_events(CID)]
    assert names[-2:] == [("DisputeRequested", "watchtower"), ("SettlementRequested", "operator")]
    channel = service.get_channel_aggregate(CID)
    assert channel.nonces == {}


def test_defect3_a_channel_replayed_from_its_events_keeps_its_replay_state() -> None:
    service = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    service.open_channel(channel_id=CID, public_key_a=ALICE.public_key, public_key_b=BOB.public_key,
                         currency="ETH", deposit_a=1000, deposit_b=0, parameters=PARAMS, domain=DOMAIN, at=T0,
                         auth=_auth(ALICE, 1))
    service.register_operator(CID, addr(BOB), addr(CAROL), auth=_auth(BOB, 2), at=T0)
    service.deposit(CID, addr(BOB), 10, auth=_auth(BOB, 3), at=T0)
    service.request_dispute(CID, T0, auth=_auth(CAROL, 4))
    agg = None
    for e in service.channel_events(CID):
        agg = e.mutate(agg)
    assert agg.nonces == {addr(ALICE): 1, addr(BOB): 3, addr(CAROL): 4}
    assert agg.operator_of(addr(BOB)) == addr(CAROL)


# --- the wire format -----------------------------------------------------------------
def test_defect3_wire_requests_carry_nonce_expiry_and_signature() -> None:
    request = SettlementRequest(channel=CID).signed(ALICE, DOMAIN, nonce=NONCE, expiry=LATER)
    wire = json.loads(encode_control(request))
    assert wire == {"type": "settle", "channel": str(CID), "nonce": NONCE, "expiry": LATER,
                    "signature": "0x" + ChannelRequest(CID, ControlAction.SETTLE, NONCE, LATER).sign(ALICE, DOMAIN).hex()}
    parsed = parse_control(encode_control(request))
    assert parsed.authenticate(DOMAIN) == RequestAuth(addr(ALICE), NONCE, LATER)
    deposit = DepositRequest(channel=CID, participant=addr(BOB), amount=10**30).signed(BOB, DOMAIN)
    assert json.loads(encode_control(deposit))["amount"] == str(10**30)  # amounts: strings of digits
    assert parse_control(encode_control(deposit)).authenticate(DOMAIN).signer == addr(BOB)
    opened = OpenChannelRequest(channel=CID, public_key_a="0x" + ALICE.public_key.hex(),
                                public_key_b="0x" + BOB.public_key.hex(), deposit_a=10**18,
                                chain_id=DOMAIN.chain_id, contract=DOMAIN.verifying_contract).signed(ALICE, DOMAIN)
    assert parse_control(encode_control(opened)).authenticate(opened.signing_domain).signer == addr(ALICE)


def test_defect3_unsigned_tampered_or_malformed_wire_requests_are_refused() -> None:
    with pytest.raises(UnsignedRequest):
        parse_control(json.dumps({"type": "settle", "channel": str(CID)}).encode()).authenticate(DOMAIN)
    with pytest.raises(UnsignedRequest):
        parse_control(json.dumps({"type": "closed", "channel": str(CID)}).encode()).signer(DOMAIN)
    signed = json.loads(encode_control(DepositRequest(channel=CID, participant=addr(BOB), amount=10).signed(BOB, DOMAIN)))
    tampered = parse_control(json.dumps({**signed, "amount": "11"}).encode())
    assert tampered.authenticate(DOMAIN).signer != addr(BOB)
    with pytest.raises(MalformedMessage):  # signed but without its nonce
        parse_control(json.dumps({k: v for k, v in signed.items() if k != "nonce"}).encode()).authenticate(DOMAIN)
    for bad in ({**signed, "nonce": 2**64}, {**signed, "nonce": "12"}, {**signed, "amount": -1},
                {**signed, "requestedBy": "anyone"}):
        with pytest.raises(MalformedMessage):
            parse_control(json.dumps(bad).encode())
    notice = ClosedOnChainNotice(channel=CID, payouts=[1, 2], at=5).signed(CAROL, DOMAIN)
    forged = parse_control(json.dumps({**json.loads(encode_control(notice)), "payouts": ["2", "1"]}).encode())
    assert forged.signer(DOMAIN) != addr(CAROL)
