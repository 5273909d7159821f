"""What the dashboard reads besides the read models and the log, each optional (``bootstrap.dashboard_sources``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID


@dataclass
class DashboardSources:  # the report is parsed again only when its file changes (see ``audit``)
    group: Callable[[], Any] | None = None  # -> cluster.GroupView: the node group's partitions, owners, lag
    latency: Any = None  # node_metrics.NodeMetricsSampler: the nodes' batch latency over time
    onchain: Callable[[UUID], Any] | None = None  # -> chain.lifecycle.ChannelOnChain: the contract's record
    audit_report: Path | None = None  # the JSON `parsec audit --report` writes
    _parsed: tuple[float, int, dict[str, Any]] | None = field(default=None, repr=False)  # (mtime, size, report)

    def audit(self) -> tuple[dict[str, Any] | None, str | None]:
        """The last report and when it was written (its file's time), or None and why not."""
        if self.audit_report is None:
            return None, "no audit report configured (PARSEC_AUDIT_REPORT)"
        path = Path(self.audit_report).expanduser()
        try:
            st = path.stat()
            if self._parsed is not None and self._parsed[:2] == (st.st_mtime, st.st_size):
                return self._parsed[2], None  # unchanged: a large report is not parsed on every view
            text = path.read_text()
            written = st.st_mtime
        except FileNotFoundError:
            return None, f"no report at {path} yet"
        except OSError as err:
            return None, f"cannot read {path}: {err}"
        try:
            doc = json.loads(text)
        except ValueError as err:  # a run writing it right now, or not a report at all
            return None, f"{path} is not a JSON report: {err}"
        if not isinstance(doc, dict) or "channels" not in doc:
            return None, f"{path} is not a `parsec audit` report (no channels)"
        doc["_written"] = written
        self._parsed = (st.st_mtime, st.st_size, doc)
        return doc, None
