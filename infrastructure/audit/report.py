"""The audit's JSON report: one document, money as decimal strings of the smallest unit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infrastructure.audit.verifier import Verifier

AMOUNTS = frozenset({"deposits", "sent", "balances", "locked"})


def _amounts_as_strings(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ([str(x) for x in v] if k in AMOUNTS and isinstance(v, list) else v) for k, v in row.items()}


def build(verifier: Verifier, *, topic: str, bootstrap: str, positions: dict[int, int], run: dict[str, Any]) -> dict[str, Any]:
    """``run``: what this run did (records read, seconds, events/s), beside the cumulative counts."""
    channels = sorted(verifier.channels.values(), key=lambda c: (c.ok, c.channel))  # violations first
    violations = verifier.violations
    return {
        "ok": not violations,
        "topic": topic,
        "bootstrap": bootstrap,
        "positions": {str(p): off for p, off in sorted(positions.items())},
        "records": verifier.records,
        "other_records": verifier.other_records,
        "events": sum(c.events for c in channels),
        "duplicates": sum(c.duplicates for c in channels),
        "channels_checked": len(channels),
        "channels_ok": sum(1 for c in channels if c.ok),
        "violations": [v.to_dict() for v in violations],
        "run": run,
        "channels": [_amounts_as_strings(c.summary()) for c in channels],
    }


def write(path: Path, report: dict[str, Any]) -> None:
    """Whole or not at all: a reader (the dashboard's Audit page) never sees half a report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
