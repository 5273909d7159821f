"""``parsec config``: every setting, its value in force and where it came from (secrets hidden)."""

from __future__ import annotations

import argparse

from pydantic import SecretStr
from rich.table import Table

from infrastructure.cli.console import console, print_json
from infrastructure.cli.options import add_command
from infrastructure.settings import Settings, accepts, variable


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Show every setting, its value and where it came from.

    Print each PARSEC_* setting with the value this run would use (flags, environment, the config file
    of --config / PARSEC_CONFIG, defaults) and what it is for. Secrets are hidden. docs/configuration.md
    explains each one.
    """
    sources = settings.sources()
    rows = []
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "(set, hidden)" if isinstance(value, SecretStr) else "" if value is None else str(value)
        rows.append({"setting": name, "variable": variable(name), "value": shown, "source": sources[name],
                     "accepts": accepts(name), "description": info.description or ""})
    if args.json:
        print_json(rows)
        return 0
    table = Table(title="Settings (flags > environment > config file > defaults)")
    for col in ("variable", "value", "source", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["variable"], r["value"], r["source"], r["description"])
    console.print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_config)
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
