"""Helpers for the read-model tests on PostgreSQL."""

from __future__ import annotations

import uuid


def new_schema() -> str:
    """A fresh schema name: every test's tables apart from every other's."""
    return f"t_{uuid.uuid4().hex[:12]}"
