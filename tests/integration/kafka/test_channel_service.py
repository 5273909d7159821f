"""The ChannelService suite on the Kafka event store (a real broker, fresh 4-partition topics)."""

from __future__ import annotations

import pytest

from tests.suites.channel_service import ChannelServiceSuite, services

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


class TestChannelServiceOnKafka(ChannelServiceSuite):
    @pytest.fixture
    def make_service(self, kafka_app_env):
        make, made = services(kafka_app_env)
        yield make
        for svc in made:
            svc.close()
