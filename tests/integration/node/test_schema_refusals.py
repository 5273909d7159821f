"""On real Kafka: records carry parsec.schema, and the node's refusal of a malformed payment or control
request keeps its reason code and names the schema's JSON path (schemas/, docs/protocol.md Schemas)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, TopicPartition

from infrastructure import bootstrap
from infrastructure.node import Sender
from infrastructure.node.messages import Rejection, RejectionHeaders, partition_of
from infrastructure.schemas import validation
from infrastructure.tools.workload import make_channels

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes


def _read_all(config, topic: str) -> list:
    c = KafkaConsumer(bootstrap_servers=config.kafka_bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      isolation_level="read_committed")
    try:
        tps = [TopicPartition(topic, p) for p in range(config.partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list = []
        deadline = time.monotonic() + 20
        while any(c.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200).values():
                out += records
        return out
    finally:
        c.close(autocommit=False)


def test_refusals_name_the_schema_path_and_records_carry_their_schema_version(node_config):
    config = node_config()
    bootstrap.node(config).ensure_topics()
    sender = Sender(config)
    plan = next(p for p in make_channels("schemas", 40) if partition_of(p.channel_id, config.partitions) == 0)
    bad_payment = json.dumps({**json.loads(plan.pay(10**9).to_json()), "price": "1.5"}).encode()
    bad_control = json.dumps({"type": "deposit", "channel": str(plan.channel_id), "participant": "0x12",
                              "amount": "1"}).encode()
    pay_meta = sender.payment(bad_payment, plan.channel_id).get(timeout=15)
    ctl_meta = sender.raw(config.control_topic, 0, str(plan.channel_id).encode(), bad_control).get(timeout=15)
    worker = bootstrap.partition_worker(config, 0)
    try:
        worker.process([Record(ctl_meta.offset, None, bad_control)], [Record(pay_meta.offset, None, bad_payment)])
    finally:
        worker.close()
        sender.close()

    inbound = _read_all(config, config.inbound_topic)
    assert [dict(r.headers).get("parsec.schema") for r in inbound] == [b"payment/v1"]
    rejected = _read_all(config, config.rejected_topic)
    assert len(rejected) == 2
    by_topic = {Rejection.of(r.key, r.value, r.headers).source_topic: r for r in rejected}
    for r in rejected:
        assert dict(r.headers)["parsec.schema"] == b"rejected/v1"
        assert validation.violations("rejected", RejectionHeaders.of(r.headers)) == []
    payment = Rejection.of(by_topic[config.inbound_topic].key, by_topic[config.inbound_topic].value,
                           by_topic[config.inbound_topic].headers)
    assert payment.reason == "InvalidAmount"  # the reason code consumers match is unchanged
    assert "[schema payment/v1: $.price: '1.5' is not an amount" in payment.message
    control = Rejection.of(by_topic[config.control_topic].key, by_topic[config.control_topic].value,
                           by_topic[config.control_topic].headers)
    assert control.reason == "MalformedMessage"
    assert "[schema control/v1: $.participant: '0x12' does not match" in control.message
