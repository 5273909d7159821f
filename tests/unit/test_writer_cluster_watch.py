"""A librdkafka writer that lived through the loss of the cluster is replaced before its next
transaction, not tried (its send_offsets_to_transaction would hang: librdkafka#5511); one that only
lost a connection is kept. The whole behaviour against a real broker outage is
tests/integration/chaos/test_broker_restart.py."""

import confluent_kafka as ck
import pytest

from infrastructure.kafka import writer as writer_module
from infrastructure.kafka.writer import ClusterWatch


@pytest.fixture(autouse=True)
def own_stall_count(monkeypatch):
    """The stall count is process-wide: these tests count on their own, so no writer opened by a
    later test in the same process sees their stalls."""
    monkeypatch.setattr(writer_module, "_offsets_stalls", writer_module._Stalls())


def test_a_producer_that_saw_every_broker_go_down_is_stale():
    watch = ClusterWatch()
    assert watch.stale() is None
    watch.on_client_error(ck.KafkaError(ck.KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert watch.stale() == "its producer lost every broker (1/1 brokers are down)"


def test_losing_one_connection_is_not_losing_the_cluster():
    # brokers close idle connections every few minutes: a producer reconnects on its own
    watch = ClusterWatch()
    watch.on_client_error(ck.KafkaError(ck.KafkaError._TRANSPORT, "Disconnected"))
    watch.on_client_error(ck.KafkaError(ck.KafkaError._TIMED_OUT, "timed out"))
    assert watch.stale() is None


def test_a_stall_elsewhere_in_the_process_makes_older_writers_stale_not_newer_ones():
    before = ClusterWatch()
    writer_module._offsets_stalls.add()  # a writer was abandoned inside send_offsets_to_transaction
    after = ClusterWatch()
    assert before.stale() == "another writer of this process stalled sending its group offsets since it opened"
    assert after.stale() is None


def test_the_first_reason_is_kept():
    watch = ClusterWatch()
    watch.on_client_error(ck.KafkaError(ck.KafkaError._ALL_BROKERS_DOWN, "first"))
    watch.on_client_error(ck.KafkaError(ck.KafkaError._ALL_BROKERS_DOWN, "second"))
    writer_module._offsets_stalls.add()
    assert watch.stale() == "its producer lost every broker (first)"
