"""The ``parsec`` command line: one module per command group, assembled here.

Every command gets one ``Settings`` (infrastructure/settings.py): flags over ``PARSEC_*``
environment variables over the config file (``--config`` / ``PARSEC_CONFIG``) over defaults, and
asks the composition root (infrastructure/bootstrap.py) for what it runs. A refused input prints
its reason and exits with status 2; no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from rich.logging import RichHandler

from domain.errors import ParsecError
from infrastructure.cli import api, bench, config, demo, invoices, keys, node, read_models, settler, simulate
from infrastructure.cli.console import err_console
from infrastructure.settings import EVENT_STORES, Settings

COMMAND_GROUPS = (demo, invoices, keys, node, settler, read_models, simulate, bench, config, api)

EPILOG = """\
settings: every flag has a PARSEC_* environment variable, and a key in the TOML config file
(--config FILE or PARSEC_CONFIG); flags win over the environment, which wins over the file.
`parsec config` prints every setting, its value and where it came from; docs/configuration.md
explains each one.
"""

# global flag -> settings field (the flags of a command group are in its module)
GLOBAL_FLAGS = ("data_dir", "event_store", "kafka_bootstrap", "kafka_security_protocol", "kafka_sasl_mechanism",
                "kafka_sasl_username", "kafka_sasl_password_file", "kafka_ssl_cafile", "postgres_dsn", "eth_rpc",
                "log_level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parsec",
        description=(
            "Parsec: Ethereum state channels whose every transaction is an event in Kafka. "
            "Buyers sign hash-linked invoices; nodes verify and order them, keep balances, "
            "and settle on-chain."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings (env PARSEC_CONFIG)")
    parser.add_argument("--data-dir", help="directory for embedded stores (env PARSEC_DATA_DIR)")
    parser.add_argument("--event-store", choices=EVENT_STORES, help="event store (env PARSEC_EVENT_STORE)")
    parser.add_argument("--kafka", dest="kafka_bootstrap", help="Kafka bootstrap servers (env PARSEC_KAFKA_BOOTSTRAP)")
    kafka = parser.add_argument_group("Kafka security (flags win over the PARSEC_KAFKA_* variables)")
    kafka.add_argument("--kafka-security-protocol", metavar="PROTOCOL",
                       help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (env PARSEC_KAFKA_SECURITY_PROTOCOL)")
    kafka.add_argument("--kafka-sasl-mechanism", metavar="MECHANISM",
                       help="SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (env PARSEC_KAFKA_SASL_MECHANISM)")
    kafka.add_argument("--kafka-sasl-username", metavar="NAME", help="SASL principal (env PARSEC_KAFKA_SASL_USERNAME)")
    kafka.add_argument("--kafka-sasl-password-file", metavar="FILE",
                       help="a file holding the SASL password (env PARSEC_KAFKA_SASL_PASSWORD[_FILE]; "
                            "no flag takes the password itself)")
    kafka.add_argument("--kafka-ssl-cafile", metavar="PEM", help="CA of the brokers' certificates (env PARSEC_KAFKA_SSL_CAFILE)")
    parser.add_argument("--postgres", dest="postgres_dsn", help="PostgreSQL DSN for read models (env PARSEC_POSTGRES_DSN)")
    parser.add_argument("--eth-rpc", help="Ethereum JSON-RPC URL; unset = in-process chain (env PARSEC_ETH_RPC)")
    parser.add_argument("--log-level", help="DEBUG, INFO or WARNING (env PARSEC_LOG_LEVEL)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of this run: the global flags, and the command group's own (``SETTINGS_FLAGS``)."""
    flags: dict[str, Any] = {name: getattr(args, name, None) for name in GLOBAL_FLAGS}
    for name in getattr(args, "settings_flags", ()):
        flags[name] = getattr(args, name, None)
    return Settings.load(flags, config_file=args.config)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        settings = settings_from(args)
        logging.basicConfig(
            level=settings.log_level,
            format="%(message)s",
            handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=args.debug)],
        )
        return int(args.func(args, settings) or 0)
    except ParsecError as err:
        if args.debug:
            raise
        err_console.print(f"[bold red]{err.reason}[/]: {err}")
        return 2
    except (ValueError, OSError) as err:
        if args.debug:
            raise
        err_console.print(f"[bold red]error[/]: {err}")
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
