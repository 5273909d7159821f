"""The ``parsec`` command line: one module per command group, assembled here.

Every command gets one ``Settings`` (infrastructure/settings.py): flags over ``PARSEC_*``
environment variables over the config file (``--config`` / ``PARSEC_CONFIG``) over defaults, and
asks the composition root (infrastructure/bootstrap.py) for what it runs. A failure prints one line
(a refused input: its reason) and exits with the status of its kind (infrastructure/cli/exits.py:
64 usage, 65 refused input, 69 unreachable service, 70 internal error); no traceback unless
``--debug``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import Any, NoReturn

from rich.markup import escape
from rich.text import Text

from domain.errors import ParsecError
from infrastructure.bootstrap import load_kind_plugins
from infrastructure.cli import (
    api,
    audit,
    bench,
    channel,
    config,
    contract,
    demo,
    invoices,
    keys,
    mediate,
    node,
    pay,
    read_models,
    route,
    schema,
    settler,
    simulate,
)
from infrastructure.cli.console import configure_logging, err_console, log_format
from infrastructure.cli.exits import EPILOG as EXIT_EPILOG
from infrastructure.cli.exits import Exit, classify, missing_extra
from infrastructure.settings import EVENT_STORES, Settings

COMMAND_GROUPS = (demo, invoices, keys, contract, channel, pay, mediate, node, settler, read_models, route, simulate, bench,
                  config, api, audit, schema)

EPILOG = """\
settings: every flag has a PARSEC_* environment variable, and a key in the TOML config file
(--config FILE or PARSEC_CONFIG); flags win over the environment, which wins over the file.
`parsec config` prints every setting, its value and where it came from; docs/configuration.md
explains each one.
""" + "\n" + EXIT_EPILOG

# global flag -> settings field (the flags of a command group are in its module)
GLOBAL_FLAGS = ("data_dir", "event_store", "kafka_bootstrap", "kafka_security_protocol", "kafka_sasl_mechanism",
                "kafka_sasl_username", "kafka_sasl_password_file", "kafka_ssl_cafile", "postgres_dsn", "eth_rpc",
                "log_level", "log_format")


def version() -> str:
    """The installed distribution's version (package metadata: pyproject.toml's, as built)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("parsec")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse with the usage status of infrastructure/cli/exits.py (argparse's own is 2); every
    subcommand's parser is one of these too (``add_subparsers`` makes parsers of its parser's class)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    parser.add_argument("--log-format", choices=("text", "json"),
                        help="text for a terminal, or json: one JSON object per log line for daemons "
                             "(env PARSEC_LOG_FORMAT, default text)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"parsec {version()}")
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


GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic garbage collector's thresholds for every command (CPython's default: 700, 10, 10)."""


def tune_garbage_collector() -> None:
    """Collect cycles less often, and never look again at what the imports left behind.

    Parsec's hot paths (a node's batch, a read model's rebuild) allocate many short-lived,
    acyclic objects (events, rows, parsed messages) that reference counting frees at once; with the
    default thresholds the collector still ran every 700 allocations and walked the whole heap
    every 100 of those runs: a quarter of a rebuild's time (11,800 -> 16,000 events/s,
    docs/performance.md). ``gc.freeze`` moves what exists now (modules, classes) out of its sight."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (infrastructure/cli/exits.py) is returned, never raised."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (64)
        return exc.code if isinstance(exc.code, int) else Exit.USAGE
    if not getattr(args, "func", None):
        parser.print_help()
        return Exit.OK
    tune_garbage_collector()
    try:
        settings = settings_from(args)
        configure_logging(settings.log_level, settings.log_format, debug=args.debug)
        load_kind_plugins(settings)  # before any message is parsed or signed
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return Exit.INTERRUPTED
    except BrokenPipeError:  # `parsec balances --json | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return Exit.BROKEN_PIPE
    except Exception as err:
        if args.debug:
            raise
        return _report(err)


def _report(err: Exception) -> int:
    """One line on standard error for the failure (never wrapped: grep-able), and its exit status."""
    status = classify(err)
    text = escape(str(err))
    if isinstance(err, ParsecError):
        line = f"[bold red]{err.reason}[/]: {text}"
    elif missing_extra(err):
        extra = missing_extra(err)
        line = (f"[bold red]usage[/]: this needs the optional {extra!r} dependencies ({escape(str(err))}): "
                f"pip install 'parsec\\[{extra}]'")
    elif status is Exit.USAGE:
        line = f"[bold red]usage[/]: {text}"
    elif status is Exit.UNAVAILABLE:
        line = f"[bold red]unavailable[/]: {escape(type(err).__name__)}: {text}"
    elif status is Exit.REFUSED:
        line = f"[bold red]error[/]: {text}"
    else:
        line = (f"[bold red]internal error[/]: {escape(type(err).__name__)}: {text} "
                "(a bug: run again with --debug for the traceback and report it)")
    if log_format() == "json":  # stderr carries JSON lines only: the failure is one of them
        logging.getLogger("parsec").error("%s", Text.from_markup(line).plain, extra={
            "reason": getattr(err, "reason", type(err).__name__), "exit_status": int(status)})
    else:
        err_console.print(line, soft_wrap=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
