"""Helpers for the node's tests: fresh topics per test, nodes in threads or subprocesses,
a signed workload, and readers of the events and rejected topics."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from domain.application import ChannelService
from domain.channel import Channel
from domain.protocol import GENESIS, Invoice, SignedInvoice, SigningDomain, sign_invoice
from infrastructure import bootstrap
from infrastructure.node import Node, OpenChannelRequest, Rejection, Sender
from infrastructure.settings import Settings
from infrastructure.tools.workload import Party, make_parties

REPO = Path(__file__).resolve().parents[3]
DOMAIN = SigningDomain(chain_id=131277322940537, verifying_contract="0xF2E246BB76DF876Cef8b38ae84130F4F55De395b")


def node_configs(kafka_bootstrap: str) -> Callable[..., Settings]:
    """A maker of node configurations on fresh topics (keyword arguments override fields)."""

    def make(**overrides: Any) -> Settings:
        t = f"test.{uuid.uuid4().hex[:10]}"
        c = Settings(
            kafka_bootstrap=kafka_bootstrap,
            events_topic=f"{t}.events",
            inbound_topic=f"{t}.inbound",
            control_topic=f"{t}.control",
            rejected_topic=f"{t}.rejected",
            node_group=f"{t}.nodes",
            partitions=4,
            session_timeout_ms=6000,
            tick_interval=0.5,
        )
        for k, v in overrides.items():
            setattr(c, k, v)
        return c

    return make


@contextlib.contextmanager
def running_node(config: Settings, **kwargs: Any) -> Iterator[Node]:
    node = bootstrap.node(config, **kwargs)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            node.run(stop)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run, name="parsec-node", daemon=True)
    thread.start()
    try:
        assert node.ready.wait(30), "the node never got an assignment"
        yield node
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors


def node_process(config: Settings, node_id: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PARSEC_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        "PARSEC_EVENTS_TOPIC": config.events_topic,
        "PARSEC_INBOUND_TOPIC": config.inbound_topic,
        "PARSEC_CONTROL_TOPIC": config.control_topic,
        "PARSEC_REJECTED_TOPIC": config.rejected_topic,
        "PARSEC_NODE_GROUP": config.node_group,
        "PARSEC_PARTITIONS": str(config.partitions),
        "PARSEC_SESSION_TIMEOUT_MS": str(config.session_timeout_ms),
        "PARSEC_NODE_ID": node_id,
        "PARSEC_SETTLERS": ",".join(config.trusted_settlers),
        "PARSEC_MIN_CHALLENGE_PERIOD": str(config.min_challenge_period),
        "COLUMNS": "200",
    }
    out = open(log_path, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "infrastructure.cli", "node"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
    )


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


class RecordingExecutor:
    """Stands in for the settlement executor: what the node hands it, per partition."""

    seen: list[tuple[int, str, Any, int | None]] = []
    ticks: Counter = Counter()

    def __init__(self, partition: int, service: Any) -> None:
        self.partition = partition

    def handle(self, events: Any, *, partition: int, position: int | None) -> None:
        assert partition == self.partition
        RecordingExecutor.seen += [(partition, type(e).__name__, e.originator_id, position) for e in events]

    def tick(self, now: int) -> None:
        RecordingExecutor.ticks[self.partition] += 1


# --- workload ----------------------------------------------------------------------


@dataclass
class ChannelPlan:
    channel_id: uuid.UUID
    a: Party
    b: Party
    deposits: tuple[int, int]
    txs: list[SignedInvoice] = field(default_factory=list)
    sent: list[int] = field(default_factory=lambda: [0, 0])

    def expected_balances(self) -> tuple[int, int]:
        return (
            self.deposits[0] - self.sent[0] + self.sent[1],
            self.deposits[1] - self.sent[1] + self.sent[0],
        )

    def open_request(self, **params: Any) -> OpenChannelRequest:
        """The open, signed by A (the opener)."""
        return OpenChannelRequest(
            channel=self.channel_id,
            public_key_a="0x" + self.a.public_key.hex(),
            public_key_b="0x" + self.b.public_key.hex(),
            deposit_a=self.deposits[0],
            deposit_b=self.deposits[1],
            chain_id=DOMAIN.chain_id,
            contract=DOMAIN.verifying_contract,
            **params,
        ).signed(self.a.key, DOMAIN)

    def signed(self, request: Any, by: Party | None = None, **kwargs: Any) -> Any:
        """A control request about this channel, signed by ``by`` (default A)."""
        return request.signed((by or self.a).key, DOMAIN, **kwargs)

    def sign_next(self, price: int, from_b: bool = False, invoice_type: str = "", **overrides: Any) -> SignedInvoice:
        i = 1 if from_b else 0
        payer, payee = (self.b, self.a) if from_b else (self.a, self.b)
        head = self.txs[-1].pointer if self.txs else GENESIS
        fields: dict[str, Any] = dict(
            key=payer.key,
            channel=self.channel_id,
            invoice_id=uuid.uuid4(),
            sequence=len(self.txs) + 1,
            previous=head,
            buyer_total=self.sent[i] + price,
            domain=DOMAIN,
            verify=False,
        )
        fields.update(overrides)
        invoice = Invoice(invoice_address=payee.address, price=price, currency="ETH", invoice_type=invoice_type)
        tx = sign_invoice(invoice, **fields)
        if not overrides:
            self.txs.append(tx)
            self.sent[i] += price
        return tx


def make_channels(seed: str, count: int, deposits: tuple[int, int] = (10**18, 10**16)) -> list[ChannelPlan]:
    rng = random.Random(seed)
    plans = []
    for i in range(count):
        a, b = make_parties(f"{seed}/{i}", 2)
        plans.append(ChannelPlan(uuid.UUID(int=rng.getrandbits(128), version=4), a, b, deposits))
    return plans


def make_payments(plans: list[ChannelPlan], count: int, seed: str) -> list[SignedInvoice]:
    """``count`` valid payments interleaved over the channels, in each channel's order."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        plan = rng.choice(plans)
        from_b = plan.sent[0] > plan.sent[1] + 10**13 and rng.random() < 0.3
        out.append(plan.sign_next(rng.randint(1, 1000) * 10**9, from_b=from_b))
    return out


def disorder(txs: list[Any], seed: str, spread: int, duplicates: float) -> list[Any]:
    """Shuffle locally (each message moves by up to ``spread`` places) and repeat some nearby."""
    rng = random.Random(seed)
    keyed = [(i + rng.uniform(0, spread), tx) for i, tx in enumerate(txs)]
    keyed += [(i + rng.uniform(-spread, spread), tx) for i, tx in enumerate(txs) if rng.random() < duplicates]
    keyed.sort(key=lambda kv: kv[0])
    return [tx for _, tx in keyed]


def open_channels(sender: Sender, plans: list[ChannelPlan], **params: Any) -> None:
    for f in [sender.control(p.open_request(**params)) for p in plans]:
        f.get(timeout=15)


# --- reading back ------------------------------------------------------------------


def reader(config: Settings) -> ChannelService:
    return bootstrap.channel_reader(config)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def sequences(service: ChannelService, plans: list[ChannelPlan]) -> dict[uuid.UUID, int]:
    out = {}
    for p in plans:
        try:
            out[p.channel_id] = service.get_channel(p.channel_id).sequence
        except Exception:
            out[p.channel_id] = -1
    return out


def replay(service: ChannelService, channel_id: uuid.UUID) -> tuple[Channel, list[Any]]:
    """Fold every stored event of the channel from version 1 (no snapshot, no cache)."""
    events = list(service.events.get(channel_id))
    agg = None
    for e in events:
        agg = e.mutate(agg)
    assert agg is not None
    return agg, events


def read_rejected(config: Settings, settle: float = 0.0) -> list[Rejection]:
    time.sleep(settle)
    c = KafkaConsumer(bootstrap_servers=config.kafka_bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      isolation_level="read_committed")
    try:
        tps = [TopicPartition(config.rejected_topic, p) for p in range(config.partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[Rejection] = []
        deadline = time.monotonic() + 20
        while any(c.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200).values():
                out += [Rejection.of(r.key, r.value, r.headers) for r in records]
        return out
    finally:
        c.close(autocommit=False)
