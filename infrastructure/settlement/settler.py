"""``parsec settler``: the one settlement process of a Kafka deployment.

On Kafka a node's writer owns only events partition p, so the settlement executor cannot run
inside the node (it would write its intents and channel commands on partitions it does not own,
and several nodes would share one operator wallet's nonces). The settler is a separate process:

- it follows the events topic read-only, every partition, with one position per partition
  (``projections.source.PartitionedEventSource`` over a reading ``ChannelService``);
- it keeps its intents and cursors (``SettlementIntent``, ``ProcessCursor``) in its own Kafka
  store on a one-partition topic (default ``parsec.settlement.events``), whose writer is fenced
  by its transactional id: starting a second settler fences the first, whose next save fails
  with ``WriterFencedError`` and which then stops (active/passive; nothing is broadcast
  without being saved first, so a fenced settler cannot send a transaction);
- it sends contract transactions with one operator wallet and one nonce counter;
- it tells the channels what the chain did through the control topic
  (:class:`~infrastructure.settlement.control.ControlTopicCommands`), in notices signed with
  the operator key, so the owning node applies them (if it trusts this settler's address:
  ``PARSEC_SETTLERS``);
- it runs the chain watcher (watchtower) too.
"""

from __future__ import annotations

import logging
import threading
import time

from eventsourcing.application import Application

from domain.application import ChannelService
from infrastructure import metrics
from infrastructure.chain.channels import ChannelContract
from infrastructure.kafka.errors import WriterFencedError
from infrastructure.node.send import Sender
from infrastructure.settings import Settings
from infrastructure.settlement.executor import SettlementExecutor
from infrastructure.settlement.watcher import ChainWatcher
from projections.source import source_for

log = logging.getLogger("parsec.settlement")



class SettlerStore(Application):
    """Where the settler's intents and cursors live (their own event store)."""

    name = "settler"


def settler_store_env(config: Settings, topic: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "infrastructure.kafka",
        **config.kafka.store_env(),  # bootstrap, security, replication (the settler's principal)
        "KAFKA_EVENTS_TOPIC": topic,
        "KAFKA_PARTITIONS": "1",
        "KAFKA_OWNED_PARTITIONS": "0",
        "KAFKA_READ_OWNED_ONLY": "y",
        "KAFKA_TIMEOUT": str(config.kafka_timeout),
        "AGGREGATE_CACHE_MAXSIZE": "0",
    }


class Settler:
    """The settlement loop over its collaborators (built by ``infrastructure.bootstrap.settler``, which
    fences any previous settler before the executor exists)."""

    def __init__(
        self,
        config: Settings,
        *,
        sender: Sender,
        reader: ChannelService,
        store: SettlerStore,
        executor: SettlementExecutor,
        watcher: ChainWatcher,
        contract: ChannelContract,
        operator: str,
        interval: float = 1.0,
    ) -> None:
        self.config = config
        self.interval = interval
        self.sender, self.reader, self.store = sender, reader, store
        self.executor, self.watcher, self.contract = executor, watcher, contract
        self.source = source_for(reader)
        self.stopped = threading.Event()
        self.fenced = False
        self._reload = False  # set by a failed pass: memory may hold changes the store does not
        log.info("settler: operator %s, store %s, following %s (%d partitions); nodes must trust this address "
                 "(PARSEC_SETTLERS) to accept its notices", operator, config.settlement_topic,
                 config.events_topic, len(self.source.partitions()))

    def step(self, now: int | None = None) -> None:
        """One pass: follow the log, send due intents and collect receipts, watch the chain."""
        if self._reload:
            # the last pass failed, perhaps in a save: continue from what the store holds
            self.executor.reload()
            self.watcher.reload()
            self._reload = False
        chain_now = self.contract.latest_timestamp()
        now = max(int(time.time()), chain_now) if now is None else now
        self.executor.catch_up(self.source)
        self.executor.tick(now, chain_time=chain_now)
        self.watcher.poll(now)
        self.executor.tick(now, chain_time=chain_now)

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self.stopped
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    self.step()
                except WriterFencedError:
                    self.fenced = True
                    metrics.PASS_ERRORS.inc()
                    log.error("settler: fenced by a newer settler (same store topic); stopping")
                    return
                except Exception as exc:
                    metrics.PASS_ERRORS.inc()
                    log.error("settler: pass failed (%s: %s); retrying from what its store holds",
                              type(exc).__name__, exc)
                    self._reload = True
                    stop.wait(max(self.interval, 2.0))
                    continue
                metrics.PASSES.inc()
                metrics.PASS_SECONDS.observe(time.perf_counter() - started)
                metrics.OPEN_INTENTS.set(len(self.executor.open_intents()))
                stop.wait(self.interval)
        finally:
            self.close()

    def stop(self) -> None:
        self.stopped.set()

    def close(self) -> None:
        for closing in (getattr(self, "sender", None), getattr(self, "reader", None), getattr(self, "store", None)):
            if closing is None:
                continue
            try:
                closing.close()
            except Exception:
                log.debug("closing", exc_info=True)


__all__ = ["Settler", "SettlerStore", "settler_store_env"]
