"""ABI and bytecode compiled by ``scripts/compile-contracts``, shipped inside the package.

The artifacts live in ``infrastructure/chain/contracts/*.json`` (the one copy: the script writes
there, its ``--check`` in CI compares there) and are read as package resources, so an installed
wheel finds them wherever it is installed, without a source checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

ARTIFACTS = files("infrastructure.chain") / "contracts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: str


@cache
def load_artifact(name: str) -> Artifact:
    resource = ARTIFACTS / f"{name}.json"
    if not resource.is_file():
        raise FileNotFoundError(f"the compiled contract {name} is missing from the package ({resource}); "
                                "run scripts/compile-contracts")
    raw = json.loads(resource.read_text(encoding="utf-8"))
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        compiler=raw["compiler"]["version"],
    )
