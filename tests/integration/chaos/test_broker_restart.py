"""The broker stops for 20 s under load and comes back: everything resumes by itself (issue 11).

Given a node (its own process), the settler and a projection runner following a private
single-broker cluster, with signed payments streaming in and checkpoints landing on anvil, when the
broker is stopped for 20 seconds and started again, then nobody is restarted by hand, every payment
is applied exactly once, the read model equals the channels' expected balances, and the settler's
checkpoints after the outage land on-chain.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infrastructure import bootstrap
from infrastructure.chain import ChannelContract, connect, fund, wallet
from infrastructure.node import Sender
from infrastructure.settings import Settings
from infrastructure.tools.workload import make_channels
from projections.balances import Balances, channel_balances
from projections.runner import ProjectionRunner
from projections.source import source_for
from projections.sqlite import SQLiteStore
from tests.integration.contract.chain import ANVIL_URL, ETHER, party
from tests.integration.node.harness import make_payments, node_process, replay, stop_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
PORT = int(os.environ.get("PARSEC_TEST_RESTART_KAFKA_PORT", "19392"))
PERIOD = 120
INTERVAL = 25
OUTAGE = 20.0


def stall_report(log: Path) -> str:
    """The node's own stall report (PARSEC_STALL_REPORT_AFTER: every thread's stack once its loop has not
    come back for that long), or that it has none: what a failure here must say."""
    text = log.read_text(errors="replace")
    at = text.find("Timeout (")
    if at < 0:
        return "the node's loop never stalled (no stall report in its log)"
    return "the node's loop stalled; its stall report:\n" + text[at:at + 12000]


class PrivateBroker:
    """A single-node cluster of the test's own (the shared broker must not be stopped)."""

    def __init__(self, data: Path) -> None:
        self.env = {**os.environ, "PARSEC_KAFKA_PORT": str(PORT), "PARSEC_KAFKA_DATA": str(data)}
        self.bootstrap = f"127.0.0.1:{PORT}"

    def run(self, command: str) -> None:
        proc = subprocess.run([str(REPO / "scripts" / "kafka"), command], env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"scripts/kafka {command}:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path / "kafka")
    b.run("start")
    try:
        yield b
    finally:
        b.run("stop")


class Stream:
    """A participants' gateway: sends each payment until the cluster acknowledges it, as a client must
    (a payment sent twice is a repeat, a no-op for the node)."""

    def __init__(self, sender: Sender, payments: list[Any]) -> None:
        self.sender, self.pending = sender, list(payments)
        self.acknowledged = 0
        self.retried = 0
        self.stop = threading.Event()

    def run(self, rate: float) -> None:
        while self.pending and not self.stop.is_set():
            tx = self.pending[0]
            try:
                self.sender.payment(tx).get(timeout=5)
            except Exception:
                self.retried += 1
                self.stop.wait(0.5)
                continue
            self.pending.pop(0)
            self.acknowledged += 1
            self.stop.wait(1 / rate)


def test_a_20s_broker_outage_under_load_is_ridden_out(broker: PrivateBroker, tmp_path: Path) -> None:
    w3 = connect(ANVIL_URL, timeout=10)
    tag = uuid.uuid4().hex[:8]
    deployer = party(w3, f"parsec-restart/{tag}/deployer")
    operator = party(w3, f"parsec-restart/{tag}/operator")
    contract = ChannelContract.deploy(w3, deployer.wallet, deployer.address, min_challenge_period=PERIOD)
    plans = make_channels(f"parsec-restart/{tag}", 4, deposits=(10**18, 0), domain=contract.domain)
    for p in plans:
        wa = wallet(p.a.key)
        fund(w3, wa.address, 5 * ETHER)
        for w in (wa, wallet(p.b.key)):
            fund(w3, w.address, ETHER)
            contract.set_operator(w, operator.address)
        contract.open_channel(wa, p.channel_id, p.b.address, deposit=10**18, challenge_period=PERIOD)

    t = f"restart.{tag}"
    config = Settings(kafka_bootstrap=broker.bootstrap, events_topic=f"{t}.events", inbound_topic=f"{t}.inbound",
                        control_topic=f"{t}.control", rejected_topic=f"{t}.rejected", node_group=f"{t}.nodes",
                        partitions=4, session_timeout_ms=10000, settlers=operator.address,
                        min_challenge_period=PERIOD)
    sender = Sender(config)
    for p in plans:
        sender.control(p.open_request(challenge_period=PERIOD, checkpoint_interval=INTERVAL,
                                      checkpoint_timeout=10**6)).get(timeout=15)
    payments = make_payments(plans, 600, tag, unit=10**12)

    node = node_process(config, "restart-node", tmp_path / "node.log")
    reader = bootstrap.channel_reader(config)
    store = SQLiteStore(tmp_path / "read-models.sqlite")
    stop = threading.Event()
    threads: list[threading.Thread] = []
    stream = Stream(sender, payments)
    try:
        settler = bootstrap.settler(config, ChannelContract(w3, contract.address), operator.wallet,
                          store_topic=f"{t}.settlement", interval=0.3, start_block=int(w3.eth.block_number))
        runner = ProjectionRunner(source_for(reader), store, [Balances()])
        for target, args in ((settler.run, (stop,)), (runner.run_forever, (stop,)), (stream.run, (60.0,))):
            threads.append(threading.Thread(target=target, args=args, daemon=True))
            threads[-1].start()

        wait_for(lambda: stream.acknowledged >= 150, 60, "the first payments acknowledged")
        broker.run("stop")  # under load: the node, the settler, the runner and the gateway lose the cluster
        down_at = time.monotonic()
        time.sleep(OUTAGE)
        broker.run("start")
        outage = time.monotonic() - down_at

        stages: dict[str, float] = {}  # seconds after the broker came back when each stage was reached
        progress: dict[str, Any] = {}  # where the gateway and the read model stand, for a failure's message

        def done() -> bool:
            rows = {r.channel_id: r for r in channel_balances(store)}
            reached = {
                "acknowledged": not stream.pending,
                "read": all(str(p.channel_id) in rows and rows[str(p.channel_id)].sequence == len(p.txs)
                            for p in plans),
                "checkpointed": all(str(p.channel_id) in rows and rows[str(p.channel_id)].confirmed_sequence
                                    == len(p.txs) // INTERVAL * INTERVAL for p in plans),
            }
            for stage, ok in reached.items():
                if ok:
                    stages.setdefault(stage, time.monotonic() - down_at - outage)
            progress.update(pending=len(stream.pending), rows={
                str(p.channel_id)[:8]: (rows[str(p.channel_id)].sequence, rows[str(p.channel_id)].confirmed_sequence)
                if str(p.channel_id) in rows else None for p in plans})
            return all(reached.values())

        try:
            wait_for(done, 180, "every payment applied, read and checkpointed after the outage")
        except AssertionError as failed:
            raise AssertionError(f"{failed}\nreached (s after the broker came back): {stages}; "
                                 f"gateway pending {progress.get('pending')}, resent {stream.retried}; "
                                 f"read model (sequence, confirmed) per channel: {progress.get('rows')}\n"
                                 f"{stall_report(tmp_path / 'node.log')}") from None
        drained = time.monotonic() - down_at - outage
        assert node.poll() is None, "the node exited instead of riding out the outage"
        assert all(th.is_alive() for th in threads[:2]), "the settler or the runner gave up"
        print(f"\noutage {outage:.1f}s; payments {len(payments)}, resent {stream.retried}; "
              f"drained {drained:.1f}s after the broker came back; reached {stages}")
    finally:
        stream.stop.set()
        stop.set()
        for th in threads:
            th.join(timeout=30)
        stop_process(node)
        sender.close()
    rows = {r.channel_id: r for r in channel_balances(store)}
    for p in plans:
        channel, events = replay(reader, p.channel_id)
        accepted = [e.sequence for e in events if type(e).__name__ == "PaymentAccepted"]
        assert accepted == list(range(1, len(p.txs) + 1)), "a payment applied not exactly once"
        expected = p.expected_balances()
        assert (channel.balance_of(p.a.address), channel.balance_of(p.b.address)) == expected
        assert rows[str(p.channel_id)].balances == expected
        assert contract.channel(p.channel_id).head_sequence == len(p.txs) // INTERVAL * INTERVAL
    reader.close()
    store.close()
