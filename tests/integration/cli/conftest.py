"""The CLI's on-chain suites: anvil, real keystore files, the contract deployed through ``parsec contract deploy``.

Every command runs in process through ``infrastructure.cli.main`` with the keystores' files and a
password file, as a user would type it; the chain is anvil (``scripts/anvil start`` when nothing
answers on PARSEC_ANVIL_PORT), never the in-process chain: a command's transactions must outlive it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from domain.crypto import PrivateKey
from infrastructure.chain import fund
from infrastructure.cli import main
from infrastructure.keys import create_keystore
from tests.integration.contract.chain import ANVIL_URL, ETHER, _anvil_w3

PASSWORD = "correct horse battery"
PERIOD = 60
"""The deployed contract's minimum challenge period, and the channels': short, so settle is a minute of chain time."""


@dataclass(frozen=True)
class Keystore:
    path: Path
    key: PrivateKey
    address: str

    @property
    def public_key(self) -> str:
        return "0x" + self.key.public_key.hex()


@dataclass
class Cli:
    """``parsec`` in process: ``run(...)`` returns (exit status, stdout, stderr); ``json(...)`` the JSON it printed."""

    capsys: pytest.CaptureFixture[str]
    password_file: Path
    base: tuple[str, ...] = ()

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main([*self.base, *args])
        out = self.capsys.readouterr()
        return status, out.out, out.err

    def json(self, *args: str) -> Any:
        status, out, err = self.run(*args, "--json")
        assert status == 0, f"parsec {' '.join(args)} exited {status}: {err}"
        return json.loads(out)

    def signed(self, key: Keystore) -> tuple[str, ...]:
        return ("--key", str(key.path), "--password-file", str(self.password_file))


@pytest.fixture(scope="session")
def anvil() -> Iterator[Web3]:
    yield from _anvil_w3()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")  # an editor's trailing newline is not the password's
    return path


@pytest.fixture
def keystores(anvil: Web3, tmp_path: Path) -> Callable[[str], Keystore]:
    """A maker of funded keystore files (fresh keys: operators and payees are contract-wide)."""

    def make(name: str) -> Keystore:
        key = PrivateKey(os.urandom(32))
        ks = create_keystore(PASSWORD, tmp_path / "keys", key=key, scrypt_n=2**10)
        fund(anvil, ks.address, 100 * ETHER)
        return Keystore(ks.path, key, ks.address)

    return make


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], password_file: Path) -> Cli:
    return Cli(capsys, password_file, ("--eth-rpc", ANVIL_URL))


@pytest.fixture
def contract(cli: Cli, keystores: Callable[[str], Keystore]) -> str:
    """A fresh ParsecChannels (and TestToken) deployed with ``parsec contract deploy``."""
    deployer = keystores("deployer")
    out = cli.json("contract", "deploy", *cli.signed(deployer), "--test-token",
                   "--min-challenge-period", str(PERIOD))
    return out["contract"]
