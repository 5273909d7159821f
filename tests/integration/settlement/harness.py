"""The settlement tests' node: an executor and a watcher on one chain backend, "crashed" and rebuilt from its store.

Each test gets its own parties (a node operating for both participants of its channels), a
fresh SQLite event store, and a ``Node`` that can be "crashed": rebuilt from the store alone.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from domain.application import ChannelService
from domain.channel import ChannelParameters
from domain.crypto import PrivateKey
from infrastructure import bootstrap
from infrastructure.chain import advance_time
from infrastructure.chain.connection import latest_timestamp
from infrastructure.settings import Settings
from infrastructure.settlement import ChainWatcher, SettlementExecutor
from tests.builders import Ledger
from tests.integration.contract.chain import Chain, Party

PERIOD = 600


@dataclass
class Node:
    """A Parsec node's settlement half: one event store, one chain, one operator wallet."""

    chain: Chain
    path: Path
    operator: Party
    a: Party
    b: Party
    service: ChannelService = None  # type: ignore[assignment]
    executor: SettlementExecutor = None  # type: ignore[assignment]
    watcher: ChainWatcher = None  # type: ignore[assignment]
    start_block: int = 0

    def start(self) -> Node:
        settings = Settings(data_dir=self.path.parent, min_challenge_period=PERIOD)  # the contract's minimum too
        self.service = bootstrap.channel_service(settings, sqlite_path=self.path)
        self.executor, self.watcher = bootstrap.settlement(self.service, self.chain.channels, self.operator.wallet,
                                                           start_block=self.start_block)
        return self

    def crash(self) -> Node:
        """Forget everything in memory; what remains is the event store and the chain."""
        self.service.close()
        self.service = self.executor = self.watcher = None  # type: ignore[assignment]
        return self.start()

    @property
    def now(self) -> int:
        return max(int(time.time()), latest_timestamp(self.chain.w3))

    def run(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            self.executor.catch_up()
            self.executor.tick(self.now)
            self.mined()
            self.watcher.poll(self.now)

    def mined(self) -> None:
        """Wait until every transaction the executor sent is mined (anvil mines a moment after it
        accepts one; on a busy machine that moment is longer than a round of the loop)."""
        for rec in self.executor.open_intents():
            if rec.tx_hash:
                self.chain.w3.eth.wait_for_transaction_receipt(rec.tx_hash, timeout=30)

    def open_channel(self, deposit_a: int, deposit_b: int, *, interval: int = 3) -> Ledger:
        cid = uuid.uuid4()
        contract = self.chain.channels
        contract.open_channel(self.a.wallet, cid, self.b.address, deposit=deposit_a, challenge_period=PERIOD)
        if deposit_b:
            contract.deposit(self.b.wallet, cid, deposit_b)
        self.service.open_channel(
            channel_id=cid,
            public_key_a=self.a.key.public_key,
            public_key_b=self.b.key.public_key,
            currency="ETH",
            deposit_a=deposit_a,
            deposit_b=deposit_b,
            parameters=ChannelParameters(PERIOD, interval, 10**6),
            domain=contract.domain,
            at=self.now,
        )
        return Ledger(cid, a=self.a.key, b=self.b.key, domain=contract.domain)

    def pay(self, ledger: Ledger, payer: PrivateKey, *prices: int) -> list:
        txs = [ledger.pay(payer, p) for p in prices]
        for tx in txs:
            self.service.accept_payment(tx, self.now)
        return txs

    def advance(self, seconds: int) -> None:
        advance_time(self.chain.w3, seconds)
