"""The exit statuses of ``parsec``: one per kind of failure, so a script can tell them apart.

The four failure classes take the BSD ``sysexits.h`` numbers (64 and up): they are a published
convention shells and supervisors already know, and they stay clear of the small numbers a command
uses for its own outcome (``balances --channel X``: 1 when there is no such channel; ``simulate``: 1
when the run is incomplete; ``settler``: 3 when a newer settler fenced it). argparse's own usage
status (2) is moved to 64 so that "you typed it wrong" has one number.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    USAGE = 64  # EX_USAGE: unknown flag, bad flag value, bad PARSEC_* setting or config file
    REFUSED = 65  # EX_DATAERR: the input was read and refused (its reason is printed: InvalidAmount, WrongSigner…)
    UNAVAILABLE = 69  # EX_UNAVAILABLE: Kafka, PostgreSQL or the Ethereum node could not be reached
    INTERNAL = 70  # EX_SOFTWARE: a bug: an unexpected exception (--debug shows the traceback)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
    BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE, as `git log | head` reports it)


EPILOG = """\
exit status: 0 ok; 64 usage (a bad flag, setting or config file, or an optional extra not
installed); 65 refused input (the reason is printed, e.g. InvalidAmount, WrongSigner); 69 a service
is unreachable (Kafka, PostgreSQL, the Ethereum node); 70 internal error (--debug shows the
traceback); 130 interrupted. A command may use 1-9 for its own outcomes (its --help says which).
"""

# Exceptions that mean "the service did not answer", named by module and class so that classifying an
# error never imports a client library the command did not use (psycopg, kafka, web3 load slowly).
_UNREACHABLE = {
    ("psycopg", "OperationalError"),  # connection refused, authentication, server gone
    ("psycopg", "InterfaceError"),
    ("eventsourcing.persistence", "OperationalError"),  # the Kafka event store's BrokerUnavailableError too
    ("kafka.errors", "KafkaConnectionError"),
    ("kafka.errors", "KafkaTimeoutError"),
    ("kafka.errors", "NoBrokersAvailable"),
    ("kafka.errors", "NodeNotReadyError"),
    ("kafka.errors", "RequestTimedOutError"),
    ("kafka.errors", "BrokerNotAvailableError"),
    ("requests.exceptions", "ConnectionError"),  # web3's HTTPProvider
    ("requests.exceptions", "Timeout"),
    ("web3.exceptions", "ProviderConnectionError"),
    ("aiohttp.client_exceptions", "ClientConnectionError"),
    ("infrastructure.chain.errors", "ChainUnavailable"),
}
# librdkafka's error codes that say the brokers were not reached (confluent_kafka.KafkaError names)
_KAFKA_DOWN = {"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_MSG_TIMED_OUT", "_RESOLVE", "_AUTHENTICATION"}


class UsageError(Exception):
    """The command cannot do what was asked as invoked or installed (the message says what to change)."""


# optional dependencies (pyproject.toml's extras): the module a command imports -> the extra that has it
OPTIONAL_MODULES = {"eth_tester": "chain-tester", "eth": "chain-tester",  # eth: py-evm
                    "psycopg": "postgres",
                    "fastapi": "api", "uvicorn": "api"}


def missing_extra(exc: BaseException) -> str | None:
    """The extra to install when ``exc`` is the import of an optional dependency that is not installed."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return OPTIONAL_MODULES.get(exc.name.partition(".")[0])
    return None


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says a service could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for cls in type(current).__mro__:
            if (cls.__module__, cls.__qualname__) in _UNREACHABLE:
                return True
        if type(current).__name__ == "KafkaException" and current.args:
            name = getattr(current.args[0], "name", None)
            if callable(name) and name() in _KAFKA_DOWN:
                return True
        if isinstance(current, ConnectionError | TimeoutError):  # sockets: refused, reset, timed out
            return True
        current = current.__cause__ or current.__context__
    return False


def classify(exc: BaseException) -> Exit:
    """The exit status of an exception that ended a command."""
    from domain.errors import ParsecError
    from infrastructure.settings import SettingsError

    if isinstance(exc, KeyboardInterrupt):
        return Exit.INTERRUPTED
    if isinstance(exc, SettingsError | UsageError) or missing_extra(exc):
        return Exit.USAGE
    if unreachable(exc):
        return Exit.UNAVAILABLE
    if isinstance(exc, ParsecError | ValueError | OSError):
        # ParsecError: a refusal with its reason; ValueError: a value this command cannot use (the CLI's
        # convention for bad input); OSError: a file it was given cannot be read
        return Exit.REFUSED
    return Exit.INTERNAL
