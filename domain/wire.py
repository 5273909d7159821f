"""The building blocks of Parsec's signed messages: field types of the wire form (amounts as decimal
strings, hex bytes, addresses), the JSON depth guard, and ``Message``, the base of every signed
message (frozen, strict about unknown fields, domain errors unwrapped from pydantic's).

Shared by ``protocol`` (payments), ``kinds`` (the terms of each kind of channel transaction) and the
other signed messages, so none of them imports another for its field types.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError, WithJsonSchema

from domain.addresses import parse_eth_address
from domain.errors import MalformedMessage, ParsecError
from domain.money import parse_units

MAX_JSON_DEPTH = 32
"""A Parsec message nests three levels deep; anything past this is refused before it is decoded
(Python's decoder recurses per level, and libraries such as py-evm raise the recursion limit)."""


def check_json_depth(raw: bytes | str) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH``. Costs two ``count`` calls on an ordinary
    message: the string-aware scan runs only when there are many brackets at all."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth, in_string, escaped = 0, False, False
    for c in data:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise MalformedMessage(f"not valid JSON: nested too deeply (more than {MAX_JSON_DEPTH} levels)")
        elif c in (0x5D, 0x7D):
            depth -= 1


def _amount(value: Any) -> int:
    """Integers, or strings of the digits 0-9 (JSON consumers lose precision past 2**53)."""
    return parse_units(value)


# The JSON Schema of each wire type (schemas/, ``parsec schema``) says what the parser accepts: Parsec
# writes the first form (a decimal string, 0x-hex), and reads the second too (an integer, hex without 0x).
AMOUNT_JSON_SCHEMA: dict[str, Any] = {
    "description": "an amount in the smallest unit: a string of the digits 0-9 (what Parsec writes) or an integer",
    "anyOf": [{"type": "string", "pattern": "^[0-9]+$"}, {"type": "integer", "minimum": 0}],
}


def hex_json_schema(size: int | None, what: str) -> dict[str, Any]:
    digits = "+" if size is None else "{" + str(size) + "}"
    return {"type": "string", "pattern": f"^(0x)?([0-9a-fA-F]{{2}}){digits}$", "description": what}


ETH_ADDRESS_JSON_SCHEMA: dict[str, Any] = {
    "type": "string", "pattern": "^0x[0-9a-fA-F]{40}$",
    "description": "an Ethereum address, 0x and 40 hex digits (mixed case: a correct EIP-55 checksum)",
}

AmountField = Annotated[int, BeforeValidator(_amount), PlainSerializer(str, return_type=str),
                        WithJsonSchema(AMOUNT_JSON_SCHEMA)]


def _hex_bytes(size: int | None):
    def parse(value: Any) -> bytes:
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str):
            try:
                raw = bytes.fromhex(value.removeprefix("0x"))
            except ValueError:
                raise MalformedMessage(f"{value[:80]!r} is not hex") from None
        else:
            raise MalformedMessage(f"expected a hex string, got {type(value).__name__}")
        if size is not None and len(raw) != size:
            raise MalformedMessage(f"expected {size} bytes of hex, got {len(raw)}")
        return raw

    return parse


def _hex_out(value: bytes) -> str:
    return "0x" + value.hex()


Hash32 = Annotated[bytes, BeforeValidator(_hex_bytes(32)), PlainSerializer(_hex_out, return_type=str),
                   WithJsonSchema(hex_json_schema(32, "32 bytes as hex"))]
SignatureHex = Annotated[bytes, BeforeValidator(_hex_bytes(65)), PlainSerializer(_hex_out, return_type=str),
                         WithJsonSchema(hex_json_schema(65, "a signature r||s||v, 65 bytes as hex"))]
PublicKeyHex = Annotated[bytes, BeforeValidator(_hex_bytes(None)), PlainSerializer(_hex_out, return_type=str),
                         WithJsonSchema(hex_json_schema(None, "a secp256k1 public key as hex (33 or 65 bytes)"))]
EthAddressField = Annotated[str, BeforeValidator(lambda v: parse_eth_address(v)), WithJsonSchema(ETH_ADDRESS_JSON_SCHEMA)]


def _unwrap(err: ValidationError) -> ParsecError:
    """Surface the first domain error pydantic wrapped, else a readable MalformedMessage."""
    for item in err.errors():
        inner = (item.get("ctx") or {}).get("error")
        if type(inner) is MalformedMessage and item["loc"]:  # say which field (terms nest one level)
            return MalformedMessage(f"{'.'.join(str(p) for p in item['loc'])}: {inner}")
        if isinstance(inner, ParsecError):
            return inner
    parts = []
    for item in err.errors()[:3]:
        loc = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{loc}: {item['msg']}")
    return MalformedMessage("; ".join(parts))


class Message(BaseModel):
    """Base of protocol messages: frozen, strict about unknown fields, domain errors unwrapped."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _unwrap(err) from None

    @classmethod
    def parse(cls, data: Any):
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise _unwrap(err) from None

    @classmethod
    def from_json(cls, raw: bytes | str):
        check_json_depth(raw)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedMessage(f"not valid JSON: {exc}") from None
        except RecursionError:  # JSON nested deeper than the decoder recurses: never a payment
            raise MalformedMessage("not valid JSON: nested too deeply") from None
        if not isinstance(data, dict):
            raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}")
        return cls.parse(data)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


