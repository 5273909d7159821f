"""Hostile bodies get a problem+json refusal before anything is read or produced (no service needed:
each is refused before the channel lookup)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from infrastructure import bootstrap
from infrastructure.settings import Settings

AUTH = {"Authorization": "Bearer t", "Content-Type": "application/json"}


@pytest.fixture
def client(tmp_path):
    settings = Settings(kafka_bootstrap="127.0.0.1:1", event_store="sqlite", data_dir=tmp_path,
                        api_tokens=SecretStr("t"), api_rate=0.0, postgres_dsn=None)
    return TestClient(bootstrap.api_app(settings))


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b'{"a":' * 9000 + b"1" + b"}" * 9000, 400, "MalformedMessage"),  # deeper than the decoder recurses
    (b'{"a": "\xff\xfe"}', 400, "MalformedMessage"),
    (b"[1, 2, 3]", 422, "MalformedMessage"),
    (b"null", 422, "MalformedMessage"),
    (b'{"price": ' + b"9" * 5000 + b"}", 400, "MalformedMessage"),
    (b'{"price": NaN}', 422, "InvalidAmount"),
])
def test_a_hostile_payment_body_is_refused_with_its_reason(client, body, status, reason):
    r = client.post("/v1/payments", content=body, headers=AUTH)
    assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["reason"] == reason


def test_a_hostile_cursor_is_an_invalid_parameter(client):
    import base64

    cursor = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode().rstrip("=")
    r = client.get(f"/v1/channels?cursor={cursor}")
    assert r.status_code == 422 and r.json()["reason"] == "InvalidParameter"
