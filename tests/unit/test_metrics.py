"""The metrics: documented one for one, named by Prometheus' conventions, counted once per batch."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from prometheus_client import REGISTRY

from infrastructure import metrics
from infrastructure.node.partition import BatchReport

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# what a label must never be: each new value is a new series kept for ever
UNBOUNDED_LABELS = {"channel", "channel_id", "address", "buyer", "supplier", "tx", "tx_hash", "hash", "sequence"}


def _documented() -> dict[str, tuple[str, set[str]]]:
    """The "Metrics" section's table: name -> (type, labels)."""
    text = DOCS.read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|([^|]*)\|", section, flags=re.M)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def _defined() -> dict[str, tuple[str, set[str]]]:
    out = {}
    for metric in metrics.ALL:
        (family,) = metric.describe()
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = (family.type, set(metric._labelnames))
    return out


def test_every_metric_is_documented_and_every_documented_metric_exists():
    documented, defined = _documented(), _defined()
    assert sorted(documented) == sorted(defined), (
        f"only in infrastructure/metrics.py: {sorted(set(defined) - set(documented))}; "
        f"only in docs/operations.md: {sorted(set(documented) - set(defined))}")
    for name, (kind, labels) in defined.items():
        assert documented[name] == (kind, labels), f"{name}: the docs say {documented[name]}, the code {kind, labels}"


def test_names_and_labels_follow_the_conventions():
    for name, (kind, labels) in _defined().items():
        assert name.startswith(("parsec_node_", "parsec_settler_", "parsec_api_")), f"{name}: parsec_<process>_"
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith(("_seconds", "_records")), f"{name}: a histogram names its unit"
        assert not labels & UNBOUNDED_LABELS, f"{name}: a label without a bound {labels & UNBOUNDED_LABELS}"
    assert metrics.metric_names() == sorted(_defined())


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_is_counted_once_with_its_refusals_by_reason_and_source():
    before = {n: _value(n) for n in ("parsec_node_payments_read_total", "parsec_node_payments_accepted_total",
                                     "parsec_node_payments_duplicate_total", "parsec_node_checkpoints_requested_total",
                                     "parsec_node_batch_records_count", "parsec_node_batch_records_sum",
                                     "parsec_node_commit_seconds_count")}
    wrong = _value("parsec_node_rejected_total", reason="WrongSigner", source="payment")
    unsigned = _value("parsec_node_rejected_total", reason="UnsignedRequest", source="control")
    report = BatchReport(partition=3, control=2, inbound=10, accepted=6, duplicates=1, held=0,
                         rejected=Counter({"WrongSigner": 3, "UnsignedRequest": 1}),
                         rejected_control=Counter({"UnsignedRequest": 1}),
                         events=Counter({"PaymentAccepted": 6, "CheckpointRequested": 2}), seconds=0.004)
    metrics.record_batch(report, 0.002)
    assert _value("parsec_node_payments_read_total") - before["parsec_node_payments_read_total"] == 10
    assert _value("parsec_node_payments_accepted_total") - before["parsec_node_payments_accepted_total"] == 6
    assert _value("parsec_node_payments_duplicate_total") - before["parsec_node_payments_duplicate_total"] == 1
    assert _value("parsec_node_checkpoints_requested_total") - before["parsec_node_checkpoints_requested_total"] == 2
    assert _value("parsec_node_rejected_total", reason="WrongSigner", source="payment") - wrong == 3
    assert _value("parsec_node_rejected_total", reason="UnsignedRequest", source="control") - unsigned == 1
    assert _value("parsec_node_batch_records_count") - before["parsec_node_batch_records_count"] == 1
    assert _value("parsec_node_batch_records_sum") - before["parsec_node_batch_records_sum"] == 12
    assert _value("parsec_node_commit_seconds_count") - before["parsec_node_commit_seconds_count"] == 1


def test_an_empty_poll_is_not_a_batch():
    before = _value("parsec_node_batch_records_count"), _value("parsec_node_commit_seconds_count")
    metrics.record_batch(BatchReport(partition=0), None)
    assert (_value("parsec_node_batch_records_count"), _value("parsec_node_commit_seconds_count")) == before


def test_a_partition_no_longer_owned_stops_being_exported():
    metrics.LAG.labels("inbound", "7").set(5)
    metrics.WINDOW_HELD.labels("7").set(2)
    metrics.forget_partition(7)
    assert REGISTRY.get_sample_value("parsec_node_partition_lag", {"topic": "inbound", "partition": "7"}) is None
    assert REGISTRY.get_sample_value("parsec_node_reorder_window_transactions", {"partition": "7"}) is None
    metrics.forget_partition(7)  # twice is harmless


def test_metrics_are_off_unless_a_port_is_given():
    from infrastructure.settings import Settings

    assert metrics.serve_configured(Settings.from_env({}), "node") is None
    s = Settings.from_env({"PARSEC_METRICS_PORT": "9108"})
    assert (s.metrics_host, s.metrics_port) == ("127.0.0.1", 9108)
