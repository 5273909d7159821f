"""parsec simulate --embedded runs and accounts for every message; parsec bench --json writes its keys."""

import json
import subprocess
import sys


def run(*args: str, env_dir=None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, PARSEC_DATA_DIR=str(env_dir)) if env_dir is not None else None
    return subprocess.run([sys.executable, "-m", "infrastructure.cli", *args], capture_output=True, env=env,
                          timeout=300)


def test_simulate_embedded_accounts_for_every_message(tmp_path):
    proc = run("simulate", "--embedded", "--channels", "5", "--payments", "300", "--out-of-order", "0.2",
               "--duplicates", "0.05", "--invalid", "0.1", "--json", env_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stderr.decode()  # with --json the table goes to stderr; stdout is the JSON document alone
    assert "Simulation (embedded" in out and "throughput" in out
    figures = json.loads(proc.stdout)
    kinds = figures["sent_by_kind"]
    assert figures["accepted"] == kinds["valid"] == 300
    invalid = sum(n for k, n in kinds.items() if k not in ("valid", "duplicate"))
    assert sum(figures["rejected"].values()) == invalid > 0
    assert figures["no_op"] == kinds.get("duplicate", 0)
    assert figures["complete"] and figures["latency_ms"]["n"] == 300


def test_bench_quick_writes_the_keys(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("bench", "--quick", "--sections", "limits,embedded", "--json", str(out), env_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    doc = json.loads(out.read_text())
    assert {"machine", "limits", "payments_per_s"} <= set(doc)
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["python"]
    assert doc["limits"]["recover_per_s_per_core"] > 0 and doc["limits"]["cores"] >= 1
    assert doc["payments_per_s"]["embedded"] > 0 and "kafka" in doc["payments_per_s"]
    assert "payments/s (embedded)" in proc.stdout.decode()
