"""``parsec simulate``: the paper's simulator.

Generated parties open channels, then buyers stream signed payments, at a set
rate or as fast as possible, either into the Kafka inbound topic (a node, or
``--spawn-node N`` node processes started here, verify and apply them) or
straight into the embedded store (``--embedded``). The stream can be made
hostile: a fraction is shuffled within a small distance (inside the node's
reorder window), a fraction is sent twice, a fraction is invalid (bad
signature, broken chain, overspend, unknown channel, malformed bytes).

What is reported is read back, not assumed: on Kafka the accepted payments and
checkpoint requests are the events the node committed to the events topic,
the rejections (with their reasons) are the records of the rejected topic.

Latency (Kafka): from the moment the simulator hands a payment to the producer
(``time.time()`` just before ``send``) to the moment a ``read_committed``
consumer in the simulator receives the ``PaymentAccepted`` event of that
payment (matched by invoice id), i.e. after the node's Kafka transaction
committed. Both clocks are this machine's. It includes the producer's linger,
the node's poll and batch, the transaction commit and the consumer's fetch
wait; a payment held back by the reorder window waits for its predecessors.
Embedded: from the payment's generation to the commit of its batch.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.protocol import HashPointer, SigningDomain
from infrastructure import bootstrap
from infrastructure.kafka_access import KafkaAccess
from infrastructure.node.messages import channel_key, encode_control, partition_of
from infrastructure.schemas.registry import header as schema_header
from infrastructure.settings import Settings
from infrastructure.tools.workload import DEV_DOMAIN, ChannelPlan, make_parties

log = logging.getLogger("parsec.simulate")

SIM_DOMAIN = DEV_DOMAIN
INVALID_KINDS = ("signature", "chain", "overspend", "unknown_channel", "malformed")
UNIT = 10**9  # prices in gwei steps


# --------------------------------------------------------------------------- workload
@dataclass
class Item:
    """One message of the stream."""

    channel: uuid.UUID
    raw: bytes
    kind: str  # "valid", "duplicate", or one of INVALID_KINDS
    invoice_id: str = ""  # valid ones: what the PaymentAccepted event carries


class Workload:
    """Channels between generated parties and an endless stream of messages over them."""

    def __init__(self, channels: int, *, seed: int = 7, out_of_order: float = 0.0, duplicates: float = 0.0,
                 invalid: float = 0.0, distance: int = 4, domain: SigningDomain = SIM_DOMAIN) -> None:
        for name, v in (("--out-of-order", out_of_order), ("--duplicates", duplicates), ("--invalid", invalid)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} is a fraction between 0 and 1, got {v}")
        if channels < 1:
            raise ValueError("--channels must be >= 1")
        self.rng = random.Random(seed)
        self.domain = domain
        self.out_of_order, self.duplicates, self.invalid = out_of_order, duplicates, invalid
        self.distance = max(1, distance)
        parties = make_parties(f"sim-{seed}", max(2, channels // 2 + 2))
        run = uuid.uuid4().int >> 64  # fresh channel ids per run: reruns on the same topics never collide
        self.channels = []
        for i in range(channels):
            a, b = self.rng.sample(parties, 2)
            cid = uuid.UUID(int=(run << 64) | (self.rng.getrandbits(48) << 16) | i, version=4)
            self.channels.append(ChannelPlan(cid, a, b, (10**24, 10**21), domain=domain))
        self._late: list[tuple[int, Item]] = []  # (emit after this many more items, item)
        self.generated = 0

    def _next_valid(self) -> Item:
        ch = self.rng.choice(self.channels)
        payer = 0 if self.rng.random() < 0.7 else 1
        if ch.balance(payer) < 1000 * UNIT:
            payer = 1 - payer
        price = self.rng.randint(1, 1000) * UNIT
        iid = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        return Item(ch.channel_id, ch.pay_json(price, payer, invoice_id=iid), "valid", str(iid))

    def _invalid(self) -> Item:
        kind = self.rng.choice(INVALID_KINDS)
        ch = self.rng.choice(self.channels)
        iid = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        price = self.rng.randint(1, 1000) * UNIT
        if kind == "signature":  # the counterparty signs in the buyer's name
            raw = ch.forged_json(price, 0, invoice_id=iid, signer=ch.b.key)
        elif kind == "chain":  # properly signed, but not linked to the head
            raw = ch.forged_json(price, 0, invoice_id=iid,
                                 previous=HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\xab" * 32))
        elif kind == "overspend":  # properly signed, more than the buyer has
            raw = ch.forged_json(ch.balance(1) + UNIT, 1, invoice_id=iid)
        elif kind == "unknown_channel":  # a channel nobody opened
            ghost = ChannelPlan(uuid.UUID(int=self.rng.getrandbits(128), version=4), ch.a, ch.b, (0, 0),
                                domain=self.domain)
            return Item(ghost.channel_id, ghost.forged_json(price, 0, invoice_id=iid), kind)
        else:
            raw = b'{"invoiceID": "' + str(iid).encode() + b'", "not json'
        return Item(ch.channel_id, raw, kind)

    def __iter__(self) -> Iterator[Item]:
        while True:
            # a late item goes out once its distance has passed
            due = [x for x in self._late if x[0] <= 0]
            if due:
                self._late = [x for x in self._late if x[0] > 0]
                for _, it in due:
                    yield it
            r = self.rng.random()
            if r < self.invalid:
                item = self._invalid()
            else:
                item = self._next_valid()
                self.generated += 1
                if self.rng.random() < self.duplicates:
                    self._late.append((self.rng.randint(0, self.distance), Item(item.channel, item.raw, "duplicate")))
            if item.kind == "valid" and self.rng.random() < self.out_of_order:
                self._late.append((self.rng.randint(1, self.distance), item))
                self._late = [(n - 1, it) for n, it in self._late]
                continue
            self._late = [(n - 1, it) for n, it in self._late]
            yield item

    def drain(self) -> list[Item]:
        """Whatever is still held back (sent at the end, so every valid payment arrives)."""
        out = [it for _, it in sorted(self._late, key=lambda x: x[0])]
        self._late = []
        return out


# --------------------------------------------------------------------------- results
@dataclass
class SimResult:
    mode: str
    channels: int
    sent: int = 0
    by_kind: Counter = field(default_factory=Counter)
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    checkpoints: int = 0
    seconds: float = 0.0  # first payment sent -> last one accepted (and, with a read model, projected)
    send_seconds: float = 0.0
    drain_seconds: float = 0.0  # first sent -> every outcome read back
    latencies_ms: list[float] = field(default_factory=list)
    # each latency in two, at the PaymentAccepted record's timestamp (the node's produce call, in
    # its transaction): hand-over -> the node wrote the event (the inbound record's wait, the node's
    # fetch, the batch ahead of it, verifying and applying), then -> read (the transaction's commit,
    # the reader's fetch). Same-machine clocks, as for the latency itself.
    to_event_ms: list[float] = field(default_factory=list)
    event_to_read_ms: list[float] = field(default_factory=list)
    complete: bool = True
    offered_rate: float = 0.0
    nodes: int = 0
    notes: list[str] = field(default_factory=list)
    node_cpu_seconds: float | None = None  # preproduced runs: the node processes' CPU from resume to the end
    balances: dict[str, Any] | None = None  # with a read model: its balances checked against the workload's

    @property
    def expected_accepted(self) -> int:
        return self.by_kind["valid"]

    @property
    def expected_rejected(self) -> int:
        return sum(n for k, n in self.by_kind.items() if k in INVALID_KINDS)

    @property
    def payments_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def percentiles(self, values: list[float] | None = None) -> dict[str, float]:
        """p50, p90, p99 and max of the latencies (or of ``values``), in ms."""
        lat = sorted(self.latencies_ms if values is None else values)
        if not lat:
            return {}

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 2)

        return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(lat[-1], 2), "n": len(lat)}

    def latency_split(self) -> dict[str, dict[str, float]]:
        """Where the latency goes: ``to_event`` (until the node wrote the PaymentAccepted record) and
        ``event_to_read`` (its transaction committed and the record read), percentiles of each."""
        if not self.to_event_ms:
            return {}
        return {"to_event": self.percentiles(self.to_event_ms), "event_to_read": self.percentiles(self.event_to_read_ms)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "channels": self.channels, "nodes": self.nodes, "sent": self.sent,
            "sent_by_kind": dict(self.by_kind), "accepted": self.accepted, "rejected": dict(self.rejected),
            "no_op": self.sent - self.accepted - sum(self.rejected.values()),
            "checkpoints_requested": self.checkpoints, "seconds": round(self.seconds, 3),
            "send_seconds": round(self.send_seconds, 3),
            "drain_seconds": round(self.drain_seconds or self.seconds, 3), "payments_per_s": round(self.payments_per_s, 1),
            "offered_rate": self.offered_rate or None, "latency_ms": self.percentiles(),
            "latency_split_ms": self.latency_split(), "complete": self.complete,
            "notes": self.notes, "node_cpu_seconds": self.node_cpu_seconds, "balances": self.balances,
        }


class Pacer:
    """Sleeps to hold ``rate`` items/s (0: no pacing)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.perf_counter()
        self.n = 0

    def wait(self) -> None:
        self.n += 1
        if self.rate > 0:
            ahead = self.n / self.rate - (time.perf_counter() - self.start)
            if ahead > 0.001:
                time.sleep(ahead)


def _stream(workload: Workload, payments: int | None, duration: float | None) -> Iterator[Item]:
    start = time.perf_counter()
    for item in workload:
        yield item
        if payments is not None and workload.generated >= payments:
            break
        if duration is not None and time.perf_counter() - start >= duration:
            break
    yield from workload.drain()


# --------------------------------------------------------------------------- embedded
def run_embedded(
    workload: Workload, *, payments: int | None, duration: float | None = None, rate: float = 0.0,
    batch: int = 200, checkpoint_interval: int = 100, progress: Callable[[int], None] | None = None,
) -> SimResult:
    """The stream through ChannelService on a fresh SQLite event store (one process)."""
    from domain.channel import ChannelParameters, PaymentOutcome
    from domain.errors import ParsecError
    from domain.protocol import SignedInvoice
    from domain.reorder import ReorderWindow

    result = SimResult("embedded", len(workload.channels), offered_rate=rate)
    with tempfile.TemporaryDirectory(prefix="parsec-sim-") as tmp:
        service = bootstrap.channel_service(Settings(data_dir=Path(tmp), event_store="sqlite"))
        params = ChannelParameters(challenge_period=3600, checkpoint_interval=checkpoint_interval,
                                   checkpoint_timeout=3600)
        now = int(time.time())
        for ch in workload.channels:
            service.open_channel(**ch.open_kwargs(params, now))
        window = ReorderWindow(64, 30)
        pending: list[tuple[Item, float]] = []

        def flush() -> None:
            # the node's order of work, in-process: verify, reorder window, apply; one save per batch
            at = int(time.time())
            changed: dict[uuid.UUID, Any] = {}
            started: dict[str, float] = {}

            def apply(tx: SignedInvoice) -> None:
                queue = [tx]
                while queue:
                    t = queue.pop(0)
                    channel = changed.get(t.channel) or service.get_channel_aggregate(t.channel)
                    try:
                        outcome = channel.accept_payment(t, at)
                    except ParsecError as err:
                        result.rejected[err.reason] += 1
                        continue
                    if outcome is PaymentOutcome.ACCEPTED:
                        changed[t.channel] = channel
                        result.accepted += 1
                        result.checkpoints += channel.checkpoint_sequence == t.sequence
                        accepted.append(str(t.invoice_id))
                        queue += window.release(t.channel, channel.sequence)

            accepted: list[str] = []
            for it, t0 in pending:
                if it.kind == "valid":
                    started[it.invoice_id] = t0
                try:
                    tx = SignedInvoice.from_json(it.raw)
                    head = (changed.get(tx.channel) or service.get_channel_aggregate(tx.channel)).sequence
                except ParsecError as err:
                    result.rejected[err.reason] += 1
                    continue
                ready, refused = window.offer(tx, head, at)
                for rf in refused:
                    result.rejected[rf.error.reason] += 1
                for t in ready:
                    apply(t)
            if changed:
                service.save(*changed.values())
            done = time.perf_counter()
            for iid in accepted:
                t0 = started.pop(iid, None) or sent_at.pop(iid, None)
                if t0 is not None:
                    result.latencies_ms.append((done - t0) * 1000)
            sent_at.update(started)
            if progress:
                progress(len(pending))
            pending.clear()

        sent_at: dict[str, float] = {}  # held across batches by the window
        pacer = Pacer(rate)
        start = time.perf_counter()
        for item in _stream(workload, payments, duration):
            pacer.wait()
            pending.append((item, time.perf_counter()))
            result.sent += 1
            result.by_kind[item.kind] += 1
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        expired = len(window.clear())
        if expired:
            result.rejected["WindowExpired"] += expired
        result.seconds = result.send_seconds = time.perf_counter() - start
        service.close()
    return result


# --------------------------------------------------------------------------- Kafka
def collector_config(config: Any) -> dict[str, Any]:
    """The collector's confluent-kafka consumer: the node config's bootstrap and security, no commits.

    librdkafka fetches and decodes on its own threads: the kafka-python consumer it replaced took
    about as much of this process's CPU per payment as a node's verification (on a 2-core machine
    the measuring tool competed with the nodes it measured)."""
    return config.kafka.librdkafka(**{
        "group.id": f"parsec-sim-collector-{uuid.uuid4().hex[:8]}",  # required; nothing is committed to it
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "isolation.level": "read_committed", "fetch.wait.max.ms": 5, "socket.nagle.disable": True,
        "client.id": "parsec-sim-collector"})


class Collector(threading.Thread):
    """Reads the events and rejected topics from where they ended when the run began."""

    def __init__(self, config: Any, ours: set[bytes], sent_at: dict[str, float]) -> None:
        super().__init__(name="parsec-sim-collector", daemon=True)
        import confluent_kafka as ck

        self.config = config
        self.ours = ours
        self.sent_at = sent_at
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.opened = 0
        self.accepted = 0
        self.checkpoints = 0
        self.rejected: Counter = Counter()
        self.latencies_ms: list[float] = []
        self.to_event_ms: list[float] = []  # see SimResult
        self.event_to_read_ms: list[float] = []
        self.last_accepted_at = 0.0
        self.event_offsets: dict[int, int] = {}  # partition -> highest PaymentAccepted offset
        self.consumer = ck.Consumer(collector_config(config))
        # each partition's end: the run's first record is produced after this returns
        self.consumer.assign([ck.TopicPartition(t, p, self._end(ck.TopicPartition(t, p)))
                              for t in (config.events_topic, config.rejected_topic) for p in range(config.partitions)])

    def _end(self, tp: Any, timeout: float = 30.0) -> int:
        """The partition's end offset, asked again while the broker says it is not ready yet (a topic
        created a moment ago has no leader until its election is over: NOT_LEADER_FOR_PARTITION)."""
        import confluent_kafka as ck

        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.consumer.get_watermark_offsets(tp, timeout=max(1.0, deadline - time.monotonic()))[1]
            except ck.KafkaException as exc:
                err = exc.args[0] if exc.args else None
                code = err.code() if isinstance(err, ck.KafkaError) else None
                not_ready = code in (ck.KafkaError.NOT_LEADER_FOR_PARTITION, ck.KafkaError.LEADER_NOT_AVAILABLE,
                                     ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_PARTITION)
                if time.monotonic() > deadline or not (not_ready or (err is not None and err.retriable())):
                    raise
                time.sleep(0.1)

    def run(self) -> None:
        import confluent_kafka as ck

        from infrastructure.kafka.codec import H_TOPIC
        from infrastructure.node.messages import H_REASON

        events, rejected = self.config.events_topic, self.config.rejected_topic
        try:
            while not self.stop.is_set():
                # consume(n, timeout) returns only with n records or at the timeout: the first record
                # is waited for alone, so a payment is seen as soon as its event can be read
                first = self.consumer.poll(0.05)
                if first is None:
                    continue
                batch = [first, *self.consumer.consume(num_messages=5000, timeout=0)]
                now = time.time()
                with self.lock:
                    for r in batch:
                        if r.error() is not None or r.key() not in self.ours:
                            continue
                        topic = r.topic()
                        if topic == events:
                            name = dict(r.headers() or ()).get(H_TOPIC, b"")
                            if name.endswith(b".PaymentAccepted"):
                                self.accepted += 1
                                self.last_accepted_at = now
                                self.event_offsets[r.partition()] = r.offset()
                                value = r.value()
                                i = value.find(b'"invoice_id":"')
                                t0 = self.sent_at.pop(value[i + 14 : i + 50].decode(), None) if i >= 0 else None
                                if t0 is not None:
                                    self.latencies_ms.append((now - t0) * 1000)
                                    kind, ms = r.timestamp()
                                    if kind != ck.TIMESTAMP_NOT_AVAILABLE:
                                        self.to_event_ms.append(ms - t0 * 1000)
                                        self.event_to_read_ms.append(now * 1000 - ms)
                            elif name.endswith(b".CheckpointRequested"):
                                self.checkpoints += 1
                            elif name.endswith(b".ChannelOpened"):
                                self.opened += 1
                        elif topic == rejected:
                            reason = dict(r.headers() or ()).get(H_REASON, b"?").decode()
                            self.rejected[reason] += 1
        finally:
            self.consumer.close()


class BalancesFollower(threading.Thread):
    """The balances read model (SQLite) following the events topic, as ``parsec projections run`` does."""

    def __init__(self, config: Any, path: Path) -> None:
        super().__init__(name="parsec-sim-balances", daemon=True)
        from projections.balances import Balances
        from projections.source import source_for
        from projections.sqlite import SQLiteStore

        self.app = bootstrap.channel_reader(config)
        self.store = SQLiteStore(path)
        self.runner = bootstrap.projection_runner(source_for(self.app), self.store, [Balances()], batch_size=2000)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.runner.run_forever(self.stop, poll_interval=0.01)
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def reached(self, offsets: dict[int, int]) -> bool:
        """True once the read model has applied every event up to these offsets (ids = offset + 1)."""
        pos = self.runner.positions.get("balances", {})
        return all(pos.get(p, -1) >= off + 1 for p, off in offsets.items())

    def close(self) -> None:
        self.stop.set()
        self.join(10)
        self.store.close()
        self.app.close()


class LoadSender:
    """The simulator's producer: the node's ``Sender`` (topics, keys, partitions, schema headers)
    over a confluent-kafka producer, fire and forget, every record acknowledged by ``flush``.

    kafka-python's producer spends some 150 µs of Python per record on this process's cores,
    which the nodes under measurement share; librdkafka batches and sends from its own threads.
    Delivery failures are counted and raised at ``flush``: a load that did not arrive is not a
    measurement."""

    def __init__(self, config: Any) -> None:
        import confluent_kafka as ck

        from infrastructure.kafka.admin import ensure_topics
        from infrastructure.node.topics import node_topic_specs, store_settings

        self.config = config
        self.partitions = ensure_topics(store_settings(config), node_topic_specs(config))[config.inbound_topic]
        self.producer = ck.Producer(config.kafka.librdkafka_producer(**{
            "linger.ms": 5, "enable.idempotence": True, "socket.nagle.disable": True,
            "client.id": "parsec-sim-send"}))
        self.failures: list[Any] = []

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failures.append(err)

    def _send(self, topic: str, channel: uuid.UUID, value: bytes, schema: str) -> None:
        while True:
            try:
                self.producer.produce(topic, value, channel_key(channel), partition=partition_of(channel, self.partitions),
                                      headers=[schema_header(schema)], on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let librdkafka send some first
                self.producer.poll(0.05)
        self.producer.poll(0)

    def payment(self, raw: bytes, channel: uuid.UUID) -> None:
        self._send(self.config.inbound_topic, channel, raw, "payment")

    def control(self, request: Any) -> None:
        self._send(self.config.control_topic, request.channel, encode_control(request), "control")

    def flush(self) -> None:
        left = self.producer.flush(60)
        if left or self.failures:
            raise RuntimeError(f"the simulator's producer could not deliver {left} record(s); "
                               f"failures: {self.failures[:3]}")

    def close(self) -> None:
        self.producer.flush(10)


def check_balances(store: Any, plans: list[ChannelPlan]) -> dict[str, Any]:
    """The balances read model against what the workload's clients know they sent, channel by channel."""
    from projections.balances import channel_balances

    rows = {b.channel_id: b for b in channel_balances(store)}
    mismatched = []
    for plan in plans:
        row = rows.get(str(plan.channel_id))
        want = plan.expected_balances()
        got = row.balances if row is not None else None
        if got != want:
            mismatched.append({"channel": str(plan.channel_id), "expected": [str(v) for v in want],
                               "read_model": None if got is None else [str(v) for v in got]})
    return {"channels": len(plans), "equal": len(plans) - len(mismatched), "mismatched": mismatched[:10]}


def node_process_env(config: Any, environ: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A spawned node's environment: this process's, with the config's Kafka settings (bootstrap,
    security, replication) pinned over it, so the node authenticates as the simulator was told to."""
    return {**environ, **config.process_env(), "PARSEC_LOG_LEVEL": "WARNING", **(extra or {})}


class SpawnedNodes:
    """``parsec node`` processes started by the simulator (logs in a temp dir)."""

    def __init__(self, n: int, config: Any, *, max_wait: int = 2, max_poll_records: int | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="parsec-sim-nodes-"))
        self.procs: list[subprocess.Popen] = []
        env = node_process_env(config, os.environ, extra_env)
        root = Path(__file__).resolve().parents[2]  # the checkout: infrastructure/tools/simulate.py
        env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
        for i in range(n):
            cmd = [sys.executable, "-m", "infrastructure.cli", "--kafka", config.kafka_bootstrap, "node",
                   "--events-topic", config.events_topic, "--inbound-topic", config.inbound_topic,
                   "--control-topic", config.control_topic, "--rejected-topic", config.rejected_topic,
                   "--partitions", str(config.partitions), "--group", config.node_group,
                   "--node-id", f"sim-{i}", "--max-wait", str(max_wait), "--tick-interval", "0.5"]
            if max_poll_records:
                cmd += ["--max-poll-records", str(max_poll_records)]
            logf = open(self.dir / f"node-{i}.log", "wb")  # closed with the process
            self.procs.append(subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=root))

    def check(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                tail = (self.dir / f"node-{i}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"spawned node {i} exited with {p.returncode}:\n{tail}")

    def cpu_seconds(self) -> float | None:
        """The node processes' CPU time so far (user + system, from /proc; None where there is none)."""
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        total = 0.0
        for p in self.procs:
            try:
                # the fields after the command name, which is in parentheses and may hold spaces
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return total

    def signal(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(sig)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def kafka_config(settings: Settings | KafkaAccess | str, *, prefix: str | None = None, partitions: int = 4) -> Settings:
    """Node topics: the node's defaults, or a fresh private set named ``<prefix>.*``.

    ``settings``: this run's (bootstrap, security, replication), or a bootstrap address alone."""
    if isinstance(settings, str):
        settings = Settings(kafka_bootstrap=settings)
    elif isinstance(settings, KafkaAccess):  # the bench's: where and as whom, nothing else
        settings = Settings(kafka_bootstrap=settings.bootstrap, kafka_replication_factor=settings.replication_factor,
                            kafka_min_insync_replicas=settings.min_insync_replicas or 0,
                            ).with_kafka_security(settings.security)
    update: dict[str, Any] = {"partitions": partitions}
    if prefix is not None:
        update.update(events_topic=f"{prefix}.events", inbound_topic=f"{prefix}.inbound",
                      control_topic=f"{prefix}.control", rejected_topic=f"{prefix}.rejected",
                      node_group=f"{prefix}.nodes")
    return settings.model_copy(update=update)


def run_kafka(
    workload: Workload, config: Any, *, payments: int | None, duration: float | None = None, rate: float = 0.0,
    checkpoint_interval: int = 100, spawn: int = 0, preproduce: bool = False, follow_balances: bool = False,
    drain_timeout: float = 60.0, open_timeout: float = 90.0, progress: Callable[[int], None] | None = None,
    max_poll_records: int | None = None, nodes: SpawnedNodes | None = None,
) -> SimResult:
    """The stream into the inbound topic; outcomes read back from the events and rejected topics.

    ``preproduce``: (spawned nodes only) the nodes are paused (SIGSTOP) while the whole stream is
    produced, then resumed: the clock starts at the resume, so the figure is the nodes' consumption
    rate of a backlog, not bounded by this process's producing. ``follow_balances``: the balances
    read model follows the events topic here, and the clock stops when it has applied the last
    payment."""
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if preproduce and not (spawn or nodes):
        raise ValueError("preproduce needs spawned nodes (they are paused while the stream is produced)")
    own_nodes = nodes is None
    if nodes is None and spawn:
        nodes = SpawnedNodes(spawn, config, max_poll_records=max_poll_records)
    result = SimResult("kafka", len(workload.channels), offered_rate=rate, nodes=len(nodes.procs) if nodes else 0)
    sender = collector = follower = None
    tmp = Path(tempfile.mkdtemp(prefix="parsec-sim-"))
    try:
        sender = LoadSender(config)  # creates missing topics
        config.partitions = sender.partitions
        ours = {str(ch.channel_id).encode() for ch in workload.channels}
        sent_at: dict[str, float] = {}
        collector = Collector(config, ours, sent_at)
        collector.start()
        if follow_balances:
            follower = BalancesFollower(config, tmp / "balances.sqlite")
            follower.start()
        for ch in workload.channels:
            sender.control(ch.open_request(challenge_period=3600, checkpoint_interval=checkpoint_interval,
                                           checkpoint_timeout=3600))
        sender.flush()
        deadline = time.monotonic() + open_timeout
        while collector.opened < len(workload.channels):
            if nodes:
                nodes.check()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {collector.opened} of {len(workload.channels)} channels opened in {open_timeout:.0f}s: "
                    f"is a node running on {config.inbound_topic}/{config.control_topic}? "
                    "(parsec node in another shell, or --spawn-node 1)")
            time.sleep(0.05)
        log.info("%d channels opened", collector.opened)
        if preproduce:
            assert nodes is not None
            nodes.signal(signal.SIGSTOP)
        cpu_at_resume: float | None = None
        pacer = Pacer(0 if preproduce else rate)
        start, start_wall = time.perf_counter(), time.time()
        produced = 0
        stream: Any = _stream(workload, payments, duration)
        if rate > 0 and payments is not None and not preproduce:
            # signed before the clock starts, so that signing in this process neither slows the pacing
            # nor takes a core's share from the nodes under measurement
            stream = list(stream)
            pacer = Pacer(rate)
            start, start_wall = time.perf_counter(), time.time()
        for item in stream:
            pacer.wait()
            ours.add(str(item.channel).encode())
            if item.kind == "valid":
                sent_at[item.invoice_id] = time.time()
            sender.payment(item.raw, item.channel)
            result.sent += 1
            result.by_kind[item.kind] += 1
            produced += 1
            if progress and produced % 200 == 0:
                progress(200)
        sender.flush()
        if progress and produced % 200:
            progress(produced % 200)
        result.send_seconds = time.perf_counter() - start
        if preproduce:
            assert nodes is not None
            # what was sent_at is now the backlog's age: latency belongs to a paced run
            sent_at.clear()
            cpu_at_resume = nodes.cpu_seconds()
            start, start_wall = time.perf_counter(), time.time()
            nodes.signal(signal.SIGCONT)
        # drain: until every valid payment is accepted and every invalid one rejected
        last_progress, seen = time.monotonic(), -1
        projected_at: float | None = None
        while True:
            if nodes:
                nodes.check()
            with collector.lock:
                done = (collector.accepted >= result.expected_accepted
                        and sum(collector.rejected.values()) >= result.expected_rejected)
                now_seen = collector.accepted + sum(collector.rejected.values())
                all_accepted = collector.accepted >= result.expected_accepted
                offsets = dict(collector.event_offsets)
            if follower is not None and projected_at is None and all_accepted and follower.reached(offsets):
                projected_at = time.time()
            if done and (follower is None or projected_at is not None):
                break
            if follower is not None and follower.error is not None:
                raise follower.error
            if now_seen != seen:
                seen, last_progress = now_seen, time.monotonic()
            elif time.monotonic() - last_progress > drain_timeout:
                result.complete = False
                result.notes.append(f"stopped waiting after {drain_timeout:.0f}s without progress")
                break
            time.sleep(0.002)
        result.drain_seconds = time.perf_counter() - start
        if preproduce and nodes is not None and cpu_at_resume is not None:
            cpu_now = nodes.cpu_seconds()
            result.node_cpu_seconds = None if cpu_now is None else round(cpu_now - cpu_at_resume, 3)
        if follower is not None and projected_at is not None:
            result.balances = check_balances(follower.store, workload.channels)
        with collector.lock:
            # throughput's clock stops at the last acceptance (or when the read model had it), not
            # at the last rejection: unknown-channel payments are refused only after the node's max wait
            last = collector.last_accepted_at
            if projected_at is not None:
                last = max(last, projected_at)
            result.seconds = (last - start_wall) if last else result.drain_seconds
            result.accepted = collector.accepted
            result.rejected = Counter(collector.rejected)
            result.checkpoints = collector.checkpoints
            result.latencies_ms = list(collector.latencies_ms)
            result.to_event_ms = list(collector.to_event_ms)
            result.event_to_read_ms = list(collector.event_to_read_ms)
        return result
    finally:
        if collector is not None:
            collector.stop.set()
            collector.join(5)
        if follower is not None:
            follower.close()
        if sender is not None:
            sender.close()
        if nodes is not None and own_nodes:
            nodes.stop()


__all__ = ["INVALID_KINDS", "Item", "SimResult", "Workload", "kafka_config", "run_embedded",
           "run_kafka"]
