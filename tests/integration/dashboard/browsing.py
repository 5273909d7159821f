"""What the dashboard's browser tests share besides their fixtures (conftest.py)."""

from __future__ import annotations

from pathlib import Path

SOON = 15_000  # ms: "within a few seconds" (the runner follows the log, htmx polls every 2-3 s)


def shot(page, out: Path, name: str) -> None:
    """A full-page screenshot of ``page`` as ``out/name.png``."""
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
