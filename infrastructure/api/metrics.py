"""The API's Prometheus metrics: requests by route, method and status; latency by route.

Routes are labelled by their template (``/v1/channels/{channel_id}``), never by the path a
client sent, so the number of series stays fixed. ``/metrics`` itself is not counted. The
metrics are on prometheus_client's default registry, beside the node's and the settler's
(``infrastructure/metrics.py``), so one scrape of ``/metrics`` gets them all.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter("parsec_api_requests_total", "HTTP requests the API answered, by route, method and status",
                   ("route", "method", "status"))
LATENCY = Histogram("parsec_api_request_duration_seconds",
                    "Seconds from a request's arrival to its response's start (streams: to their first byte)",
                    ("route", "method"),
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
PRODUCED = Counter("parsec_api_produced_total", "Signed messages the API produced to the cluster, by kind",
                   ("kind",))
REFUSED = Counter("parsec_api_refused_total", "Requests the API refused, by reason (the ParsecError class name)",
                  ("reason",))

UNMATCHED = "unmatched"


def route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class MetricsMiddleware:
    """Counts every HTTP request but those under ``skip`` (the scrape itself)."""

    def __init__(self, app: Any, skip: tuple[str, ...] = ("/metrics",)) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        timed = False

        def observe() -> None:
            nonlocal timed
            if not timed:
                timed = True
                LATENCY.labels(route_of(scope), scope["method"]).observe(time.perf_counter() - started)

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                observe()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            observe()
            REQUESTS.labels(route_of(scope), scope["method"], str(status)).inc()
