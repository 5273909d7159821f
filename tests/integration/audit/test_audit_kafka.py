"""``parsec audit`` on a real broker: a node's events topic passes, and altered copies of it are named.

Given a node that accepted payments on fresh topics, ``parsec audit`` of its events topic exits 0 and
its per-channel balances are the node's; continuing from ``--state`` after more payments reads only
the new records. Then altered copies of the records are written to other topics of the same cluster
(as a faulty or hostile copy would hold them: a price changed, a record dropped, records repeated,
another channel's record spliced in, a balance changed) and the auditor names each violation.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from infrastructure.cli import main
from infrastructure.node import Sender
from infrastructure.tools.workload import make_channels
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


@dataclass
class Rec:
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def doc(self) -> dict:
        return json.loads(self.value)

    @property
    def event(self) -> str:
        return dict(self.headers)["es.topic"].decode().rpartition(".")[2]

    def altered(self, **changes) -> Rec:
        return Rec(**{**self.__dict__, **changes})


def _read_all(bootstrap: str, topic: str) -> list[Rec]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    out: list[Rec] = []
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for tp, records in consumer.poll(timeout_ms=500).items():
            out += [Rec(tp.partition, r.key, r.value, list(r.headers)) for r in records]
    consumer.close()
    return out


def _write_copy(bootstrap: str, records: list[Rec], partitions: int) -> str:
    """The records, in this order, to a fresh topic (each in the partition it was read from)."""
    topic = f"test.audit.copy.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for r in records:
        producer.send(topic, key=r.key, value=r.value, headers=r.headers, partition=r.partition)
    producer.flush()
    producer.close()
    return topic


def _audit(bootstrap: str, topic: str, tmp_path, *extra: str) -> tuple[int, dict]:
    path = tmp_path / f"{topic}.json"
    status = main(["--kafka", bootstrap, "audit", "--topic", topic, "--report", str(path), *extra])
    return status, json.loads(path.read_text())


def _payment(records: list[Rec], channel: uuid.UUID, sequence: int) -> int:
    key = str(channel).encode()
    return next(i for i, r in enumerate(records)
                if r.key == key and r.event == "PaymentAccepted" and r.doc["sequence"] == sequence)


def test_a_nodes_events_topic_passes_and_altered_copies_are_named(node_config, kafka_bootstrap, tmp_path):
    config = node_config()
    plans = make_channels("audit", 6)
    txs = harness.make_payments(plans, 240, "audit")
    state = tmp_path / "audit.state"
    with harness.running_node(config):
        sender = Sender(config)
        harness.open_channels(sender, plans)
        service = harness.reader(config)
        harness.wait_opened(service, plans)
        for half in (txs[:120], txs[120:]):
            for tx in half:
                sender.payment(tx)
            sender.flush()
            want = {p.channel_id: max([t.sequence for t in half + txs[:120] if t.channel == p.channel_id], default=0)
                    for p in plans}
            harness.wait_for(lambda want=want: harness.sequences(service, plans) == want, 60, "payments applied")
            status, first = _audit(kafka_bootstrap, config.events_topic, tmp_path, "--state", str(state))
            assert status == 0, first["violations"]
        sender.close()
    # the second run continued from the state: it read only what the second half added
    assert first["run"]["continued"] and 0 < first["run"]["records_read"] < first["records"]
    status, report = _audit(kafka_bootstrap, config.events_topic, tmp_path, "--from-scratch")
    assert status == 0 and report["ok"] and report["violations"] == []
    assert report["channels_checked"] == len(plans) and report["duplicates"] == 0
    rows = {row["channel"]: row for row in report["channels"]}
    for p in plans:
        live = service.get_channel(p.channel_id)
        row = rows[str(p.channel_id)]
        assert row["ok"] and row["balances"] == [str(b) for b in live.balances]  # money as strings
        assert row["sequence"] == live.sequence == len(p.txs)
    assert {k: rows[k]["balances"] for k in rows} == {k: r["balances"] for k, r in
                                                        ((c["channel"], c) for c in first["channels"])}
    service.close()

    records = _read_all(kafka_bootstrap, config.events_topic)
    x, y = sorted(plans, key=lambda p: -len(p.txs))[:2]  # two busy channels

    def named(copy: list[Rec]) -> list[tuple[str, int | None, str]]:
        status, rep = _audit(kafka_bootstrap, _write_copy(kafka_bootstrap, copy, config.partitions), tmp_path)
        assert status == 65 and not rep["ok"]
        return [(v["channel"], v["sequence"], v["reason"]) for v in rep["violations"]]

    # a price changed in the signed transaction: its signature no longer verifies
    i = _payment(records, x.channel_id, 5)
    doc = records[i].doc
    doc["transaction"]["price"] = str(int(doc["transaction"]["price"]) - 1)
    copy = list(records)
    copy[i] = records[i].altered(value=json.dumps(doc).encode())
    assert named(copy) == [(str(x.channel_id), 5, "BadSignature")]

    # a record dropped from the middle: a gap
    i = _payment(records, x.channel_id, 8)
    assert named(records[:i] + records[i + 1:]) == [(str(x.channel_id), 7, "SequenceGap")]

    # a balance the event claims, changed
    i = _payment(records, y.channel_id, 3)
    doc = records[i].doc
    doc["balances"] = [doc["balances"][0] - 1, doc["balances"][1] + 1]
    copy = list(records)
    copy[i] = records[i].altered(value=json.dumps(doc).encode())
    assert named(copy) == [(str(y.channel_id), 3, "BalanceMismatch")]

    # another channel's payment spliced in under this channel's key and next version
    i = _payment(records, y.channel_id, 6)
    j = _payment(records, x.channel_id, 6)
    version = dict(records[i].headers)["es.version"]
    spliced = records[j].altered(key=records[i].key, partition=records[i].partition,
                                 headers=[(k, version if k == "es.version" else v) for k, v in records[j].headers])
    assert named(records[:i] + [spliced] + records[i:]) == [(str(y.channel_id), 6, "WrongChannel")]

    # records written again (a MirrorMaker restart): duplicates, counted once, and the copy passes
    copy = records + records[len(records) // 3: len(records) // 2]
    status, rep = _audit(kafka_bootstrap, _write_copy(kafka_bootstrap, copy, config.partitions), tmp_path)
    assert status == 0 and rep["duplicates"] == len(records) // 2 - len(records) // 3
    assert {r["channel"]: r["balances"] for r in rep["channels"]} == {k: r["balances"] for k, r in rows.items()}
