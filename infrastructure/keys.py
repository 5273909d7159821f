"""Keys a person owns: standard Ethereum encrypted keystore files (Web3 Secret Storage v3, scrypt).

Every command that signs (payments, control requests, on-chain transactions, the operator and the
settler) loads its key here, from a keystore file named by ``--key`` / ``PARSEC_KEY_FILE`` (or an
address whose file is in the key directory). The files are the ones geth, Clef and MetaMask's
exports use, written and read by eth-account, so a key moves between Parsec and any Ethereum
wallet. Seeds (``PrivateKey.from_seed``) stay for the simulator and tests.

A password comes from a file (``--password-file`` / ``PARSEC_KEY_PASSWORD_FILE``), the environment
(``PARSEC_KEY_PASSWORD``) or a prompt that does not echo; it is never a flag (flags show up in
``ps`` and shell history), never printed and never logged.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from domain.crypto import PrivateKey
from domain.errors import ParsecError

if TYPE_CHECKING:
    from infrastructure.settings import Settings
from domain.addresses import eth_address_from_public_key, parse_eth_address

# The scrypt cost geth and eth-account use for a standard keystore (N = 2**18: about a second and
# 256 MiB to unlock, which is the point). Tests pass a smaller ``scrypt_n``.
STANDARD_SCRYPT_N = 2**18
MIN_PASSWORD_LENGTH = 8


class KeystoreError(ParsecError):
    """A keystore file that cannot be read, or is not a keystore."""


class WrongPassword(KeystoreError):
    """The password does not decrypt this keystore (its MAC does not match)."""


class NoPassword(KeystoreError):
    """No password was given and there is no terminal to ask for one."""


class KeyNotFound(KeystoreError):
    """No keystore file for this path or address."""


@dataclass(frozen=True, slots=True)
class KeystoreFile:
    """A keystore file and the address it says it holds (read without the password)."""

    path: Path
    address: str

    @classmethod
    def read(cls, path: Path) -> KeystoreFile:
        data = _load(path)
        return cls(path, _checksum(data["address"]))


def _load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeyNotFound(f"no keystore file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"{str(path)!r} is not a readable keystore file: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != 3 or "crypto" not in data or "address" not in data:
        raise KeystoreError(f"{str(path)!r} is not a Web3 Secret Storage v3 keystore (version 3, crypto, address)")
    return data


def _checksum(address: str) -> str:
    if not isinstance(address, str):
        raise KeystoreError(f"keystore address {address!r} is not an Ethereum address")
    try:
        return parse_eth_address("0x" + address.removeprefix("0x").lower())
    except ParsecError:
        raise KeystoreError(f"keystore address {address!r} is not an Ethereum address") from None


def create_keystore(password: str, directory: Path, *, key: PrivateKey | None = None,
                    scrypt_n: int = STANDARD_SCRYPT_N) -> KeystoreFile:
    """Encrypt ``key`` (a new random one when None) into a new file in ``directory``, mode 0600.

    The name is geth's, ``UTC--<time>--<address>``, so ``geth account list`` and Clef find it too.
    """
    from eth_account import Account

    if len(password) < MIN_PASSWORD_LENGTH:
        raise KeystoreError(f"a keystore password has at least {MIN_PASSWORD_LENGTH} characters")
    key = key or PrivateKey(os.urandom(32))
    data = Account.encrypt(key.secret, password, kdf="scrypt", iterations=scrypt_n)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%fZ")
    path = directory / f"UTC--{stamp}--{data['address'].removeprefix('0x').lower()}"
    # O_EXCL + 0600: never overwrite a key, never leave it readable by others even for an instant
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    return KeystoreFile(path, _checksum(data["address"]))


def list_keystores(directory: Path) -> list[KeystoreFile]:
    """The keystore files in ``directory`` (files that are not keystores are skipped), by address."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.is_file():
            try:
                found.append(KeystoreFile.read(path))
            except KeystoreError:
                continue
    return sorted(found, key=lambda k: (k.address, k.path.name))


def find_keystore(key: str | Path, directory: Path) -> KeystoreFile:
    """A keystore by its path, or by the address it holds (looked up in ``directory``)."""
    text = str(key)
    if text.startswith("0x") and len(text) == 42 and not Path(text).exists():
        wanted = _checksum(text)
        matches = [k for k in list_keystores(directory) if k.address == wanted]
        if not matches:
            raise KeyNotFound(f"no keystore for {wanted} in {str(directory)!r} (parsec key list)")
        return matches[0]
    return KeystoreFile.read(Path(key))


def unlock(keystore: KeystoreFile, password: str) -> PrivateKey:
    """Decrypt the keystore; checks that the key is the address the file names."""
    from eth_account import Account

    try:
        secret = Account.decrypt(_load(keystore.path), password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword(f"wrong password for {keystore.address} ({keystore.path.name})") from None
        raise KeystoreError(f"cannot decrypt {str(keystore.path)!r}: {exc}") from None
    key = PrivateKey(bytes(secret))
    if eth_address_from_public_key(key.public_key) != keystore.address:
        raise KeystoreError(f"{str(keystore.path)!r} names {keystore.address} but holds another key")
    return key


# ------------------------------------------------------------------------ passwords
@dataclass(frozen=True, slots=True)
class PasswordSource:
    """Where a password comes from, in order: a file, a value (the environment), a prompt."""

    file: Path | None = None
    value: str | None = None
    prompt: Callable[[str], str] | None = getpass.getpass
    interactive: bool | None = None  # None: whether standard input is a terminal

    def read(self, what: str, *, confirm: bool = False) -> str:
        if self.file is not None:
            try:
                text = Path(self.file).read_text()
            except OSError as exc:
                raise NoPassword(f"cannot read the password file {str(self.file)!r}: {exc.strerror}") from None
            # one trailing newline is the editor's, not the password's
            return text[:-1] if text.endswith("\n") else text
        if self.value is not None:
            return self.value
        interactive = sys.stdin.isatty() if self.interactive is None else self.interactive
        if self.prompt is None or not interactive:
            raise NoPassword(f"no password for {what}: give --password-file FILE or PARSEC_KEY_PASSWORD_FILE, "
                             "set PARSEC_KEY_PASSWORD, or run in a terminal to be asked")
        password = self.prompt(f"password for {what}: ")
        if confirm and self.prompt(f"repeat the password for {what}: ") != password:
            raise KeystoreError("the two passwords differ")
        return password


def load_key(key: str | Path, passwords: PasswordSource, directory: Path) -> PrivateKey:
    """The private key of a keystore named by path or address: what ``--key`` resolves to."""
    keystore = find_keystore(key, directory)
    return unlock(keystore, passwords.read(keystore.address))


def passwords(settings: Settings, *, password_file: Path | None = None) -> PasswordSource:
    """The password source a command uses: its ``--password-file``, then the settings, then a prompt."""
    value = settings.key_password.get_secret_value() if settings.key_password is not None else None
    return PasswordSource(file=password_file or settings.key_password_file, value=value)


def signing_key(settings: Settings, key: str | Path | None = None, *,
                password_file: Path | None = None) -> PrivateKey:
    """The key a signing command signs with: ``--key`` (a keystore path or address), else ``PARSEC_KEY_FILE``."""
    chosen = key if key is not None else settings.key_file
    if not chosen:
        raise KeyNotFound("no key: give --key FILE (a keystore file or the address of one in the key directory) "
                          "or set PARSEC_KEY_FILE; `parsec key new` makes one")
    return load_key(chosen, passwords(settings, password_file=password_file), settings.key_dir)
