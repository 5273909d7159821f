"""``parsec key new|import|list|show``: the keystore files a person signs with (infrastructure/keys.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from infrastructure.cli.console import console, print_json
from infrastructure.cli.options import add_command, add_settings_flags
from infrastructure.settings import Settings


def _directory(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.dir) if getattr(args, "dir", None) else settings.key_dir


def _report(args: argparse.Namespace, what: str, keystore, public_key: str | None = None) -> None:
    row = {"address": keystore.address, "file": str(keystore.path)}
    if public_key is not None:
        row["public_key"] = public_key
    if args.json:
        print_json(row)
        return
    console.print(f"{what} {keystore.address}")
    console.print(f"  file        {keystore.path}")
    if public_key is not None:
        console.print(f"  public key  {public_key}")


def cmd_new(args: argparse.Namespace, settings: Settings) -> int:
    """Make a new key and write it as an encrypted keystore file.

    A random secp256k1 key, encrypted with scrypt into a Web3 Secret Storage v3 file (the format
    geth and eth-account use) named UTC--<time>--<address>, mode 0600, in the key directory
    (--dir, PARSEC_KEY_DIR, default ~/.parsec/keys). The password is asked twice without echo, or
    read from --password-file / PARSEC_KEY_PASSWORD_FILE / PARSEC_KEY_PASSWORD.
    """
    from infrastructure.keys import create_keystore, passwords

    source = passwords(settings, password_file=args.password_file)
    keystore = create_keystore(source.read("the new key", confirm=True), _directory(args, settings),
                               scrypt_n=args.scrypt_n)
    _report(args, "new key", keystore)
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Encrypt an existing private key (hex) into a keystore file.

    The hex private key is read from --private-key-file, or from standard input (one line; never
    a flag, which would show in `ps` and shell history). The keystore is written as `parsec key
    new` writes it.
    """
    from domain.addresses import eth_address_from_public_key
    from domain.crypto import PrivateKey
    from infrastructure.keys import KeystoreError, create_keystore, passwords

    if args.private_key_file:
        text = Path(args.private_key_file).read_text()
    else:
        if sys.stdin.isatty():
            import getpass

            text = getpass.getpass("private key (hex): ")
        else:
            text = sys.stdin.readline()
    text = text.strip()
    try:
        key = PrivateKey.from_hex(text)
    except ValueError:
        raise KeystoreError("a private key is 64 hex digits (0x optional), 0 < k < n") from None
    source = passwords(settings, password_file=args.password_file)
    keystore = create_keystore(source.read(eth_address_from_public_key(key.public_key), confirm=True), _directory(args, settings),
                               key=key, scrypt_n=args.scrypt_n)
    _report(args, "imported key", keystore)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the keystore files in the key directory and their addresses.

    Reads only each file's address field: no password is needed.
    """
    from infrastructure.keys import list_keystores

    directory = _directory(args, settings)
    found = list_keystores(directory)
    if args.json:
        print_json([{"address": k.address, "file": str(k.path)} for k in found])
        return 0
    table = Table(title=f"Keys in {directory}")
    table.add_column("address")
    table.add_column("file", overflow="fold")
    for k in found:
        table.add_row(k.address, k.path.name)
    console.print(table)
    if not found:
        console.print("no keystore files yet: `parsec key new` makes one")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show a key's address and public key (never the private key).

    KEY is a keystore file or the address of one in the key directory. The public key needs the
    password (a keystore file stores only the address in the clear).
    """
    from infrastructure.keys import find_keystore, passwords, unlock

    keystore = find_keystore(args.key, _directory(args, settings))
    key = unlock(keystore, passwords(settings, password_file=args.password_file).read(keystore.address))
    _report(args, "key", keystore, public_key="0x" + key.public_key.hex())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("key", help="keystore files: new, import, list, show",
                           description="Encrypted Ethereum keystore files (Web3 Secret Storage v3, scrypt) that "
                                       "every signing command takes with --key.")
    add_settings_flags(group, "key_dir")
    keys = group.add_subparsers(dest="key_command", metavar="COMMAND", required=True)
    for func in (cmd_new, cmd_import, cmd_list, cmd_show):
        p = add_command(keys, func, name=func.__name__.removeprefix("cmd_"))
        p.add_argument("--json", action="store_true", help="one JSON document instead of text")
        p.add_argument("--dir", help="the key directory for this command (default: PARSEC_KEY_DIR)")
        if func is not cmd_list:
            p.add_argument("--password-file", type=Path,
                           help="a file holding the password (else PARSEC_KEY_PASSWORD_FILE, PARSEC_KEY_PASSWORD, "
                                "or a prompt); never a flag value")
        if func in (cmd_new, cmd_import):
            # geth's standard cost; lower only for tests (a weaker file is faster to brute-force)
            p.add_argument("--scrypt-n", type=int, default=2**18, help=argparse.SUPPRESS)
        if func is cmd_import:
            p.add_argument("--private-key-file", help="a file holding the hex private key (default: standard input)")
        if func is cmd_show:
            p.add_argument("key", help="a keystore file, or the address of one in the key directory")
