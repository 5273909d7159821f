"""Health, readiness with one service down, the rate limit, and the metrics, on the real services."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from infrastructure import bootstrap
from infrastructure.api.limits import RateLimiter
from tests.integration.api.harness import TOKEN, auth, deployment

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_readyz_names_the_service_that_is_down(kafka_bootstrap, tmp_path):
    for dep in deployment(kafka_bootstrap, tmp_path, eth_rpc="http://127.0.0.1:9", api_ready_timeout=1.5):
        with TestClient(dep.app()) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            resp = client.get("/readyz")
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["status"] == "unready" and body["failed"] == ["chain"]
        assert body["checks"]["broker"]["ok"] and body["checks"]["database"]["ok"]
        assert "Connection refused" in body["checks"]["chain"]["detail"] or body["checks"]["chain"]["detail"]
        no_broker = dep.settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})  # nothing listens there
        with TestClient(bootstrap.api_app(no_broker)) as client:
            resp = client.get("/readyz")
        assert resp.status_code == 503 and "broker" in resp.json()["failed"]
        assert resp.json()["checks"]["broker"]["seconds"] < 5  # a short timeout, not the client's default


@pytest.mark.chain
def test_readyz_is_ready_when_broker_database_and_chain_answer(kafka_bootstrap, tmp_path, pg_dsn):
    rpc = os.environ.get("PARSEC_ANVIL_RPC") or "http://127.0.0.1:8545"
    for dep in deployment(kafka_bootstrap, tmp_path, eth_rpc=rpc, postgres_dsn=pg_dsn):
        with TestClient(dep.app()) as client:
            resp = client.get("/readyz")
        assert resp.status_code == 200, resp.text
        assert resp.json()["failed"] == [] and "chain id" in resp.json()["checks"]["chain"]["detail"]
        assert resp.json()["checks"]["database"]["detail"].startswith("postgres")


def test_a_client_over_its_rate_gets_429_with_retry_after(dep):
    dep.open()
    dep.project()
    with TestClient(dep.app(limiter=RateLimiter(rate=0.5, burst=2))) as client:
        assert [client.get("/v1/channels", headers=auth()).status_code for _ in range(2)] == [200, 200]
        resp = client.get("/v1/channels", headers=auth())
        assert resp.status_code == 429 and resp.json()["reason"] == "RateLimited"
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert int(resp.headers["retry-after"]) >= 1
        # another client (no token: its address; here another token) has its own bucket
        assert client.get("/v1/channels", headers=auth("someone-else")).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes are never limited
        assert client.get("/metrics").status_code == 200


def test_metrics_count_requests_by_route_and_status(dep):
    dep.open()
    dep.project()
    with TestClient(dep.app()) as client:
        client.get("/v1/channels")
        client.get("/v1/channels/not-a-uuid")
        client.post("/v1/payments", content=b"{}", headers={"Content-Type": "application/json"})
        text = client.get("/metrics").text
    assert 'parsec_api_requests_total{method="GET",route="/v1/channels",status="200"}' in text
    assert 'parsec_api_requests_total{method="GET",route="/v1/channels/{channel_id}",status="422"}' in text
    assert 'parsec_api_requests_total{method="POST",route="/v1/payments",status="401"}' in text
    assert 'parsec_api_refused_total{reason="MissingToken"}' in text
    assert "parsec_api_request_duration_seconds_bucket" in text
    _ = TOKEN


def test_the_api_refuses_to_start_without_a_token_unless_told(kafka_bootstrap, tmp_path):
    for dep in deployment(kafka_bootstrap, tmp_path, api_tokens=None):
        with pytest.raises(ValueError, match="--insecure-no-token"):
            dep.app()
        with TestClient(dep.app(insecure_no_token=True)) as client:  # development: open
            assert client.get("/healthz").status_code == 200
