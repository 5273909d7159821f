"""The writer's client library (KAFKA_CLIENT): confluent-kafka (librdkafka,
the default when installed) and kafka-python give the same semantics, and
either can take over from the other (same transactional id, so a rolling
switch of the setting fences the old writer)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.utils import Environment

from infrastructure.kafka import WriterFencedError
from infrastructure.kafka.codec import OutRecord
from infrastructure.kafka.settings import CLIENT_CONFLUENT, CLIENT_KAFKA_PYTHON, KafkaSettings, default_client
from tests.integration.kafka.harness import kafka_env, new_topic, open_recorder

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

CLIENTS = (CLIENT_CONFLUENT, CLIENT_KAFKA_PYTHON)


def _env(bootstrap: str, topic: str, client: str) -> dict[str, str]:
    return kafka_env(bootstrap, 2, topic, KAFKA_CLIENT=client)


def test_setting() -> None:
    assert default_client() == CLIENT_CONFLUENT  # confluent-kafka is a dependency
    assert KafkaSettings.from_env(Environment(env={})).client == CLIENT_CONFLUENT
    for value, client in (("kafka-python", CLIENT_KAFKA_PYTHON), ("Confluent", CLIENT_CONFLUENT)):
        assert KafkaSettings.from_env(Environment(env={"KAFKA_CLIENT": value})).client == client
    with pytest.raises(OSError, match="KAFKA_CLIENT"):
        KafkaSettings.from_env(Environment(env={"KAFKA_CLIENT": "java"}))


@pytest.mark.parametrize(("first", "second"), [(a, b) for a in CLIENTS for b in CLIENTS])
def test_writers_fence_each_other_across_clients(kafka_bootstrap: str, first: str, second: str) -> None:
    topic = new_topic()
    f1, r1 = open_recorder(_env(kafka_bootstrap, topic, first))
    f2, r2 = open_recorder(_env(kafka_bootstrap, topic, second))
    try:
        agg = uuid4()
        ids = r1.insert_events([StoredEvent(agg, v, "E", str(v).encode()) for v in (1, 2)])
        p = r1.partition_of(agg)
        notes = r1.select_partition_notifications(p, None, 10)
        assert [n.id for n in notes] == ids  # offsets from the delivery reports
        r2.insert_events([StoredEvent(agg, 3, "E", b"3")])  # r2 takes over, fencing r1
        with pytest.raises(WriterFencedError, match="fenced"):
            r1.insert_events([StoredEvent(agg, 4, "E", b"4")])
        r1.insert_events([StoredEvent(agg, 4, "E", b"4")])  # re-acquires, re-reads, fences r2
        with pytest.raises(WriterFencedError):
            r2.insert_events([StoredEvent(agg, 5, "E", b"5")])
        assert [e.state for e in r2.select_events(agg)] == [b"1", b"2", b"3", b"4"]
    finally:
        f1.close()
        f2.close()


def test_confluent_failed_transaction_is_aborted_and_writer_recovers(kafka_bootstrap: str) -> None:
    """A record the broker refuses (a partition the topic does not have) fails
    the transaction: nothing of the batch is committed, and the next write
    works."""
    topic = new_topic()
    f, r = open_recorder(_env(kafka_bootstrap, topic, CLIENT_CONFLUENT))
    try:
        agg = uuid4()
        r.insert_events([StoredEvent(agg, 1, "E", b"1")])
        log = r.log
        good = OutRecord(topic, r.partition_of(agg), str(agg).encode(), b"x", [])
        bad = OutRecord(log.settings.tracking_topic, 7, b"k", b"1", [])  # the tracking topic has 1 partition
        with pytest.raises(OperationalError, match="nothing committed"):
            log.write([good, bad])
        r.insert_events([StoredEvent(agg, 2, "E", b"2")])
        _, reader = open_recorder(_env(kafka_bootstrap, topic, CLIENT_CONFLUENT))
        assert [e.state for e in reader.select_events(agg)] == [b"1", b"2"]
        assert len(reader.select_partition_notifications(r.partition_of(agg), None, 10)) == 2
    finally:
        f.close()
