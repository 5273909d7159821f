"""The dashboard's browser: Debian's Chromium (/usr/bin/chromium, `scripts/chromium install`), headless,
driven by Playwright for Python (never `playwright install`: no browser is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PARSEC_CHROMIUM") or "/usr/bin/chromium"  # scripts/chromium path
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright import sync_api
    except ImportError:  # the project's fixtures fail, never skip (tests/conftest.py)
        pytest.fail("Playwright is not installed: pip install -e '.[api,dev]' (make test does)")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `scripts/chromium install` (make test does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(request) -> Path:
    """Where a test's screenshots go: test-output/dashboard/<test>/ in the checkout (PARSEC_TEST_OUTPUT
    moves test-output), emptied first; CI keeps the directory as the run's output."""
    root = Path(os.environ.get("PARSEC_TEST_OUTPUT") or Path(__file__).resolve().parents[3] / "test-output")
    out = root / "dashboard" / request.node.name
    if out.exists():
        for old in out.iterdir():
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out
