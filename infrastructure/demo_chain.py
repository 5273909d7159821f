"""The demo's on-chain half: the embedded chain (or ``--eth-rpc``), the contract, the node.

Deploys the BTC TestToken and the ParsecChannels contract, funds the demo's parties, opens every
channel on-chain with the same deposits as the Channel aggregate (ETH, or the token for BTC),
makes the node's wallet the operator of every participant, and runs the settlement executor and
chain watcher after each batch of payments: checkpoints every m-th sequence go on-chain and come
back as CheckpointConfirmed; a settlement closes, waits out the challenge period and settles.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.application import ChannelService
from domain.crypto import PrivateKey
from domain.money import Currency
from domain.protocol import SigningDomain
from infrastructure.chain import (
    ETH,
    ChannelContract,
    OnChainChannel,
    Receipt,
    TestToken,
    Wallet,
    connect,
    fund,
    wallet,
)
from infrastructure.chain.connection import advance_time, latest_timestamp
from infrastructure.settlement import ChainWatcher, SettlementExecutor

if TYPE_CHECKING:
    from infrastructure.demo import ChannelPlan
    from infrastructure.parties import Party

log = logging.getLogger("parsec.demo")
GAS_MONEY = 10**18  # per party, on top of its deposits


@dataclass
class GasTally:
    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, operation: str, gas: int) -> None:
        self.count[operation] += 1
        self.total[operation] += gas

    def rows(self) -> list[tuple[str, int, int, int]]:
        """(operation, transactions, average gas, total gas)"""
        return [(op, n, self.total[op] // n, self.total[op]) for op, n in self.count.items()]


class DemoChain:
    def __init__(self, service: ChannelService, rpc_url: str | None = None, seed: int | str = 7) -> None:
        self.service = service
        self.w3 = connect(rpc_url)
        self.gas = GasTally()
        self.seconds = 0.0
        started = time.perf_counter()
        self.deployer = self._funded(PrivateKey.from_seed(f"parsec/{seed}/deployer"), 10 * GAS_MONEY)
        self.node = self._funded(PrivateKey.from_seed(f"parsec/{seed}/node"), 100 * GAS_MONEY)
        self.token = TestToken.deploy(self.w3, self.deployer)
        self.contract = ChannelContract.deploy(
            self.w3, self.deployer, self.token.address, min_challenge_period=self.challenge_period
        )
        self.executor = SettlementExecutor(service, self.contract, self.node)
        self.watcher = ChainWatcher(self.executor, start_block=int(self.w3.eth.block_number) + 1)
        self._wallets: dict[str, Wallet] = {}
        self.seconds += time.perf_counter() - started

    @property
    def domain(self) -> SigningDomain:
        return self.contract.domain

    def _funded(self, key: PrivateKey, wei: int) -> Wallet:
        w = wallet(key)
        fund(self.w3, w.address, wei)
        return w

    def _record(self, operation: str, receipt: Receipt) -> None:
        self.gas.add(operation, receipt.gas_used)

    # ------------------------------------------------------------------ setup
    def open_channels(self, plans: list[ChannelPlan]) -> None:
        """Fund the parties, make the node their operator, open and fund every channel on-chain."""
        started = time.perf_counter()
        need: dict[str, dict[Currency, int]] = defaultdict(lambda: defaultdict(int))
        parties: dict[str, Party] = {}
        for plan in plans:
            for party, amount in ((plan.a, plan.deposits[0]), (plan.b, plan.deposits[1])):
                need[party.address][plan.currency] += amount
                parties[party.address] = party
        for address, party in parties.items():
            w = self._funded(party.key, need[address][Currency.ETH] + GAS_MONEY)
            self._wallets[address] = w
            self._record("setOperator", self.contract.set_operator(w, self.node.address))
            btc = need[address][Currency.BTC]
            if btc:
                self._record("token mint", self.token.mint(self.deployer, address, btc))
                self._record("token approve", self.token.approve(w, self.contract.address, btc))
        for plan in plans:
            token = self.token.address if plan.currency is Currency.BTC else ETH
            a, b = self._wallets[plan.a.address], self._wallets[plan.b.address]
            self._record(
                "open",
                self.contract.open_channel(
                    a, plan.channel_id, b.address, deposit=plan.deposits[0],
                    challenge_period=self.challenge_period, token=token,
                ),
            )
            if plan.deposits[1]:
                self._record("deposit", self.contract.deposit(b, plan.channel_id, plan.deposits[1]))
        self.seconds += time.perf_counter() - started
        log.info("opened %d channels on-chain; the node %s operates for %d parties", len(plans), self.node.address, len(parties))

    challenge_period = 3600

    # ------------------------------------------------------------------ running
    def step(self, now: int | None = None) -> None:
        """One round of the node's settlement loop: requests -> transactions -> chain events."""
        started = time.perf_counter()
        now = now if now is not None else self.now
        self.executor.catch_up()
        self.executor.tick(now)
        self.watcher.poll(now)
        self.seconds += time.perf_counter() - started

    @property
    def now(self) -> int:
        return max(int(time.time()), latest_timestamp(self.w3))

    def settle(self, plans: list[ChannelPlan]) -> None:
        """Settle these channels: close on-chain, advance the chain past the challenge period, settle."""
        for plan in plans:
            self.service.request_settlement(plan.channel_id, self.now, requested_by="demo")
        self.step()
        started = time.perf_counter()
        advance_time(self.w3, self.challenge_period + 1)
        self.seconds += time.perf_counter() - started
        self.step()
        self.step()

    def finish(self) -> None:
        self.step()
        for g in self.executor.stats.gas:
            self.gas.add(g.kind, g.gas_used)

    def onchain(self, plan: ChannelPlan) -> OnChainChannel:
        return self.contract.channel(plan.channel_id)
