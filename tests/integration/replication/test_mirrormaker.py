"""Replication between business units (issue 15): MirrorMaker 2 copies unit A's Parsec topics to
unit B's cluster.

A is the session's Kafka (``PARSEC_KAFKA_BOOTSTRAP``); B is a second single-broker cluster started
for this module (``scripts/kafka --name b`` on a free port, data in tmp); ``scripts/mirrormaker``
copies this module's topics from A to B, where topic T is ``A.T``. Payments stream into A through a
node; on B, the events of every channel are A's, compared per (channel, originator version) after
decoding, never by offset (B's offsets are not A's). An aborted transaction on A never reaches B. A
MirrorMaker SIGKILLed mid-stream and started again may copy records twice: after dedupe by
(channel, version) B's events are still exactly A's. Each test prints the replication lag it saw.

The tests share one B and one MirrorMaker (each start costs ~10 s); the last one kills and restarts
it, the module's teardown stops whatever runs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from eventsourcing.persistence import StoredEvent
from kafka import KafkaConsumer, TopicPartition

from infrastructure.cli import main
from infrastructure.kafka.codec import encode_event
from infrastructure.node import Sender
from infrastructure.tools.workload import make_channels
from projections.balances import Balances, channel_balances
from projections.runner import rebuild
from projections.source import source_for
from projections.sqlite import SQLiteStore
from tests.integration.node.harness import (
    make_payments,
    open_channels,
    reader,
    running_node,
    sequences,
    wait_for,
    wait_opened,
)
from tests.integration.replication.harness import (
    LagMeter,
    MirrorMaker,
    UnitCluster,
    copy_of,
    read_copy,
    summary,
    topic_exists,
    unit_config,
    wait_copied,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


def assert_same_events(a_bootstrap: str, b_bootstrap: str, topic: str, partitions: int,
                       tmp_path: Path) -> tuple[Any, Any, dict[str, Any]]:
    """B's copy of ``topic``, deduped by (channel, version), holds exactly A's events, each with the
    same event class and state; and ``parsec audit``, reading only B's copy, verifies every channel.
    Returns both reads and the audit's report."""
    a, b = wait_copied(a_bootstrap, b_bootstrap, topic, partitions)
    assert a.duplicates() == 0, "A itself holds an event twice"
    want, got = a.deduped(), b.deduped()
    assert set(got) == set(want), "channels differ"
    for channel, events in want.items():
        assert got[channel] == events, f"channel {channel}: B's events differ from A's"
    report_file = tmp_path / "audit.json"
    status = main(["--kafka", b_bootstrap, "audit", "--topic", copy_of(topic), "--report", str(report_file)])
    report = json.loads(report_file.read_text())
    assert status == 0 and report["ok"], report["violations"]
    assert report["duplicates"] == b.duplicates(), "the auditor counts every duplicate once"
    return a, b, report


def assert_balances_equal_as(report: dict[str, Any], config: Any, tmp_path: Path) -> None:
    """The audit's per-channel balances (from B's copy alone) equal A's balances read model, rebuilt
    from A's events topic."""
    service = reader(config)
    store = SQLiteStore(tmp_path / "a-balances.sqlite")
    try:
        rebuild(source_for(service), store, Balances())
        a_rows = {r.channel_id: r for r in channel_balances(store)}
    finally:
        store.close()
        service.close()
    audited = {c["channel"]: c for c in report["channels"]}
    assert set(audited) == set(a_rows)
    for cid, row in a_rows.items():
        assert [int(x) for x in audited[cid]["balances"]] == list(row.balances), cid


def stream(sender: Sender, payments: list[Any], rate: float, stop: threading.Event) -> None:
    """Send the payments at about ``rate`` a second (a gateway's steady flow)."""
    began = time.monotonic()
    for i, tx in enumerate(payments):
        if stop.is_set():
            return
        sender.payment(tx)
        stop.wait(max(0.0, began + (i + 1) / rate - time.monotonic()))
    sender.flush()


def run_payments(config: Any, plans: list[Any], payments: list[Any], rate: float, b_bootstrap: str,
                 during: Any = None) -> LagMeter:
    """Open the channels, wait until B's copy of the events topic flows, then stream the payments into A
    through a node (calling ``during(lag_meter)`` from the test's thread while they go), and
    wait until A has applied every one. Returns the lag meter that followed B meanwhile."""
    with running_node(config):
        sender = Sender(config)
        service = reader(config)
        try:
            open_channels(sender, plans)
            wait_opened(service, plans)
            # MirrorMaker finds a new topic within its refresh interval (5 s), creates its copy on B,
            # then restarts its task on the new partitions: wait until the channels' opening events
            # are on B, so the lag measured below is the copy's, not the discovery's.
            copy = copy_of(config.events_topic)
            wait_for(lambda: topic_exists(b_bootstrap, copy)
                     and read_copy(b_bootstrap, copy, config.partitions).count() >= len(plans), 60,
                     f"the channels' opening events in {copy} on B")
            with LagMeter(b_bootstrap, copy_of(config.events_topic), config.partitions) as lag:
                stop = threading.Event()
                thread = threading.Thread(target=stream, args=(sender, payments, rate, stop), daemon=True)
                thread.start()
                try:
                    if during is not None:
                        during(lag)
                    thread.join(120)
                    assert not thread.is_alive(), "payments not sent in 120 s"
                    want = {p.channel_id: len(p.txs) for p in plans}
                    wait_for(lambda: sequences(service, plans) == want, 90, "every payment applied on A")
                    time.sleep(1.5)  # the last records' way to B, for the lag samples
                finally:
                    stop.set()
                    thread.join(30)
            return lag
        finally:
            sender.close()
            service.close()


def test_committed_events_reach_b_with_the_same_identity_and_content(
        kafka_bootstrap: str, cluster_b: UnitCluster, mirrormaker: MirrorMaker, topic_prefix: str,
        tmp_path: Path) -> None:
    config = unit_config(kafka_bootstrap, topic_prefix)
    plans = make_channels("replication", 8)
    payments = make_payments(plans, 400, "replication")
    began = time.monotonic()
    lag = run_payments(config, plans, payments, 100.0, cluster_b.bootstrap)
    a, b, report = assert_same_events(kafka_bootstrap, cluster_b.bootstrap, config.events_topic, config.partitions,
                                      tmp_path)
    assert_balances_equal_as(report, config, tmp_path)
    # Nothing was restarted: every event once, and B holds only events (plain writes, no markers),
    # while A's transaction markers take offsets of their own.
    assert b.duplicates() == 0
    assert sum(b.end_offsets.values()) == b.records
    assert sum(a.end_offsets.values()) > a.records, "A's offsets include its transactions' markers"
    rejected_a = read_copy(kafka_bootstrap, config.rejected_topic, config.partitions)
    assert rejected_a.count() == 0
    print(f"\n{len(payments)} payments over {len(plans)} channels: {a.count()} events on A "
          f"(offsets up to {sum(a.end_offsets.values())}), {b.count()} on B (offsets {sum(b.end_offsets.values())}); "
          f"lag A (node's produce) -> B (seen): {summary(lag.samples)}; MirrorMaker started in "
          f"{mirrormaker.starts[0]:.1f}s; {time.monotonic() - began:.1f}s in all")
    assert lag.samples, "no lag sample: B's copy was not followed"


def test_an_aborted_transaction_on_a_never_reaches_b(
        kafka_bootstrap: str, cluster_b: UnitCluster, mirrormaker: MirrorMaker, topic_prefix: str) -> None:
    """A transactional producer on A (as the node's writer is) commits, aborts, commits: B gets the
    committed records only. Also measures the lag from A's commit returning to the record on B."""
    topic = f"{topic_prefix}.{uuid.uuid4().hex[:6]}.events"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # kept alive until the future is done
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic}-writer",
                         "enable.idempotence": True})
    producer.init_transactions(30)
    channel = uuid.uuid4()

    def transaction(version: int, commit: bool) -> float:
        producer.begin_transaction()
        key, value, headers = encode_event(StoredEvent(originator_id=channel, originator_version=version,
                                                       topic="tests.replication:Probe",
                                                       state=f'{{"version": {version}, "commit": {str(commit).lower()}}}'.encode()))
        producer.produce(topic, value=value, key=key, headers=headers, partition=0)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)  # on A's log, then aborted: a read_committed reader never sees it
            producer.abort_transaction(30)
        return time.time()

    b = KafkaConsumer(bootstrap_servers=[cluster_b.bootstrap], group_id=None, enable_auto_commit=False)
    seen: list[tuple[int, bool, float]] = []

    def next_on_b(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        n = len(seen)
        while len(seen) == n:
            assert time.monotonic() < deadline, f"nothing new on B in {timeout:g}s"
            for records in b.poll(timeout_ms=20).values():
                seen.extend((json.loads(r.value)["version"], json.loads(r.value)["commit"], time.time())
                            for r in records)

    try:
        transaction(1, commit=True)
        wait_for(lambda: topic_exists(cluster_b.bootstrap, copy_of(topic)), 60, f"{copy_of(topic)} on B")
        tp = TopicPartition(copy_of(topic), 0)
        b.assign([tp])
        b.seek_to_beginning(tp)
        next_on_b(30)
        commit_lag = []
        version = 2
        for i in range(12):
            if i % 3 == 1:
                transaction(version, commit=False)  # the next committed one reuses the version: a retry
                continue
            committed_at = transaction(version, commit=True)
            next_on_b(30)
            commit_lag.append(seen[-1][2] - committed_at)
            version += 1
        time.sleep(2.0)  # anything else would have arrived by now (the lag is well under a second)
        b.poll(timeout_ms=500)
    finally:
        b.close(autocommit=False)
        producer.flush(10)

    assert all(commit for _, commit, _ in seen), "an aborted record reached B"
    assert [v for v, _, _ in seen] == list(range(1, version)), seen
    copy = read_copy(cluster_b.bootstrap, copy_of(topic), 1)
    a = read_copy(kafka_bootstrap, topic, 1)
    assert copy.deduped() == a.deduped() and copy.duplicates() == 0
    # A: 13 transactions, each a record and a marker (26 offsets); B: the 9 committed records, no markers.
    assert a.end_offsets == {0: 26} and copy.end_offsets == {0: version - 1}
    print(f"\n{version - 1} committed and 4 aborted transactions on A; B holds the {copy.count()} committed "
          f"records at offsets 0..{copy.end_offsets[0] - 1} (A: 0..{a.end_offsets[0] - 1}); "
          f"lag A commit -> B: {summary(commit_lag)}")


def test_mirrormaker_killed_mid_stream_may_duplicate_but_loses_nothing(
        kafka_bootstrap: str, cluster_b: UnitCluster, mirrormaker: MirrorMaker, topic_prefix: str,
        tmp_path: Path) -> None:
    """SIGKILL: MirrorMaker saves its position in A only every 5 s (on B), so the records it copied
    since are copied again after the restart."""
    config = unit_config(kafka_bootstrap, topic_prefix)
    plans = make_channels("replication-kill", 8)
    payments = make_payments(plans, 600, "replication-kill")
    outage: dict[str, float] = {}

    def kill_and_restart(lag: LagMeter) -> None:
        wait_for(lambda: len(lag.samples) >= 150, 60, "150 events copied to B before the kill", 0.05)
        outage["copied"] = len(lag.samples)
        mirrormaker.kill()
        killed = time.monotonic()
        time.sleep(2.0)  # the stream goes on into A meanwhile
        mirrormaker.start()
        outage["down"] = time.monotonic() - killed

    lag = run_payments(config, plans, payments, 80.0, cluster_b.bootstrap, during=kill_and_restart)
    a, b, report = assert_same_events(kafka_bootstrap, cluster_b.bootstrap, config.events_topic, config.partitions,
                                      tmp_path)
    assert b.duplicates() > 0 and report["duplicates"] == b.duplicates()
    assert_balances_equal_as(report, config, tmp_path)  # the auditor's balances are still right
    assert mirrormaker.running()
    print(f"\n{len(payments)} payments over {len(plans)} channels; MirrorMaker SIGKILLed after "
          f"{outage['copied']} records on B, copying again {outage['down']:.1f}s later (its start took "
          f"{mirrormaker.starts[-1]:.1f}s); B holds {b.records} records for A's {a.count()} events: "
          f"{b.duplicates()} duplicates, none left after dedupe by (channel, version); "
          f"lag A -> B over the run, the outage included: {summary(lag.samples)}")


def test_altered_copies_written_into_b_are_named_by_the_auditor(
        kafka_bootstrap: str, cluster_b: UnitCluster, mirrormaker: MirrorMaker, topic_prefix: str,
        tmp_path: Path) -> None:
    """B's faithful copy passes; copies of it altered on B (as a faulty or hostile unit would hold them)
    are each named: channel, sequence, reason."""
    from domain.protocol import HashPointer, Invoice, sign_invoice
    from tests.integration.audit.test_audit_kafka import _audit, _payment, _read_all, _write_copy

    config = unit_config(kafka_bootstrap, topic_prefix)
    plans = make_channels("replication-tamper", 4)
    payments = make_payments(plans, 120, "replication-tamper")
    run_payments(config, plans, payments, 200.0, cluster_b.bootstrap)
    _, b, _ = assert_same_events(kafka_bootstrap, cluster_b.bootstrap, config.events_topic, config.partitions,
                                 tmp_path)
    records = _read_all(cluster_b.bootstrap, copy_of(config.events_topic))
    x, y = sorted(plans, key=lambda p: -len(p.txs))[:2]
    keys = {p.channel_id: {p.a.address: p.a.key, p.b.address: p.b.key} for p in plans}

    def named(copy: list[Any]) -> list[tuple[str, int | None, str]]:
        status, report = _audit(cluster_b.bootstrap, _write_copy(cluster_b.bootstrap, copy, config.partitions),
                                tmp_path)
        assert status == 65 and not report["ok"]
        return [(v["channel"], v["sequence"], v["reason"]) for v in report["violations"]]

    def with_transaction(i: int, change: Any) -> list[Any]:
        doc = records[i].doc
        hash_ = change(doc["transaction"])
        if hash_ is not None:  # a consistent forgery: the event names the forged transaction's hash
            doc["transaction_hash"] = hash_
        return records[:i] + [records[i].altered(value=json.dumps(doc).encode())] + records[i + 1:]

    # a price changed
    i = _payment(records, x.channel_id, 4)
    assert named(with_transaction(i, lambda t: t.update(price=str(int(t["price"]) + 1)))) == [
        (str(x.channel_id), 4, "BadSignature")]
    # the signature replaced by another payment's (a valid signature, not over this payment)
    other = records[_payment(records, x.channel_id, 3)].doc["transaction"]["invoiceSignature"]
    assert named(with_transaction(i, lambda t: t.update(invoiceSignature=other))) == [
        (str(x.channel_id), 4, "BadSignature")]

    # the hash link broken: the buyer's own valid signature over a wrong previous hash
    def relinked(t: dict[str, Any]) -> str:
        key = keys[x.channel_id][t["buyerAddress"]]
        wrong = HashPointer(transaction_id=uuid.UUID(t["hashPointerToPrevious"]["transactionID"]),
                            transaction_hash=b"\x42" * 32)
        forged = sign_invoice(Invoice(invoice_address=t["supplierAddress"], price=int(t["price"]), currency="ETH"),
                              key=key, channel=x.channel_id, invoice_id=uuid.UUID(t["invoiceID"]),
                              sequence=t["sequence"], previous=wrong, buyer_total=int(t["buyerTotal"]),
                              domain=plans[0].domain)
        t.clear()
        t.update(forged.to_dict())
        return "0x" + forged.transaction_hash.hex()

    assert named(with_transaction(i, relinked)) == [(str(x.channel_id), 4, "BrokenHashLink")]
    # an event dropped from the middle: named where the channel's verified head stops (sequence 4)
    i = _payment(records, y.channel_id, 5)
    assert named(records[:i] + records[i + 1:]) == [(str(y.channel_id), 4, "SequenceGap")]
    # an event of another channel spliced in under this channel's key and next version
    i, j = _payment(records, y.channel_id, 3), _payment(records, x.channel_id, 3)
    version = dict(records[i].headers)["es.version"]
    spliced = records[j].altered(key=records[i].key, partition=records[i].partition,
                                 headers=[(k, version if k == "es.version" else v) for k, v in records[j].headers])
    assert named(records[:i] + [spliced] + records[i:]) == [(str(y.channel_id), 3, "WrongChannel")]
    # events repeated: duplicates, counted once, the copy passes
    status, report = _audit(cluster_b.bootstrap, _write_copy(cluster_b.bootstrap, records + records[10:30],
                                                              config.partitions), tmp_path)
    assert status == 0 and report["duplicates"] == b.duplicates() + 20
