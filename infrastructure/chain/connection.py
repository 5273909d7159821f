"""Connecting to a chain: the in-process eth-tester chain (default) or a JSON-RPC node (anvil).

Also the few things tests and simulations need that differ per backend: moving the chain's
clock forward and funding an account from the node's unlocked developer account.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from domain.crypto import PrivateKey
from infrastructure.chain.errors import ChainUnavailable

Wallet = LocalAccount
"""An account that signs its own transactions (the node never holds the keys)."""


def connect(rpc_url: str | None = None, *, timeout: float = 30.0) -> Web3:
    """A Web3 on the embedded py-evm chain when ``rpc_url`` is None, else on that node."""
    if rpc_url is None:
        # imported here: eth-tester and py-evm are the optional chain-tester extra
        from web3.providers.eth_tester import EthereumTesterProvider

        return Web3(EthereumTesterProvider())
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    if not w3.is_connected():
        raise ChainUnavailable(f"no Ethereum node answers at {rpc_url} (start one with scripts/anvil start)")
    return w3


def is_embedded(w3: Web3) -> bool:
    return type(w3.provider).__name__ == "EthereumTesterProvider"  # by name: eth-tester may not be installed


def wallet(key: PrivateKey) -> Wallet:
    """The transaction-signing account of a domain key (same secp256k1 key, same address)."""
    return Account.from_key(key.secret)


def fund(w3: Web3, address: str, wei: int) -> None:
    """Give ``address`` ``wei`` more on a development chain.

    anvil: ``anvil_setBalance`` (no developer account is drained, however many suites share
    the node). eth-tester: a transfer from its richest unlocked developer account.
    """
    if not is_embedded(w3):
        try:
            current = w3.eth.get_balance(address)
            w3.provider.make_request("anvil_setBalance", [address, hex(current + wei)])
            if w3.eth.get_balance(address) >= current + wei:
                return
        except Exception:  # not anvil: fall back to a transfer
            pass
    richest = max(w3.eth.accounts, key=w3.eth.get_balance)
    tx = w3.eth.send_transaction({"from": richest, "to": address, "value": wei})
    w3.eth.wait_for_transaction_receipt(tx)


def latest_timestamp(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def advance_time(w3: Web3, seconds: int) -> int:
    """Move the chain's clock forward by ``seconds`` and mine a block; return the new timestamp."""
    if is_embedded(w3):
        w3.testing.timeTravel(latest_timestamp(w3) + seconds)
    else:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return latest_timestamp(w3)
