"""Only the ASCII digits 0-9 are amounts: in ``parsec amount``, in parse_amount and in JSON payments.

Python's ``int()``, ``Decimal()``, ``str.isdigit()`` and ``re``'s ``\\d`` all accept other scripts' digits
("٥" is 5, "５" is 5) and ``isdigit()`` even superscripts ("²"): an amount that displays one way and is
read another must be refused, not converted.
"""

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidAmount
from domain.money import parse_amount, parse_units
from domain.protocol import SignedInvoice
from infrastructure.cli import main
from infrastructure.cli.exits import Exit
from tests.builders import ALICE, Ledger

# every Unicode digit or numeric character that is not 0-9 (decimal digits Nd and others No)
NON_ASCII_DIGITS = st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii())


@pytest.mark.parametrize("text", ["٥", "０.５", "1.٥", "²", "۱۲", "1０", "٣.٢"])
def test_parse_amount_refuses_non_ascii_digits_naming_the_character(text):
    with pytest.raises(InvalidAmount, match=r"not one of the ASCII digits 0-9") as err:
        parse_amount(text, "ETH")
    assert "U+" in str(err.value)


@given(digit=NON_ASCII_DIGITS, left=st.text("0123456789", max_size=5), right=st.text("0123456789", max_size=5),
       dot=st.booleans())
def test_any_non_ascii_digit_is_refused_in_a_decimal_amount(digit, left, right, dot):
    text = left + digit + ("." if dot and right else "") + right
    with pytest.raises(InvalidAmount):
        parse_amount(text, "ETH")


@given(digit=NON_ASCII_DIGITS, left=st.text("0123456789", max_size=5), right=st.text("0123456789", max_size=5))
def test_any_non_ascii_digit_is_refused_in_smallest_units(digit, left, right):
    with pytest.raises(InvalidAmount):
        parse_units(left + digit + right)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_ascii_digit_strings_still_parse(value):
    assert parse_units(str(value)) == value
    assert parse_amount(str(value // 10**8), "BTC") == value // 10**8 * 10**8


@pytest.mark.parametrize("price", ["٥", "５", "²", "1٠"])
def test_a_json_payment_with_a_non_ascii_price_is_refused(price):
    tx = Ledger(uuid.uuid4()).pay(ALICE, 5)
    doc = tx.to_dict()
    doc["price"] = price
    with pytest.raises(InvalidAmount, match="ASCII digits"):
        SignedInvoice.from_json(json.dumps(doc))
    doc = tx.to_dict()
    doc["buyerTotal"] = price
    with pytest.raises(InvalidAmount, match="ASCII digits"):
        SignedInvoice.from_json(json.dumps(doc, ensure_ascii=False).encode())


def test_a_control_request_amount_takes_ascii_digits_only():
    from infrastructure.node.messages import _amount

    assert _amount("12") == 12
    for bad in ("٥", "²", "１"):
        with pytest.raises(ValueError):
            _amount(bad)


@pytest.mark.parametrize("text", ["٥", "０.５"])
def test_parsec_amount_refuses_them_with_the_reason(text, capsys):
    assert main(["amount", text, "ETH"]) == Exit.REFUSED
    err = capsys.readouterr()
    assert "InvalidAmount" in err.err and "ASCII digits" in err.err and "wei" not in err.out


def test_parsec_amount_still_converts_ascii(capsys):
    assert main(["amount", "5", "ETH"]) == 0
    assert "5000000000000000000 wei" in capsys.readouterr().out
