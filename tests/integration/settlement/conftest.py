"""Fixtures for the settlement tests: a node with its executor and watcher on the ``chain`` fixture."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.contract.chain import Chain, deployed_chain, party
from tests.integration.settlement.harness import Node


@pytest.fixture(
    scope="session",
    params=["eth-tester", pytest.param("anvil", marks=[pytest.mark.integration, pytest.mark.chain])],
)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """The settlement tests' own deployment on each backend: eth-tester's log queries walk every
    block, so sharing the contract suites' chain (thousands of blocks) would make each watcher
    poll and each lookup of a channel's events slower with every test before it."""
    yield from deployed_chain(request.param)


@pytest.fixture
def node(chain: Chain, tmp_path: Path) -> Node:
    tag = uuid.uuid4().hex[:8]  # fresh parties per test: operators are per participant, contract-wide
    operator, a, b = (party(chain.w3, f"parsec-settlement-tests/{tag}/{n}", ether=5) for n in ("node", "a", "b"))
    chain.channels.set_operator(a.wallet, operator.address)
    chain.channels.set_operator(b.wallet, operator.address)
    n = Node(chain, tmp_path / "events.sqlite", operator, a, b, start_block=int(chain.w3.eth.block_number) + 1)
    n.start()
    yield n
    n.service.close()
