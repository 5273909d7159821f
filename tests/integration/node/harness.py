"""Helpers for the node's tests: fresh topics per test, nodes in threads or subprocesses,
payments over the workload's channels, and readers of the events and rejected topics."""

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
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from domain.application import ChannelService
from domain.channel import Channel
from domain.protocol import SignedInvoice
from infrastructure import bootstrap
from infrastructure.node import Node, Rejection, Sender
from infrastructure.settings import Settings
from infrastructure.tools.workload import ChannelPlan

REPO = Path(__file__).resolve().parents[3]


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
            hops_topic=f"{t}.hops",
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


def make_payments(plans: list[ChannelPlan], count: int, seed: str, unit: int = 10**9) -> list[SignedInvoice]:
    """``count`` valid payments of 1 to 1000 ``unit`` interleaved over the channels, in each channel's
    order; B pays back only out of what it has received beyond the largest price, so neither overspends
    (A's deposit covers ``count`` payments)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        plan = rng.choice(plans)
        payer = 1 if plan.sent[0] > plan.sent[1] + 1000 * unit and rng.random() < 0.3 else 0
        out.append(plan.pay(rng.randint(1, 1000) * unit, payer))
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


def wait_opened(service: ChannelService, plans: list[ChannelPlan], timeout: float = 30) -> None:
    """Wait until the node has opened every plan's channel."""
    wait_for(lambda: min(sequences(service, plans).values()) >= 0, timeout, "channels opened")


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
