"""Subprocess workers for the multi-process Kafka tests.

Run as ``python -m tests.integration.kafka._worker MODE ...`` from the repo root.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from uuid import UUID

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, OperationalError, StoredEvent
from eventsourcing.utils import Environment

from infrastructure.kafka import KafkaApplicationRecorder, WriterFencedError


def recorder(bootstrap: str, topic: str, partitions: int) -> KafkaApplicationRecorder:
    env = {
        "PERSISTENCE_MODULE": "infrastructure.kafka",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_EVENTS_TOPIC": topic,
        "KAFKA_PARTITIONS": str(partitions),
        "KAFKA_TIMEOUT": "15",
    }
    r = InfrastructureFactory.construct(Environment(env=env)).application_recorder()
    assert isinstance(r, KafkaApplicationRecorder)
    return r


def contend(
    bootstrap: str, topic: str, partitions: str, agg: str, name: str, n: str, start_file: str
) -> None:
    r = recorder(bootstrap, topic, int(partitions))
    aggregate_id = UUID(agg)
    r.acquire()
    rnd = random.Random(name)
    while not os.path.exists(start_file):
        time.sleep(0.005)
    written: list[int] = []
    conflicts = fenced = unknown = attempts = 0
    deadline = time.monotonic() + 240
    while len(written) < int(n) and time.monotonic() < deadline:
        attempts += 1
        last = r.select_events(aggregate_id, desc=True, limit=1)
        version = last[0].originator_version + 1 if last else 1
        state = json.dumps({"writer": name, "seq": len(written)}).encode()
        try:
            r.insert_events([StoredEvent(aggregate_id, version, "Contended", state)])
        except WriterFencedError:
            fenced += 1
        except IntegrityError:
            conflicts += 1
        except OperationalError:
            # Outcome unknown (e.g. EndTxn answered UnknownError while another writer
            # fenced us): read the log, as a real client must, to learn whether it landed.
            unknown += 1
            ours = [e for e in r.select_events(aggregate_id, gt=version - 1, lte=version) if e.state == state]
            if ours:
                written.append(version)
                continue
        else:
            written.append(version)
            continue
        time.sleep(rnd.random() * 0.004)
    print(
        json.dumps(
            {"name": name, "written": written, "conflicts": conflicts, "fenced": fenced, "unknown": unknown,
             "attempts": attempts}
        ),
        flush=True,
    )


def hang(bootstrap: str, topic: str, partitions: str, agg: str, other: str) -> None:
    """Commit versions 1-3 of ``agg``, then open a transaction with versions
    4-6 of ``agg`` and version 1 of ``other``, flush them to the log, say
    READY and wait to be killed (never committing)."""
    r = recorder(bootstrap, topic, int(partitions))
    aggregate_id, other_id = UUID(agg), UUID(other)
    r.insert_events([StoredEvent(aggregate_id, v, "Committed", b"{}") for v in (1, 2, 3)])
    writer = r.log.writer
    assert writer is not None
    producer = writer.client  # the client library's own producer
    from infrastructure.kafka.codec import encode_event, partition_for_key

    producer.begin_transaction()
    for s in [StoredEvent(aggregate_id, v, "Uncommitted", b"{}") for v in (4, 5, 6)] + [
        StoredEvent(other_id, 1, "Uncommitted", b"{}")
    ]:
        key, value, headers = encode_event(s)
        partition = partition_for_key(key, r.num_partitions)
        if hasattr(producer, "produce"):  # confluent-kafka (KAFKA_CLIENT=confluent)
            producer.produce(r.topic, value, key, partition=partition, headers=headers)
        else:  # kafka-python
            producer.send(r.topic, value=value, key=key, headers=headers, partition=partition)
    if hasattr(producer, "produce"):
        producer.flush(15)
    else:
        producer.flush(timeout=15)
    print("READY", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"contend": contend, "hang": hang}[mode](*args)
