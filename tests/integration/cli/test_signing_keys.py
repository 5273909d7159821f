"""``--key`` on the commands that sign besides ``parsec channel``: the settler's operator key and ``parsec
send``: a keystore file unlocked once, before anything connects; a wrong password refused (exit 2)."""

from __future__ import annotations

import argparse

from domain.crypto import PrivateKey
from infrastructure.cli import main
from infrastructure.cli.exits import Exit
from infrastructure.cli.settler import operator_key
from infrastructure.keys import create_keystore
from infrastructure.settings import Settings
from tests.integration.cli.conftest import PASSWORD


def _args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"operator_seed": None, "key": None, "password_file": None, **given})


def test_the_settler_takes_its_operator_key_from_a_keystore(tmp_path):
    key = PrivateKey.from_seed("cli-signing/operator")
    ks = create_keystore(PASSWORD, tmp_path / "keys", key=key, scrypt_n=2**10)
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    settings = Settings(key_dir=tmp_path / "keys")
    got = operator_key(_args(key=str(ks.path), password_file=password), settings)
    assert got.secret == key.secret
    # by address in the key directory, the password from the environment's setting
    by_address = Settings(key_dir=tmp_path / "keys", key_password=PASSWORD)
    assert operator_key(_args(key=ks.address), by_address).secret == key.secret
    # a hex PARSEC_OPERATOR_KEY still works; --key wins over it; a seed wins over both (tests)
    other = PrivateKey.from_seed("cli-signing/other")
    hexed = Settings(key_dir=tmp_path / "keys", key_password=PASSWORD, operator_key=other.secret.hex())
    assert operator_key(_args(), hexed).secret == other.secret
    assert operator_key(_args(key=ks.address), hexed).secret == key.secret
    assert operator_key(_args(operator_seed="s", key=ks.address), hexed).secret == PrivateKey.from_seed("s").secret
    # the configured default keystore, when nothing else names one
    default = Settings(key_dir=tmp_path / "keys", key_password=PASSWORD, key_file=str(ks.path))
    assert operator_key(_args(), default).secret == key.secret


def test_a_wrong_password_stops_the_settler_and_send_before_they_connect(tmp_path, capsys):
    ks = create_keystore(PASSWORD, tmp_path / "keys", scrypt_n=2**10)
    wrong = tmp_path / "wrong"
    wrong.write_text("a wrong password\n")
    # nothing answers on these ports: a connection attempt would fail differently
    status = main(["--eth-rpc", "http://127.0.0.1:9", "--kafka", "127.0.0.1:9", "settler", "--contract",
                   "0x" + "11" * 20, "--key", str(ks.path), "--password-file", str(wrong)])
    err = capsys.readouterr().err
    assert status == Exit.REFUSED and "WrongPassword" in err and "a wrong password" not in err
    status = main(["--kafka", "127.0.0.1:9", "send", "settle", "--channel", "00000000-0000-0000-0000-000000000001",
                   "--key", str(ks.path), "--password-file", str(wrong)])
    assert status == Exit.REFUSED and "WrongPassword" in capsys.readouterr().err


def test_no_operator_key_says_how_to_give_one(tmp_path, capsys, monkeypatch):
    for name in ("PARSEC_OPERATOR_KEY", "PARSEC_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    status = main(["--eth-rpc", "http://127.0.0.1:9", "settler", "--contract", "0x" + "11" * 20])
    assert status == Exit.REFUSED and "--key FILE" in capsys.readouterr().err


def test_on_chain_commands_need_a_node_and_a_contract(capsys, monkeypatch):
    for name in ("PARSEC_ETH_RPC", "PARSEC_CONTRACT"):
        monkeypatch.delenv(name, raising=False)
    status = main(["channel", "status", "--channel", "00000000-0000-0000-0000-000000000001"])
    assert status == Exit.USAGE and "--eth-rpc URL" in capsys.readouterr().err
    status = main(["--eth-rpc", "http://127.0.0.1:9", "channel", "status", "--channel",
                   "00000000-0000-0000-0000-000000000001"])
    assert status == Exit.USAGE and "--contract ADDRESS" in capsys.readouterr().err
    status = main(["--eth-rpc", "http://127.0.0.1:9", "channel", "status", "--contract", "0x" + "11" * 20,
                   "--channel", "00000000-0000-0000-0000-000000000001"])
    assert status == Exit.UNAVAILABLE and "no Ethereum node answers at http://127.0.0.1:9" in capsys.readouterr().err
