"""On Kafka the read models' source is the events topic and the settler's own topic (issue 11)."""

from __future__ import annotations

import uuid

import pytest

from domain.settlement import Intent, IntentKind, intent_id
from infrastructure.bootstrap import event_source
from infrastructure.settings import Settings
from infrastructure.settlement.aggregates import SettlementIntent
from infrastructure.settlement.settler import SettlerStore, settler_store_env
from projections.runner import ProjectionRunner
from projections.settlements import Settlements, settlements
from projections.source import SETTLER_PARTITION_BASE
from projections.sqlite import SQLiteStore

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_the_settlements_read_model_reads_the_settlers_transactions_from_its_topic(kafka_bootstrap, tmp_path,
                                                                                  monkeypatch):
    t = f"test.{uuid.uuid4().hex[:10]}"
    topic = f"{t}.settlement"
    config = Settings(kafka_bootstrap=kafka_bootstrap, events_topic=f"{t}.events")
    store = SettlerStore(env=settler_store_env(config, topic))  # what a settler writes
    cid = uuid.uuid4()
    intent = SettlementIntent.raised(Intent(intent_id(IntentKind.CHECKPOINT, cid, 20), IntentKind.CHECKPOINT, cid, 20))
    intent.submitted("0x" + "ab" * 32, "0x" + "11" * 20, 7, "0x00")
    intent.confirmed("0x" + "ab" * 32, 123, 45_304, None)
    store.recorder.acquire()
    store.save(intent)
    store.close()

    settings = Settings(event_store="kafka", kafka_bootstrap=kafka_bootstrap, events_topic=f"{t}.events",
                        settlement_topic=topic)
    source = event_source(settings)
    assert SETTLER_PARTITION_BASE in source.partitions()
    rows = SQLiteStore(tmp_path / "rm.sqlite")
    ProjectionRunner(source, rows, [Settlements()]).catch_up()
    (row,) = settlements(rows)
    assert (row.channel_id, row.kind, row.sequence, row.state) == (str(cid), "checkpoint", 20, "confirmed")
    assert (row.tx_hash, row.block, row.gas) == ("0x" + "ab" * 32, 123, 45_304)
    rows.close()
    source.close()
