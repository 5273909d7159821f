"""The chain port over a deployed ParsecChannels contract and the operator wallet that signs."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from web3.contract.contract import ContractFunction

from domain.settlement import IntentKind
from infrastructure.chain.channels import ChannelContract, ChannelParams, OnChainChannel, Receipt, TxHash
from infrastructure.chain.connection import Wallet
from infrastructure.chain.events import ChainEvent, decode_events
from infrastructure.chain.port import Call, Chain
from infrastructure.chain.sender import PreparedTransaction, TransactionSender


class OperatorChain(Chain):
    """``contract`` driven by ``wallet`` (one local nonce counter: see ``TransactionSender``)."""

    def __init__(self, contract: ChannelContract, wallet: Wallet) -> None:
        self.contract = contract
        self.sender = TransactionSender(contract, wallet)
        # each intent kind is one contract function
        self._calls: dict[IntentKind, Callable[[Call], ContractFunction]] = {
            IntentKind.CHECKPOINT: lambda c: contract.checkpoint_call(c.channel_id, c.proofs),
            IntentKind.CLOSE: lambda c: contract.close_call(c.channel_id, c.proofs),
            IntentKind.UPDATE: lambda c: contract.update_call(c.channel_id, c.proofs),
            IntentKind.DISPUTE: lambda c: contract.dispute_call(c.channel_id, c.proofs, head=c.head),
            IntentKind.SETTLE: lambda c: contract.settle_call(c.channel_id, c.locks),
            IntentKind.REGISTER_SECRET: lambda c: contract.register_secret_call(c.secret),
        }

    @property
    def submitter(self) -> str:
        return self.sender.address

    def channel(self, channel_id: UUID) -> OnChainChannel:
        return self.contract.channel(channel_id)

    def params(self, channel_id: UUID) -> ChannelParams:
        return self.contract.params(channel_id)

    def operator_of(self, participant: str) -> str:
        return self.contract.operator_of(participant)

    def secret_revealed_at(self, secret_hash: bytes) -> int:
        return self.contract.secret_revealed_at(secret_hash)

    def secret_revealed_tx(self, secret_hash: bytes) -> str:
        return self.contract.secret_revealed_tx(secret_hash)

    def latest_timestamp(self) -> int:
        return self.contract.latest_timestamp()

    def block_number(self) -> int:
        return self.contract.block_number()

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        return self.contract.events(from_block, to_block)

    def channel_events(self, channel_id: UUID, *kinds: type[ChainEvent]) -> list[ChainEvent]:
        return self.contract.channel_events(channel_id, *kinds)

    def prepare(self, call: Call, gas: int | None = None) -> PreparedTransaction:
        return self.sender.prepare(self._calls[call.kind](call), call.kind.value, gas=gas)

    def broadcast(self, raw: bytes) -> None:
        self.sender.broadcast(raw)

    def receipt(self, tx_hash: str) -> Receipt | None:
        raw = self.sender.receipt(tx_hash)
        if raw is None:
            return None
        succeeded = raw["status"] == 1
        return Receipt(
            tx_hash=TxHash(raw["transactionHash"].to_0x_hex()),
            block_number=raw["blockNumber"],
            gas_used=raw["gasUsed"],
            events=tuple(decode_events(self.contract.contract, raw["logs"])) if succeeded else (),
            succeeded=succeeded,
        )

    def is_known(self, tx_hash: str) -> bool:
        return self.sender.is_known(tx_hash)

    def resync_nonce(self) -> None:
        self.sender.resync()
