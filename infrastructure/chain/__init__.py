"""The Ethereum adapter: the ParsecChannels contract behind a typed proxy.

``connect()`` gives the embedded py-evm chain (or a JSON-RPC node such as anvil);
``ChannelContract`` deploys and drives the channel contract; events decode into
``infrastructure.chain.events`` values; reverts raise ``ContractReverted``.
"""

from infrastructure.chain.channels import (
    ETH,
    ChannelContract,
    ChannelParams,
    OnChainChannel,
    OnChainStatus,
    PaymentTuple,
    Proof,
    Receipt,
    TestToken,
    TxHash,
    payment_tuple,
)
from infrastructure.chain.connection import Wallet, advance_time, connect, fund, is_embedded, wallet
from infrastructure.chain.errors import ChainError, ContractReverted, TransactionFailed

__all__ = [
    "ETH",
    "ChainError",
    "ChannelContract",
    "ChannelParams",
    "OnChainStatus",
    "ContractReverted",
    "OnChainChannel",
    "PaymentTuple",
    "Proof",
    "Receipt",
    "TestToken",
    "TransactionFailed",
    "TxHash",
    "Wallet",
    "advance_time",
    "connect",
    "fund",
    "is_embedded",
    "payment_tuple",
    "wallet",
]
