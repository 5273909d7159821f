"""Deterministic parties for simulations: keys derived from a seed."""

from __future__ import annotations

from dataclasses import dataclass

from domain.addresses import Address, eth_address_from_public_key
from domain.crypto import PrivateKey


@dataclass(frozen=True)
class Party:
    name: str
    key: PrivateKey

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    @property
    def address(self) -> Address:
        return eth_address_from_public_key(self.key.public_key)


def make_parties(seed: int | str, count: int) -> list[Party]:
    return [Party(f"party-{i}", PrivateKey.from_seed(f"parsec/{seed}/party/{i}")) for i in range(count)]
