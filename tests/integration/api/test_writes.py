"""POST endpoints on the real broker: what is valid reaches its topic as sent; what is not is refused
with application/problem+json and its reason, and nothing is produced."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from domain.addresses import eth_address_from_public_key
from domain.protocol import SigningDomain
from infrastructure.node.messages import (
    CheckpointRequest,
    DisputeRequest,
    SettlementRequest,
    encode_control,
    parse_control,
    partition_of,
)
from tests.builders import ALICE, BOB, CAROL, DOMAIN, Ledger
from tests.integration.api.harness import auth

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _problem(resp, status: int, reason: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    doc = resp.json()
    assert doc["reason"] == reason, doc
    assert doc["status"] == status and doc["type"].endswith(reason) and doc["title"] and doc["detail"]
    return doc


def test_a_valid_payment_reaches_the_inbound_topic_unchanged(dep):
    ledger = dep.open()
    dep.project()
    tx = ledger.pay(ALICE, 250)  # signed by the payer; the node is not needed to see it arrive
    raw = tx.to_json()
    with TestClient(dep.app()) as client:
        resp = client.post("/v1/payments", content=raw, headers=auth())
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body == {"partition": partition_of(ledger.channel_id, 4), "offset": body["offset"],
                    "channel": str(ledger.channel_id), "sequence": 1}
    (record,) = dep.records(dep.settings.inbound_topic)
    assert (record.partition, record.offset) == (body["partition"], body["offset"])
    assert record.value == raw and record.key == str(ledger.channel_id).encode()


def _tampered_signature(raw: bytes) -> bytes:
    doc = json.loads(raw)
    sig = bytearray.fromhex(doc["invoiceSignature"][2:])
    sig[63] ^= 0x01  # s ± 1: still low-s, r still a point, so it recovers someone else's key
    doc["invoiceSignature"] = "0x" + sig.hex()
    return json.dumps(doc).encode()


def test_refused_payments_say_why_and_produce_nothing(dep):
    ledger = dep.open()
    dep.project()
    good = ledger.pay(ALICE, 250).to_json()
    stranger = Ledger(uuid.uuid4()).pay(ALICE, 1).to_json()  # a channel no one opened
    with TestClient(dep.app()) as client:
        post = lambda body, headers=None: client.post("/v1/payments", content=body,  # noqa: E731
                                                      headers=auth() if headers is None else headers)
        _problem(post(_tampered_signature(good)), 422, "WrongSigner")
        _problem(post(b"{" + b" " * 70_000 + b"}"), 413, "BodyTooLarge")
        _problem(post(b'{"invoiceID": '), 400, "MalformedMessage")
        _problem(post(b"[1, 2]"), 422, "MalformedMessage")
        _problem(post(stranger), 404, "UnknownChannel")
        _problem(post(good, {"Content-Type": "application/json"}), 401, "MissingToken")
        resp = post(good, {**auth("not-the-token")})
        _problem(resp, 401, "InvalidToken")
        assert resp.headers["www-authenticate"].startswith("Bearer")
        _problem(post(good, {**auth(), "Content-Type": "text/plain"}), 415, "UnsupportedMediaType")
        doc = json.loads(good)
        doc["currency"] = "DOGE"
        _problem(post(json.dumps(doc).encode()), 422, "CurrencyNotAllowed")
        for digits in ("٢٥٠", "２５０"):  # 250 in Arabic-Indic and full-width digits
            doc = {**json.loads(good), "price": digits}
            _problem(post(json.dumps(doc).encode()), 422, "InvalidAmount")
    assert dep.records(dep.settings.inbound_topic) == []


def test_a_streamed_body_over_the_limit_is_refused_too(dep):
    dep.open()
    dep.project()
    with TestClient(dep.app()) as client:
        chunks = (b" " * 10_000 for _ in range(10))  # no Content-Length: chunked
        _problem(client.post("/v1/payments", content=chunks, headers=auth()), 413, "BodyTooLarge")
    assert dep.records(dep.settings.inbound_topic) == []


@pytest.mark.parametrize(("path", "request_type", "wire"), [
    ("checkpoint", CheckpointRequest, "checkpoint"),
    ("settlement", SettlementRequest, "settle"),
    ("dispute", DisputeRequest, "dispute"),
])
def test_a_participant_signed_control_request_reaches_the_control_topic(dep, path, request_type, wire):
    ledger = dep.open()
    dep.pay(ledger, 100)
    plan = dep.plans[ledger.channel_id]
    req = plan.sign_request(request_type(channel=ledger.channel_id), by=1)  # signed by B
    with TestClient(dep.app()) as client:
        resp = client.post(f"/v1/channels/{ledger.channel_id}/{path}", content=encode_control(req), headers=auth())
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["type"] == wire and body["signer"] == eth_address_from_public_key(BOB.public_key)
    assert body["nonce"] == req.nonce and body["channel"] == str(ledger.channel_id)
    (record,) = dep.records(dep.settings.control_topic)
    assert (record.partition, record.offset) == (body["partition"], body["offset"])
    produced = parse_control(record.value)
    assert produced == req and produced.authenticate(DOMAIN).signer == body["signer"]


def test_a_control_body_without_type_and_channel_takes_them_from_the_path(dep):
    ledger = dep.open()
    req = dep.plans[ledger.channel_id].sign_request(CheckpointRequest(channel=ledger.channel_id))
    body = {"nonce": req.nonce, "expiry": req.expiry, "signature": req.signature}
    with TestClient(dep.app()) as client:
        resp = client.post(f"/v1/channels/{ledger.channel_id}/checkpoint", json=body, headers=auth())
    assert resp.status_code == 202, resp.text
    assert parse_control(dep.records(dep.settings.control_topic)[0].value) == req


def test_unsigned_or_wrongly_signed_control_requests_are_refused_and_nothing_is_produced(dep):
    ledger = dep.open()
    other = dep.open()
    cid = ledger.channel_id
    plan = dep.plans[cid]
    signed = plan.sign_request(SettlementRequest(channel=cid))
    by_carol = SettlementRequest(channel=cid).signed(CAROL, DOMAIN)
    for_other_deployment = SettlementRequest(channel=cid).signed(
        ALICE, SigningDomain(chain_id=1, verifying_contract=DOMAIN.verifying_contract))
    expired = plan.sign_request(SettlementRequest(channel=cid), expiry=1_000)
    garbage = json.loads(encode_control(signed))
    garbage["signature"] = "0x" + "ab" * 10
    with TestClient(dep.app()) as client:
        def post(body, channel=cid, path="settlement", headers=None):
            content = body if isinstance(body, bytes) else encode_control(body) if not isinstance(body, dict) \
                else json.dumps(body).encode()
            return client.post(f"/v1/channels/{channel}/{path}", content=content,
                               headers=auth() if headers is None else headers)

        _problem(post(SettlementRequest(channel=cid)), 422, "UnsignedRequest")
        _problem(post(by_carol), 422, "UnauthorizedRequest")
        _problem(post(for_other_deployment), 422, "UnauthorizedRequest")  # recovers someone else
        _problem(post(garbage), 422, "BadRequestSignature")
        _problem(post(expired), 422, "RequestExpired")
        _problem(post(signed, channel=other.channel_id), 422, "WrongChannel")
        _problem(post(signed, path="checkpoint"), 422, "MalformedMessage")  # a settle body on checkpoint
        _problem(post(signed, channel="not-a-uuid"), 422, "InvalidChannelId")
        unknown = uuid.uuid4()
        _problem(post(SettlementRequest(channel=unknown).signed(ALICE, DOMAIN), channel=unknown), 404,
                 "UnknownChannel")
        _problem(post(b"{oops"), 400, "MalformedMessage")
        _problem(post(signed, headers={"Content-Type": "application/json"}), 401, "MissingToken")
    assert dep.records(dep.settings.control_topic) == []
