"""A regular (non-editable) install works: build the wheel, install it in a fresh virtualenv, and run the
demo from a directory outside the checkout, with nothing of the source tree on the path.

The contracts' ABIs and bytecode must be inside the wheel (package data under
infrastructure/chain/contracts, read with importlib.resources); the in-process chain is the optional
``chain-tester`` extra, and the demo says how to get it when it is missing. pip's cache makes the
dependencies' install take a minute or so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
# what a source distribution holds: the checkout without its environments, caches and build leftovers
IGNORE = shutil.ignore_patterns(".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__",
                                ".pytest_cache", ".ruff_cache", ".hypothesis", "*.sqlite*")


def clean_env(home: Path) -> dict[str, str]:
    """The environment without what points into the checkout or at this test run's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARSEC_", "PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)
    return env


def sh(*cmd: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = clean_env(cwd)
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))  # keep pip's cache
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=IGNORE)  # a clean tree: no stale build/ leaks into the wheel
    proc = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", work / "dist", source, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = (work / "dist").glob("parsec-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh virtualenv with the wheel and its dependencies, and nothing else."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    proc = sh(sys.executable, "-m", "venv", where, cwd=where.parent)
    assert proc.returncode == 0, proc.stderr
    proc = sh(where / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=where.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return where


def parsec(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return sh(venv / "bin" / "parsec", *args, cwd=cwd, timeout=600)


def test_the_wheel_ships_the_compiled_contracts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for contract in ("ParsecChannels", "TestToken"):
        assert f"infrastructure/chain/contracts/{contract}.json" in names
    assert not any(n.startswith(("tests/", "contracts/", "scripts/")) for n in names)


def test_installed_from_the_wheel_the_demo_runs_outside_the_checkout(venv, wheel, tmp_path):
    outside = tmp_path / "somewhere-else"
    outside.mkdir()
    data = str(outside / "data")

    proc = parsec(venv, "--version", cwd=outside)
    assert proc.returncode == 0 and proc.stdout.strip() == "parsec 0.1.0"
    where = sh(venv / "bin" / "python", "-c", "import infrastructure; print(infrastructure.__file__)", cwd=outside)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout  # the installed copy, not the checkout

    proc = parsec(venv, "--data-dir", data, "demo", "--no-chain", "--channels", "3", "--payments", "60", "--json",
                  cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"] == 60

    # without the chain-tester extra the demo says exactly what to install, before touching the data
    proc = parsec(venv, "--data-dir", data, "demo", "--channels", "3", "--payments", "60", cwd=outside)
    assert proc.returncode == 64, proc.stderr
    assert "pip install 'parsec[chain-tester]'" in proc.stderr and "--no-chain" in proc.stderr

    proc = sh(venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}[chain-tester]", cwd=outside)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = parsec(venv, "--data-dir", data, "demo", "--channels", "3", "--payments", "150", "--json", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["accepted"] == 150 and figures["chain"]["settled"] == 3

    # the first queries a newcomer tries read the demo's data
    proc = parsec(venv, "--data-dir", data, "balances", "--json", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 3 and all(isinstance(v, str) for r in rows for v in r["balances"])
    proc = parsec(venv, "--data-dir", data, "history", "--channel", rows[0]["channel_id"], cwd=outside)
    assert proc.returncode == 0, proc.stderr
    proc = parsec(venv, "--data-dir", data, "settlements", cwd=outside)
    assert proc.returncode == 0, proc.stderr

    # PostgreSQL read models are the postgres extra: asked for without it, the command says how to get it
    # (--backend postgres: the demo's own log is read with its own SQLite read models unless asked)
    proc = parsec(venv, "--data-dir", data, "--postgres", "postgresql://parsec@127.0.0.1:1/parsec", "balances",
                  "--backend", "postgres", cwd=outside)
    assert proc.returncode == 64 and "pip install 'parsec[postgres]'" in proc.stderr, proc.stderr
