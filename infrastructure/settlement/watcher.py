"""The chain watcher: contract events since a tracked block, handed to the executor.

The executor turns them into domain inputs (a checkpoint or dispute recorded → the Channel's
CheckpointConfirmed; a close → ClosedOnChain, then a settle after the challenge period; a
settle or cooperative close → the Channel closes with the chain's payouts) and acts as the
watchtower: a close that leaves out the closer's newer payments is answered with ``update``.

The block position is saved after the events are handled (their handling is idempotent), so a
restart may see the last blocks again but never misses one.
"""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError

from infrastructure import metrics
from infrastructure.chain import events as ev
from infrastructure.settlement.aggregates import ProcessCursor, cursor_id
from infrastructure.settlement.executor import SettlementExecutor


class ChainWatcher:
    """Follows the executor's chain (its ``Chain`` port) for the executor."""

    def __init__(
        self,
        executor: SettlementExecutor,
        *,
        name: str = "chain-watcher",
        start_block: int = 0,
        confirmations: int = 0,
        max_blocks: int = 2000,
    ) -> None:
        self.executor = executor
        self.chain = executor.chain
        self.store = executor.store
        self.confirmations = confirmations
        self.max_blocks = max_blocks
        self.name, self.start_block = name, start_block
        self.reload()
        self.seen: list[ev.ChainEvent] = []

    def reload(self) -> None:
        """The block position as the store has it (after a failed save, memory may be ahead of it)."""
        try:
            self._cursor: ProcessCursor = self.store.repository.get(cursor_id(self.name))
        except AggregateNotFoundError:
            self._cursor = ProcessCursor(name=self.name)
            self._cursor.moved({"block": self.start_block - 1}, [], [])

    @property
    def block(self) -> int:
        """The last block whose events were handled."""
        return self._cursor.positions["block"]

    def poll(self, now: int) -> list[ev.ChainEvent]:
        """Handle the events of every new block (up to ``confirmations`` behind the head)."""
        head = self.chain.block_number() - self.confirmations
        handled: list[ev.ChainEvent] = []
        while self.block < head:
            start = self.block + 1
            end = min(head, start + self.max_blocks - 1)
            events = self.chain.events(start, end)
            self.executor.observe(events, now)
            self._cursor.moved({"block": end}, [], [])
            self.store.save(self._cursor)
            metrics.WATCHED_BLOCK.set(end)
            handled += events
        self.seen += handled
        return handled
