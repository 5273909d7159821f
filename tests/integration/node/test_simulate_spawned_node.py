"""``parsec simulate --spawn-node 1``: the simulator starts a real node process on fresh topics and every
payment it streams comes back accepted (the bench's Kafka section runs exactly this)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[3]


def test_a_spawned_node_accepts_every_payment(tmp_path, kafka_bootstrap):
    # from a directory outside the checkout, as a user runs it: the spawned node must find the
    # checkout's packages (and kafka-python must not be shadowed by infrastructure/kafka)
    env = dict(os.environ, PYTHONPATH=str(REPO), PARSEC_DATA_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "infrastructure.cli", "--kafka", kafka_bootstrap, "simulate",
         "--spawn-node", "1", "--channels", "4", "--payments", "200", "--duplicates", "0.05", "--invalid", "0.05",
         "--drain-timeout", "60", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert figures["nodes"] == 1 and figures["accepted"] == 200
    kinds = figures["sent_by_kind"]
    assert sum(figures["rejected"].values()) == sum(n for k, n in kinds.items() if k not in ("valid", "duplicate"))


def test_the_bench_kafka_section_checks_the_read_model_and_reports_per_load(kafka_bootstrap):
    """``parsec bench``'s Kafka section, small: a throughput figure counts only with every channel's
    balances in the read model equal to what the workload's clients sent; the latency table has one
    row per offered load with what was achieved."""
    from infrastructure.tools import bench

    doc = bench.kafka_payments(kafka_bootstrap, quick=True, nodes=1, loads=(200, 400))
    (row,) = doc["by_nodes"]
    assert row["nodes"] == 1 and row["payments"] == 4_000 and row["payments_per_s"] > 0
    assert row["balances_equal"] == "100 of 100"
    assert row["node_cpu_us_per_payment"] > 0 and doc["on_paper"]["node_cpu_payments_per_s_per_core"] > 0
    loads = [r["offered_per_s"] for r in doc["latency_by_load"]]
    assert loads == [200, 400]
    for r in doc["latency_by_load"]:
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["achieved_per_s"] > 0 and r["payments"] > 0
        # the split at the event record's timestamp: both parts are there, each within the whole
        # (a millisecond of slack: record timestamps are whole milliseconds)
        for part in ("to_event", "event_to_read"):
            assert -1 <= r[f"{part}_p50_ms"] <= r[f"{part}_p99_ms"] <= r["max_ms"] + 1
        assert r["to_event_p50_ms"] + r["event_to_read_p50_ms"] > 0


def test_check_balances_names_a_channel_whose_read_model_disagrees(tmp_path):
    """The bench's check itself: a read model missing a payment is reported, channel by channel."""
    from infrastructure import bootstrap
    from infrastructure.settings import Settings
    from infrastructure.tools import simulate
    from infrastructure.tools.bench import make_workload, open_all
    from projections.balances import Balances
    from projections.source import ApplicationEventSource
    from projections.sqlite import SQLiteStore

    plans, messages = make_workload(3, 9)
    service = bootstrap.channel_service(Settings(data_dir=tmp_path, event_store="sqlite"))
    try:
        open_all(service, plans)
        service.accept_payments(messages[:-1], at=0)  # the last payment never reaches the store
        store = SQLiteStore(tmp_path / "rm.sqlite")
        bootstrap.projection_runner(ApplicationEventSource.of(service), store, [Balances()]).catch_up()
        checked = simulate.check_balances(store, plans)
        store.close()
    finally:
        service.close()
    assert checked["channels"] == 3 and checked["equal"] == 2
    (bad,) = checked["mismatched"]
    assert bad["channel"] == str(plans[8 % 3].channel_id)
    assert bad["expected"] != bad["read_model"]
