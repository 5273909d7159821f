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


def test_the_depth_check_holds_whatever_the_recursion_limit(monkeypatch):
    import sys

    # py-evm and py-ecc raise the interpreter's recursion limit when imported: the check must not rely on it
    monkeypatch.setattr(sys, "getrecursionlimit", lambda: 10**6)
    with pytest.raises(MalformedMessage, match="nested too deeply"):
        SignedInvoice.from_json(b"[" * 33 + b"]" * 33)


def test_brackets_inside_strings_are_not_nesting():
    from domain.protocol import check_json_depth

    check_json_depth(b'{"invoiceType": "' + b"[{" * 200 + b'\\" ]}"}')  # text, not structure: no refusal
