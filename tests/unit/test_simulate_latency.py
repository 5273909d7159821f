"""The simulator's latency figures: the whole, and the whole split at the event record's timestamp."""

from infrastructure.tools.simulate import SimResult


def test_percentiles_of_the_latency_and_of_its_parts():
    r = SimResult(mode="kafka", channels=1, latencies_ms=[float(n) for n in range(1, 101)],
                  to_event_ms=[n * 0.75 for n in range(1, 101)], event_to_read_ms=[n * 0.25 for n in range(1, 101)])
    assert r.percentiles() == {"p50": 51.0, "p90": 91.0, "p99": 100.0, "max": 100.0, "n": 100}
    split = r.latency_split()
    assert split["to_event"]["p50"] == 38.25 and split["event_to_read"]["p50"] == 12.75
    assert split["to_event"]["n"] == split["event_to_read"]["n"] == 100
    assert r.to_dict()["latency_split_ms"] == split


def test_no_split_without_record_timestamps():
    """Embedded runs (no Kafka record) and a broker that gives no timestamps: no split, not zeros."""
    r = SimResult(mode="embedded", channels=1, latencies_ms=[1.0, 2.0])
    assert r.latency_split() == {} and r.to_dict()["latency_split_ms"] == {}
    assert SimResult(mode="kafka", channels=1).percentiles() == {}
