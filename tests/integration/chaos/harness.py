"""Node chaos under load: SIGKILLs and evictions of node processes while signed payments stream in.

Used by the bounded CI test (tests/integration/chaos/test_node_chaos.py) and by ``scripts/chaos``
(a long run, 100 kills by default, with a JSON report). What it does:

- starts ``nodes`` node processes (``parsec node``) in one group on fresh topics;
- a gateway thread streams signed payments over ``channels`` channels (locally reordered, some
  repeated) plus malformed messages, at ``rate`` messages/s, resending anything the cluster did not
  acknowledge;
- a chaos thread, every ``pause`` seconds, SIGKILLs a random node and starts it again (same node
  id), or evicts one (SIGSTOP for longer than the session timeout, then SIGCONT), until ``kills``
  and ``evictions`` are done;
- then it waits until every channel holds exactly its payments (the log drained) and checks:
  every payment applied exactly once (a full replay of the events topic), every malformed message
  refused exactly once (the rejected topic), every partition owned (the log drained on every one).

Figures: the time each partition went without progress while payments kept coming (the gaps
between the commit times of its events: with steady load a gap is a time without a running owner),
how often the group was rebalancing (the nodes' "partitions assigned" lines), and the time from
the last message sent to a drained log.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from infrastructure import bootstrap
from infrastructure.node import Sender
from infrastructure.node.messages import channel_key, partition_of
from infrastructure.settings import Settings
from infrastructure.tools.workload import make_channels
from tests.integration.node import harness as node_harness


@dataclass
class ChaosPlan:
    nodes: int = 2
    channels: int = 24
    rate: float = 150.0  # messages per second from the gateway
    kills: int = 30
    evictions: int = 4
    pause: float = 2.5  # seconds between two acts of chaos
    invalid_every: int = 200  # a malformed message every n payments
    session_timeout_ms: int = 10000
    seed: str = "chaos"


@dataclass
class ChaosReport:
    kills: int = 0
    evictions: int = 0
    payments: int = 0
    messages_sent: int = 0
    resent: int = 0
    malformed: int = 0
    seconds_under_chaos: float = 0.0
    drain_seconds: float = 0.0  # from the last message sent to a drained log
    max_gap_seconds: dict[int, float] = field(default_factory=dict)  # per partition, under load
    gaps_over_1s: int = 0
    seconds_without_progress: float = 0.0  # sum over partitions of gaps over 1 s, / partitions
    rebalances: int = 0
    exactly_once: bool = False
    refusals_once: bool = False
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        worst = max(self.max_gap_seconds.values(), default=0.0)
        return (f"{self.kills} kills, {self.evictions} evictions, {self.payments} payments "
                f"({self.messages_sent} messages, {self.resent} resent, {self.malformed} malformed) in "
                f"{self.seconds_under_chaos:.0f} s; longest time a partition made no progress {worst:.1f} s, "
                f"{self.gaps_over_1s} gaps over 1 s ({self.seconds_without_progress:.1f} s per partition), "
                f"{self.rebalances} assignments; drained {self.drain_seconds:.1f} s after the last message; "
                f"exactly once: {self.exactly_once}, refusals once: {self.refusals_once}")


class ChaosRun:
    def __init__(self, config: Settings, plan: ChaosPlan, log_dir: Path,
                 progress: Callable[[str], None] | None = None) -> None:
        self.config, self.plan, self.log_dir = config, plan, log_dir
        self.progress = progress or (lambda line: None)  # one line per act of chaos (scripts/chaos prints it)
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopped: set[str] = set()
        self.report = ChaosReport()
        self.invalid_offsets: list[tuple[int, int]] = []
        self.sending_done = threading.Event()
        self.rng = random.Random(plan.seed)
        self.restarts: Counter = Counter()

    # ------------------------------------------------------------------ processes
    def _start(self, name: str) -> None:
        self.restarts[name] += 1
        self.procs[name] = node_harness.node_process(self.config, name, self._log(name))

    def _kill_and_restart(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self._start(name)
        self.report.kills += 1

    def _evict(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGSTOP)
        self.stopped.add(name)
        time.sleep(self.plan.session_timeout_ms / 1000 + 2)  # the group drops it meanwhile
        proc.send_signal(signal.SIGCONT)
        self.stopped.discard(name)
        self.report.evictions += 1

    # ------------------------------------------------------------------ load
    def _gateway(self, plans: list[Any], sender: Sender, chaos_done: threading.Event) -> None:
        """Sign and send at ``rate`` until the chaos is over (in chunks, each locally reordered with a
        few repeats); every so often make sure what was sent is acknowledged, resending the rest."""
        interval = 1.0 / self.plan.rate
        n = self.config.partitions
        in_flight: list[tuple[Any, Any]] = []

        def settle() -> None:
            while in_flight:
                retry = []
                for tx, future in in_flight:
                    try:
                        future.get(timeout=15)
                    except Exception:
                        self.report.resent += 1
                        retry.append((tx, sender.payment(tx)))
                in_flight[:] = retry

        next_at = time.monotonic()
        chunk = 0
        i = 0
        while not chaos_done.is_set() or chunk == 0:
            txs = node_harness.make_payments(plans, 300, f"{self.plan.seed}/{chunk}")
            chunk += 1
            for tx in node_harness.disorder(txs, f"{self.plan.seed}/{chunk}", spread=30, duplicates=0.03):
                i += 1
                self._send_one(tx, i, sender, in_flight, settle, n)
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        settle()
        self.sending_done.set()

    def _send_one(self, tx: Any, i: int, sender: Sender, in_flight: list[Any], settle: Any, n: int) -> None:
        in_flight.append((tx, sender.payment(tx)))
        self.report.messages_sent += 1
        if i % self.plan.invalid_every == self.plan.invalid_every // 2:
            p = partition_of(tx.channel, n)
            meta = sender.raw(self.config.inbound_topic, p, channel_key(tx.channel), b"{malformed").get(15)
            self.invalid_offsets.append((meta.partition, meta.offset))
            self.report.malformed += 1
        if len(in_flight) >= 100:
            settle()

    def _chaos(self) -> None:
        """Each act hits a node that is working: every node has taken its partitions since its start."""
        acts = ["kill"] * self.plan.kills + ["evict"] * self.plan.evictions
        self.rng.shuffle(acts)
        started = time.monotonic()
        for i, act in enumerate(acts, 1):
            self._await_working(timeout=60)
            time.sleep(self.plan.pause)
            name = self.rng.choice(sorted(self.procs))
            if act == "kill":
                self._kill_and_restart(name)
            else:
                self._evict(name)
            self.progress(f"[{i}/{len(acts)}] {act} {name}; {self.report.messages_sent} messages sent; "
                          f"{time.monotonic() - started:.0f} s")

    def _await_working(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("partitions assigned" in self._log(name).read_text(errors="replace") for name in self.procs):
                return
            time.sleep(0.2)
        self.report.problems.append(f"a restarted node did not get an assignment within {timeout:.0f}s")

    def _log(self, name: str) -> Path:
        return self.log_dir / f"{name}.{self.restarts[name]}.log"

    # ------------------------------------------------------------------ the run
    def run(self, drain_timeout: float = 240.0) -> ChaosReport:
        c, plan, r = self.config, self.plan, self.report
        bootstrap.node(c).ensure_topics()
        plans = make_channels(plan.seed, plan.channels)
        sender = Sender(c)
        service = node_harness.reader(c)
        try:
            for i in range(plan.nodes):
                self._start(f"chaos-node-{i}")
            node_harness.open_channels(sender, plans)
            chaos_done = threading.Event()
            gateway = threading.Thread(target=self._gateway, args=(plans, sender, chaos_done), daemon=True)
            started = time.monotonic()
            gateway.start()
            self._chaos()
            chaos_ended = time.monotonic()
            chaos_done.set()
            gateway.join()
            last_sent = time.monotonic()
            r.seconds_under_chaos = chaos_ended - started
            r.payments = sum(len(p.txs) for p in plans)
            want = {p.channel_id: len(p.txs) for p in plans}
            deadline = last_sent + drain_timeout
            while node_harness.sequences(service, plans) != want:
                if time.monotonic() > deadline:
                    got = node_harness.sequences(service, plans)
                    behind = {str(k)[:8]: (got[k], v) for k, v in want.items() if got[k] != v}
                    r.problems.append(f"not drained after {drain_timeout:.0f}s: (applied, sent) {behind}")
                    break
                time.sleep(0.25)
            r.drain_seconds = time.monotonic() - last_sent
            self._measure_gaps(started, chaos_ended)
            self._count_rebalances()
            self._check(service, plans)
        finally:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    node_harness.stop_process(proc)
            sender.close()
            service.close()
        return r

    # ------------------------------------------------------------------ figures and checks
    def _measure_gaps(self, started: float, ended: float) -> None:
        """Gaps between the commit times of each partition's events while payments were coming in."""
        wall_start = time.time() - (time.monotonic() - started)
        wall_end = time.time() - (time.monotonic() - ended)
        consumer = KafkaConsumer(bootstrap_servers=self.config.kafka_bootstrap.split(","), group_id=None,
                                 enable_auto_commit=False, isolation_level="read_committed",
                                 **self.config.kafka_security.kafka_python())
        try:
            tps = [TopicPartition(self.config.events_topic, p) for p in range(self.config.partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            stamps: dict[int, list[float]] = {p: [] for p in range(self.config.partitions)}
            while any(consumer.position(tp) < end[tp] for tp in tps):
                for tp, records in consumer.poll(timeout_ms=500).items():
                    stamps[tp.partition] += [rec.timestamp / 1000 for rec in records]
        finally:
            consumer.close(autocommit=False)
        total = 0.0
        for p, ts in stamps.items():
            window = sorted(t for t in ts if wall_start <= t <= wall_end)
            points = [wall_start, *window, wall_end]
            gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
            self.report.max_gap_seconds[p] = round(max(gaps, default=0.0), 2)
            big = [g for g in gaps if g > 1.0]
            self.report.gaps_over_1s += len(big)
            total += sum(big)
        self.report.seconds_without_progress = round(total / max(1, self.config.partitions), 2)

    def _count_rebalances(self) -> None:
        pattern = re.compile(r"partitions assigned")
        self.report.rebalances = sum(
            len(pattern.findall(path.read_text(errors="replace"))) for path in self.log_dir.glob("*.log")
        )

    def _check(self, service: Any, plans: list[Any]) -> None:
        r = self.report
        ok = True
        for p in plans:
            channel, events = node_harness.replay(service, p.channel_id)
            accepted = [e.sequence for e in events if type(e).__name__ == "PaymentAccepted"]
            if accepted != list(range(1, len(p.txs) + 1)):
                ok = False
                r.problems.append(f"channel {p.channel_id}: payments applied {len(accepted)} times for {len(p.txs)}")
            elif (channel.balance_of(p.a.address), channel.balance_of(p.b.address)) != p.expected_balances():
                ok = False
                r.problems.append(f"channel {p.channel_id}: balances differ from the expected ones")
        r.exactly_once = ok
        refused = Counter((x.source_partition, x.source_offset) for x in node_harness.read_rejected(self.config)
                          if x.source_topic == self.config.inbound_topic)
        unexpected = {k: v for k, v in refused.items() if k not in set(self.invalid_offsets)}
        twice = {k: v for k, v in refused.items() if v != 1}
        missing = [k for k in self.invalid_offsets if k not in refused]
        r.refusals_once = not (unexpected or twice or missing)
        if not r.refusals_once:
            r.problems.append(f"refusals: {len(missing)} missing, {len(twice)} more than once, "
                              f"{len(unexpected)} unexpected ({list(unexpected.items())[:5]})")


def fresh_config(bootstrap: str, **overrides: Any) -> Settings:
    t = f"chaos.{uuid.uuid4().hex[:10]}"
    c = Settings(kafka_bootstrap=bootstrap, events_topic=f"{t}.events", inbound_topic=f"{t}.inbound",
                   control_topic=f"{t}.control", rejected_topic=f"{t}.rejected", node_group=f"{t}.nodes", partitions=4)
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka", default="127.0.0.1:9092", help="bootstrap servers (default 127.0.0.1:9092)")
    ap.add_argument("--nodes", type=int, default=3, help="node processes in the group (default 3)")
    ap.add_argument("--kills", type=int, default=100, help="SIGKILLs, each followed by a restart (default 100)")
    ap.add_argument("--evictions", type=int, default=8,
                    help="SIGSTOPs past the session timeout, then SIGCONT (default 8)")
    ap.add_argument("--channels", type=int, default=40, help="channels the payments spread over (default 40)")
    ap.add_argument("--rate", type=float, default=150.0, help="messages per second (default 150)")
    ap.add_argument("--pause", type=float, default=2.5, help="seconds between acts of chaos (default 2.5)")
    ap.add_argument("--session-timeout-ms", type=int, default=10000,
                    help="the nodes' group session timeout (default 10000, the node's default)")
    ap.add_argument("--logs", type=Path, default=Path("chaos-logs"), help="the nodes' logs (default ./chaos-logs)")
    ap.add_argument("--json", type=Path, help="write the report as JSON to this file")
    args = ap.parse_args(argv)
    plan = ChaosPlan(nodes=args.nodes, channels=args.channels, rate=args.rate, kills=args.kills,
                     evictions=args.evictions, pause=args.pause, session_timeout_ms=args.session_timeout_ms,
                     seed=f"chaos-{uuid.uuid4().hex[:6]}")
    args.logs.mkdir(parents=True, exist_ok=True)
    config = fresh_config(args.kafka, session_timeout_ms=args.session_timeout_ms)
    print(f"chaos: {plan.kills} kills and {plan.evictions} evictions of {plan.nodes} nodes, payments "
          f"at {plan.rate:g}/s, topics {config.events_topic.rsplit('.', 1)[0]}.*; logs in {args.logs}", flush=True)
    report = ChaosRun(config, plan, args.logs, progress=lambda line: print(line, file=sys.stderr, flush=True)).run()
    print(report.summary())
    for problem in report.problems:
        print("problem:", problem)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    ok = report.exactly_once and report.refusals_once and not report.problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ChaosPlan", "ChaosReport", "ChaosRun", "fresh_config", "main"]
