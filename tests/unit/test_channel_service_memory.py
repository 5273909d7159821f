"""The ChannelService suite on the in-memory event store (eventsourcing's POPO recorder).

A "fresh process over the same store" shares one in-memory recorder: each service the suite makes
is a new application (its own repository and cache) over that recorder, as a restarted process is a
new application over the same database."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.popo import POPOApplicationRecorder

from domain.application import ChannelService
from tests.suites.channel_service import ChannelServiceSuite


def memory_services():
    shared = POPOApplicationRecorder()
    made: list[ChannelService] = []

    class OverOneMemory(ChannelService):
        def construct_recorder(self) -> ApplicationRecorder:
            return shared

    def make(cache: bool = True) -> ChannelService:
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if cache:
            env.update(AGGREGATE_CACHE_MAXSIZE="20000", AGGREGATE_CACHE_FASTFORWARD="n",
                       DEEPCOPY_FROM_AGGREGATE_CACHE="n")
        made.append(OverOneMemory(env=env))
        return made[-1]

    return make, made


class TestChannelServiceInMemory(ChannelServiceSuite):
    @pytest.fixture
    def make_service(self):
        make, made = memory_services()
        yield make
        for svc in made:
            svc.close()
