"""Addresses derived from public keys: Ethereum (EIP-55) and Bitcoin P2PKH.

The paper's ``isValidBuyerAddress``: a buyer's address must be the one its
public key gives, in the format of the invoice's currency.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import NewType

from domain.crypto import compress_public_key, decompress_public_key, hash160, keccak
from domain.errors import InvalidAddress
from domain.money import Currency

Address = NewType("Address", str)
"""An EIP-55 checksummed Ethereum address, '0x' + 40 hex digits."""

BtcAddress = NewType("BtcAddress", str)

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
P2PKH_MAINNET = 0x00


def to_checksum_address(raw: bytes | str) -> Address:
    """EIP-55 mixed-case checksum encoding of a 20-byte address."""
    if isinstance(raw, str):
        if not _HEX40.match(raw):
            raise InvalidAddress(f"{raw!r} is not an Ethereum address ('0x' and 40 hex digits)")
        raw = bytes.fromhex(raw[2:])
    if len(raw) != 20:
        raise InvalidAddress(f"an Ethereum address is 20 bytes, got {len(raw)}")
    hex_addr = raw.hex()
    digest = keccak(hex_addr.encode()).hex()
    return Address(
        "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(hex_addr, digest, strict=False))
    )


@lru_cache(maxsize=65536)
def parse_eth_address(text: str) -> Address:
    """Validate an Ethereum address; mixed case must carry a correct EIP-55 checksum."""
    if not isinstance(text, str) or not _HEX40.match(text):
        raise InvalidAddress(f"{text!r} is not an Ethereum address ('0x' and 40 hex digits)")
    body = text[2:]
    checksummed = to_checksum_address(text)
    if body != body.lower() and body != body.upper() and text != checksummed:
        raise InvalidAddress(f"{text!r} has a wrong EIP-55 checksum (expected {checksummed})")
    return checksummed


def eth_address_bytes(public_key: bytes) -> bytes:
    return keccak(decompress_public_key(public_key)[1:])[12:]


@lru_cache(maxsize=65536)
def eth_address_from_public_key(public_key: bytes) -> Address:
    return to_checksum_address(eth_address_bytes(public_key))


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58[rem])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise InvalidAddress(f"{text!r} contains {c!r}, not a base58 character")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def _checksum4(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58check_encode(version: int, payload: bytes) -> str:
    data = bytes([version]) + payload
    return b58encode(data + _checksum4(data))


def b58check_decode(text: str) -> tuple[int, bytes]:
    raw = b58decode(text)
    if len(raw) < 5:
        raise InvalidAddress(f"{text!r} is too short for base58check")
    data, check = raw[:-4], raw[-4:]
    if _checksum4(data) != check:
        raise InvalidAddress(f"{text!r} has a wrong base58check checksum")
    return data[0], data[1:]


@lru_cache(maxsize=65536)
def btc_p2pkh_address(public_key: bytes, *, compressed: bool = True) -> BtcAddress:
    """Bitcoin mainnet P2PKH address of a key (compressed form by default, as wallets use)."""
    if compressed:
        key = compress_public_key(public_key)
    else:
        key = decompress_public_key(public_key)
    return BtcAddress(b58check_encode(P2PKH_MAINNET, hash160(key)))


def parse_btc_address(text: str) -> BtcAddress:
    if not isinstance(text, str) or not 25 <= len(text) <= 35:
        raise InvalidAddress(f"{text!r} is not a Bitcoin P2PKH address")
    version, payload = b58check_decode(text)
    if version != P2PKH_MAINNET or len(payload) != 20:
        raise InvalidAddress(f"{text!r} is not a mainnet P2PKH address (version 0x00, 20 bytes)")
    return BtcAddress(text)


def address_for_currency(public_key: bytes, currency: Currency) -> str:
    """The buyer address the paper expects for a key: Ethereum for ETH, P2PKH for BTC."""
    if currency is Currency.ETH:
        return eth_address_from_public_key(public_key)
    return btc_p2pkh_address(public_key)
