"""Examples of plugins: modules a user writes outside Parsec's code path and names in a setting."""
