"""Example read models a user writes without touching the write side (see docs/projections.md)."""
