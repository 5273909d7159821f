"""The node's consumer group offsets: committed in each batch's transaction (KIP-447).

They are the tracking records' positions (the safe inbound position and the next control
offset), so ``kafka-consumer-groups.sh --describe`` and lag exporters show each node's lag; a
member the group has dropped (a zombie) cannot commit anything, offsets or events.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import confluent_kafka as ck
import pytest

from infrastructure import bootstrap
from infrastructure.kafka import WriterFencedError, tracking_name
from infrastructure.node import Sender
from infrastructure.node.messages import partition_of
from infrastructure.node.partition import InRecord
from infrastructure.tools.workload import make_channels
from tests.integration.node.harness import (
    make_payments,
    open_channels,
    reader,
    running_node,
    sequences,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[3]


def _committed(config) -> dict[tuple[str, int], int]:
    c = ck.Consumer({"bootstrap.servers": config.kafka_bootstrap, "group.id": config.node_group, "enable.auto.commit": False})
    try:
        tps = [ck.TopicPartition(t, p) for t in (config.inbound_topic, config.control_topic)
               for p in range(config.partitions)]
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=15)}
    finally:
        c.close()


def _describe(config) -> list[dict[str, str]]:
    """``kafka-consumer-groups.sh --describe``: Kafka's own tool (scripts/kafka-tools resolves it)."""
    out = subprocess.run(
        [str(REPO / "scripts/kafka-tools"), "consumer-groups", "--bootstrap-server", config.kafka_bootstrap,
         "--describe", "--group", config.node_group],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    header = next(r for r in rows if r[:2] == ["GROUP", "TOPIC"])
    return [dict(zip(header, r, strict=False)) for r in rows if r[0] == config.node_group and r != header]


def test_group_offsets_are_the_tracking_positions_and_the_standard_tool_shows_no_lag(node_config):
    config = node_config()
    plans = make_channels("group-offsets", 16)
    assert {partition_of(p.channel_id, config.partitions) for p in plans} == set(range(config.partitions))
    with running_node(config) as node:
        sender, service = Sender(config), reader(config)
        try:
            open_channels(sender, plans)
            txs = make_payments(plans, 200, "group-offsets")
            for tx in txs:
                sender.payment(tx)
            sender.flush()
            wait_for(lambda: sum(s + 1 for s in sequences(service, plans).values()) == len(txs) + len(plans), 60,
                     "every payment applied")
            positions = {}
            for p, w in node.workers.items():
                positions[(config.inbound_topic, p)] = w.committed[tracking_name(config.inbound_topic, p)]
                positions[(config.control_topic, p)] = w.committed[tracking_name(config.control_topic, p)]
        finally:
            sender.close()
            service.close()
        committed = _committed(config)
        assert committed == positions
        assert sum(committed[(config.inbound_topic, p)] for p in range(config.partitions)) == len(txs)
        rows = _describe(config)
    assert {(r["TOPIC"], int(r["PARTITION"])) for r in rows} == set(positions)
    for r in rows:
        assert int(r["CURRENT-OFFSET"]) == positions[(r["TOPIC"], int(r["PARTITION"]))]
        assert r["LAG"] == "0", r


def test_a_member_the_group_dropped_cannot_commit(node_config):
    """A stale generation (the group rebalanced without this member): the batch's transaction is aborted."""
    config = node_config()
    plans = make_channels("group-zombie", 2)
    consumer = ck.Consumer({"bootstrap.servers": config.kafka_bootstrap, "group.id": config.node_group,
                            "enable.auto.commit": False, "session.timeout.ms": 6000})
    other = None
    with running_node(config):  # creates the topics; then stops, so the group is ours
        pass
    try:
        consumer.subscribe([config.inbound_topic])
        wait_for(lambda: (consumer.poll(0.2), bool(consumer.assignment()))[1], 30, "the member joined")
        stale = consumer.consumer_group_metadata()
        other = ck.Consumer({"bootstrap.servers": config.kafka_bootstrap, "group.id": config.node_group,
                             "enable.auto.commit": False, "session.timeout.ms": 6000})
        other.subscribe([config.inbound_topic])
        wait_for(lambda: (consumer.poll(0.2), other.poll(0.2), bool(other.assignment()))[2], 30,
                 "the group rebalanced: a new generation")

        sender = Sender(config)
        try:
            open_channels(sender, plans)
        finally:
            sender.close()
        p = partition_of(plans[0].channel_id, config.partitions)
        worker = bootstrap.partition_worker(config, p, group_metadata=lambda: stale)
        try:
            control = _read(config, config.control_topic, p)
            with pytest.raises(WriterFencedError, match="refused this member's offsets"):
                worker.process(control, [])
        finally:
            worker.close()
        service = reader(config)
        try:
            assert all(s < 0 for cid, s in sequences(service, plans).items() if partition_of(cid, 4) == p)
        finally:
            service.close()
        assert _committed(config)[(config.control_topic, p)] < 0  # nothing committed for the group
    finally:
        consumer.close()
        if other is not None:
            other.close()


def _read(config, topic: str, p: int) -> list[InRecord]:
    c = ck.Consumer({"bootstrap.servers": config.kafka_bootstrap, "group.id": "reader", "enable.auto.commit": False,
                     "isolation.level": "read_committed"})
    try:
        c.assign([ck.TopicPartition(topic, p, 0)])
        _, end = c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10, cached=False)
        out: list[InRecord] = []
        while len(out) < end:
            out += [InRecord(m.offset(), m.key(), m.value()) for m in c.consume(100, 1.0) if m.error() is None]
        return out
    finally:
        c.close()
