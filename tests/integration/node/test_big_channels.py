"""No record grows with a channel's history, and nothing Kafka refuses stops a partition (issue 10, defect 9).

Given a channel with thousands of unconfirmed payments, when its dispute is requested, then the
request is one small event and the other channels of its partition keep moving. Given a command
whose outcome Kafka will not take (a record over the limit), then that command alone is set aside
with its reason, and everything else in its batch and after it is applied.
"""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, TopicPartition

from infrastructure.kafka.codec import encode_event, record_size
from infrastructure.node import CheckpointRequest, DisputeRequest, Sender
from infrastructure.node.messages import partition_of
from infrastructure.tools.workload import DEV_DOMAIN, make_channels
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _same_partition(seed: str, count: int, partitions: int) -> list:
    plans = make_channels(seed, 80)
    wanted = partition_of(plans[0].channel_id, partitions)
    return [p for p in plans if partition_of(p.channel_id, partitions) == wanted][:count]


def _largest_record(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed")
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        largest = 0
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                largest = max([largest, *(record_size(r.key, r.value, r.headers) for r in records)])
        return largest
    finally:
        consumer.close(autocommit=False)


@pytest.mark.slow
def test_defect9_a_dispute_of_5000_unconfirmed_payments_is_small_and_its_partition_keeps_moving(node_config):
    config = node_config(max_poll_records=500)
    big, small = _same_partition("defect9-dispute", 2, config.partitions)
    with harness.running_node(config):
        sender = Sender(config)
        harness.open_channels(sender, [big, small], checkpoint_interval=10**6)  # nothing is ever checkpointed
        service = harness.reader(config)
        harness.wait_opened(service, [big, small])
        for _ in range(5000):
            sender.payment(big.pay(10**9))
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [big])[big.channel_id] == 5000, 180, "5,000 payments applied")
        sender.control(big.sign_request(DisputeRequest(channel=big.channel_id))).get(15)
        for _ in range(30):  # the other channel of the partition, during and after the dispute
            sender.payment(small.pay(10**9))
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [small])[small.channel_id] == 30, 60, "the other channel moving")
        harness.wait_for(lambda: any(type(e).__name__ == "DisputeRequested" for e in service.channel_events(big.channel_id)),
                 30, "the dispute recorded")
        sender.control(big.sign_request(CheckpointRequest(channel=big.channel_id))).get(15)  # and the big channel goes on too
        for _ in range(5):
            sender.payment(big.pay(10**9))
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [big])[big.channel_id] == 5005, 60, "the big channel still moving")
        sender.close()
    disputed = [e for e in service.channel_events(big.channel_id) if type(e).__name__ == "DisputeRequested"]
    assert (disputed[0].from_sequence, disputed[0].to_sequence) == (1, 5000)
    # every record written for these channels is small, whatever their history (the limit is ~1 MB)
    stored = service.mapper.to_stored_event(disputed[0])
    assert record_size(*encode_event(stored)) < 2_000
    assert _largest_record(config.kafka_bootstrap, config.events_topic, config.partitions) < 10_000
    snapshots = f"{config.events_topic}.snapshots"
    assert _largest_record(config.kafka_bootstrap, snapshots, config.partitions) < 200_000
    assert harness.read_rejected(config) == []
    service.close()


def test_defect9_a_command_whose_record_kafka_refuses_is_set_aside_and_the_partition_goes_on(
    node_config, monkeypatch
):
    config = node_config(max_poll_records=50)
    victim, other = _same_partition("defect9-set-aside", 2, config.partitions)
    long_type = "x" * 256
    # Sized from the records themselves: a checkpoint carrying two payments with long invoice
    # types is over the limit; every other record of the test is under it.
    payments = [victim.pay(10**9, invoice_type=long_type), victim.pay(10**9, 1, invoice_type=long_type)]
    limit = _limit_between(payments)
    monkeypatch.setenv("KAFKA_MAX_RECORD_BYTES", str(limit))
    with harness.running_node(config):
        sender = Sender(config)
        harness.open_channels(sender, [victim, other], checkpoint_interval=10**6)
        service = harness.reader(config)
        harness.wait_opened(service, [victim, other])
        for tx in payments:
            sender.payment(tx)
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [victim])[victim.channel_id] == 2, 30, "payments applied")
        # in one batch: payments of the other channel around the checkpoint that cannot be committed
        for _ in range(3):
            sender.payment(other.pay(10**9))
        sender.control(victim.sign_request(CheckpointRequest(channel=victim.channel_id))).get(15)
        for _ in range(3):
            sender.payment(other.pay(10**9))
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [other])[other.channel_id] == 6, 90, "the rest of the batch applied")
        sender.payment(victim.pay(10**9))  # the victim channel itself goes on
        sender.flush()
        harness.wait_for(lambda: harness.sequences(service, [victim])[victim.channel_id] == 3, 60, "the victim channel moving")
        sender.close()
    (set_aside,) = [r for r in harness.read_rejected(config) if r.reason == "SetAside"]
    assert set_aside.source_topic == config.control_topic
    assert "record limit" in set_aside.message
    names = [type(e).__name__ for e in service.channel_events(victim.channel_id)]
    assert "CheckpointRequested" not in names and names.count("PaymentAccepted") == 3
    service.close()


def _limit_between(payments: list) -> int:
    """A record limit above every record of the test but the checkpoint carrying these payments."""
    from domain.application import ChannelService
    from domain.channel import ChannelParameters

    service = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    cid = payments[0].channel
    a_key, b_key = _keys(payments)
    service.open_channel(channel_id=cid, public_key_a=a_key, public_key_b=b_key, currency="ETH",
                         deposit_a=10**18, deposit_b=10**16, parameters=ChannelParameters(3600, 10**6, 3600),
                         domain=DEV_DOMAIN, at=0)
    for tx in payments:
        service.accept_payment(tx, at=0)
    service.request_checkpoint(cid, at=0)
    sizes = {type(e).__name__: record_size(*encode_event(service.mapper.to_stored_event(e)))
             for e in service.channel_events(cid)}
    below = max(v for k, v in sizes.items() if k != "CheckpointRequested")  # the longest payments included
    assert below < sizes["CheckpointRequested"]
    return (below + sizes["CheckpointRequested"]) // 2


def _keys(payments: list) -> tuple[bytes, bytes]:
    return payments[0].buyer_public_key, payments[1].buyer_public_key
