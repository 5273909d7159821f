"""Revert data read back from eth-tester's error messages, whatever bytes the revert carries."""

import pytest

from infrastructure.chain.sender import _literal_revert_data


@pytest.mark.parametrize(
    "data",
    [b"\x08\xc3y\xa0", b"\x12b'x", b'\x12b"x', b"b'b\"", b"\x00" * 68],
    ids=["plain", "contains b'", 'contains b"', "both", "zeros"],
)
def test_the_revert_bytes_are_the_first_literal_that_parses(data: bytes) -> None:
    # a custom error's selector and arguments can hold any byte, quotes and 'b' included
    assert _literal_revert_data(Exception(f"execution reverted: {data!r}")) == data


def test_no_literal_no_data() -> None:
    assert _literal_revert_data(Exception("execution reverted")) is None
