"""The node on a real broker: ordering, exactly once, rejections, control, timers.

Given channels opened through the control topic, when signed payments stream in
(shuffled, repeated, some invalid), then every channel ends where its valid
payments say, a harness.replay of the events topic agrees, and every refused message
is in the rejected topic with its reason.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from domain.protocol import HashPointer
from infrastructure.node import CheckpointRequest, DisputeRequest, Sender, SettlementRequest
from infrastructure.node.messages import channel_key, partition_of
from infrastructure.tools.workload import make_channels
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _check_exactly_once(service, plans) -> None:
    for p in plans:
        channel, events = harness.replay(service, p.channel_id)
        accepted = [e.sequence for e in events if type(e).__name__ == "PaymentAccepted"]
        assert accepted == list(range(1, len(p.txs) + 1)), f"{p.channel_id}: payments applied not exactly once"
        assert channel.sequence == len(p.txs)
        assert (channel.balance_of(p.a.address), channel.balance_of(p.b.address)) == p.expected_balances()
        live = service.get_channel(p.channel_id)
        assert live.balances == p.expected_balances()
        assert live.sequence == channel.sequence
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))


def _check_balances_read_model(service, plans, path) -> None:
    """The balances read model, rebuilt from the events topic's partitions, agrees too."""
    from projections.balances import Balances, channel_balances
    from projections.runner import rebuild
    from projections.source import source_for
    from projections.sqlite import SQLiteStore

    store = SQLiteStore(path)
    rebuild(source_for(service), store, Balances())
    rows = {row.channel_id: row for row in channel_balances(store)}
    for p in plans:
        row = rows[str(p.channel_id)]
        assert (row.balances, row.sequence) == (p.expected_balances(), len(p.txs))
    store.close()


def test_shuffled_and_repeated_payments_end_in_the_expected_balances(node_config, tmp_path):
    config = node_config(window=64)
    plans = make_channels("stream", 40)
    txs = harness.make_payments(plans, 3000, "stream")
    stream = harness.disorder(txs, "stream", spread=120, duplicates=0.05)
    assert len(stream) > len(txs)
    with harness.running_node(config) as node:
        sender = Sender(config)
        harness.open_channels(sender, plans)
        service = harness.reader(config)
        harness.wait_opened(service, plans)
        started = time.monotonic()
        for tx in stream:
            sender.payment(tx)
        sender.flush()
        want = {p.channel_id: len(p.txs) for p in plans}
        harness.wait_for(lambda: harness.sequences(service, plans) == want, 120, "every payment applied")
        elapsed = time.monotonic() - started
        print(f"\n{len(stream)} messages ({len(txs)} payments) through the node in {elapsed:.1f}s: "
              f"{len(stream) / elapsed:,.0f} messages/s; node totals {dict(node.totals)}")
        sender.close()
    _check_exactly_once(service, plans)
    _check_balances_read_model(service, plans, tmp_path / "balances.sqlite")
    assert harness.read_rejected(config) == []
    service.close()


def test_invalid_messages_go_to_the_rejected_topic_with_their_reasons(node_config):
    config = node_config(window=8, max_wait=2)
    plans = make_channels("invalid", 4, deposits=(10**15, 0))
    p, q = plans[0], plans[1]
    with harness.running_node(config):
        sender = Sender(config)
        harness.open_channels(sender, plans)
        service = harness.reader(config)
        harness.wait_opened(service, plans)
        good = [p.pay(10**12) for _ in range(3)]
        for tx in good:
            sender.payment(tx)

        bad_sig = bytearray(p.sign(10**12, sequence=4, previous=good[-1].pointer, buyer_total=4 * 10**12)
                            .to_json())
        bad_sig = bytes(bad_sig).replace(b'"price":"1000000000000"', b'"price":"1000000000001"')
        if b'"price":"1000000000001"' not in bad_sig:  # prices may serialise as numbers
            bad_sig = bad_sig.replace(b'"price":1000000000000', b'"price":1000000000001')
        broken = p.sign(10**12, sequence=4, previous=HashPointer(transaction_id=uuid.uuid4(),
                                                                       transaction_hash=b"\x01" * 32),
                             buyer_total=4 * 10**12)
        overspend = q.sign(2 * 10**15)  # refused: the plan does not advance
        unknown = make_channels("never-opened", 1)[0].pay(10**12)
        far = p.sign(10**12, sequence=40, previous=good[-1].pointer, buyer_total=4 * 10**12)
        waits = q.sign(10**12, sequence=3, previous=good[-1].pointer, buyer_total=10**12)
        for tx in (broken, overspend, unknown, far, waits):
            sender.payment(tx)
        pp = partition_of(p.channel_id, 4)
        sender.raw(config.inbound_topic, pp, channel_key(p.channel_id), bad_sig)
        sender.raw(config.inbound_topic, pp, channel_key(p.channel_id), b"\xff\x00 not json")
        sender.raw(config.control_topic, pp, channel_key(p.channel_id), b'{"type": "launch", "channel": 1}')
        sender.control(p.sign_request(SettlementRequest(channel=unknown.channel)))
        sender.flush()

        wanted = Counter({"WrongSigner": 1, "BrokenHashPointer": 1, "Overspend": 1, "UnknownChannel": 2,
                          "OutOfWindow": 1, "WindowExpired": 1, "MalformedMessage": 2})
        rejected: list = []

        def all_rejected() -> bool:
            rejected[:] = harness.read_rejected(config)
            return Counter(r.reason for r in rejected) == wanted

        harness.wait_for(all_rejected, 60, f"rejections {wanted}")
        # and the node keeps going
        after = [p.pay(10**12) for _ in range(2)]
        for tx in after:
            sender.payment(tx)
        sender.flush()
        harness.wait_for(lambda: service.get_channel(p.channel_id).sequence == 5, 30, "payments after the bad ones")
        sender.close()
    by_reason = {r.reason: r for r in rejected}
    assert by_reason["MalformedMessage"].source_topic in (config.inbound_topic, config.control_topic)
    assert {r.raw for r in rejected} >= {b"\xff\x00 not json", bad_sig, far.to_json()}
    far_rej = by_reason["OutOfWindow"]
    assert far_rej.source_topic == config.inbound_topic and far_rej.source_partition == pp
    assert far_rej.message and far_rej.source_offset >= 0
    assert len({(r.source_topic, r.source_partition, r.source_offset) for r in rejected}) == len(rejected)
    assert service.get_channel(p.channel_id).balances == p.expected_balances()
    service.close()


def test_control_requests_and_the_checkpoint_timeout(node_config):
    config = node_config(timeout_check_interval=0.5)
    plans = make_channels("control", 3)
    settle, dispute, idle = plans
    harness.RecordingExecutor.seen = []
    with harness.running_node(config, executor_factory=harness.RecordingExecutor):
        sender = Sender(config)
        harness.open_channels(sender, [settle, dispute], checkpoint_interval=2)
        harness.open_channels(sender, [idle], checkpoint_timeout=1, checkpoint_interval=1000)
        service = harness.reader(config)
        harness.wait_opened(service, plans)
        for plan in plans:
            for _ in range(3):
                sender.payment(plan.pay(10**12))
        sender.flush()
        harness.wait_for(lambda: set(harness.sequences(service, plans).values()) == {3}, 30, "payments applied")
        sender.control(settle.sign_request(SettlementRequest(channel=settle.channel_id), by=1)).get(15)
        sender.control(dispute.sign_request(DisputeRequest(channel=dispute.channel_id))).get(15)
        sender.control(dispute.sign_request(CheckpointRequest(channel=dispute.channel_id))).get(15)

        def names(plan):
            return [type(e).__name__ for e in service.channel_events(plan.channel_id)]

        harness.wait_for(lambda: "SettlementRequested" in names(settle), 30, "SettlementRequested")
        harness.wait_for(lambda: "DisputeRequested" in names(dispute), 30, "DisputeRequested")
        harness.wait_for(lambda: "CheckpointRequested" in names(idle), 30, "CheckpointRequested on the timeout")
        sender.close()
    events = service.channel_events(idle.channel_id)
    timeout_cp = [e for e in events if type(e).__name__ == "CheckpointRequested"]
    assert timeout_cp[0].reason == "timeout" and timeout_cp[0].sequence == 3
    interval_cp = [e for e in service.channel_events(settle.channel_id) if type(e).__name__ == "CheckpointRequested"]
    assert [(e.reason, e.sequence) for e in interval_cp] == [("interval", 2)]
    settled = [e for e in service.channel_events(settle.channel_id) if type(e).__name__ == "SettlementRequested"]
    assert settled[0].requested_by == settle.b.address and settled[0].sequence == 3
    assert service.get_channel(settle.channel_id).status == "settling"
    disputed = [e for e in service.channel_events(dispute.channel_id) if type(e).__name__ == "DisputeRequested"]
    assert (disputed[0].from_sequence, disputed[0].to_sequence) == (1, 3)
    cps = [e for e in service.channel_events(dispute.channel_id) if type(e).__name__ == "CheckpointRequested"]
    assert [(e.reason, e.sequence) for e in cps] == [("interval", 2), ("request", 3)]
    # the settlement executor's hook got every request, from the partition that owns the channel
    handed = {(name, cid) for _, name, cid, _ in harness.RecordingExecutor.seen}
    assert ("SettlementRequested", settle.channel_id) in handed
    assert ("DisputeRequested", dispute.channel_id) in handed
    assert ("CheckpointRequested", idle.channel_id) in handed
    assert all(p == partition_of(cid, config.partitions) for p, _, cid, _ in harness.RecordingExecutor.seen)
    assert harness.RecordingExecutor.ticks
    service.close()


@pytest.mark.slow
def test_two_nodes_share_partitions_and_a_killed_node_loses_nothing(node_config, tmp_path):
    config = node_config()
    plans = make_channels("kill", 24)
    txs = harness.make_payments(plans, 4000, "kill")
    stream = harness.disorder(txs, "kill", spread=60, duplicates=0.03)
    first = harness.node_process(config, "node-a", tmp_path / "a.log")
    second = None
    try:
        sender = Sender(config)
        harness.open_channels(sender, plans)
        service = harness.reader(config)
        harness.wait_for(lambda: min(harness.sequences(service, plans).values()) >= 0, 60, "channels opened by node A")
        second = harness.node_process(config, "node-b", tmp_path / "b.log")
        harness.wait_for(lambda: "partitions assigned: [2, 3]" in (tmp_path / "b.log").read_text()
                 or "partitions assigned: [0, 1]" in (tmp_path / "b.log").read_text(), 60,
                 "node B takes half the partitions")
        cut = len(stream) // 3
        garbage = 0

        def send(part):
            nonlocal garbage
            for i, tx in enumerate(part):
                sender.payment(tx)
                if i % 150 == 0:  # a malformed message now and then: rejected exactly once, kill or not
                    sender.raw(config.inbound_topic, partition_of(tx.channel, 4), channel_key(tx.channel), b"{oops")
                    garbage += 1
            sender.flush()

        send(stream[:cut])
        harness.wait_for(lambda: sum(max(s, 0) for s in harness.sequences(service, plans).values()) > cut // 4, 60,
                 "both nodes applying")
        harness.stop_process(first, signal_kill())
        send(stream[cut:])
        want = {p.channel_id: len(p.txs) for p in plans}
        harness.wait_for(lambda: harness.sequences(service, plans) == want, 180, "every payment applied after the kill")
        b_log = (tmp_path / "b.log").read_text()
        assert "partitions assigned: [0, 1, 2, 3]" in b_log, b_log[-3000:]
        assert harness.stop_process(second) == 0, "node B did not stop cleanly on SIGTERM"
        sender.close()
    finally:
        for proc in (first, second):
            if proc is not None:
                harness.stop_process(proc, signal_kill())
    _check_exactly_once(service, plans)
    rejected = harness.read_rejected(config)
    assert [r.reason for r in rejected] == ["MalformedMessage"] * garbage
    assert len({(r.source_partition, r.source_offset) for r in rejected}) == garbage
    service.close()


def signal_kill() -> int:
    import signal

    return signal.SIGKILL
