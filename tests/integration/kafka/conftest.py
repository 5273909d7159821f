"""Fixtures for the Kafka integration tests (the broker itself: ``kafka_bootstrap``, tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.kafka.harness import kafka_env


@pytest.fixture
def kafka_env_factory(kafka_bootstrap: str):
    def make(partitions: int = 1, topic: str | None = None, **extra: str) -> dict[str, str]:
        return kafka_env(kafka_bootstrap, partitions=partitions, topic=topic, **extra)

    return make
