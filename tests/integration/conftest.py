"""Fixtures shared by every integration suite.

The Kafka broker fixture lives with the Kafka store's tests; it is re-exported
here so the suites parametrized over event stores (tests/integration/*.py) can
run on the same broker.
"""

from __future__ import annotations

import pytest

from infrastructure.settings import Settings
from tests.integration.kafka.conftest import kafka_bootstrap, kafka_env

__all__ = ["kafka_bootstrap"]


@pytest.fixture
def kafka_app_env(kafka_bootstrap: str) -> dict[str, str]:
    """ChannelService's environment on the Kafka store, with fresh 4-partition topics."""
    env = Settings(event_store="kafka", kafka_bootstrap=kafka_bootstrap).application_env()
    env.update(kafka_env(kafka_bootstrap, partitions=4))
    return env
