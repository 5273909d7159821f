"""ABI and bytecode compiled by ``scripts/compile-contracts`` (committed in contracts/build)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parents[2] / "contracts" / "build"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: str


@cache
def load_artifact(name: str) -> Artifact:
    path = BUILD_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run scripts/compile-contracts")
    raw = json.loads(path.read_text())
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        compiler=raw["compiler"]["version"],
    )
