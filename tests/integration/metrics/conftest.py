"""The settlement tests' chain and node fixtures, for the settler's metrics."""

from tests.integration.settlement.conftest import chain, node  # noqa: F401 - fixtures
