"""The contract deployed on one backend, with funded parties: the in-process py-evm chain
(eth-tester) or a real anvil node.

The ``chain`` fixture (tests/integration/conftest.py) runs every test that asks for it on
both. Anvil: reuses a node already answering on ``PARSEC_ANVIL_PORT`` (default 8545) or starts
one with ``scripts/anvil start`` (and stops it again only if it started it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from domain.crypto import PrivateKey
from infrastructure.chain import ChannelContract, TestToken, Wallet, connect, fund, wallet

ROOT = Path(__file__).resolve().parents[3]
ANVIL_URL = f"http://127.0.0.1:{os.environ.get('PARSEC_ANVIL_PORT', '8545')}"
ETHER = 10**18
BTC = 10**8
MIN_PERIOD = 60
"""The deployed contract's minimum challenge period (s): below every period the suites use."""


@dataclass
class Party:
    key: PrivateKey
    wallet: Wallet

    @property
    def address(self) -> str:
        return self.wallet.address


@dataclass
class Chain:
    """A deployed set of contracts on one backend, with funded parties."""

    name: str
    w3: Web3
    channels: ChannelContract
    token: TestToken
    deployer: Party
    alice: Party
    bob: Party
    carol: Party  # neither participant: third parties, operators, attackers


def _anvil_w3() -> Iterator[Web3]:
    started = False
    try:
        w3 = connect(ANVIL_URL, timeout=10)
    except Exception:
        subprocess.run([str(ROOT / "scripts" / "anvil"), "start"], check=True)
        started = True
        w3 = connect(ANVIL_URL, timeout=10)
    try:
        yield w3
    finally:
        if started:
            subprocess.run([str(ROOT / "scripts" / "anvil"), "stop"], check=False)


def party(w3: Web3, seed: str, ether: int = 1000) -> Party:
    """The party of ``seed``'s key, funded with ``ether`` (from the dev account)."""
    key = PrivateKey.from_seed(seed)
    p = Party(key, wallet(key))
    fund(w3, p.address, ether * ETHER)
    return p


def deployed_chain(backend: str) -> Iterator[Chain]:
    """The contracts deployed on ``backend`` ("eth-tester" or "anvil"), for as long as the
    generator runs (then anvil stops, if this started it)."""
    if backend == "eth-tester":
        generator: Iterator[Web3] = iter([connect(None)])
    else:
        generator = _anvil_w3()
    w3 = next(generator)
    deployer = party(w3, "parsec-contract-tests/deployer")
    token = TestToken.deploy(w3, deployer.wallet)
    channels = ChannelContract.deploy(w3, deployer.wallet, token.address, min_challenge_period=MIN_PERIOD)
    yield Chain(
        name=backend,
        w3=w3,
        channels=channels,
        token=token,
        deployer=deployer,
        alice=party(w3, "parsec-contract-tests/alice"),
        bob=party(w3, "parsec-contract-tests/bob"),
        carol=party(w3, "parsec-contract-tests/carol"),
    )
    for _ in generator:  # runs the generator's cleanup (stops anvil if we started it)
        pass
