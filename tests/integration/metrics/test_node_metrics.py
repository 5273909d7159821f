"""A running node's /metrics, scraped over HTTP while it works: the counters move.

Given a `parsec node` process started with --metrics-port on a free loopback port, when payments
arrive (one of them twice, one garbage, one overspending) then /metrics shows them accepted,
duplicate and refused by reason; it owns every partition, and when a second node joins the group
its count of partitions owned goes down to its share.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.node import Sender
from infrastructure.node.messages import channel_key, partition_of
from infrastructure.tools.workload import make_channels
from tests.integration.node.harness import make_payments, node_process, open_channels, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """Every sample of the node's /metrics by (name, labels); None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(port: int, done: Callable[[dict], bool], timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = scrape(port)
        if last is not None and done(last):
            return last
        time.sleep(0.5)
    parsec = {k: v for k, v in (last or {}).items() if k[0].startswith("parsec_")}
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last scrape: {parsec}")


def test_a_scrape_during_the_run_shows_the_counters_and_the_partitions_move(node_config, tmp_path, monkeypatch):
    config = node_config()
    port = free_port()
    monkeypatch.setenv("PARSEC_METRICS_PORT", str(port))  # the node's settings come from its environment
    plans = make_channels("metrics", 3)
    payer, overspender = plans[:2], plans[2]
    sender = Sender(config)  # creates the topics before the node
    log = tmp_path / "node-1.log"
    first = node_process(config, "metrics-1", log)
    second = None
    try:
        scrape_until(port, lambda s: value(s, "parsec_node_partitions_owned") == config.partitions, 60,
                     "the node to own every partition")

        open_channels(sender, plans)
        payments = make_payments(payer, 30, "metrics")
        for tx in payments:
            sender.payment(tx)
        sender.payment(payments[0]).get(timeout=15)  # the same bytes again: a duplicate
        p = partition_of(overspender.channel_id, config.partitions)
        sender.raw(config.inbound_topic, p, channel_key(overspender.channel_id), b"{not a payment").get(timeout=15)
        sender.payment(overspender.pay(10**20)).get(timeout=15)  # more than its deposit of 1 ETH

        samples = scrape_until(
            port,
            lambda s: (value(s, "parsec_node_payments_accepted_total") >= 30
                       and value(s, "parsec_node_payments_duplicate_total") >= 1
                       and value(s, "parsec_node_rejected_total", reason="MalformedMessage", source="payment") >= 1
                       and value(s, "parsec_node_rejected_total", reason="Overspend", source="payment") >= 1),
            60, "the accepted, duplicate and rejected counters")
        assert value(samples, "parsec_node_payments_accepted_total") == 30
        assert value(samples, "parsec_node_payments_duplicate_total") == 1
        assert value(samples, "parsec_node_payments_read_total") == 33
        assert value(samples, "parsec_node_control_requests_read_total") == 3  # the opens
        assert value(samples, "parsec_node_batch_records_count") >= 1
        assert value(samples, "parsec_node_batch_records_sum") == 36  # every record in some batch
        assert value(samples, "parsec_node_commit_seconds_count") >= 1
        lag = scrape_until(port, lambda s: all(("parsec_node_partition_lag", (("partition", str(q)), ("topic", t)))
                                               in s for q in range(config.partitions) for t in ("inbound", "control")),
                           15, "a lag for each owned partition")
        assert all(value(lag, "parsec_node_partition_lag", topic="inbound", partition=str(q)) == 0
                   for q in range(config.partitions))  # everything read was processed
        assert value(lag, "parsec_node_reorder_window_transactions", partition=str(p)) == 0

        # a second node joins the group: the first one's partitions are shared out
        monkeypatch.setenv("PARSEC_METRICS_PORT", "0")
        second = node_process(config, "metrics-2", tmp_path / "node-2.log")
        shared = scrape_until(port, lambda s: value(s, "parsec_node_partitions_owned") == config.partitions // 2,
                              90, "the first node to own half the partitions")
        assert value(shared, "parsec_node_assignments_total") >= 2
    finally:
        if second is not None:
            stop_process(second)
        stop_process(first)
        sender.close()
    assert f"node metrics served at http://127.0.0.1:{port}/metrics" in log.read_text()
