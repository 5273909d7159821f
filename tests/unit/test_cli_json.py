"""``--json`` prints one JSON document on stdout and nothing else, with every amount a string; and the
first queries a newcomer tries after ``parsec demo`` (balances, history, settlements) read the demo's data.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from infrastructure.cli import main

# the read models' fields that hold money (the smallest unit): strings in JSON
AMOUNTS = {"deposits", "sent", "balances", "deposited", "received", "balance", "price", "buyer_total",
           "buyer_balance", "supplier_balance", "deposit_a", "deposit_b", "sent_a", "sent_b", "balance_a",
           "balance_b"}
# the demo's and the simulator's figures: counts of messages (not money) under these names
COUNTS = {"sent"}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_document(out: str) -> Any:
    """stdout is exactly one JSON document (json.loads refuses anything before or after it)."""
    assert out.strip(), "nothing on stdout"
    return json.loads(out)


def numbers_that_are_amounts(doc: Any, counts: set[str] = frozenset()) -> list[str]:
    """Where an amount is a JSON number: a field named like an amount, or any integer past 2**53."""
    found: list[str] = []

    def walk(v: Any, path: str, amount: bool) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}", amount or (k in AMOUNTS and k not in counts))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]", amount)
        elif isinstance(v, int | float) and not isinstance(v, bool) and (amount or abs(v) >= 2**53):
            found.append(f"{path}={v!r}")

    walk(doc, "$", False)
    return found


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """A data dir after `parsec demo --no-chain --json` (the demo's figures checked on the way)."""
    data = tmp_path_factory.mktemp("parsec-data")
    code, out, err = run("--data-dir", str(data), "demo", "--no-chain", "--channels", "3", "--payments", "90",
                         "--json")
    assert code == 0, err
    figures = one_document(out)
    assert figures["accepted"] == 90
    assert numbers_that_are_amounts(figures, COUNTS) == []
    assert "Channels" in err and "payments/s" in err  # the tables: on stderr with --json
    return data


def test_after_the_demo_balances_history_and_settlements_just_work(demo_dir):
    for command in ("balances", "settlements"):
        code, out, err = run("--data-dir", str(demo_dir), command)
        assert code == 0, err
        assert "no event store" not in err
    code, out, _ = run("--data-dir", str(demo_dir), "balances")
    assert "Channel balances (3)" in out
    code, out, _ = run("--data-dir", str(demo_dir), "balances", "--json")
    channel = one_document(out)[0]["channel_id"]
    code, out, err = run("--data-dir", str(demo_dir), "history", "--channel", channel)
    assert code == 0, err
    assert f"Payments of channel {channel}" in out


# projections list: {read model: {partition: position}}; a model named "balances" holds positions
MODEL_NAMES = {"balances", "settlements", "history"}


@pytest.mark.parametrize("argv,not_amounts", [
    (("balances", "--json"), set()),
    (("settlements", "--json"), set()),
    (("projections", "list", "--json"), MODEL_NAMES),
    (("projections", "show", "balances", "--json"), set()),
    (("projections", "show", "history", "--json", "--limit", "5"), set()),
    (("projections", "rebuild", "balances", "--json"), set()),
    (("config", "--json"), set()),
])
def test_json_is_one_document_with_amounts_as_strings(demo_dir, argv, not_amounts):
    code, out, err = run("--data-dir", str(demo_dir), *argv)
    assert code == 0, err
    doc = one_document(out)
    assert numbers_that_are_amounts(doc, not_amounts) == []


def test_balances_json_has_wei_as_exact_strings(demo_dir):
    code, out, _ = run("--data-dir", str(demo_dir), "balances", "--json")
    rows = one_document(out)
    assert rows and all(isinstance(v, str) and v.isdigit() for r in rows for v in (*r["deposits"], *r["balances"]))
    total = sum(int(v) for r in rows for v in r["deposits"])
    assert total > 2**53  # a double would have rounded these
    code, out, _ = run("--data-dir", str(demo_dir), "balances", "--json", "--participant", rows[0]["participants"][0])
    (p,) = one_document(out)
    assert all(isinstance(p[k], str) for k in ("deposited", "sent", "received", "balance"))


def test_history_json_has_prices_as_strings(demo_dir):
    code, out, _ = run("--data-dir", str(demo_dir), "balances", "--json")
    channel = one_document(out)[0]["channel_id"]
    code, out, err = run("--data-dir", str(demo_dir), "history", "--channel", channel, "--json")
    assert code == 0, err
    rows = one_document(out)
    assert rows and numbers_that_are_amounts(rows) == []
    assert all(isinstance(r["price"], str) and isinstance(r["sequence"], int) for r in rows)


def test_simulate_embedded_json_is_one_document(tmp_path):
    code, out, err = run("--data-dir", str(tmp_path), "simulate", "--embedded", "--channels", "3", "--payments",
                         "60", "--json")
    assert code == 0, err
    doc = one_document(out)
    assert doc["accepted"] == 60 and numbers_that_are_amounts(doc, COUNTS) == []
    assert "Simulation (embedded" in err


def test_log_format_json_keeps_stderr_to_json_lines(tmp_path):
    code, out, err = run("--log-format", "json", "--data-dir", str(tmp_path), "demo", "--no-chain", "--channels", "2",
                         "--payments", "20", "--json")
    assert code == 0, err
    one_document(out)
    # every line on stderr is a JSON object: no progress bar, no table between the log lines
    logs = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(r["logger"] == "parsec" and "event store" in r["message"] for r in logs)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in logs)


@pytest.mark.slow
def test_the_demo_on_the_in_process_chain_json_then_the_queries(tmp_path):
    code, out, err = run("--data-dir", str(tmp_path), "demo", "--channels", "3", "--payments", "150", "--json")
    assert code == 0, err
    figures = one_document(out)
    assert figures["chain"]["settled"] == 3 and numbers_that_are_amounts(figures, COUNTS) == []
    assert "Gas used per operation" in err
    code, out, err = run("--data-dir", str(tmp_path), "settlements", "--json")
    assert code == 0, err
    rows = one_document(out)
    assert {r["kind"] for r in rows} >= {"checkpoint"} and numbers_that_are_amounts(rows) == []


@pytest.mark.slow
def test_bench_json_dash_is_the_document_alone_on_stdout(tmp_path):
    code, out, err = run("--data-dir", str(tmp_path), "bench", "--quick", "--sections", "limits", "--no-kafka",
                         "--json", "-")
    assert code == 0, err
    doc = one_document(out)
    assert doc["limits"]["recover_per_s_per_core"] > 0
