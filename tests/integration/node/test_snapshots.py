"""A partition's snapshots: taken when a channel's batch reaches a multiple of 200, written together.

Snapshots have a topic of their own, so each write is a Kafka transaction beside the batch's. The
node encodes each one as the batch commits (the committed state) and writes those due at most once
a second; a channel loads the same from the latest snapshot as from its events.
"""

from __future__ import annotations

import time

import pytest

from domain.channel import ChannelParameters
from infrastructure import bootstrap
from infrastructure.node import Sender
from infrastructure.node.messages import partition_of
from infrastructure.node.service import SNAPSHOT_WRITE_INTERVAL
from infrastructure.tools.workload import make_channels
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _latest_snapshot(service, channel_id) -> int | None:
    found = list(service.snapshots.get(channel_id, desc=True, limit=1))
    return found[0].originator_version if found else None


def test_snapshots_due_are_written_together_at_most_once_a_second_and_load_the_same(node_config):
    config = node_config(partitions=2)
    Sender(config).close()  # the topics
    plan = next(p for p in make_channels("snapshots-batched", 10) if partition_of(p.channel_id, 2) == 0)
    service = bootstrap.partition_service(config, 0)
    try:
        def batch(messages) -> None:
            service.begin()
            results = service.accept_payments(messages, at=int(time.time()))
            assert not [r for r in results if isinstance(r, Exception)]
            service.commit([], [])

        service.begin()
        service.open_channel(**plan.open_kwargs(ChannelParameters(challenge_period=3600, checkpoint_interval=10**6,
                                                                  checkpoint_timeout=3600), int(time.time())))
        service.commit([], [])
        batch([plan.pay_json(10**9) for _ in range(200)])  # versions 2..201: 200 is due, the first is written
        assert _latest_snapshot(service, plan.channel_id) == 201
        batch([plan.pay_json(10**9) for _ in range(200)])  # 400 is due, within the second: held
        assert _latest_snapshot(service, plan.channel_id) == 201
        time.sleep(SNAPSHOT_WRITE_INTERVAL + 0.1)
        batch([plan.pay_json(10**9)])  # nothing due in this batch, but the held one's time has come
        assert _latest_snapshot(service, plan.channel_id) == 401
    finally:
        service.close()
    reader = harness.reader(config)
    try:
        channel = reader.get_channel_aggregate(plan.channel_id)  # from the snapshot at 401, then 402
        assert channel.sequence == 401 and channel.version == 402
        assert channel.sent == {plan.a.address: 401 * 10**9, plan.b.address: 0}
        replayed, _ = harness.replay(reader, plan.channel_id)  # every event from version 1, no snapshot
        assert (replayed.sequence, replayed.sent, replayed.head_hash) == (channel.sequence, channel.sent,
                                                                         channel.head_hash)
    finally:
        reader.close()
