"""Every refusal is recorded exactly once, whatever the node's takeovers (issue 10, defect 8).

Given a payment held for a long time (its channel never opens, so it pins the partition's safe
inbound position) and refused messages behind it, when the partition changes owner again and
again, then each refused message is in the rejected topic once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from infrastructure import bootstrap
from infrastructure.node import Sender
from infrastructure.node.messages import partition_of
from infrastructure.tools.workload import make_channels
from tests.integration.node.harness import read_rejected

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


@dataclass(frozen=True)
class Record:
    """What the node's consumer hands a worker: an offset, a key and the bytes."""

    offset: int
    key: bytes | None
    value: bytes


def _produce(sender: Sender, topic: str, partition: int, key: bytes | None, value: bytes) -> Record:
    meta = sender.raw(topic, partition, key, value).get(timeout=15)
    return Record(meta.offset, key, value)


def test_defect8_refusals_behind_a_long_held_payment_are_published_once_across_takeovers(node_config):
    config = node_config(max_wait=3600)  # the early payment stays held for the whole test
    bootstrap.node(config).ensure_topics()
    sender = Sender(config)
    plan = next(p for p in make_channels("defect8", 40) if partition_of(p.channel_id, config.partitions) == 0)
    early = plan.pay(10**9)  # its channel is never opened: held, pinning the safe position
    key = str(plan.channel_id).encode()
    inbound = [_produce(sender, config.inbound_topic, 0, key, early.to_json())]
    inbound.append(_produce(sender, config.inbound_topic, 0, None, b"not json 1"))

    workers = []
    try:
        for takeover in range(4):
            # each new owner fences the previous one and re-reads from the committed safe position
            worker = bootstrap.partition_worker(config, 0)
            workers.append(worker)
            inbound.append(_produce(sender, config.inbound_topic, 0, None, f"not json {takeover + 2}".encode()))
            report = worker.process([], inbound)
            assert report.held == 1
    finally:
        for w in workers:
            w.close()
        sender.close()

    refused = Counter(r.source_offset for r in read_rejected(config) if r.source_topic == config.inbound_topic)
    assert refused == {r.offset: 1 for r in inbound[1:]}, "a refusal was published more than once (or never)"


def test_defect7_a_channel_below_the_nodes_minimum_challenge_period_is_refused(node_config):
    """The opener alone chooses the challenge period: the node refuses to operate one too short to answer."""
    from tests.integration.node.harness import open_channels, reader, running_node, wait_for

    config = node_config(min_challenge_period=3600)
    short, fine = make_channels("defect7", 2)
    with running_node(config):
        sender = Sender(config)
        open_channels(sender, [short], challenge_period=60)
        open_channels(sender, [fine], challenge_period=3600)
        service = reader(config)
        wait_for(lambda: _exists(service, fine.channel_id), 30, "the channel with a long enough period opened")
        wait_for(lambda: any(r.reason == "ChallengePeriodTooShort" for r in read_rejected(config)), 30,
                 "the short one refused")
        sender.close()
    (refused,) = [r for r in read_rejected(config) if r.source_topic == config.control_topic]
    assert refused.reason == "ChallengePeriodTooShort" and "minimum of 3600s" in refused.message
    assert not _exists(service, short.channel_id)
    service.close()


def _exists(service, channel_id) -> bool:
    try:
        service.get_channel(channel_id)
        return True
    except Exception:
        return False
