"""Prometheus metrics of the node and the settler: every metric defined once, here.

Names follow Prometheus conventions: the ``parsec_`` prefix and the process (``node``, ``settler``),
``_total`` for counters, ``_seconds`` for durations, base units (seconds, gas). Labels take a small,
fixed set of values: a refusal's reason (a ``ParsecError`` class name), an intent's kind, a topic's
role, a partition number (bounded by the partition count). Never a channel id, an address or a
transaction hash: each new value is a new time series kept for ever by Prometheus.

The node updates its counters once per batch (``record_batch``) from the ``BatchReport`` it builds
anyway, never once per payment: the cost is a few microseconds per Kafka transaction. Nothing here
is served unless ``serve_metrics`` is called (``parsec node|settler --metrics-port``); the API
mounts the same registry on its own ``/metrics``. docs/operations.md ("Metrics") lists them all (a
unit test keeps the two in step).

The metrics live in prometheus_client's default registry, which also has the client's process
collectors (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ...).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("parsec.metrics")

# a batch is one Kafka transaction: from well under a millisecond (a few records) to seconds (a
# full poll of max_poll_records, or a broker that is slow to commit)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# records per batch: 1 up to the default max_poll_records (2000) and beyond
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# a settler pass reads the log, sends, polls receipts and the chain: milliseconds to tens of seconds
_PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# ---------------------------------------------------------------------------- the node
PAYMENTS_READ = Counter(
    "parsec_node_payments_read_total", "payment records read from the inbound topic (whatever their outcome)")
PAYMENTS_ACCEPTED = Counter(
    "parsec_node_payments_accepted_total", "payments applied to their channel (PaymentAccepted recorded)")
PAYMENTS_DUPLICATE = Counter(
    "parsec_node_payments_duplicate_total", "payments already applied, seen again (a no-op: DUPLICATE)")
REJECTED = Counter(
    "parsec_node_rejected_total",
    "messages refused to the rejected topic, by reason (a ParsecError class name) and source (payment, control)",
    ["reason", "source"])
CONTROL_READ = Counter(
    "parsec_node_control_requests_read_total", "control requests and settler notices read from the control topic")
CHECKPOINTS_REQUESTED = Counter(
    "parsec_node_checkpoints_requested_total",
    "CheckpointRequested events recorded (every m-th sequence, on the checkpoint timeout, or on request)")
SETTLEMENTS_REQUESTED = Counter(
    "parsec_node_settlements_requested_total", "SettlementRequested events recorded")
DISPUTES_REQUESTED = Counter(
    "parsec_node_disputes_requested_total", "DisputeRequested events recorded")
BATCH_RECORDS = Histogram(
    "parsec_node_batch_records", "records (payments and control requests) per batch, i.e. per Kafka transaction",
    buckets=_SIZE_BUCKETS)
BATCH_SECONDS = Histogram(
    "parsec_node_batch_seconds", "seconds to apply and commit one batch (verification, the channels, the commit)",
    buckets=_LATENCY_BUCKETS)
COMMIT_SECONDS = Histogram(
    "parsec_node_commit_seconds",
    "seconds to commit one batch's Kafka transaction (events, rejections, positions, group offsets)",
    buckets=_LATENCY_BUCKETS)
BATCHES_FAILED = Counter(
    "parsec_node_batches_failed_total",
    "batches not committed (the partition's worker is rebuilt from the log and the batch is read again)")
PARTITIONS_OWNED = Gauge(
    "parsec_node_partitions_owned", "partitions this node owns with a worker (its writer acquired)")
PARTITIONS_ASSIGNED = Gauge(
    "parsec_node_partitions_assigned", "partitions the consumer group gave this node (owned or being built)")
ASSIGNMENTS = Counter(
    "parsec_node_assignments_total", "assignments the consumer group gave this node (each rebalance it took part in)")
LAG = Gauge(
    "parsec_node_partition_lag",
    "records of an owned partition not yet processed: its high watermark minus the worker's next offset",
    ["topic", "partition"])
WINDOW_HELD = Gauge(
    "parsec_node_reorder_window_transactions",
    "payments held in an owned partition's reorder window, waiting for their predecessors", ["partition"])

# ---------------------------------------------------------------------------- the settler
INTENTS_RAISED = Counter(
    "parsec_settler_intents_raised_total",
    "settlement intents taken on (kind: checkpoint, close, settle, dispute, update)", ["kind"])
TRANSACTIONS_SENT = Counter(
    "parsec_settler_transactions_sent_total", "contract transactions signed, saved and broadcast", ["kind"])
INTENTS_CONFIRMED = Counter(
    "parsec_settler_intents_confirmed_total",
    "intents the chain confirmed (by this settler's transaction or one already on-chain)", ["kind"])
INTENTS_FAILED = Counter(
    "parsec_settler_intents_failed_total",
    "intent attempts that failed (a revert, a reverted receipt, a reused nonce); retried up to max_attempts",
    ["kind"])
INTENTS_GIVEN_UP = Counter(
    "parsec_settler_intents_given_up_total", "intents given up after their last attempt failed", ["kind"])
GAS_USED = Counter(
    "parsec_settler_gas_used_total",
    "gas (units, not wei) used by the mined transactions this settler sent, reverted ones included", ["kind"])
OPEN_INTENTS = Gauge(
    "parsec_settler_open_intents", "intents pending or submitted (not yet confirmed, failed for good or superseded)")
PASSES = Counter(
    "parsec_settler_passes_total", "settler passes completed (follow the log, send, collect receipts, watch)")
PASS_ERRORS = Counter(
    "parsec_settler_pass_errors_total", "settler passes that failed (the next one reloads from the settler's store)")
PASS_SECONDS = Histogram(
    "parsec_settler_pass_seconds", "seconds one settler pass took", buckets=_PASS_BUCKETS)
WATCHED_BLOCK = Gauge(
    "parsec_settler_watched_block", "the last block whose contract events the chain watcher handled")

# every Parsec metric, for the docs test and for code that walks them
ALL: tuple[Any, ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Counter | Gauge | Histogram))

_SETTLEMENT_EVENTS = {"CheckpointRequested": CHECKPOINTS_REQUESTED, "SettlementRequested": SETTLEMENTS_REQUESTED,
                      "DisputeRequested": DISPUTES_REQUESTED}


def metric_names() -> list[str]:
    """The exposed name of every Parsec metric (a counter's with its ``_total``)."""
    out = []
    for metric in ALL:
        (family,) = metric.describe()
        out.append(family.name + ("_total" if family.type == "counter" else ""))
    return sorted(out)


def record_batch(report: Any, seconds_commit: float | None) -> None:
    """One batch's figures (a ``infrastructure.node.partition.BatchReport``): a handful of updates."""
    if report.inbound:
        PAYMENTS_READ.inc(report.inbound)
    if report.accepted:
        PAYMENTS_ACCEPTED.inc(report.accepted)
    if report.duplicates:
        PAYMENTS_DUPLICATE.inc(report.duplicates)
    if report.control:
        CONTROL_READ.inc(report.control)
    if report.rejected:
        control = report.rejected_control
        for reason, n in report.rejected.items():
            from_control = control.get(reason, 0)
            if n - from_control:
                REJECTED.labels(reason, "payment").inc(n - from_control)
            if from_control:
                REJECTED.labels(reason, "control").inc(from_control)
    if report.events:
        for name, counter in _SETTLEMENT_EVENTS.items():
            n = report.events.get(name)
            if n:
                counter.inc(n)
    records = report.inbound + report.control
    if records:
        BATCH_RECORDS.observe(records)
        BATCH_SECONDS.observe(report.seconds)
    if seconds_commit is not None:
        COMMIT_SECONDS.observe(seconds_commit)


def forget_partition(partition: int) -> None:
    """A partition this node no longer owns: its series stop (a stale lag would page someone)."""
    for gauge, labels in ((LAG, ("inbound", str(partition))), (LAG, ("control", str(partition))),
                          (WINDOW_HELD, (str(partition),))):
        try:
            gauge.remove(*labels)
        except KeyError:
            pass


def serve_metrics(port: int, host: str = "127.0.0.1") -> tuple[str, int]:
    """Serve ``/metrics`` over HTTP in a daemon thread; returns the (host, port) bound.

    Loopback by default: the metrics say how busy a node is and which refusals it sees; expose
    them on another interface only behind a firewall or a scraping proxy. Port 0 binds a free port
    (tests); the settings' 0 means off and is handled by the caller (``serve_configured``)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    bound = server.server_address
    return str(bound[0]), int(bound[1])


_served: dict[tuple[str, int], tuple[str, int]] = {}
_served_lock = threading.Lock()


def serve_configured(settings: Any, what: str) -> tuple[str, int] | None:
    """``serve_metrics`` on the settings' ``metrics_host``/``metrics_port`` (0: off), logging where."""
    if not settings.metrics_port:
        return None
    key = (settings.metrics_host, settings.metrics_port)
    with _served_lock:
        if key not in _served:  # a process serves one registry once per address
            _served[key] = serve_metrics(settings.metrics_port, settings.metrics_host)
        host, port = _served[key]
    log.info("%s metrics served at http://%s:%d/metrics", what, host, port)
    return host, port


__all__ = ["ALL", "metric_names", "record_batch", "serve_configured", "serve_metrics"]
