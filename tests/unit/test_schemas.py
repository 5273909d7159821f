"""The published schemas (schemas/NAME/vN.json): equal to what their models generate, backward compatible
with their previous version, and true to the real messages; the compatibility checker on crafted pairs;
the schema's path and reason in refusals; the parsec.schema header; ``parsec schema``."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from domain.application import ChannelService
from domain.errors import InvalidAmount, MalformedMessage, WrongSigner
from domain.hop_messages import LockFailed, RevealSecret, SecretRequest, secret_hash_of
from domain.protocol import SignedInvoice
from infrastructure.cli import main
from infrastructure.kafka.codec import decode_event, encode_event
from infrastructure.node.messages import (
    DepositRequest,
    OpenChannelRequest,
    Rejection,
    RejectionHeaders,
    SettlementRequest,
    encode_control,
    parse_control,
)
from infrastructure.schemas import compat, registry, validation
from infrastructure.schemas.models import CHANNEL_EVENT_MODELS
from tests.builders import ALICE, BOB, DOMAIN, T0, addr, open_channel

REGENERATE = "run `parsec schema generate` (or scripts/schemas) and commit schemas/"


# ------------------------------------------------------------------ the committed files
@pytest.mark.parametrize("name", [s.name for s in registry.SCHEMAS])
def test_committed_schema_equals_what_its_model_generates(name):
    s = registry.entry(name)
    path = registry.path(name, s.version)
    assert path.is_file(), f"{path} is missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == registry.render(registry.generate(name)), (
        f"{path} differs from what {s.source} generates (the model changed without its schema): {REGENERATE}")


@pytest.mark.parametrize("name", [s.name for s in registry.SCHEMAS])
def test_every_schema_names_itself_and_its_version(name):
    s = registry.entry(name)
    for version in registry.versions(name):
        doc = json.loads(registry.path(name, version).read_text())
        assert doc["$id"] == f"urn:parsec:schema:{name}/v{version}"
        assert doc["version"] == version and doc["title"]
    assert registry.versions(name)[-1] == s.version, "the newest file is the current version"
    registry.header(name)  # a header value for every schema


def test_every_newer_version_is_backward_compatible_with_the_one_before():
    """Each published version against its predecessor (a schema with one version has no pair yet: the
    checker itself is tested on crafted pairs below, and on edits of the real payment schema)."""
    pairs = 0
    for s in registry.SCHEMAS:
        published = registry.versions(s.name)
        for before, after in zip(published, published[1:], strict=False):
            assert compat.incompatibilities(registry.load(s.name, before), registry.load(s.name, after)) == [], (
                f"{s.name} v{after} breaks readers of v{before}")
            pairs += 1
    assert pairs == sum(len(registry.versions(s.name)) - 1 for s in registry.SCHEMAS)


# ------------------------------------------------------------------ the checker on crafted pairs
BASE = {
    "$defs": {
        "Kind": {"enum": ["a", "b"], "type": "string"},
        "Open": {"type": "object", "properties": {"type": {"const": "open"}}, "required": ["type"]},
        "Close": {"type": "object", "properties": {"type": {"const": "close"}}, "required": ["type"]},
    },
    "type": "object",
    "properties": {
        "amount": {"type": "string"},
        "count": {"type": "integer"},
        "note": {"type": "string"},
        "kind": {"$ref": "#/$defs/Kind"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}},
        "request": {"oneOf": [{"$ref": "#/$defs/Open"}, {"$ref": "#/$defs/Close"}]},
    },
    "required": ["amount"],
}


def changed(edit):
    new = copy.deepcopy(BASE)
    edit(new)
    return compat.incompatibilities(BASE, new)


def test_compat_the_same_schema_and_additions_are_compatible():
    assert compat.incompatibilities(BASE, copy.deepcopy(BASE)) == []
    assert changed(lambda s: s["properties"].update(extra={"type": "string"})) == []
    assert changed(lambda s: s["$defs"]["Kind"]["enum"].append("c")) == []  # an enum widened
    assert changed(lambda s: s["properties"].update(count={"type": "number"})) == []  # integer is a number
    assert changed(lambda s: s["properties"].update(note={"anyOf": [{"type": "string"}, {"type": "null"}]})) == []
    assert changed(lambda s: s["required"].clear()) == []  # required made optional


def test_compat_refuses_a_removed_retyped_or_newly_required_field():
    assert changed(lambda s: s["properties"].pop("note")) == ["$.note: removed"]
    assert changed(lambda s: s["properties"].update(amount={"type": "integer"})) == [
        "$.amount: type changed from ['string'] to ['integer']"]
    assert changed(lambda s: s["properties"].update(count={"type": "string"})) == [
        "$.count: type changed from ['integer'] to ['string']"]
    assert changed(lambda s: s["required"].append("note")) == ["$.note: was optional, now required"]
    assert changed(lambda s: (s["properties"].update(new={"type": "string"}), s["required"].append("new"))) == [
        "$.new: a new required property (a new property must be optional)"]
    # nested: an array's items, found through the document
    assert changed(lambda s: s["properties"]["items"]["items"]["properties"].pop("x")) == ["$.items[].x: removed"]


def test_compat_refuses_a_narrowed_enum_a_changed_const_and_a_removed_branch():
    assert changed(lambda s: s["$defs"]["Kind"]["enum"].remove("b")) == ["$.kind: enum narrowed: ['b'] no longer allowed"]
    assert changed(lambda s: s["$defs"]["Open"]["properties"]["type"].update(const="opened")) == [
        "$.request<Open>.type: enum narrowed: ['open'] no longer allowed"]

    def drop_close(s):
        s["properties"]["request"]["oneOf"].pop()
        del s["$defs"]["Close"]

    assert changed(drop_close) == ["$.request: union branches removed: #/$defs/Close",
                                   "$defs.Close: removed (the old version had this definition)"]


def test_compat_on_a_real_schema_adding_an_optional_field_passes_and_removing_one_fails():
    old = registry.load("payment")
    added = copy.deepcopy(old)
    added["properties"]["memo"] = {"type": "string"}
    assert compat.incompatibilities(old, added) == []
    removed = copy.deepcopy(old)
    del removed["properties"]["invoiceType"]
    assert compat.incompatibilities(old, removed) == ["$.invoiceType: removed"]
    narrowed = copy.deepcopy(old)
    narrowed["$defs"]["Currency"]["enum"] = ["ETH"]
    assert compat.incompatibilities(old, narrowed) == ["$.currency: enum narrowed: ['BTC'] no longer allowed"]


# ------------------------------------------------------------------ true to the real messages
def _payment() -> SignedInvoice:
    ch, ledger = open_channel()
    return ledger.pay(ALICE, 10)


def test_a_signed_payment_validates_and_a_broken_one_says_where():
    doc = json.loads(_payment().to_json())
    assert validation.violations("payment", doc) == []
    bad = {**doc, "price": "1.5", "hashPointerToPrevious": {**doc["hashPointerToPrevious"], "transactionHash": "0x12"}}
    del bad["domain"]
    found = {v.path: v.message for v in validation.violations("payment", bad)}
    assert set(found) == {"$", "$.price", "$.hashPointerToPrevious.transactionHash"}
    assert found["$"] == "'domain' is a required property"


def test_control_requests_validate_and_the_failing_branch_is_the_one_type_names():
    cid = uuid.uuid4()
    requests = [
        DepositRequest(channel=cid, participant=addr(BOB), amount=10**30).signed(BOB, DOMAIN),
        SettlementRequest(channel=cid).signed(ALICE, DOMAIN),
        OpenChannelRequest(channel=cid, public_key_a="0x" + ALICE.public_key.hex(),
                           public_key_b="0x" + BOB.public_key.hex(), deposit_a=5, chain_id=DOMAIN.chain_id,
                           contract=DOMAIN.verifying_contract).signed(ALICE, DOMAIN),
    ]
    for r in requests:
        assert validation.violations("control", json.loads(encode_control(r))) == [], r
    deposit = json.loads(encode_control(requests[0]))
    assert [str(v) for v in validation.violations("control", {**deposit, "amount": "ten"})] == [
        "$.amount: 'ten' is not an amount in the smallest unit: a string of the digits 0-9 (what Parsec writes) "
        "or an integer"]
    assert [str(v) for v in validation.violations("control", {**deposit, "type": "withdraw"})][0].startswith(
        "$.type: 'withdraw' is not one of 'channel-update', 'checkpoint'")


def test_hop_messages_validate():
    secret = b"\x07" * 32
    bob = addr(BOB)
    for m in (SecretRequest.signed(ALICE, DOMAIN, payment_id=uuid.UUID(int=7), secret_hash=secret_hash_of(secret),
                                   amount=10**18, expiry=1_800_000_000, recipient=bob),
              RevealSecret.signed(ALICE, DOMAIN, secret=secret, recipient=bob),
              LockFailed.signed(ALICE, DOMAIN, channel_id=uuid.UUID(int=9), secret_hash=secret_hash_of(secret),
                                reason="expiry too short", recipient=bob)):
        doc = m.to_json()
        assert validation.violations("hop-message", doc) == [], doc
        found = validation.violations("hop-message", {**doc, "signature": "0x00"})
        assert [v.path for v in found] == ["$.signature"]


def _stored_channel_events() -> list:
    ch, ledger = open_channel()
    ch.deposit(addr(BOB), 7, at=T0)
    ch.register_operator(addr(ALICE), addr(BOB), at=T0)
    ch.accept_payment(ledger.pay(ALICE, 10), at=T0 + 1)
    ch.request_checkpoint(at=T0 + 2)
    seq = ch.sequence
    ch.confirm_checkpoint(seq, "0x" + "ab" * 32, 5)
    ch.request_settlement(at=T0 + 3)
    ch.close(at=T0 + 4)
    mapper = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    return [mapper.to_stored_event(e) for e in ch.collect_events()]


def test_every_stored_channel_event_validates_against_its_class_and_the_union():
    stored = _stored_channel_events()
    assert len({s.topic for s in stored}) >= 7
    for s in stored:
        name = s.topic.rsplit(".", 1)[-1]
        state = json.loads(s.state)
        assert validation.violations("event", state, variant=name) == [], name
        assert validation.violations("event", state) == [], name
    opened = json.loads(stored[0].state)
    del opened["chain_id"]
    assert [str(v) for v in validation.violations("event", opened, variant="ChannelOpened")] == [
        "$: 'chain_id' is a required property"]


def test_the_event_models_cover_every_channel_event_and_its_defaults_are_optional():
    assert {"ChannelOpened", "DepositMade", "PaymentAccepted", "ChannelClosed", "FeePolicySet"} <= set(
        CHANNEL_EVENT_MODELS)
    opened = registry.load("event")["$defs"]["ChannelOpened"]
    assert "nonce" not in opened["required"] and "chain_id" in opened["required"]  # old events lack a nonce


def test_rejection_headers_validate():
    rec = Rejection("MalformedMessage", "not JSON", "parsec.inbound", 2, 41, b"k", b"x" * 70_000, T0).record("r")
    assert (registry.SCHEMA_HEADER, b"rejected/v1") in rec.headers
    doc = RejectionHeaders.of(rec.headers)
    assert validation.violations("rejected", doc) == []
    assert [v.path for v in validation.violations("rejected", {**doc, "parsec.source.offset": "-1"})] == [
        '$["parsec.source.offset"]']


# ------------------------------------------------------------------ refusals name the schema's path
def test_a_malformed_control_request_is_refused_as_before_with_the_schema_path():
    deposit = json.loads(encode_control(DepositRequest(channel=uuid.uuid4(), participant=addr(BOB),
                                                       amount=3).signed(BOB, DOMAIN)))
    with pytest.raises(MalformedMessage) as err:
        parse_control(json.dumps({**deposit, "amount": -3}).encode())
    assert err.value.reason == "MalformedMessage"
    assert "[schema control/v1: $.amount: " in str(err.value)


def test_a_form_refusal_of_a_payment_gains_the_schema_path_and_keeps_its_reason():
    doc = json.loads(_payment().to_json())
    raw = json.dumps({**doc, "price": "1.5"}).encode()
    with pytest.raises(InvalidAmount) as err:
        SignedInvoice.from_json(raw)
    explained = validation.explain(err.value, "payment", raw)
    assert type(explained) is InvalidAmount and explained.reason == "InvalidAmount"
    assert str(explained).endswith("[schema payment/v1: $.price: '1.5' is not an amount in the smallest unit: a "
                                   "string of the digits 0-9 (what Parsec writes) or an integer]")
    # not about the form: left as it is (and not worth a validation pass)
    signer = WrongSigner("not the buyer's key")
    assert str(validation.explain(signer, "payment", raw)) == "not the buyer's key"
    # well-formed under the schema: nothing to add
    ok = MalformedMessage("first transaction must point to genesis")
    assert str(validation.explain(ok, "payment", json.dumps(doc))) == "first transaction must point to genesis"


# ------------------------------------------------------------------ the header
def test_channel_event_records_carry_the_schema_header_and_readers_accept_records_without_it():
    stored = _stored_channel_events()[0]
    key, value, headers = encode_event(stored)
    assert (registry.SCHEMA_HEADER, b"event/v1") in headers
    without = [h for h in headers if h[0] != registry.SCHEMA_HEADER]
    assert decode_event(key, value, without) == decode_event(key, value, headers)
    rec = Rejection("WrongSigner", "m", "parsec.inbound", 0, 1, None, b"{}", T0).record("r")
    old = [h for h in rec.headers if h[0] != registry.SCHEMA_HEADER]
    assert Rejection.of(rec.key, rec.value, old) == Rejection.of(rec.key, rec.value, rec.headers)


# ------------------------------------------------------------------ parsec schema
def test_cli_check_show_and_list(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_bytes(_payment().to_json())
    assert main(["schema", "check", str(good)]) == 0
    assert "valid (payment/v1)" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(good.read_bytes()), "sequence": "1"}))
    assert main(["schema", "check", str(bad), "--schema", "payment", "--json"]) == 65
    out = json.loads(capsys.readouterr().out)
    assert out == {"schema": "payment/v1", "valid": False,
                   "violations": [{"path": "$.sequence", "message": "'1' is not of type 'integer'"}]}
    (tmp_path / "nojson").write_text("{")
    assert main(["schema", "check", str(tmp_path / "nojson")]) == 65
    assert main(["schema", "show", "control/v1"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == "urn:parsec:schema:control/v1"
    assert main(["schema", "list", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == [s.name for s in registry.SCHEMAS]
    assert main(["schema", "generate", "--check"]) == 0


def test_api_post_payment_problem_detail_names_the_schema_path(tmp_path):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from infrastructure import bootstrap
    from infrastructure.settings import Settings

    settings = Settings(kafka_bootstrap="127.0.0.1:1", event_store="sqlite", data_dir=tmp_path,
                        api_tokens=SecretStr("t"), api_rate=0.0, postgres_dsn=None)
    client = TestClient(bootstrap.api_app(settings))
    body = json.dumps({**json.loads(_payment().to_json()), "price": "1.5"})
    r = client.post("/v1/payments", content=body, headers={"Authorization": "Bearer t",
                                                           "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["reason"] == "InvalidAmount"
    assert "[schema payment/v1: $.price: '1.5' is not an amount" in r.json()["detail"]
