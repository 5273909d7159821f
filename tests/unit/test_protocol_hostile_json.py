"""Hostile JSON nested deeper than the decoder recurses is a refusal with a reason, never a crash."""

from __future__ import annotations

import pytest

from domain.errors import MalformedMessage
from domain.protocol import SignedInvoice
from infrastructure.node.messages import parse_control

DEEP = [b"[" * 30000 + b"]" * 30000, b'{"a":' * 9000 + b"1" + b"}" * 9000]  # each under the 64 KiB limit


@pytest.mark.parametrize("body", DEEP, ids=["array", "object"])
def test_deeply_nested_json_is_a_malformed_message(body):
    with pytest.raises(MalformedMessage, match="nested too deeply"):
        SignedInvoice.from_json(body)
    with pytest.raises(MalformedMessage, match="nested too deeply"):
        parse_control(body)
