"""The settlement process manager's executor and chain watcher (the on-chain half).

``SettlementExecutor`` follows the Channel events, runs them through
``domain.settlement.transition``, stores each intent as a ``SettlementIntent`` aggregate before
acting, and sends contract transactions through the chain port (``infrastructure.chain.port.Chain``:
the contract and the node's operator wallet). ``ChainWatcher``
follows the contract's events and hands them to the executor (confirmations, closes, settles,
and the watchtower's answer to a stale close).

A node drives both::

    executor = SettlementExecutor(service, contract, operator_wallet)
    watcher = ChainWatcher(executor)
    while running:
        executor.catch_up()          # or executor.handle(events, partition=p, position=offset)
        executor.tick(now)           # send due intents, collect receipts
        watcher.poll(now)            # chain events -> domain
"""

from infrastructure.settlement.aggregates import ProcessCursor, SettlementIntent
from infrastructure.settlement.executor import (
    ChannelCommands,
    DirectChannelCommands,
    GasUse,
    SettlementExecutor,
    TickReport,
)
from infrastructure.settlement.watcher import ChainWatcher

__all__ = [
    "ChainWatcher",
    "ChannelCommands",
    "DirectChannelCommands",
    "GasUse",
    "ProcessCursor",
    "SettlementExecutor",
    "SettlementIntent",
    "TickReport",
]
