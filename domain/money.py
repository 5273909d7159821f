"""Money: integers in the smallest unit, parsed exactly from decimal strings.

Floats never touch an amount. ``parse_amount("0.05", "ETH")`` is
``50_000_000_000_000_000`` wei; more decimals than the currency has is an error,
not a rounding.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NewType

from domain.errors import AmountOutOfRange, CurrencyNotAllowed, InvalidAmount, TooManyDecimals

Wei = NewType("Wei", int)
Satoshi = NewType("Satoshi", int)
Amount = NewType("Amount", int)
"""An integer count of a currency's smallest unit (wei or satoshi)."""

MAX_AMOUNT = 2**128 - 1
"""Largest amount a message may carry; the contract packs amounts in 128 bits."""


class Currency(StrEnum):
    ETH = "ETH"
    BTC = "BTC"

    @property
    def decimals(self) -> int:
        return _DECIMALS[self]

    @property
    def unit(self) -> str:
        return "wei" if self is Currency.ETH else "satoshi"

    @classmethod
    def parse(cls, value: object) -> Currency:
        if isinstance(value, Currency):
            return value
        try:
            return cls(value)
        except ValueError:
            raise CurrencyNotAllowed(
                f"Currency {value!r} is not allowed; use {ALLOWED_CURRENCIES_TEXT}"
            ) from None


_DECIMALS = {Currency.ETH: 18, Currency.BTC: 8}
ALLOWED_CURRENCIES = tuple(c.value for c in Currency)
ALLOWED_CURRENCIES_TEXT = " or ".join(ALLOWED_CURRENCIES)

# re.ASCII: ``\d`` alone also matches Arabic-Indic, fullwidth and every other Unicode digit, which int()
# would then accept ("٥" is 5): an amount is written with 0-9 only, so what a user sees is what is signed
_DECIMAL_RE = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$", re.ASCII)
_UNITS_RE = re.compile(r"^[0-9]+$", re.ASCII)


def _non_ascii_digits(text: str) -> str | None:
    """The first character of ``text`` that is a digit but not 0-9 (Unicode category Nd/No), if any."""
    return next((c for c in text if not c.isascii() and (c.isdigit() or c.isdecimal() or c.isnumeric())), None)


def parse_amount(text: str, currency: Currency | str) -> Amount:
    """Parse a non-negative decimal string in whole units into the smallest unit, exactly."""
    cur = Currency.parse(currency)
    if not isinstance(text, str):
        raise InvalidAmount(
            f"amount must be a decimal string such as '0.05', not {type(text).__name__}"
        )
    stripped = text.strip().replace("_", "")
    odd = _non_ascii_digits(stripped)
    if odd is not None:
        raise InvalidAmount(
            f"{text!r} contains {odd!r} (U+{ord(odd):04X}), which is not one of the ASCII digits 0-9; "
            "amounts are written with 0-9 only"
        )
    m = _DECIMAL_RE.match(stripped)
    if not m:
        raise InvalidAmount(
            f"{text!r} is not a decimal amount; write digits with an optional '.' "
            f"(e.g. '0.05'), no sign or exponent"
        )
    frac = m.group("frac") or ""
    if len(frac) > cur.decimals:
        raise TooManyDecimals(
            f"{text!r} has {len(frac)} decimals but {cur.value} has {cur.decimals}"
        )
    value = int(m.group("int")) * 10**cur.decimals + int(frac.ljust(cur.decimals, "0") or "0")
    return check_amount(value, positive=False)


def parse_units(value: object, *, what: str = "amount") -> Amount:
    """An amount in the smallest unit as JSON carries it: an int, or a string of the ASCII digits 0-9.

    Strings because JSON consumers lose precision past 2**53; only 0-9 because ``str.isdigit`` and
    ``int()`` also take other scripts' digits ("٥", "５") and superscripts ("²")."""
    if isinstance(value, str):
        odd = _non_ascii_digits(value)
        if odd is not None:
            raise InvalidAmount(
                f"{what} {value!r} contains {odd!r} (U+{ord(odd):04X}), which is not one of the ASCII digits "
                "0-9; amounts are written with 0-9 only"
            )
        if not _UNITS_RE.match(value):
            raise InvalidAmount(
                f"{what} {value!r} must be an integer in the smallest unit (wei or satoshi) written with the "
                "digits 0-9; parse decimal strings with parse_amount()"
            )
        value = int(value)
    return check_amount(value, positive=False, what=what)


def format_amount(value: int, currency: Currency | str) -> str:
    """Render the smallest unit as an exact decimal string in whole units."""
    cur = Currency.parse(currency)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**cur.decimals)
    frac_s = str(frac).rjust(cur.decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_s}" if frac_s else f"{sign}{whole}"


def check_amount(value: object, *, positive: bool = True, what: str = "amount") -> Amount:
    """Validate an integer amount: an int (not bool/float), in range, > 0 when ``positive``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(
            f"{what} must be an integer in the smallest unit, not {type(value).__name__} {value!r}"
        )
    if value < 0:
        raise AmountOutOfRange(f"{what} {value} is negative")
    if positive and value == 0:
        raise AmountOutOfRange(f"{what} must be greater than zero")
    if value > MAX_AMOUNT:
        raise AmountOutOfRange(f"{what} {value} exceeds the maximum {MAX_AMOUNT} (2**128-1)")
    return Amount(value)
