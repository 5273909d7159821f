"""The auditor's own state between runs (``--state FILE``): where it stopped in each partition and
what it knows of each channel (its replay, as an eventsourcing snapshot, and the digest of every event
version, to tell a later duplicate from a fork). Nothing of the audited cluster or of the origin.

One JSON document, written to a temporary file and renamed over the old one: a run stopped half-way
leaves the previous state whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from infrastructure.audit.verifier import ChannelAudit, Verifier, Violation

FORMAT = 1


class StateMismatch(ValueError):
    """The state file is of another topic or format: continuing from it would audit the wrong log."""


def save(path: Path, topic: str, positions: dict[int, int], verifier: Verifier) -> None:
    doc: dict[str, Any] = {
        "format": FORMAT, "topic": topic,
        "positions": {str(p): off for p, off in sorted(positions.items())},
        "records": verifier.records, "other_records": verifier.other_records,
        "unattributed": [v.to_dict() for v in verifier.unattributed],
        "channels": {cid: audit.to_state(verifier.mapper) for cid, audit in verifier.channels.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    os.replace(tmp, path)


def load(path: Path, topic: str) -> tuple[dict[int, int], Verifier]:
    """The positions and a verifier that continues where the run that saved ``path`` stopped."""
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise StateMismatch(f"{path} is not an audit state file (not JSON: {exc}); use --from-scratch") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateMismatch(f"{path} is not an audit state file of format {FORMAT}; use --from-scratch")
    if doc.get("topic") != topic:
        raise StateMismatch(f"{path} is the state of an audit of topic {doc.get('topic')!r}, not {topic!r}; "
                            "use another --state file, or --from-scratch")
    verifier = Verifier()
    verifier.records, verifier.other_records = doc["records"], doc["other_records"]
    verifier.unattributed = [Violation(**v) for v in doc["unattributed"]]
    verifier.channels = {cid: ChannelAudit.from_state(cid, c, verifier.mapper) for cid, c in doc["channels"].items()}
    return {int(p): off for p, off in doc["positions"].items()}, verifier
