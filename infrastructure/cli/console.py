"""What every command shares: the consoles, progress bars with their rate, clean stops on signals."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
if not console.is_terminal:  # piped or logged: no terminal width to respect
    console = Console(width=160)
err_console = Console(stderr=True)
log = logging.getLogger("parsec")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


class RateProgress:
    """A progress bar with the running rate: ``with RateProgress("payments", total) as tick: tick(n)``."""

    def __init__(self, description: str, total: int | None) -> None:
        self.progress = _progress()
        self.description, self.total, self.count = description, total, 0

    def __enter__(self) -> Callable[[int], None]:
        self.progress.__enter__()
        self.task = self.progress.add_task(self.description, total=self.total, rate="")
        return self.tick

    def tick(self, n: int) -> None:
        self.count += n
        elapsed = self.progress.tasks[0].elapsed or 1e-9
        self.progress.update(self.task, completed=self.count, rate=f"{self.count / elapsed:,.0f}/s")

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)


def stop_on_signals(what: str) -> threading.Event:
    """An event set by SIGTERM or Ctrl-C, for long-running commands that stop cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the current %s", signal.Signals(signum).name, what)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def short(value: object, n: int = 10) -> str:
    text = str(value)
    return text if len(text) <= n + 2 else text[: n + 2] + "…"




def print_json(value: Any) -> None:
    """One JSON document on standard output (amounts are already strings or ints, never floats)."""
    print(json.dumps(value, default=str))
