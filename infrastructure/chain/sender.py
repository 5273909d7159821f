"""Signing and sending the executor's transactions: one local nonce counter per sender.

The executor needs what ``ChannelContract``'s one-call writes hide: the signed transaction and
its hash *before* it is broadcast (so that "submitted" is durable first and a restart can
re-broadcast the very same bytes), explicit nonces, and receipts looked up later by hash.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import TransactionNotFound

from infrastructure.chain.channels import CALL_REVERTS, ChannelContract
from infrastructure.chain.connection import Wallet
from infrastructure.chain.errors import ChainError, ContractReverted, RevertDecoder, revert_data

log = logging.getLogger("parsec.settlement")


def _literal_revert_data(exc: BaseException) -> bytes | None:
    """eth-tester's ``eth_call`` puts the revert data in its message as a bytes literal."""
    text = str(exc.args[0]) if exc.args else ""
    # the literal is the first b'...' or b"..." that parses: the revert bytes themselves may
    # contain b' or b", so a later mark can be inside the literal
    starts = sorted(i for i in range(len(text) - 1) if text[i] == "b" and text[i + 1] in "'\"")
    for start in starts:
        try:
            value = ast.literal_eval(text[start:])
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, bytes):
            return value
    return None


class NonceTooLow(ChainError):
    """The node has already seen this sender's nonce: the local counter was behind the chain."""


@dataclass(frozen=True)
class PreparedTransaction:
    tx_hash: str
    sender: str
    nonce: int
    raw: bytes


class TransactionSender:
    """Builds, signs and broadcasts contract calls for one wallet, counting nonces locally.

    The counter starts from the chain's pending transaction count and is re-synced from it
    after a nonce error (``resync``); between those it never asks the node, so several
    transactions can be in flight.
    """

    def __init__(self, contract: ChannelContract, wallet: Wallet) -> None:
        self.contract = contract
        self.w3: Web3 = contract.w3
        self.wallet = wallet
        self._decoder = RevertDecoder(contract.contract.abi)
        self._next_nonce: int | None = None
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return self.wallet.address

    def resync(self) -> int:
        self._next_nonce = self.w3.eth.get_transaction_count(self.address, "pending")
        return self._next_nonce

    def prepare(self, fn: Any, operation: str, gas: int | None = None) -> PreparedTransaction:
        """Check the call (a revert surfaces here as ContractReverted), take a nonce, sign.

        With ``gas`` the call is simulated once (``eth_call``) and ``gas`` is the limit; without
        it the node estimates, which on the embedded chain is a binary search of a dozen runs.
        Only the gas used is paid, so a generous limit costs nothing.
        """
        if self._next_nonce is None:
            self.resync()
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        for retry in (True, False):
            nonce = self._next_nonce
            fields = {"from": self.address, "value": 0, "nonce": nonce, "chainId": self._chain_id}
            try:
                if gas is not None:
                    fn.call({"from": self.address})
                    fields["gas"] = gas
                tx = fn.build_transaction(fields)
                break
            except CALL_REVERTS as exc:
                data = revert_data(exc) or _literal_revert_data(exc)
                if data:
                    raise self._decoder.decode(data, operation) from None
                raise ContractReverted("Error", {"reason": str(exc)}, b"", operation) from None
            except Exception as exc:  # the embedded chain checks the nonce while estimating
                if not retry or "nonce" not in str(exc).lower():
                    raise
                log.info("nonce %s of %s is stale (%s); re-syncing from the chain", nonce, self.address, exc)
                self.resync()
        signed = self.wallet.sign_transaction(tx)
        self._next_nonce = nonce + 1
        return PreparedTransaction(signed.hash.to_0x_hex(), self.address, nonce, bytes(signed.raw_transaction))

    def broadcast(self, raw: bytes) -> None:
        """Send signed bytes; sending the same bytes again is harmless (same hash)."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # each backend words these differently
            text = str(exc).lower()
            if "already known" in text or "already imported" in text or "known transaction" in text:
                return
            if "nonce" in text:
                raise NonceTooLow(str(exc)) from exc
            raise

    def receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node has this transaction (mined or in its pool)."""
        try:
            self.w3.eth.get_transaction(tx_hash)
            return True
        except TransactionNotFound:
            return False
