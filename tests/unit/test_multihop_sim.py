"""The multi-hop simulator (``parsec simulate --multi-hop``): random multi-hop payments over a random
network of mediation agents on the embedded network, with failing and uncooperative mediators; every
run checks conservation of money, no negative balance, the locks left, and read models = a replay."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time

import pytest

from infrastructure.cli import main
from infrastructure.tools.multihop import MultiHopConfig, random_pairs, run


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("parsec.mediation").setLevel(logging.ERROR)
    yield
    logging.getLogger("parsec.mediation").setLevel(logging.NOTSET)


def assert_checks(d):
    for name, c in d["checks"].items():
        assert c["ok"], (name, c)
    money = d["checks"]["money_conserved"]
    assert money["balances"] + money["locked"] == money["deposits"] == d["deposits"]


def test_random_pairs_are_a_connected_graph_without_repeats():
    import random

    pairs = random_pairs(random.Random(3), 12, 30)
    assert len(pairs) == len(set(pairs)) == 30
    seen, frontier = {0}, [0]
    while frontier:
        n = frontier.pop()
        for a, b in pairs:
            for x, y in ((a, b), (b, a)):
                if x == n and y not in seen:
                    seen.add(y)
                    frontier.append(y)
    assert seen == set(range(12))


def test_small_network_with_failing_hops():
    r = run(MultiHopConfig(parties=10, channels=30, payments=200, failing_hops=0.1, seed=7))
    d = r.to_dict()
    assert_checks(d)
    assert d["attempted"] == 200 and d["pending"] == 0 and d["on_chain"] == 0
    assert d["succeeded"] >= 150
    assert d["succeeded"] + d["failed"] == 200
    assert d["retried"] > 0 and d["attempts"] > 200  # silent hops: their locks expired, payers retried
    assert d["locks_expired"] > 0
    assert d["hops"]["mean"] >= 2  # payer and payee share no channel
    assert d["time_to_complete_s"]["p99"] > d["time_to_complete_s"]["p50"]
    assert d["checks"]["nothing_locked_but_uncooperative"]["channels_holding_locks"] == []
    assert d["checks"]["read_models_equal_replay"]["rows"] == {"balances_channels": 30, "graph_channels": 30}


def test_uncooperative_mediators_leave_locks_only_in_their_own_channels():
    r = run(MultiHopConfig(parties=10, channels=30, payments=100, failing_hops=0.1, uncooperative=0.1, seed=7))
    d = r.to_dict()
    assert_checks(d)
    held = d["checks"]["nothing_locked_but_uncooperative"]["held_by_uncooperative"]
    assert held and {x["sender"] for x in held} <= set(d["uncooperative_parties"])
    assert all(x["close_asked"] for x in held)  # the payee registered the secret and asked for a close
    assert d["secrets_registered"] >= len(held) and d["closes_for_locks"] > 0
    assert d["pending"] == 0


def test_the_same_seed_gives_the_same_run():
    a = run(MultiHopConfig(parties=8, channels=14, payments=40, failing_hops=0.15, seed=3)).to_dict()
    b = run(MultiHopConfig(parties=8, channels=14, payments=40, failing_hops=0.15, seed=3)).to_dict()
    for key in ("succeeded", "failed_by_reason", "attempts", "fees_paid", "transactions", "time_to_complete_s"):
        assert a[key] == b[key]


def test_acceptance_1000_payments_over_30_channels_with_10pct_failing_hops():
    """Issue 14's acceptance run: 1,000 random multi-hop payments over a 30-channel network with 10%
    failing hops: money conserved and the read models equal a replay of the log."""
    started = time.perf_counter()
    d = run(MultiHopConfig(parties=15, channels=30, payments=1000, failing_hops=0.1, seed=7)).to_dict()
    took = time.perf_counter() - started
    assert_checks(d)
    assert d["attempted"] == 1000 and d["pending"] == 0
    assert d["succeeded"] >= 900 and d["retried"] > 0
    assert took < 90, f"the acceptance run took {took:.0f}s"


def test_cli_multi_hop_json():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["simulate", "--multi-hop", "--parties", "8", "--channels", "14", "--payments", "40",
                     "--failing-hops", "0.15", "--seed", "3", "--json"])
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["mode"] == "multi-hop" and doc["attempted"] == 40 and doc["checks_ok"] is True
    assert doc["succeeded"] + doc["failed"] == 40
    assert isinstance(doc["fees_paid"], str) and isinstance(doc["deposits"], str)  # money as strings
    assert "Multi-hop simulation" in err.getvalue()


def test_cli_refuses_a_network_that_cannot_be_connected():
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["simulate", "--multi-hop", "--parties", "10", "--channels", "5"])
    assert code == 2 and "--channels must be >=" in err.getvalue()
