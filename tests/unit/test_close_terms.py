"""The cooperative-close file (infrastructure/chain/lifecycle.py): its signatures are the contract's
CooperativeClose digest, it round-trips, and a changed term or a stranger's signature is refused."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey
from domain.protocol import SigningDomain, sign_cooperative_close
from infrastructure.chain.errors import ContractReverted
from infrastructure.chain.lifecycle import BadCloseTerms, CloseTerms, TransactionRefused, refusals

A, B, C = (PrivateKey.from_seed(f"close-terms/{n}") for n in "abc")
ADDR_A, ADDR_B, ADDR_C = (eth_address_from_public_key(k.public_key) for k in (A, B, C))
CONTRACT = "0xF2E246BB76DF876Cef8b38ae84130F4F55De395b"


def terms(**changes) -> CloseTerms:
    values = dict(channel=uuid.UUID(int=7), chain_id=31337, contract=CONTRACT, balance_a=10**18 + 1,
                  balance_b=2**70, sequence=12, expiry=1_900_000_000)
    return CloseTerms(**{**values, **changes})


def test_a_signature_is_the_contracts_cooperative_close_signature():
    t = terms().signed_by(B)
    domain = SigningDomain(chain_id=31337, verifying_contract=CONTRACT)
    expected = sign_cooperative_close(B, domain, t.channel, t.balance_a, t.balance_b, t.sequence, t.expiry)
    assert t.signatures == {ADDR_B: "0x" + expected.hex()}
    assert t.signer_of(t.signatures[ADDR_B]) == ADDR_B


def test_the_file_round_trips_with_amounts_as_strings():
    t = terms().signed_by(B).signed_by(A)
    data = json.loads(t.to_json())
    assert (data["balanceA"], data["balanceB"]) == (str(10**18 + 1), str(2**70))
    back = CloseTerms.from_json(t.to_json())
    assert back == t
    assert back.signatures_of(ADDR_A, ADDR_B) == tuple(
        bytes.fromhex(t.signatures[w][2:]) for w in (ADDR_A, ADDR_B))


def test_a_changed_term_no_longer_matches_its_signature():
    text = terms().signed_by(B).to_json().replace('"sequence": 12', '"sequence": 13')
    with pytest.raises(BadCloseTerms, match="does not sign these terms"):
        CloseTerms.from_json(text).check_signatures()


def test_a_missing_or_strangers_signature_is_refused():
    with pytest.raises(BadCloseTerms, match=f"lack the signature of {ADDR_A}"):
        terms().signed_by(B).signatures_of(ADDR_A, ADDR_B)
    with pytest.raises(BadCloseTerms, match="not a participant"):
        terms().signed_by(A).signed_by(B).signed_by(C).signatures_of(ADDR_A, ADDR_B)


@pytest.mark.parametrize("field,value", [("balanceA", 5), ("balanceA", "٥"), ("balanceB", "-1"), ("balanceB", "1.5")])
def test_amounts_are_strings_of_ascii_digits(field, value):
    data = json.loads(terms().to_json())
    data[field] = value
    with pytest.raises(BadCloseTerms, match=field):
        CloseTerms.from_json(json.dumps(data))


@pytest.mark.parametrize("text", ["not json", "[]", '{"type": "something-else"}',
                                  '{"type": "parsec.cooperative-close", "channel": "x"}'])
def test_what_is_not_a_close_file_is_refused(text):
    with pytest.raises(BadCloseTerms):
        CloseTerms.from_json(text)


def test_out_of_range_terms_are_refused():
    with pytest.raises(BadCloseTerms, match="64 bits"):
        terms(sequence=2**64)
    with pytest.raises(BadCloseTerms, match="non-negative"):
        terms(expiry=-1)


def test_a_revert_is_a_refusal_with_the_contracts_error():
    with pytest.raises(TransactionRefused) as refused:
        with refusals():
            raise ContractReverted("ChallengePeriodNotOver", {"settleAt": 99}, b"", "settle")
    assert refused.value.reason == "TransactionRefused" and refused.value.error == "ChallengePeriodNotOver"
    assert "settle: reverted with ChallengePeriodNotOver(settleAt=99)" in str(refused.value)
