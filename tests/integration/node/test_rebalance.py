"""Issue 10, defect 2: a node left with no partitions that never asks again.

What happened (kafka-python 3.0.x, see ``runner._keep_rejoin_until_joined``): a rejoin that the
client itself decides on (the leader's metadata snapshot of the subscribed topics changed, or the
subscription changed) is not remembered as "rejoin needed": ``need_rejoin()`` recomputes it, and it
turns False as soon as the leader has copied the snapshot to compute the assignment. If the node's
``poll(200 ms)`` gives up while that JoinGroup/SyncGroup is still in flight, the next poll no longer
sees a reason to rejoin and never collects the join's result: the listener was told its partitions
were revoked, never what it was assigned, heartbeats stay disabled and the broker drops the member a
session later. A lone node went through such a rejoin on every start (it fetched its topics'
metadata before subscribing, so the coordinator's snapshot of them was still empty when the first
assignment was made and the next metadata update looked like a change: generation 2), so it was
left with nothing whenever that second rebalance outlasted its poll (one run in three of test_cli
on a busy machine).

The tests make the leader's assignment outlast the node's poll (a slow Range assignor), so the poll
gives up in that window every time, instead of now and then.
"""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import MemberState

import infrastructure.node.runner as runner
from infrastructure.node import Sender
from infrastructure.node.messages import partition_of
from tests.integration.node.conftest import (
    ChannelPlan,
    make_channels,
    open_channels,
    reader,
    running_node,
    sequences,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


class SlowRangeAssignor(RangePartitionAssignor):
    """Range, but the leader's assignment takes longer than the node's poll (200 ms): the poll
    gives up between the leader's assignment and the SyncGroup response (what a busy machine or
    the GIL did now and then)."""

    delay = 0.5

    @classmethod
    def assign(cls, cluster, members):
        time.sleep(cls.delay)
        return super().assign(cluster, members)


class EmptyFirstRangeAssignor(RangePartitionAssignor):
    """Range, but the first assignment hands out nothing, as Range does when the leader has no
    metadata for the topics ("No partition metadata for topic ..."). Nothing in the client ever
    asks for another assignment after that: only the node's watchdog can."""

    calls = 0

    @classmethod
    def assign(cls, cluster, members):
        EmptyFirstRangeAssignor.calls += 1
        out = super().assign(cluster, members)
        if EmptyFirstRangeAssignor.calls == 1:
            for member in out:
                out[member] = type(out[member])(out[member].version, [], b"")
        return out


def _owns_everything(node, config) -> bool:
    return node.assigned == set(range(config.partitions)) and set(node.workers) == node.assigned


def _generation(node) -> int:
    return node.consumer.group_metadata().generation_id


def _wait_settled(node, config, *, newer_than: int, idle=lambda: None, timeout: float = 30, hold: float = 2.0) -> None:
    """Until the node owns every partition in a stable generation newer than ``newer_than``, and
    has for ``hold`` seconds (a rebalance the client decides on follows the one that caused it)."""
    deadline = time.monotonic() + timeout
    since = None
    while time.monotonic() < deadline:
        idle()
        gm = node.consumer.group_metadata()
        if gm.generation_id > newer_than and gm.state == MemberState.STABLE and _owns_everything(node, config):
            since = since or time.monotonic()
            if time.monotonic() - since >= hold:
                return
        else:
            since = None
        time.sleep(0.1)
    raise AssertionError(f"the node never settled owning every partition after generation {newer_than}: "
                         f"generation {_generation(node)}, assigned {sorted(node.assigned)}")


def _one_channel_per_partition(seed: str, partitions: int) -> list[ChannelPlan]:
    plans: dict[int, ChannelPlan] = {}
    for plan in make_channels(seed, 8 * partitions):
        plans.setdefault(partition_of(plan.channel_id, partitions), plan)
    assert len(plans) == partitions
    return [plans[p] for p in sorted(plans)]


def _pays_on_every_partition(config, plans, sender, service, *, idle=lambda: None, timeout=30) -> None:
    """One payment per channel (one channel per partition) and wait until every one is applied."""
    before = {p.channel_id: len(p.txs) for p in plans}
    for p in plans:
        sender.payment(p.sign_next(10**12)).get(timeout=15)

    def applied() -> bool:
        idle()
        seqs = sequences(service, plans)
        return all(seqs[p.channel_id] == before[p.channel_id] + 1 for p in plans)

    wait_for(applied, timeout, "a payment applied on every partition")


def _second_member(config, topic: str) -> KafkaConsumer:
    """A member of the node's group subscribed to another topic: when the node (the leader) assigns
    with it in the group, the topics of the group change under the leader's metadata snapshot."""
    c = KafkaConsumer(bootstrap_servers=config.bootstrap.split(","), group_id=config.group,
                      client_id="second-member", enable_auto_commit=False,
                      partition_assignment_strategy=[RangePartitionAssignor],
                      session_timeout_ms=config.session_timeout_ms, heartbeat_interval_ms=500)
    c.subscribe([topic])
    return c


def _create_topic(config, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        admin.close()


def test_defect2_lone_node_on_new_topics_owns_them_when_a_rebalance_outlasts_its_poll(node_config, monkeypatch):
    monkeypatch.setattr(runner, "RangePartitionAssignor", SlowRangeAssignor)
    config = node_config(rejoin_unowned_after=0)  # the watchdog off: the client itself must hold
    plans = _one_channel_per_partition("defect2-lone", config.partitions)
    with running_node(config) as node:
        sender, service = Sender(config), reader(config)
        try:
            open_channels(sender, plans)
            wait_for(lambda: min(sequences(service, plans).values()) >= 0, 30, "channels opened")
            _pays_on_every_partition(config, plans, sender, service)
            _wait_settled(node, config, newer_than=0)
        finally:
            sender.close()
            service.close()


def test_defect2_lone_node_left_after_a_second_member_joins_and_leaves_owns_everything(node_config, monkeypatch):
    monkeypatch.setattr(runner, "RangePartitionAssignor", SlowRangeAssignor)
    config = node_config(rejoin_unowned_after=0)
    other_topic = f"{config.inbound_topic}.other"
    _create_topic(config, other_topic)
    plans = _one_channel_per_partition("defect2-second", config.partitions)
    with running_node(config) as node:
        sender, service = Sender(config), reader(config)
        second = None
        try:
            open_channels(sender, plans)
            wait_for(lambda: min(sequences(service, plans).values()) >= 0, 30, "channels opened")
            alone = _generation(node)

            # a second member joins: the leader's group topics grow, and the client decides on one more rebalance
            second = _second_member(config, other_topic)

            def keep_second_polled() -> None:
                second.poll(timeout_ms=100)

            wait_for(lambda: (keep_second_polled(), bool(second.assignment()))[1], 30, "the second member joined")
            _wait_settled(node, config, newer_than=alone, idle=keep_second_polled)
            _pays_on_every_partition(config, plans, sender, service, idle=keep_second_polled)

            # it leaves: the lone node is left after a second rebalance, and its group topics shrink again
            together = _generation(node)
            second.close(autocommit=False)
            _wait_settled(node, config, newer_than=together)
            _pays_on_every_partition(config, plans, sender, service)
        finally:
            if second is not None:
                second.close(autocommit=False)
            sender.close()
            service.close()


def test_defect2_lone_node_joins_its_group_once(node_config):
    """The rebalance that lost the assignment is gone too: the first assignment knows the topics."""
    config = node_config(rejoin_unowned_after=0)
    with running_node(config) as node:
        wait_for(lambda: _owns_everything(node, config), 30, "the node owning every partition")
        time.sleep(1.5)  # the metadata update after the first join came within ~100 ms
        gm = node.consumer.group_metadata()
        assert (gm.generation_id, gm.state) == (1, MemberState.STABLE)
        assert _owns_everything(node, config)


def test_defect2_watchdog_rejoins_a_node_left_with_an_empty_assignment(node_config, monkeypatch, caplog):
    EmptyFirstRangeAssignor.calls = 0
    monkeypatch.setattr(runner, "RangePartitionAssignor", EmptyFirstRangeAssignor)
    config = node_config(rejoin_unowned_after=2.0)
    plans = _one_channel_per_partition("defect2-watchdog", config.partitions)
    caplog.set_level(logging.INFO, logger="parsec.node")
    with running_node(config) as node:
        assert node.assigned == set()  # the first assignment gave it nothing
        sender, service = Sender(config), reader(config)
        try:
            open_channels(sender, plans)
            wait_for(lambda: _owns_everything(node, config), 20, "the watchdog's rejoin")
            wait_for(lambda: min(sequences(service, plans).values()) >= 0, 30, "channels opened")
            _pays_on_every_partition(config, plans, sender, service)
        finally:
            sender.close()
            service.close()
    why = [r.getMessage() for r in caplog.records if r.name == "parsec.node" and "rejoin" in r.getMessage()]
    assert why and "no owner" in why[0], why
    assert EmptyFirstRangeAssignor.calls >= 2


def test_defect2_watchdog_rejoins_a_node_whose_client_lost_its_assignment(node_config, monkeypatch, caplog):
    """Without the client-side fix (kafka-python as it is), the watchdog alone brings the node back."""
    monkeypatch.setattr(runner, "RangePartitionAssignor", SlowRangeAssignor)
    monkeypatch.setattr(runner, "_keep_rejoin_until_joined", lambda consumer: False, raising=False)
    config = node_config(rejoin_unowned_after=2.0)
    other_topic = f"{config.inbound_topic}.other"
    _create_topic(config, other_topic)
    plans = _one_channel_per_partition("defect2-lost", config.partitions)
    caplog.set_level(logging.INFO, logger="parsec.node")
    with running_node(config) as node:
        sender, service = Sender(config), reader(config)
        second = _second_member(config, other_topic)
        try:
            open_channels(sender, plans)

            def keep_second_polled() -> None:
                second.poll(timeout_ms=100)

            wait_for(lambda: (keep_second_polled(), bool(second.assignment()))[1], 30, "the second member joined")
            wait_for(lambda: min(sequences(service, plans).values()) >= 0, 30, "channels opened")
            _pays_on_every_partition(config, plans, sender, service, idle=keep_second_polled, timeout=40)
            assert _owns_everything(node, config)
        finally:
            second.close(autocommit=False)
            sender.close()
            service.close()
    assert any(r.name == "parsec.node" and "rejoin" in r.getMessage() for r in caplog.records)

