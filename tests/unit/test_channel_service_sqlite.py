"""The ChannelService suite on the embedded SQLite event store (a file in the test's tmp_path)."""

from __future__ import annotations

import pytest

from infrastructure.settings import Settings
from tests.suites.channel_service import ChannelServiceSuite, services


class TestChannelServiceOnSQLite(ChannelServiceSuite):
    @pytest.fixture
    def make_service(self, tmp_path):
        make, made = services(Settings(data_dir=tmp_path, event_store="sqlite").application_env())
        yield make
        for svc in made:
            svc.close()
