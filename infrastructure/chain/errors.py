"""Chain errors with the contract's revert reason decoded.

The channel contract reverts with Solidity custom errors (``error StaleProof(uint64,uint64)``);
they are cheaper than strings and carry the values. A revert surfaces here as
``ContractReverted`` with the error's name and its arguments, whichever node answered.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


class ChainError(Exception):
    """Something went wrong talking to the chain."""


class ChainUnavailable(ChainError, ConnectionError):
    """No Ethereum node answers at the configured URL (a ConnectionError: the service, not the input;
    the CLI exits with its 'unreachable' status)."""


class ContractReverted(ChainError):
    """A call or transaction reverted; ``name`` is the custom error (or ``Error``/``Panic``)."""

    def __init__(self, name: str, args: dict[str, Any], data: bytes, operation: str = "") -> None:
        self.name = name
        self.error_args = args
        self.data = data
        self.operation = operation
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}reverted with {name}({shown})")


class TransactionFailed(ChainError):
    """A mined transaction has status 0 and no revert data could be recovered."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class RevertDecoder:
    """Decodes revert data using the custom errors declared in a contract ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            self._errors[selector] = (item["name"], names, types)

    def decode(self, data: bytes, operation: str = "") -> ContractReverted:
        selector, body = data[:4], data[4:]
        if selector == _ERROR_STRING:
            (reason,) = decode(["string"], body)
            return ContractReverted("Error", {"reason": reason}, data, operation)
        if selector == _PANIC:
            (code,) = decode(["uint256"], body)
            return ContractReverted("Panic", {"code": hex(code)}, data, operation)
        known = self._errors.get(selector)
        if known is None:
            return ContractReverted("Unknown", {"data": data}, data, operation)
        name, names, types = known
        return ContractReverted(name, dict(zip(names, decode(types, body), strict=True)), data, operation)


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return item["type"]


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data of a failed call, whichever backend raised it.

    A JSON-RPC node (anvil) gives web3 a ContractLogicError with hex ``data``; the in-process
    eth-tester raises its own TransactionFailed whose cause carries the raw bytes.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        seen = seen.__cause__ or seen.__context__
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes):
        return data
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message.startswith("0x"):
        try:
            return bytes.fromhex(message[2:])
        except ValueError:
            return None
    return None
