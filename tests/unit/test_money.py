import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import AmountOutOfRange, CurrencyNotAllowed, InvalidAmount, TooManyDecimals
from domain.money import MAX_AMOUNT, Currency, check_amount, format_amount, parse_amount


@pytest.mark.parametrize(
    "text,currency,expected",
    [
        ("0.05", "ETH", 50_000_000_000_000_000),
        ("1", "ETH", 10**18),
        ("0.000000000000000001", "ETH", 1),
        ("0.00012345", "BTC", 12_345),
        ("21000000", "BTC", 21_000_000 * 10**8),
        ("0", "BTC", 0),
        ("1_000.5", "ETH", 1000 * 10**18 + 5 * 10**17),
    ],
)
def test_parses_decimal_strings_exactly(text, currency, expected):
    assert parse_amount(text, currency) == expected


def test_more_decimals_than_the_currency_has_is_an_error():
    with pytest.raises(TooManyDecimals, match="9 decimals but BTC has 8"):
        parse_amount("0.000000001", "BTC")
    with pytest.raises(TooManyDecimals):
        parse_amount("0.0000000000000000001", "ETH")


@pytest.mark.parametrize("bad", ["", "-1", "1e5", "0x10", "1.2.3", " . ", "NaN", "1,5"])
def test_rejects_non_decimal_text(bad):
    with pytest.raises(InvalidAmount):
        parse_amount(bad, "ETH")


def test_floats_are_refused_everywhere():
    with pytest.raises(InvalidAmount, match="decimal string"):
        parse_amount(0.05, "ETH")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount, match="integer"):
        check_amount(1.0)
    with pytest.raises(InvalidAmount):
        check_amount(True)


def test_amount_range():
    with pytest.raises(AmountOutOfRange, match="negative"):
        check_amount(-1)
    with pytest.raises(AmountOutOfRange, match="greater than zero"):
        check_amount(0)
    with pytest.raises(AmountOutOfRange, match="exceeds"):
        check_amount(MAX_AMOUNT + 1)
    assert check_amount(MAX_AMOUNT) == MAX_AMOUNT


def test_only_eth_and_btc_are_allowed_and_the_error_names_them():
    with pytest.raises(CurrencyNotAllowed, match=r"'DOGE' is not allowed; use ETH or BTC"):
        Currency.parse("DOGE")
    with pytest.raises(CurrencyNotAllowed):
        parse_amount("1", "eth")
    assert Currency.parse("BTC").decimals == 8
    assert Currency.ETH.decimals == 18


@given(st.integers(min_value=0, max_value=MAX_AMOUNT), st.sampled_from(list(Currency)))
def test_format_and_parse_round_trip(value, currency):
    assert parse_amount(format_amount(value, currency), currency) == value
