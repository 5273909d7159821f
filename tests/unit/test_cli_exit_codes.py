"""Exit statuses by kind (infrastructure/cli/exits.py): 64 usage, 65 refused input, 69 unreachable service,
70 internal error; each documented in `parsec --help`. The unreachable services are ports nothing
listens on (connection refused at once), so these stay fast and need no service."""

from __future__ import annotations

import contextlib
import io
import json
import socket

import pytest

from infrastructure.cli import build_parser, main
from infrastructure.cli.exits import Exit, classify, unreachable


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: a refused connection


def test_the_statuses_are_distinct_and_documented_in_help():
    assert len({Exit.OK, Exit.USAGE, Exit.REFUSED, Exit.UNAVAILABLE, Exit.INTERNAL}) == 5
    text = build_parser().format_help()
    for status, words in ((64, "usage"), (65, "refused input"), (69, "unreachable"), (70, "internal error")):
        assert f"{status} " in text and words in text


@pytest.mark.parametrize("argv", [["--no-such-flag"], ["no-such-command"], ["amount"], ["demo", "--channels", "x"],
                                  ["--event-store", "nope", "balances"]])
def test_a_usage_error_is_64(argv):
    code, _, err = run(*argv)
    assert code == Exit.USAGE == 64 and "usage: parsec" in err


def test_a_bad_setting_is_a_usage_error_naming_its_variable(monkeypatch):
    monkeypatch.setenv("PARSEC_WINDOW", "abc")
    code, _, err = run("config")
    assert code == Exit.USAGE and "PARSEC_WINDOW" in err


@pytest.mark.parametrize("argv,reason", [
    (("amount", "1", "DOGE"), "CurrencyNotAllowed"),
    (("amount", "0.123456789", "BTC"), "TooManyDecimals"),
    (("amount", "٥", "ETH"), "InvalidAmount"),
    (("verify", "/no/such/file.json"), "No such file"),
])
def test_refused_input_is_65_with_its_reason(argv, reason):
    code, _, err = run(*argv)
    assert code == Exit.REFUSED == 65 and reason in err and "Traceback" not in err


def test_postgresql_down_is_69(tmp_path):
    dsn = f"postgresql://parsec:parsec@127.0.0.1:{closed_port()}/parsec?connect_timeout=2"
    code, _, err = run("--data-dir", str(tmp_path), "--postgres", dsn, "balances", "--backend", "postgres",
                       "--no-catch-up")
    assert code == Exit.UNAVAILABLE == 69, err
    assert "unavailable" in err


def test_the_ethereum_node_down_is_69(tmp_path):
    code, _, err = run("--data-dir", str(tmp_path), "--eth-rpc", f"http://127.0.0.1:{closed_port()}", "demo",
                       "--channels", "1", "--payments", "1")
    assert code == Exit.UNAVAILABLE, err
    assert "no Ethereum node answers" in err


def test_kafka_down_is_69(tmp_path, monkeypatch):
    monkeypatch.setenv("PARSEC_KAFKA_TIMEOUT", "2")
    code, _, err = run("--data-dir", str(tmp_path), "--kafka", f"127.0.0.1:{closed_port()}", "--event-store", "kafka",
                       "balances")
    assert code == Exit.UNAVAILABLE, err
    assert "Kafka unavailable" in err


def test_an_unexpected_exception_is_70_and_says_it_is_a_bug(monkeypatch):
    def broken(args, settings):
        raise RuntimeError("something nobody expected")

    parser = build_parser()
    monkeypatch.setattr("infrastructure.cli.build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["amount"].set_defaults(func=broken)
    code, _, err = run("amount", "1", "ETH")
    assert code == Exit.INTERNAL == 70
    assert "internal error" in err and "RuntimeError" in err and "--debug" in err


def test_json_logs_carry_the_failure_as_a_json_line():
    code, _, err = run("--log-format", "json", "amount", "1", "DOGE")
    assert code == Exit.REFUSED
    (line,) = [json.loads(x) for x in err.splitlines() if x.strip()]
    assert line["level"] == "ERROR" and line["reason"] == "CurrencyNotAllowed" and line["exit_status"] == 65


def _kafka_exception():
    from confluent_kafka import KafkaError, KafkaException

    return KafkaException(KafkaError(KafkaError._TRANSPORT))


def _unreachable_errors():
    import psycopg
    import requests
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError
    from web3.exceptions import ProviderConnectionError

    from infrastructure.chain.errors import ChainUnavailable
    from infrastructure.kafka.errors import BrokerUnavailableError
    from projections.store import StoreUnavailable

    return [psycopg.OperationalError("connection refused"), KafkaConnectionError(), KafkaTimeoutError(),
            requests.exceptions.ConnectionError("refused"), ProviderConnectionError("down"),
            ChainUnavailable("no node"), BrokerUnavailableError("Kafka unavailable"), StoreUnavailable("pg down"),
            ConnectionRefusedError(111, "refused"), TimeoutError("timed out"), _kafka_exception()]


def test_every_kind_of_unreachable_service_is_recognised():
    for exc in _unreachable_errors():
        assert unreachable(exc), exc
        assert classify(exc) is Exit.UNAVAILABLE, exc


def test_an_error_raised_from_an_unreachable_service_is_unreachable_too():
    import psycopg

    try:
        try:
            raise psycopg.OperationalError("refused")
        except psycopg.OperationalError as inner:
            raise RuntimeError("could not load the read model") from inner
    except RuntimeError as outer:
        assert classify(outer) is Exit.UNAVAILABLE


def test_the_other_kinds():
    from domain.errors import WrongSigner
    from infrastructure.settings import SettingsError

    assert classify(WrongSigner("x")) is Exit.REFUSED
    assert classify(ValueError("x")) is Exit.REFUSED
    assert classify(FileNotFoundError("x")) is Exit.REFUSED
    assert classify(SettingsError("x")) is Exit.USAGE
    assert classify(KeyError("x")) is Exit.INTERNAL
    assert classify(RuntimeError("x")) is Exit.INTERNAL
    assert classify(KeyboardInterrupt()) is Exit.INTERRUPTED
