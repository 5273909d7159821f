"""docs/openapi.json is the app's OpenAPI document: regenerate it with `parsec api --openapi`."""

from __future__ import annotations

import json
from pathlib import Path

from infrastructure.api.app import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_openapi_document_is_the_apps():
    committed = json.loads(DOC.read_text())
    assert committed == openapi_document(), (
        "docs/openapi.json differs from the app's OpenAPI document: run "
        "`parsec api --openapi > docs/openapi.json` and commit it"
    )


def test_the_document_names_every_endpoint_and_its_refusals():
    doc = openapi_document()
    paths = doc["paths"]
    for path in ("/v1/payments", "/v1/channels/{channel_id}/checkpoint", "/v1/channels/{channel_id}/settlement",
                 "/v1/channels/{channel_id}/dispute", "/v1/channels", "/v1/channels/{channel_id}",
                 "/v1/channels/{channel_id}/history", "/v1/channels/{channel_id}/settlements",
                 "/v1/participants/{address}/balances", "/v1/events", "/healthz", "/readyz"):
        assert path in paths, path
    pay = paths["/v1/payments"]["post"]
    assert set(pay["responses"]) >= {"202", "400", "401", "404", "413", "415", "422", "429"}
    assert pay["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/v1/channels"]["get"]  # reads need no token
    queued = doc["components"]["schemas"]["PaymentQueued"]["properties"]
    assert set(queued) == {"partition", "offset", "channel", "sequence"}
