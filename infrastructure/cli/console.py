"""What every command shares: the consoles, progress bars with their rate, clean stops on signals, JSON
output (one document on standard output, amounts as strings) and the log formats."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
if not console.is_terminal:  # piped or logged: no terminal width to respect
    console = Console(width=160)
err_console = Console(stderr=True)
log = logging.getLogger("parsec")


_LOG_FORMAT = ["text"]  # configure_logging's choice: with json, stderr carries JSON lines only (no progress bars)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=_LOG_FORMAT[0] == "json",
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


def out_console(as_json: bool) -> Console:
    """Where a command's tables go: standard output, or standard error when it prints --json (stdout then
    holds the one JSON document and nothing else); nowhere when stderr carries JSON log lines only."""
    if not as_json:
        return console
    return Console(stderr=True, quiet=True) if _LOG_FORMAT[0] == "json" else err_console


# The fields of the read models' rows (projections: ChannelBalance, ParticipantBalance, Settlement,
# Payment) that hold money in the smallest unit.
READ_MODEL_AMOUNTS = frozenset({
    "deposits", "sent", "balances", "deposited", "received", "balance", "price", "buyer_total",
    "buyer_balance", "supplier_balance",
})


def amounts_as_strings(value: Any, amount_fields: Iterable[str]) -> Any:
    """``value`` for JSON with every amount a decimal string of the smallest unit: JSON consumers read
    numbers as doubles and round past 2**53 (1.5 ETH is 1.5e18 wei). Dataclasses become objects."""
    names = frozenset(amount_fields)

    def walk(v: Any, is_amount: bool) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            v = dataclasses.asdict(v)
        if isinstance(v, dict):
            return {k: walk(x, is_amount or k in names) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x, is_amount) for x in v]
        if is_amount and isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    return walk(value, False)


def print_json(value: Any, *, amounts: Iterable[str] = (), indent: int | None = None) -> None:
    """One JSON document on standard output; the integers under the ``amounts`` field names as strings."""
    print(json.dumps(amounts_as_strings(value, amounts), default=str, indent=indent))


# ---------------------------------------------------------------------- logs
# the attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    record's extra fields, and ``exception`` with the traceback text. No colours, no markup: for log
    collectors (journald, Loki, Elasticsearch) that parse each line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str)


def log_format() -> str:
    """The log format of this run: text or json (``configure_logging``)."""
    return _LOG_FORMAT[0]


def configure_logging(level: str, log_format: str, *, debug: bool = False) -> None:
    """The root logger to standard error: rich text for a terminal, or one JSON object per line."""
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler()  # sys.stderr
        handler.setFormatter(JsonLogFormatter())
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=debug)
        handler.setFormatter(logging.Formatter("%(message)s"))
    _LOG_FORMAT[0] = log_format
    handler._parsec = True  # type: ignore[attr-defined]  # ours: replaced by the next call, others kept
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_parsec", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # the client libraries log every connection attempt at INFO: Parsec's own lines say what matters
    # (a broker down is one error line and exit status 69); --log-level DEBUG shows theirs too
    for noisy in ("kafka", "web3", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(level if level == "DEBUG" else "WARNING")
