"""`parsec api`: prints its OpenAPI document; never serves the write endpoints without a token by accident."""

from __future__ import annotations

import json

from infrastructure.api.app import openapi_document
from infrastructure.cli import main


def test_openapi_flag_prints_the_document(capsys):
    assert main(["api", "--openapi"]) == 0
    assert json.loads(capsys.readouterr().out) == openapi_document()


def test_no_token_configured_refuses_to_start(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("PARSEC_API_TOKENS", raising=False)
    monkeypatch.delenv("PARSEC_API_TOKEN_FILE", raising=False)
    monkeypatch.setenv("PARSEC_DATA_DIR", str(tmp_path))
    assert main(["api", "--port", "1"]) == 64  # usage: a token must be configured
    assert "--insecure-no-token" in capsys.readouterr().err
