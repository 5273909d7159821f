"""The settler's metrics: intents by kind as they are raised, sent, confirmed or fail, the gas
its transactions use, and a running `parsec settler`'s passes scraped over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from infrastructure import bootstrap
from infrastructure.chain import ChannelContract, connect
from tests.integration.contract.chain import ANVIL_URL, ETHER, party
from tests.integration.metrics.test_node_metrics import free_port, scrape_until, value
from tests.integration.node.harness import REPO, stop_process
from tests.integration.settlement.harness import PERIOD, Node


def _sample(name: str, kind: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


def _checkpoint_counts() -> dict[str, float]:
    return {name: _sample(name, "checkpoint") for name in (
        "parsec_settler_intents_raised_total", "parsec_settler_transactions_sent_total",
        "parsec_settler_intents_confirmed_total", "parsec_settler_intents_failed_total",
        "parsec_settler_intents_given_up_total", "parsec_settler_gas_used_total")}


def _moved(before: dict[str, float]) -> dict[str, float]:
    return {k.removeprefix("parsec_settler_"): v - before[k] for k, v in _checkpoint_counts().items()}


def test_a_checkpoint_is_counted_raised_sent_and_confirmed_with_its_gas(node: Node) -> None:
    ledger = node.open_channel(ETHER, 0, interval=2)
    before = _checkpoint_counts()
    node.pay(ledger, ledger.a, 10, 20)  # sequence 2: a checkpoint
    node.run()
    gas = sum(g.gas_used for g in node.executor.stats.gas if g.kind == "checkpoint")
    assert gas > 20_000
    assert _moved(before) == {"intents_raised_total": 1, "transactions_sent_total": 1,
                              "intents_confirmed_total": 1, "intents_failed_total": 0,
                              "intents_given_up_total": 0, "gas_used_total": gas}
    assert (REGISTRY.get_sample_value("parsec_settler_watched_block") or 0) >= node.watcher.block > 0


def test_a_reverting_checkpoint_is_counted_failed_and_given_up(node: Node) -> None:
    ledger = node.open_channel(ETHER, 0, interval=2)
    before = _checkpoint_counts()
    node.pay(ledger, ledger.a, 10, 20)
    node.chain.channels.set_operator(node.b.wallet, "0x" + "00" * 20)  # the checkpoint now reverts NotPayee
    node.run()
    moved = _moved(before)
    assert (moved["intents_raised_total"], moved["intents_failed_total"], moved["intents_given_up_total"]) == (1, 1, 1)
    assert moved["transactions_sent_total"] == moved["intents_confirmed_total"] == 0


@pytest.mark.integration
@pytest.mark.kafka
@pytest.mark.chain
def test_a_running_settler_serves_its_passes(node_config, tmp_path) -> None:
    w3 = connect(ANVIL_URL, timeout=10)
    tag = uuid.uuid4().hex[:8]
    deployer = party(w3, f"parsec-metrics/{tag}/deployer")
    contract = ChannelContract.deploy(w3, deployer.wallet, deployer.address, min_challenge_period=PERIOD)
    config = node_config()
    bootstrap.node(config).ensure_topics()  # the events topic the settler follows
    port = free_port()
    env = {**os.environ, **config.process_env(), "PARSEC_METRICS_PORT": str(port),
           "PARSEC_SETTLEMENT_TOPIC": f"{config.events_topic}.settlement", "COLUMNS": "200"}
    log = tmp_path / "settler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infrastructure.cli", "settler", "--eth-rpc", ANVIL_URL,
             "--contract", contract.address, "--operator-seed", f"parsec-metrics/{tag}/operator",
             "--interval", "0.2", "--start-block", str(w3.eth.block_number)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        first = scrape_until(port, lambda s: value(s, "parsec_settler_passes_total") >= 1, 90, "a settler pass")
        time.sleep(1)
        later = scrape_until(port, lambda s: value(s, "parsec_settler_passes_total")
                             > value(first, "parsec_settler_passes_total"), 30, "more passes")
        assert value(later, "parsec_settler_pass_errors_total") == 0
        assert value(later, "parsec_settler_pass_seconds_count") == value(later, "parsec_settler_passes_total")
        assert value(later, "parsec_settler_open_intents") == 0
    finally:
        stop_process(proc)
    assert f"settler metrics served at http://127.0.0.1:{port}/metrics" in log.read_text()
