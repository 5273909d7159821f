"""The latency chart's data: the nodes' own Prometheus histograms, sampled by the dashboard.

A payment's time inside a node is one batch: verified, ordered, applied and committed in one
Kafka transaction (``parsec_node_batch_seconds``). Every ``interval`` the sampler scrapes each
node's ``/metrics``, subtracts the previous scrape's cumulative buckets and reads p50 and p99 of
the batches completed in between (the same estimate as PromQL's ``histogram_quantile`` over a
rate: linear inside the bucket), and the payments accepted per second.

The samples are the last hour, in memory: they are a view of the nodes' metrics, which stay the
source (a Prometheus server keeps them for longer). A dashboard restarted starts a fresh chart
and loses nothing else; two dashboards sample independently.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("parsec.dashboard")

BATCH = "parsec_node_batch_seconds"
ACCEPTED = "parsec_node_payments_accepted_total"


@dataclass(frozen=True)
class Sample:
    at: float  # unix seconds
    batches: int  # batches the nodes completed since the previous sample
    accepted_per_s: float
    p50_ms: float | None  # None: no batch in the interval
    p99_ms: float | None


@dataclass
class Scrape:
    """One node's cumulative counters at one moment."""

    buckets: dict[float, float]  # upper bound (le) -> cumulative count
    count: float
    accepted: float


def parse(text: str) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    count = accepted = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == f"{BATCH}_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == f"{BATCH}_count":
                count += s.value
            elif s.name == ACCEPTED:
                accepted += s.value
    return Scrape(buckets, count, accepted)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``q`` of a histogram's (non-cumulative-decreasing) cumulative buckets, linear inside a bucket."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        at = buckets[le]
        if at >= rank:
            if math.isinf(le):  # beyond the last finite bound: say the last finite bound
                return lower
            span = at - below
            return lower + (le - lower) * ((rank - below) / span if span > 0 else 1.0)
        lower, below = le, at
    return lower


def delta(now: Iterable[Scrape], before: Iterable[Scrape]) -> Scrape:
    """The sum over nodes of what happened between two scrapes (a restarted node's counters reset:
    its current values are what it did since)."""
    out = Scrape({}, 0.0, 0.0)
    for n, b in zip(now, before, strict=True):
        reset = n.count < b.count
        base = Scrape({}, 0.0, 0.0) if reset else b
        for le, v in n.buckets.items():
            out.buckets[le] = out.buckets.get(le, 0.0) + v - base.buckets.get(le, 0.0)
        out.count += n.count - base.count
        out.accepted += n.accepted - base.accepted
    return out


class NodeMetricsSampler:
    """Scrapes ``urls`` every ``interval`` seconds on its own thread; ``samples()`` is the last hour."""

    def __init__(self, urls: list[str], interval: float = 5.0, keep: float = 3600.0, timeout: float = 2.0) -> None:
        self.urls, self.interval, self.timeout = urls, interval, timeout
        self._samples: deque[Sample] = deque(maxlen=max(2, int(keep / interval)))
        self._last: tuple[float, list[Scrape]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # the last scrape's failure, shown on the overview

    def scrape(self) -> list[Scrape]:
        out = []
        for url in self.urls:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # the operator's configured URL
                out.append(parse(resp.read().decode("utf-8")))
        return out

    def sample(self, now: float | None = None) -> Sample | None:
        """One scrape of every node; a sample once there are two scrapes to compare."""
        now = time.time() if now is None else now
        try:
            scrapes = self.scrape()
        except Exception as err:  # a node down: say so, keep the chart, try again next time
            self.error = f"{type(err).__name__}: {err}"
            self._last = None
            return None
        self.error = None
        previous, self._last = self._last, (now, scrapes)
        if previous is None:
            return None
        d = delta(scrapes, previous[1])
        seconds = max(now - previous[0], 1e-9)
        p50, p99 = quantile(0.5, d.buckets), quantile(0.99, d.buckets)
        s = Sample(now, int(round(d.count)), d.accepted / seconds,
                   None if p50 is None else p50 * 1000, None if p99 is None else p99 * 1000)
        self._samples.append(s)
        return s

    def samples(self) -> list[Sample]:
        return list(self._samples)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.sample()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="parsec-dashboard-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + self.timeout * len(self.urls) + 1)
