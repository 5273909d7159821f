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
