"""Keystore files: written as geth and eth-account write them, unlocked only with the password."""

from __future__ import annotations

import json
import stat

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey
from infrastructure.keys import (
    KeyNotFound,
    KeystoreError,
    NoPassword,
    PasswordSource,
    WrongPassword,
    create_keystore,
    find_keystore,
    list_keystores,
    load_key,
    unlock,
)

FAST = 2**10  # scrypt N for tests; real keystores use 2**18
KEY = PrivateKey.from_seed("test/keys/alice")
ADDRESS = eth_address_from_public_key(KEY.public_key)


def test_a_keystore_round_trips_and_is_private(tmp_path):
    ks = create_keystore("correct horse", tmp_path, key=KEY, scrypt_n=FAST)
    assert ks.address == ADDRESS
    assert ks.path.name.startswith("UTC--") and ks.path.name.endswith(ADDRESS[2:].lower())
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600
    data = json.loads(ks.path.read_text())
    assert data["version"] == 3 and data["crypto"]["kdf"] == "scrypt"
    assert KEY.secret.hex() not in ks.path.read_text()
    assert unlock(ks, "correct horse").secret == KEY.secret


def test_eth_account_reads_the_file():
    import tempfile
    from pathlib import Path

    from eth_account import Account

    with tempfile.TemporaryDirectory() as d:
        ks = create_keystore("correct horse", Path(d), key=KEY, scrypt_n=FAST)
        assert bytes(Account.decrypt(json.loads(ks.path.read_text()), "correct horse")) == KEY.secret


def test_a_wrong_password_is_refused_by_name(tmp_path):
    ks = create_keystore("correct horse", tmp_path, key=KEY, scrypt_n=FAST)
    with pytest.raises(WrongPassword, match=f"wrong password for {ADDRESS}"):
        unlock(ks, "battery staple")


def test_a_short_password_is_refused(tmp_path):
    with pytest.raises(KeystoreError, match="at least 8 characters"):
        create_keystore("short", tmp_path, scrypt_n=FAST)


def test_keys_are_found_by_address_and_listed(tmp_path):
    ks = create_keystore("correct horse", tmp_path, key=KEY, scrypt_n=FAST)
    (tmp_path / "notes.txt").write_text("not a key")
    assert list_keystores(tmp_path) == [ks]
    assert find_keystore(ADDRESS.lower(), tmp_path) == ks
    assert load_key(ADDRESS, PasswordSource(value="correct horse"), tmp_path).secret == KEY.secret
    with pytest.raises(KeyNotFound, match="no keystore for 0x"):
        find_keystore("0x" + "11" * 20, tmp_path)
    with pytest.raises(KeyNotFound, match="no keystore file"):
        find_keystore(tmp_path / "missing.json", tmp_path)


def test_a_file_that_is_not_a_keystore_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1}')
    with pytest.raises(KeystoreError, match="not a Web3 Secret Storage v3 keystore"):
        find_keystore(bad, tmp_path)
    bad.write_text("{")
    with pytest.raises(KeystoreError, match="not a readable keystore file"):
        find_keystore(bad, tmp_path)


def test_a_keystore_naming_another_address_is_refused(tmp_path):
    ks = create_keystore("correct horse", tmp_path, key=KEY, scrypt_n=FAST)
    data = json.loads(ks.path.read_text())
    data["address"] = "22" * 20
    ks.path.write_text(json.dumps(data))
    with pytest.raises(KeystoreError, match="holds another key"):
        unlock(find_keystore(ks.path, tmp_path), "correct horse")


def test_password_sources_in_order(tmp_path):
    f = tmp_path / "pw"
    f.write_text("from the file\n")
    assert PasswordSource(file=f, value="from env").read("k") == "from the file"
    assert PasswordSource(value="from env").read("k") == "from env"
    asked = iter(["typed secret", "typed secret"])
    assert PasswordSource(prompt=lambda _: next(asked), interactive=True).read("k", confirm=True) == "typed secret"
    asked = iter(["one", "two"])
    with pytest.raises(KeystoreError, match="differ"):
        PasswordSource(prompt=lambda _: next(asked), interactive=True).read("k", confirm=True)
    with pytest.raises(NoPassword, match="PARSEC_KEY_PASSWORD"):
        PasswordSource(interactive=False).read("k")
