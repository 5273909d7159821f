"""The parsec command line: the demo runs, bad input gives a reason and exit status 65 (refused input)."""

import json
import subprocess
import sys
import uuid

import pytest

from infrastructure.cli import main
from tests.builders import ALICE, Ledger


def run(*args: str, stdin: bytes | None = None, env_dir=None) -> subprocess.CompletedProcess:
    env = None
    if env_dir is not None:
        import os

        env = dict(os.environ, PARSEC_DATA_DIR=str(env_dir))
    return subprocess.run(
        [sys.executable, "-m", "infrastructure.cli", *args], input=stdin, capture_output=True, env=env, timeout=300
    )


def test_demo_runs_on_the_embedded_defaults(tmp_path):
    proc = run("demo", "--channels", "6", "--payments", "300", "--json", env_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stderr.decode()  # with --json the tables go to stderr; stdout is the JSON document alone
    assert "Channels" in out and "payments/s" in out
    figures = json.loads(proc.stdout)
    assert figures["accepted"] == 300 and figures["sent"] >= 300
    assert (tmp_path / "demo" / "events.sqlite").exists()
    # the chain: every checkpoint requested is confirmed on-chain; the settled channels pay out
    chain = figures["chain"]
    assert chain["checkpoints_confirmed"] == figures["checkpoints"] > 0
    assert chain["settled"] == 3 and chain["gave_up"] == 0
    assert {"open", "setOperator", "checkpoint", "close", "settle"} <= set(chain["gas"])
    assert "Gas used per operation" in out and "✗" not in out


def test_demo_without_a_chain_is_the_event_store_alone(tmp_path):
    proc = run("demo", "--no-chain", "--channels", "4", "--payments", "200", "--json", env_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    figures = json.loads(proc.stdout)
    assert figures["accepted"] == 200 and "chain" not in figures


def test_demo_is_deterministic_for_a_seed(tmp_path, capsys):
    results = []
    for _ in range(2):
        assert main(["--data-dir", str(tmp_path), "demo", "--channels", "3", "--payments", "60", "--json", "--seed", "3"]) == 0
        figures = json.loads(capsys.readouterr().out)
        figures.pop("seconds"), figures.pop("payments_per_s"), figures.pop("chain_seconds")
        results.append(figures)
    assert results[0] == results[1]


def test_help_explains_every_command():
    proc = run("--help")
    assert proc.returncode == 0
    for word in ("demo", "verify", "amount", "PARSEC_DATA_DIR", "PARSEC_KAFKA_BOOTSTRAP", "PARSEC_ETH_RPC"):
        assert word in proc.stdout.decode()
    for cmd in ("demo", "verify", "amount"):
        sub = run(cmd, "--help")
        assert sub.returncode == 0 and "usage: parsec" in sub.stdout.decode()


@pytest.mark.parametrize(
    "args,reason",
    [
        (("amount", "1", "DOGE"), "CurrencyNotAllowed"),
        (("amount", "0.123456789", "BTC"), "TooManyDecimals"),
        (("amount", "-3", "ETH"), "InvalidAmount"),
    ],
)
def test_bad_input_prints_the_reason_without_a_traceback(args, reason):
    proc = run(*args)
    assert proc.returncode == 65  # refused input (infrastructure/cli/exits.py)
    err = proc.stderr.decode()
    assert reason in err and "Traceback" not in err


def test_verify_accepts_a_good_invoice_and_refuses_a_bad_one():
    tx = Ledger(uuid.uuid4()).pay(ALICE, 10**16)
    ok = run("verify", "-", stdin=tx.to_json())
    assert ok.returncode == 0 and "0x" + tx.transaction_hash.hex() in ok.stdout.decode().replace("\n", "")
    bad = tx.to_dict()
    bad["price"] = "1"
    proc = run("verify", "-", stdin=json.dumps(bad).encode())
    assert proc.returncode == 65 and "WrongSigner" in proc.stderr.decode()
    proc = run("verify", "-", stdin=b"garbage")
    assert proc.returncode == 65 and "MalformedMessage" in proc.stderr.decode()
