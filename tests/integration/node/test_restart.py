"""A partition changing hands: the new owner fences the old one, resumes from the
oldest payment still held in the reorder window, re-holds it, and does not
publish a rejection twice."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from infrastructure import bootstrap
from infrastructure.kafka import WriterFencedError
from infrastructure.node import Sender
from infrastructure.node.messages import channel_key, partition_of
from infrastructure.tools.workload import make_channels
from tests.integration.node.harness import open_channels, read_rejected

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def fetch(config, topic: str, partition: int, start: int) -> list:
    c = KafkaConsumer(bootstrap_servers=config.kafka_bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      isolation_level="read_committed")
    tp = TopicPartition(topic, partition)
    try:
        c.assign([tp])
        c.seek(tp, start)
        end = c.end_offsets([tp])[tp]
        out: list = []
        deadline = time.monotonic() + 15
        while c.position(tp) < end and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200).values():
                out += records
        return out
    finally:
        c.close(autocommit=False)


def test_new_owner_resumes_from_the_oldest_held_payment_and_rejects_once(node_config):
    config = node_config(window=8, max_wait=3600)
    (plan,) = make_channels("restart", 1)
    p = partition_of(plan.channel_id, config.partitions)
    sender = Sender(config)
    open_channels(sender, [plan])
    t1, t2, t3 = (plan.pay(10**12) for _ in range(3))
    for f in (sender.payment(t2), sender.raw(config.inbound_topic, p, channel_key(plan.channel_id), b"garbage"),
              sender.payment(t3)):
        f.get(timeout=15)

    old = bootstrap.partition_worker(config, p)
    control = fetch(config, config.control_topic, p, old.next_control)
    inbound = fetch(config, config.inbound_topic, p, old.next_inbound)
    report = old.process(control, inbound)
    assert (report.accepted, report.held, dict(report.rejected)) == (0, 2, {"MalformedMessage": 1})
    assert old.committed[old.t_inbound] == inbound[0].offset  # the safe position: t2, still held
    assert old.next_inbound == inbound[-1].offset + 1

    new = bootstrap.partition_worker(config, p)  # the next owner: fences the old writer
    assert new.next_inbound == inbound[0].offset
    assert set(new.skip) == {inbound[1].offset}
    again = fetch(config, config.inbound_topic, p, new.next_inbound)
    report = new.process([], again)
    assert (report.accepted, report.held, dict(report.rejected)) == (0, 2, {})

    sender.payment(t1).get(timeout=15)
    last = fetch(config, config.inbound_topic, p, new.next_inbound)
    report = new.process([], last)
    assert (report.accepted, report.held) == (3, 0)
    assert new.service.get_channel(plan.channel_id).sequence == 3
    assert new.committed[new.t_inbound] == last[-1].offset + 1

    with pytest.raises(WriterFencedError):
        old.process([], last)  # the old owner cannot commit anything any more
    old.close()
    new.close()
    assert [r.reason for r in read_rejected(config)] == ["MalformedMessage"]
    sender.close()


def test_an_owner_that_passes_no_held_payment_keeps_the_earlier_owners_refusals_in_reach(node_config):
    """The mark committed with a safe position bounds the refusals of every offset after it, including
    the ones an earlier owner published for offsets this owner has not read again yet.

    The first owner holds t2, refuses the garbage behind it and holds t3. The second owner reads only
    t2 again, lets it expire (nothing is held any more) and commits: its safe position is just past t2,
    still before the garbage. A third owner must still find the garbage's refusal and skip it. (It used
    to commit the end of the rejected partition as the mark, past that refusal, and the third owner
    published it a second time: the chaos test saw one refusal twice across a SIGKILL.)"""
    config = node_config(window=8, max_wait=60)
    (plan,) = make_channels("restart-reach", 1)
    p = partition_of(plan.channel_id, config.partitions)
    sender = Sender(config)
    open_channels(sender, [plan])
    _t1, t2, t3 = (plan.pay(10**12) for _ in range(3))
    for f in (sender.payment(t2), sender.raw(config.inbound_topic, p, channel_key(plan.channel_id), b"garbage"),
              sender.payment(t3)):
        f.get(timeout=15)

    first = bootstrap.partition_worker(config, p)
    control = fetch(config, config.control_topic, p, first.next_control)
    inbound = fetch(config, config.inbound_topic, p, first.next_inbound)
    report = first.process(control, inbound)
    assert (report.held, dict(report.rejected)) == (2, {"MalformedMessage": 1})
    first.close()

    second = bootstrap.partition_worker(config, p)
    assert set(second.skip) == {inbound[1].offset}
    now = time.time()
    second.process([], inbound[:1], now=now)  # t2 again, held again
    second.next_tick = 0.0
    report = second.process([], [], now=now + 120)  # t2 expires: nothing is held
    assert dict(report.rejected) == {"WindowExpired": 1} and not second.held
    assert second.committed[second.t_inbound] == inbound[1].offset  # before the garbage
    second.close()

    third = bootstrap.partition_worker(config, p)
    assert third.next_inbound == inbound[1].offset
    assert set(third.skip) == {inbound[1].offset}
    report = third.process([], fetch(config, config.inbound_topic, p, third.next_inbound))
    assert report.rejected.get("MalformedMessage", 0) == 0
    third.close()
    assert sorted(r.reason for r in read_rejected(config)) == ["MalformedMessage", "WindowExpired"]
    sender.close()
