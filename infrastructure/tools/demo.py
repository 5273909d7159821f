"""``parsec demo``: a simulated network of channels on the embedded defaults.

Parties with deterministic keys open channels; buyers sign invoices; every
signed transaction goes through the command handlers exactly as a node would
receive it (JSON bytes, verified, ordered, applied) on the embedded SQLite
event store. A few duplicates and invalid messages are mixed in to show that a
repeat is a no-op and a bad message is refused with its reason.

With a chain (``DemoChain``, the default of ``parsec demo``: the embedded chain or ``--eth-rpc``)
the BTC TestToken and the ParsecChannels contract are deployed, the demo's parties funded, every
channel opened on-chain with the same deposits as the Channel aggregate, and the node's wallet made
the operator of every participant; the settlement executor and the chain watcher run after each
batch of payments, so checkpoints every m-th sequence go on-chain and come back as
CheckpointConfirmed, and ``settle`` closes a few channels, waits out the challenge period and settles.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from domain.application import ChannelService
from domain.channel import ChannelParameters, PaymentOutcome
from domain.crypto import PrivateKey
from domain.errors import ParsecError
from domain.money import Currency
from domain.protocol import (
    HashPointer,
    Invoice,
    SignedInvoice,
    SigningDomain,
    signed_invoice_json,
)
from infrastructure import bootstrap
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
from infrastructure.tools.workload import DEV_DOMAIN, ChannelPlan, Party, make_channels, make_parties

log = logging.getLogger("parsec.demo")

@dataclass
class DemoResult:
    channels: list[ChannelPlan]
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)
    checkpoints: int = 0
    seconds: float = 0.0
    settled: list[ChannelPlan] = field(default_factory=list)

    @property
    def payments_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


class Demo:
    def __init__(
        self,
        service: ChannelService,
        *,
        channels: int = 20,
        payments: int = 2000,
        seed: int = 7,
        duplicates: float = 0.02,
        invalid: float = 0.01,
        checkpoint_interval: int = 50,
        batch: int = 100,
        domain: SigningDomain | None = None,
        chain: DemoChain | None = None,
    ) -> None:
        if channels < 1 or payments < 0:
            raise ValueError("--channels must be >= 1 and --payments >= 0")
        self.service = service
        self.n_channels = channels
        self.n_payments = payments
        self.rng = random.Random(seed)
        self.seed = seed
        self.duplicate_rate = duplicates
        self.invalid_rate = invalid
        self.batch_size = max(1, batch)
        self.parameters = ChannelParameters(
            challenge_period=3600, checkpoint_interval=checkpoint_interval, checkpoint_timeout=600
        )
        self.chain = chain
        if chain is not None:
            domain = chain.domain
            self.parameters = ChannelParameters(
                challenge_period=chain.challenge_period,
                checkpoint_interval=checkpoint_interval,
                checkpoint_timeout=600,
            )
        self.domain = domain or DEV_DOMAIN

    def open_channels(self) -> list[ChannelPlan]:
        parties = make_parties(self.seed, max(2, self.n_channels // 2 + 2))
        deposits = []
        for i in range(self.n_channels):
            unit = 10 ** (Currency.BTC if i % 4 == 3 else Currency.ETH).decimals
            deposits.append((self.rng.randint(1, 10) * unit, self.rng.randint(0, 5) * unit))
        plans = make_channels(self.seed, self.n_channels, deposits=deposits, parties=parties, rng=self.rng,
                              currencies=(Currency.ETH, Currency.ETH, Currency.ETH, Currency.BTC), domain=self.domain)
        now = int(time.time())
        for plan in plans:
            self.service.open_channel(**plan.open_kwargs(self.parameters, now))
        log.info("opened %d channels between %d parties", len(plans), len(parties))
        if self.chain is not None:
            self.chain.open_channels(plans)
        return plans

    def next_payment(self, plan: ChannelPlan) -> SignedInvoice | None:
        payer = 0 if plan.balance(0) >= plan.balance(1) or self.rng.random() < 0.6 else 1
        if plan.balance(payer) <= 0:
            payer = 1 - payer
        available = plan.balance(payer)
        if available <= 0:
            return None
        unit = 10**plan.currency.decimals
        price = min(available, self.rng.randint(1, 1000) * unit // 10_000)
        return plan.pay(price, payer, invoice_id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
                        invoice_type="demo")

    def corrupt(self, plan: ChannelPlan, tx: SignedInvoice) -> bytes:
        """An invalid message next to a real one, as a faulty or hostile client would send."""
        kind = self.rng.choice(["signature", "overspend", "pointer", "domain", "malformed", "currency"])
        payer = 0 if tx.buyer == plan.a.address else 1
        buyer = plan.a if payer == 0 else plan.b
        signed = dict(
            key=buyer.key,
            channel=plan.channel_id,
            invoice_id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
            sequence=tx.sequence,
            previous=tx.hash_pointer_to_previous,
            domain=self.domain,
        )
        price = tx.price
        if kind == "overspend":  # properly signed, but more than the buyer has
            price = plan.balance(payer) + tx.price + 1
            signed["buyer_total"] = plan.sent[payer] - tx.price + price
        elif kind == "pointer":  # properly signed, but not linked to the head
            signed["previous"] = HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\xab" * 32)
            signed["buyer_total"] = tx.buyer_total
        elif kind == "domain":  # properly signed, for another chain
            signed["domain"] = SigningDomain(chain_id=1, verifying_contract=self.domain.verifying_contract)
            signed["buyer_total"] = tx.buyer_total
        if kind in ("overspend", "pointer", "domain"):
            invoice = Invoice(invoice_address=tx.supplier_address, price=price, currency=plan.currency)
            return signed_invoice_json(invoice, **signed)[0]  # the wire form: the receiver refuses it
        d = tx.to_dict()
        if kind == "signature":
            other = plan.b if payer == 0 else plan.a  # the counterparty signs in the buyer's name
            d["invoiceSignature"] = "0x" + other.key.sign_digest(tx.transaction_hash).hex()
        elif kind == "currency":
            d["currency"] = "DOGE"
        else:
            return b'{"invoiceID": "not-json'
        return json.dumps(d).encode()

    def run(self, progress=None) -> DemoResult:
        plans = self.open_channels()
        result = DemoResult(channels=plans)
        start = time.perf_counter()
        batch: list[bytes] = []
        done = 0
        for i in range(self.n_payments):
            plan = self.rng.choice(plans)
            tx = self.next_payment(plan)
            if tx is not None:
                if self.rng.random() < self.invalid_rate:
                    batch.append(self.corrupt(plan, tx))
                batch.append(tx.to_json())
                if self.rng.random() < self.duplicate_rate:
                    batch.append(tx.to_json())
            if len(batch) >= self.batch_size or i == self.n_payments - 1:
                self._apply(batch, result)
                batch = []
                if self.chain is not None:
                    self.chain.step()
                if progress is not None:
                    progress(i + 1 - done)
                    done = i + 1
        if self.chain is not None:
            self.chain.step()
        result.seconds = time.perf_counter() - start
        return result

    def settle(self, result: DemoResult, count: int) -> None:
        """Settle the first ``count`` channels on-chain (close, challenge period, settle)."""
        if self.chain is None or count <= 0:
            return
        result.settled = result.channels[:count]
        self.chain.settle(result.settled)
        self.chain.finish()

    def _apply(self, batch: list[bytes], result: DemoResult) -> None:
        result.sent += len(batch)
        for res in self.service.accept_payments(batch, at=int(time.time())):
            if isinstance(res, ParsecError):
                result.rejected[res.reason] += 1
                log.debug("rejected: %s", res)
            elif res.outcome is PaymentOutcome.DUPLICATE:
                result.duplicates += 1
            else:
                result.accepted += 1
                result.checkpoints += res.checkpoint_requested


def fresh_demo_store(path: Path) -> Path:
    """An empty SQLite event store at ``path`` (the previous demo's, and its WAL files, removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()
    return path


# ---------------------------------------------------------------------- the on-chain half
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
        self.executor, self.watcher = bootstrap.settlement(service, self.contract, self.node,
                                                           start_block=int(self.w3.eth.block_number) + 1)
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
