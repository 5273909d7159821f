"""Group membership of the node (librdkafka consumer, Range assignor, static membership).

Issue 10, defect 2 was a node left with no partitions that never asked again (kafka-python 3.0.x
dropped a join it had started itself when a poll gave up mid-join). The node now consumes with
librdkafka; these tests hold it to the same promises: a lone node joins once and owns everything,
a second member joining and leaving leaves it owning everything, the ownership watchdog brings
back a node whose client lost its assignment, and a static member that restarts takes its
partitions back without a rebalance of the others.
"""

from __future__ import annotations

import logging
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from infrastructure.node import Node, Sender
from infrastructure.node.messages import partition_of
from infrastructure.tools.workload import ChannelPlan, make_channels
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _owns_everything(node, config) -> bool:
    return node.assigned == set(range(config.partitions)) and set(node.workers) == node.assigned


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
        sender.payment(p.pay(10**12)).get(timeout=15)

    def applied() -> bool:
        idle()
        seqs = harness.sequences(service, plans)
        return all(seqs[p.channel_id] == before[p.channel_id] + 1 for p in plans)

    harness.wait_for(applied, timeout, "a payment applied on every partition")


def _create_topic(config, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def test_lone_node_joins_its_group_once_and_owns_everything(node_config):
    config = node_config()
    with harness.running_node(config) as node:
        harness.wait_for(lambda: _owns_everything(node, config), 30, "the node owning every partition")
        time.sleep(2.0)  # a second rebalance (what kafka-python went through on every start) comes within ~1 s
        assert node.assignments == 1
        assert _owns_everything(node, config)


def test_lone_node_left_after_a_second_member_joins_and_leaves_owns_everything(node_config):
    config = node_config(rejoin_unowned_after=0)  # the watchdog off: the client itself must hold
    other_topic = f"{config.inbound_topic}.other"
    _create_topic(config, other_topic)
    plans = _one_channel_per_partition("rebalance-second", config.partitions)
    with harness.running_node(config) as node:
        sender, service = Sender(config), harness.reader(config)
        second = ck.Consumer({"bootstrap.servers": config.kafka_bootstrap, "group.id": config.node_group,
                              "client.id": "second-member", "enable.auto.commit": False,
                              "partition.assignment.strategy": "range",
                              "session.timeout.ms": config.session_timeout_ms})
        try:
            harness.open_channels(sender, plans)
            harness.wait_opened(service, plans)
            alone = node.assignments
            second.subscribe([other_topic])

            def keep_second_polled() -> None:
                second.poll(0.1)

            harness.wait_for(lambda: (keep_second_polled(), bool(second.assignment()))[1], 30, "the second member joined")
            harness.wait_for(lambda: (keep_second_polled(), node.assignments > alone and _owns_everything(node, config))[1],
                     30, "the node owning everything again after the join")
            _pays_on_every_partition(config, plans, sender, service, idle=keep_second_polled)

            together = node.assignments
            second.close()  # a dynamic member leaves the group: one more rebalance
            harness.wait_for(lambda: node.assignments > together and _owns_everything(node, config), 30,
                     "the node owning everything after the second member left")
            _pays_on_every_partition(config, plans, sender, service)
        finally:
            sender.close()
            service.close()


def test_watchdog_rejoins_a_node_whose_client_lost_its_assignment(node_config, monkeypatch, caplog):
    """The coordinator lists partitions for the member, its client took none: the watchdog rejoins."""
    original = Node._on_assign
    calls = {"n": 0}

    def lose_the_first(self, consumer, tps):
        calls["n"] += 1
        return original(self, consumer, [] if calls["n"] == 1 else tps)

    monkeypatch.setattr(Node, "_on_assign", lose_the_first)
    config = node_config(rejoin_unowned_after=2.0)
    plans = _one_channel_per_partition("rebalance-watchdog", config.partitions)
    caplog.set_level(logging.INFO, logger="parsec.node")
    with harness.running_node(config) as node:
        assert node.assigned == set()  # the first assignment was lost
        sender, service = Sender(config), harness.reader(config)
        try:
            harness.open_channels(sender, plans)
            harness.wait_for(lambda: _owns_everything(node, config), 30, "the watchdog's rejoin")
            harness.wait_opened(service, plans)
            _pays_on_every_partition(config, plans, sender, service)
        finally:
            sender.close()
            service.close()
    why = [r.getMessage() for r in caplog.records if r.name == "parsec.node" and "rejoining" in r.getMessage()]
    assert why and "assignment was lost" in why[0], why
    assert calls["n"] >= 2


def test_a_static_member_restarted_takes_its_partitions_back_without_a_rebalance(node_config):
    config_a = node_config(group_instance_id="a", node_id="a")
    config_b = node_config(group_instance_id="b", node_id="b")
    for name in ("events_topic", "inbound_topic", "control_topic", "rejected_topic", "node_group"):
        setattr(config_b, name, getattr(config_a, name))
    plans = _one_channel_per_partition("rebalance-static", config_a.partitions)
    with harness.running_node(config_b) as b:
        with harness.running_node(config_a) as a:
            harness.wait_for(lambda: a.assigned and b.assigned and a.assigned | b.assigned == set(range(4)), 30,
                     "both static members owning their partitions")
            owned_by_a, b_assignments = set(a.assigned), b.assignments
        # a stopped (a static member does not leave the group): its partitions wait for it
        with harness.running_node(config_a.model_copy()) as again:
            harness.wait_for(lambda: again.assigned == owned_by_a and set(again.workers) == owned_by_a, 30,
                     "the restarted member owning its partitions again")
            assert again.assignments == 1
            sender, service = Sender(config_a), harness.reader(config_a)
            try:
                harness.open_channels(sender, plans)
                harness.wait_opened(service, plans)
                _pays_on_every_partition(config_a, plans, sender, service)
            finally:
                sender.close()
                service.close()
            assert b.assignments == b_assignments  # b went through no rebalance
