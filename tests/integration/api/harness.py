"""A deployment for the API's tests: fresh topics on the real broker, channels written to the Kafka
event store, read models filled by the projection runner from that log, and the API on it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from domain.application import ChannelService
from infrastructure import bootstrap
from infrastructure.settings import Settings
from infrastructure.tools.workload import ChannelPlan, Party
from projections import registry
from tests.builders import ALICE, BOB, DOMAIN, PARAMS, T0, Ledger

TOKEN = "test-token-" + "7" * 20


@dataclass
class Deployment:
    settings: Settings
    writer: ChannelService
    schema: str = "public"
    ledgers: dict[uuid.UUID, Ledger] = field(default_factory=dict)
    plans: dict[uuid.UUID, ChannelPlan] = field(default_factory=dict)

    def open(self, deposit_a: int = 10**18, deposit_b: int = 0) -> Ledger:
        cid = uuid.uuid4()
        plan = ChannelPlan(cid, Party("alice", ALICE), Party("bob", BOB), (deposit_a, deposit_b), domain=DOMAIN)
        self.writer.open_channel(**plan.open_kwargs(PARAMS, at=T0))
        self.plans[cid] = plan
        self.ledgers[cid] = ledger = Ledger(cid)
        return ledger

    def pay(self, ledger: Ledger, price: int, payer: Any = ALICE) -> Any:
        tx = ledger.pay(payer, price)
        self.writer.accept_payment(tx, at=T0 + ledger.sequence)
        return tx

    def project(self) -> int:
        """Bring the read models up to the log (what `parsec projections run` does)."""
        store = bootstrap.read_model_store(self.settings, schema=self.schema)
        try:
            models = [registry.get(n) for n in registry.BUILT_IN]
            source = bootstrap.event_source(self.settings)
            try:
                return bootstrap.projection_runner(source, store, models).catch_up()
            finally:
                source.close()
        finally:
            store.close()

    def app(self, **kwargs: Any) -> Any:
        return bootstrap.api_app(self.settings, schema=self.schema, **kwargs)

    def records(self, topic: str, settle: float = 1.0) -> list[Any]:
        """Every record of ``topic`` now (waiting ``settle`` seconds for late ones)."""
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap.split(","), group_id=None,
                                 enable_auto_commit=False, consumer_timeout_ms=int(settle * 1000))
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            if not tps:  # never created: nothing was produced to it
                return []
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            return sorted(consumer, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    def close(self) -> None:
        self.writer.close()


def deployment(kafka_bootstrap: str, tmp_path: Any, **overrides: Any) -> Iterator[Deployment]:
    t = f"test.api.{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = dict(
        kafka_bootstrap=kafka_bootstrap, event_store="kafka", data_dir=tmp_path,
        events_topic=f"{t}.events", inbound_topic=f"{t}.inbound", control_topic=f"{t}.control",
        rejected_topic=f"{t}.rejected", settlement_topic=f"{t}.settlement", partitions=4,
        api_tokens=SecretStr(TOKEN), api_rate=0.0,
        # the read models in this test's own SQLite file unless a test asks for PostgreSQL (with a schema
        # of its own): a DSN inherited from the environment would mean the shared "public" schema
        postgres_dsn=None,
    )
    schema = overrides.pop("schema", "public")
    values.update(overrides)
    settings = Settings(**values)
    d = Deployment(settings, bootstrap.channel_service(settings), schema=schema)
    try:
        yield d
    finally:
        d.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Served:
    """The app on a real uvicorn server on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, "the API server to start")
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def reject(dep: Deployment, channel: str, reason: str) -> None:
    """A node's refusal of a payment on ``channel`` with ``reason``, written to the rejected topic."""
    from kafka import KafkaProducer

    from infrastructure.node.messages import Rejection

    rej = Rejection(reason, f"refused: {reason}", dep.settings.inbound_topic, 0, 7, channel.encode(),
                    b'{"price": "x"}', 1_700_000_000)
    rec = rej.record(dep.settings.rejected_topic)
    bootstrap.sender(dep.settings).close()  # the node's topics, the rejected one among them
    producer = KafkaProducer(bootstrap_servers=dep.settings.kafka_bootstrap.split(","))
    producer.send(rec.topic, key=rec.key, value=rec.value, headers=rec.headers, partition=0).get(15)
    producer.close()
