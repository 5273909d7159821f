"""EIP-712 typed-data hashing for the few static types Parsec signs.

Written out rather than imported so that ``domain/`` stays free of web3 and so
that the bytes are plain to read next to ``contracts/``; tested against the
EIP's own example (``Mail``) and against eth-account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from domain.crypto import keccak

_FIELD = re.compile(r"(\w+) (\w+)")


@dataclass(frozen=True)
class StructType:
    """One EIP-712 struct type, e.g. ``Mail(address from,address to,string contents)``."""

    name: str
    fields: tuple[tuple[str, str], ...]  # (type, name)

    @classmethod
    def parse(cls, signature: str) -> StructType:
        name, _, rest = signature.partition("(")
        body = rest.rstrip(")")
        fields = tuple(_FIELD.fullmatch(f.strip()).groups() for f in body.split(",") if f)  # type: ignore[union-attr]
        return cls(name, fields)

    @property
    def encode_type(self) -> str:
        return f"{self.name}({','.join(f'{t} {n}' for t, n in self.fields)})"

    @property
    def type_hash(self) -> bytes:
        return _type_hash(self.encode_type)

    def hash_struct(self, values: dict[str, object]) -> bytes:
        type_hash, encoders = _compiled(self)
        return keccak(type_hash + b"".join([enc(values[name]) for name, enc in encoders]))


@lru_cache(maxsize=64)
def _type_hash(encode_type: str) -> bytes:
    return keccak(encode_type.encode())


@lru_cache(maxsize=4096)
def hash_string(value: str) -> bytes:
    return keccak(value.encode("utf-8"))


def encode_value(typ: str, value: object) -> bytes:
    """Encode one atomic or dynamic value as its 32-byte EIP-712 word."""
    if typ == "string":
        return hash_string(value)  # type: ignore[arg-type]
    if typ == "bytes":
        return keccak(value)  # type: ignore[arg-type]
    if typ == "address":
        raw = bytes.fromhex(value[2:]) if isinstance(value, str) else value  # type: ignore[index]
        if len(raw) != 20:  # type: ignore[arg-type]
            raise ValueError("address must be 20 bytes")
        return b"\0" * 12 + raw  # type: ignore[operator]
    if typ == "bool":
        return int(bool(value)).to_bytes(32, "big")
    if typ.startswith("uint"):
        bits = int(typ[4:] or 256)
        v = int(value)  # type: ignore[call-overload]
        if not 0 <= v < 2**bits:
            raise ValueError(f"{v} does not fit {typ}")
        return v.to_bytes(32, "big")
    if typ.startswith("bytes"):
        size = int(typ[5:])
        raw = value if isinstance(value, bytes) else bytes.fromhex(str(value).removeprefix("0x"))
        if len(raw) != size:
            raise ValueError(f"{typ} needs {size} bytes, got {len(raw)}")
        return raw + b"\0" * (32 - size)
    raise ValueError(f"unsupported EIP-712 type {typ}")


def _encoder(typ: str):
    """``encode_value`` specialised for one type (the same checks and bytes, no dispatch per call)."""
    if typ == "address":

        def address(value: object) -> bytes:
            raw = bytes.fromhex(value[2:]) if isinstance(value, str) else value  # type: ignore[index]
            if len(raw) != 20:  # type: ignore[arg-type]
                raise ValueError("address must be 20 bytes")
            return _PAD12 + raw  # type: ignore[operator]

        return address
    if typ.startswith("uint"):
        bound = 2 ** int(typ[4:] or 256)

        def uint(value: object) -> bytes:
            v = int(value)  # type: ignore[call-overload]
            if not 0 <= v < bound:
                raise ValueError(f"{v} does not fit {typ}")
            return v.to_bytes(32, "big")

        return uint
    if typ.startswith("bytes") and typ != "bytes":
        size = int(typ[5:])
        pad = b"\0" * (32 - size)

        def fixed(value: object) -> bytes:
            if isinstance(value, bytes) and len(value) == size:
                return value + pad
            return encode_value(typ, value)

        return fixed
    return lambda value: encode_value(typ, value)


_PAD12 = b"\0" * 12


@lru_cache(maxsize=64)
def _compiled(struct: StructType) -> tuple[bytes, tuple[tuple[str, object], ...]]:
    return struct.type_hash, tuple((name, _encoder(typ)) for typ, name in struct.fields)


EIP712_DOMAIN = StructType.parse(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


@lru_cache(maxsize=256)
def domain_separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    return EIP712_DOMAIN.hash_struct(
        {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": verifying_contract,
        }
    )


def typed_data_digest(separator: bytes, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + separator + struct_hash)
