"""The CLI over an existing SQLite log, and the example a user writes: revenue per seller.

Given a log written before the example existed, when the user registers it
(``--plugin``) and rebuilds it, then it answers from the whole history and
equals the sums over the payment history; the write side is untouched.
"""

from __future__ import annotations

import json
import uuid

import pytest

from infrastructure.cli import main
from projections.examples.revenue import revenue_by_seller
from projections.history import PAYMENTS
from projections.sqlite import SQLiteStore
from tests.integration.projections import workload


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("PARSEC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PARSEC_POSTGRES_DSN", raising=False)
    app = workload.service(tmp_path / "events.sqlite")
    workload.write(app, payments=80, channels=4)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_queries_print_tables_and_json(log, capsys):
    code, out = run(capsys, "balances", "--json")
    assert code == 0
    channels = json.loads(out)
    assert len(channels) == 4 and all(len(c["balances"]) == 2 for c in channels)
    cid = channels[0]["channel_id"]
    code, out = run(capsys, "balances")
    assert code == 0 and "Channel balances (4)" in out and "Participants" in out
    code, out = run(capsys, "history", "--channel", cid, "--json")
    history = json.loads(out)
    assert [p["sequence"] for p in history] == list(range(1, len(history) + 1))
    assert all(b["previous_hash"] == a["transaction_hash"] for a, b in zip(history, history[1:], strict=False))
    code, out = run(capsys, "history", "--channel", cid)
    assert code == 0 and "Payments of channel" in out
    code, out = run(capsys, "settlements", "--json")
    kinds = {s["kind"] for s in json.loads(out)}
    assert {"checkpoint", "settlement", "dispute"} <= kinds
    code, out = run(capsys, "settlements")
    assert code == 0 and "confirmed" in out
    code, out = run(capsys, "projections", "list", "--json")
    positions = json.loads(out)
    assert set(positions) >= {"balances", "settlements", "history"}


def test_rebuild_reports_the_rate(log, capsys):
    code = main(["projections", "rebuild", "history", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and "events/s" in captured.err  # with --json the line goes to stderr
    result = json.loads(captured.out)
    assert result["name"] == "history" and result["events"] > 80 and result["events_per_s"] > 0


def test_rebuild_of_every_read_model_in_one_pass_answers_as_before_and_keeps_the_indexes(log, capsys):
    """A rebuild fills the tables without their secondary indexes and creates those at the end."""
    code, before = run(capsys, "balances", "--json")
    assert code == 0
    code = main(["projections", "rebuild", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["name"] == "all" and set(result["read_models"]) >= {"balances", "settlements", "history", "graph"}
    code, after = run(capsys, "balances", "--json")
    assert code == 0 and json.loads(after) == json.loads(before)
    store = SQLiteStore(log / "readmodels.sqlite")
    indexes = {r[1] for r in store.conn.execute(f"PRAGMA index_list({PAYMENTS.name})")}
    assert {"payment_history_buyer", "payment_history_supplier"} <= indexes
    store.close()


def test_a_new_read_model_is_built_from_the_existing_log(log, capsys):
    plugin = "projections.examples.revenue"
    code, out = run(capsys, "projections", "rebuild", "revenue_by_seller", "--plugin", plugin)
    assert code == 0 and "rebuilt revenue_by_seller" in out
    store = SQLiteStore(log / "readmodels.sqlite")
    main(["history", "--channel", str(uuid.UUID(int=0)), "--json"])  # catches the history read model up too
    capsys.readouterr()
    payments = store.select(PAYMENTS)
    expected: dict[tuple[str, str], int] = {}
    for p in payments:
        expected[(p["supplier"], p["currency"])] = expected.get((p["supplier"], p["currency"]), 0) + p["price"]
    got = {(r.seller, r.currency): r.revenue for r in revenue_by_seller(store)}
    assert got == expected and sum(r.payments for r in revenue_by_seller(store)) == len(payments)
    code, out = run(capsys, "projections", "show", "revenue_by_seller", "--plugin", plugin, "--json")
    assert code == 0 and len(json.loads(out)["revenue_by_seller"]) >= 1


def test_unknown_read_model_is_a_clear_error(log, capsys):
    assert main(["projections", "rebuild", "nope"]) == 65  # refused input
    assert "no read model 'nope'; known: balances, graph, history" in capsys.readouterr().err
