"""Fixtures shared by the integration suites: the Kafka-backed ChannelService environment and
the deployed contract on both chain backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infrastructure.settings import Settings
from tests.integration.contract.chain import Chain, deployed_chain
from tests.integration.kafka.harness import kafka_env


@pytest.fixture
def kafka_app_env(kafka_bootstrap: str) -> dict[str, str]:
    """ChannelService's environment on the Kafka store, with fresh 4-partition topics."""
    env = Settings(event_store="kafka", kafka_bootstrap=kafka_bootstrap).application_env()
    env.update(kafka_env(kafka_bootstrap, partitions=4))
    return env


@pytest.fixture(
    scope="session",
    params=["eth-tester", pytest.param("anvil", marks=[pytest.mark.integration, pytest.mark.chain])],
)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """The contract on py-evm (eth-tester, in process) and on anvil: each test runs on both."""
    yield from deployed_chain(request.param)
