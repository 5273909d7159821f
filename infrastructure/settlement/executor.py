"""The process manager's executor: Channel events in, contract transactions out.

Loop (after Raiden's WAL + event handlers): read the Channel events after the stored position,
run them through ``domain.settlement.transition``, save what changed (intent aggregates and the
cursor, one store transaction), and only then act: send transactions, turn receipts back into
``Confirmed``/``Failed``, tell the Channel what the chain did.

The chain is reached only through the ``infrastructure.chain.port.Chain`` port. Dispatch is by
tables, one entry per case: intent kind -> planner (``_PLANNERS``), process output -> effect
(``_OUTPUTS``), chain event class -> observation (``_OBSERVERS``); the Channel events it follows
are ``domain.settlement.CHANNEL_REQUESTS``, by class.

Nothing is sent twice:
- intent ids are deterministic, so a re-read request is recognised;
- the signed transaction (hash, nonce, raw bytes) is saved as ``TransactionSubmitted`` before it
  is broadcast; after a crash a submitted intent is looked up by hash and, if the node does not
  know it, the same bytes are broadcast again (same hash: at most one of them can be mined);
- before sending a pending intent the executor reads the contract: a state that already holds the
  intent's proofs (someone else's transaction, or ours before a crash) confirms it without a new
  transaction, and proofs the contract already has are left out (they would revert as stale).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import TopicError, resolve_topic

from domain.application import ChannelService
from domain.channel import ChannelStatus
from domain.errors import ParsecError, UnknownChannel
from domain.locks import Lock, locks_root, pack_locks
from domain.protocol import SignedInvoice
from domain.settlement import (
    CHANNEL_REQUESTS,
    CloseChannel,
    ClosedOnChain,
    ConfirmCheckpoint,
    Confirmed,
    Failed,
    Intent,
    IntentKind,
    IntentRecord,
    IntentStatus,
    ProcessState,
    RecordSecretRegistered,
    ReportGiveUp,
    SendTransaction,
    Submitted,
    UpdateWanted,
    transition,
    wanted,
)
from infrastructure import metrics
from infrastructure.chain import events as ev
from infrastructure.chain.channels import (
    NO_LOCKS_HASH,
    ChannelContract,
    OnChainChannel,
    OnChainStatus,
    locks_hash,
)
from infrastructure.chain.connection import Wallet
from infrastructure.chain.errors import ContractReverted
from infrastructure.chain.operator import OperatorChain
from infrastructure.chain.port import Call, Chain
from infrastructure.chain.sender import NonceTooLow, PreparedTransaction
from infrastructure.settlement.aggregates import ProcessCursor, SettlementIntent, cursor_id

log = logging.getLogger("parsec.settlement")

# time will fix these; every other revert repeats
TRANSIENT_REVERTS = frozenset({"ChallengePeriodNotOver", "LockUndecided"})
LOCKS_PER_PROOF_GAS = 8  # a settle deciding locks: ~7k gas per lock, counted as one proof's gas per 8 locks
_OPEN = (IntentStatus.PENDING, IntentStatus.SUBMITTED)


@dataclass(frozen=True)
class GasUse:
    """One confirmed transaction of the executor (for reports)."""

    kind: str
    channel_id: UUID
    tx_hash: str
    block: int
    gas_used: int


@dataclass
class TickReport:
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    waiting: int = 0  # not yet due (a settle before the challenge period ends)


@dataclass
class _Plan:
    """What to do with a pending intent, decided from the contract's current state."""

    call: Call | None = None  # a contract call to send
    proofs: int = 0  # signed payments it carries (sets the gas limit)
    done: tuple[str, int, tuple[int, int] | None] | None = None  # already on-chain: tx, block, payouts
    fail: tuple[str, bool] | None = None  # reason, final
    wait: bool = False
    revealed_at: int | None = None  # a secret already registered: when (with ``done``)


@dataclass
class ExecutorStats:
    gas: list[GasUse] = field(default_factory=list)
    gave_up: list[ReportGiveUp] = field(default_factory=list)
    reverts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class ChannelCommands(Protocol):
    """What the executor tells the channels about the chain (a port with two adapters).

    ``DirectChannelCommands`` calls the ChannelService (embedded store: one process owns every
    channel); ``infrastructure.settlement.control.ControlTopicCommands`` sends control messages
    so that the node owning the channel's partition applies them (Kafka).
    """

    def confirm_checkpoint(self, channel_id: UUID, sequence: int, tx_hash: str, block: int) -> None: ...

    def request_settlement(self, channel_id: UUID, at: int, requested_by: str) -> None: ...

    def close_channel(self, channel_id: UUID, at: int, payouts: list[int] | None) -> None: ...

    def record_secret(self, channel_id: UUID, secret_hash: bytes, revealed_at: int, tx_hash: str) -> None: ...


class DirectChannelCommands:
    """The channels' own command handlers, called in this process."""

    def __init__(self, service: ChannelService) -> None:
        self.service = service

    def confirm_checkpoint(self, channel_id: UUID, sequence: int, tx_hash: str, block: int) -> None:
        self.service.confirm_checkpoint(channel_id, sequence, tx_hash, block)

    def request_settlement(self, channel_id: UUID, at: int, requested_by: str) -> None:
        self.service.request_settlement(channel_id, at, requested_by=requested_by)

    def close_channel(self, channel_id: UUID, at: int, payouts: list[int] | None) -> None:
        self.service.close_channel(channel_id, at=at, payouts=payouts)

    def record_secret(self, channel_id: UUID, secret_hash: bytes, revealed_at: int, tx_hash: str) -> None:
        self.service.record_secret_registered(channel_id, secret_hash, revealed_at, tx_hash)


@dataclass
class _Observed:
    """What one batch of chain events asks for: process inputs, and checkpoints to confirm."""

    inputs: list[object] = field(default_factory=list)
    confirmed: dict[tuple[UUID, str], tuple[int, int]] = field(default_factory=dict)  # (channel, tx) -> seq, block


def _request_class(topic: str) -> type | None:
    """The class a stored event's topic names (None: not in this code base, e.g. a newer writer's)."""
    try:
        return resolve_topic(topic)
    except TopicError:
        return None


class SettlementExecutor:
    """Turns a ChannelService's settlement requests into contract transactions.

    ``service``: the channels (any persistence module). ``chain``: the chain port, or a
    ``ChannelContract`` together with ``wallet``, the node's operator wallet (``setOperator`` of
    every participant it serves), which then sends through an ``OperatorChain``. ``store``: where
    intents and the cursor are saved (default: the same application, so they share its event
    store). ``commands``: where confirmations, settlement requests and closes go (default:
    ``service`` itself).
    """

    def __init__(
        self,
        service: ChannelService,
        chain: Chain | ChannelContract,
        wallet: Wallet | None = None,
        *,
        name: str = "settlement",
        store: Application | None = None,
        max_attempts: int = 3,
        snapshot_every: int = 500,
        fixed_gas: bool = True,
        commands: ChannelCommands | None = None,
        dispute_chunk: int = 200,
    ) -> None:
        if not isinstance(chain, Chain):
            if wallet is None:
                raise TypeError("a ChannelContract needs the operator wallet that signs its transactions")
            chain = OperatorChain(chain, wallet)
        self.service = service
        self.commands: ChannelCommands = commands or DirectChannelCommands(service)
        self.store: Application = store or service
        self.chain: Chain = chain
        self.name = name
        self.snapshot_every = snapshot_every
        # A gas limit from the intent's size instead of the node's estimate (one simulated run
        # instead of a binary search); measured: ~60k + ~25k per proof, ~9.3k per disputed payment.
        self.fixed_gas = fixed_gas
        self.gas_base, self.gas_per_proof = 250_000, 60_000
        # payments per dispute transaction: ~9.3k gas and 320 bytes of calldata each, so 200 stay far
        # below a block (30M gas) and a node's transaction size limit (128 KB)
        self.dispute_chunk = dispute_chunk
        self._operators: dict[str, str] = {}  # payee -> its on-chain operator, read afresh each tick
        self.state = ProcessState(max_attempts=max_attempts)
        self.stats = ExecutorStats()
        self._intents: dict[UUID, SettlementIntent] = {}
        self._positions: dict[str, int] = {}
        self._saved_positions: dict[str, int] = {}
        self._cursor = self._load_cursor()
        self._now = 0
        self._chain_now = 0  # the chain's time at the last tick: deadlines are chain time
        self.recover()

    # ------------------------------------------------------------------ startup
    def _load_cursor(self) -> ProcessCursor:
        try:
            cursor: ProcessCursor = self.store.repository.get(cursor_id(self.name))
        except AggregateNotFoundError:
            return ProcessCursor(name=self.name)
        self._positions = dict(cursor.positions)
        self._saved_positions = dict(cursor.positions)
        return cursor

    def recover(self) -> None:
        """Reload the open intents; settle what the chain already decided about submitted ones."""
        records = {}
        for iid in sorted(self._cursor.open):
            agg: SettlementIntent = self.store.repository.get(UUID(iid))
            self._intents[agg.id] = agg
            records[agg.id] = agg.record()
        self.state = replace(self.state, intents=records)
        submitted = sorted(
            (self._intents[r.intent.intent_id] for r in records.values() if r.status is IntentStatus.SUBMITTED),
            key=lambda a: a.nonce if a.nonce is not None else -1,
        )
        for agg in submitted:
            if self.chain.receipt(agg.tx_hash) is None and agg.raw_tx and not self.chain.is_known(agg.tx_hash):
                log.info("re-broadcasting %s %s (nonce %s) after a restart", agg.kind, agg.tx_hash, agg.nonce)
                self._broadcast(agg.id, bytes.fromhex(agg.raw_tx.removeprefix("0x")))
        self.chain.resync_nonce()
        if submitted:
            self._poll()

    def reload(self) -> None:
        """Forget what memory holds and read the cursor and the open intents again from the store.

        After a save that failed (a commit whose outcome is unknown, a broker outage) memory can hold
        changes the store does not: intents raised or moved whose events were never written, and
        aggregates whose versions ran ahead. Continuing from memory would save nothing for them (their
        events were already collected) and stall them for good; the store is the truth. Intent ids are
        deterministic, so the events re-read after the saved position raise the same intents again."""
        acquire = getattr(self.store.recorder, "acquire", None)
        if acquire is not None:
            acquire()  # the Kafka store: fence our own discarded writer, re-read what was committed
        self._intents = {}
        self.state = ProcessState(max_attempts=self.state.max_attempts)
        self._positions, self._saved_positions = {}, {}
        self._cursor = self._load_cursor()
        self.recover()

    # ------------------------------------------------------------------ following the log
    def position(self, partition: int = 0) -> int | None:
        return self._positions.get(str(partition))

    def catch_up(self, source: Any = None, *, limit: int = 1000) -> int:
        """Follow the channel log (an ``projections.source.EventSource``) to its end; events read."""
        if source is None:
            from projections.source import source_for

            source = source_for(self.service)
        count = 0
        for partition in source.partitions():
            while True:
                batch = source.read(partition, self.position(partition), limit)
                if not batch:
                    break
                count += len(batch)
                # only the requests are decoded: their class is known from the topic alone
                events = [e.event for e in batch if _request_class(e.topic) in CHANNEL_REQUESTS]
                self.handle(events, partition=partition, position=batch[-1].position)
                if len(batch) < limit:
                    break
        return count

    def handle(self, events: Iterable[Any], *, partition: int = 0, position: int | None = None) -> None:
        """Feed Channel events (decoded domain events) directly, e.g. from a node's consumer.

        ``position`` is that of the last event given in ``partition``; it is saved with the
        intents the events raise, so a restart resumes after it.
        """
        inputs = [w for w in (wanted(e) for e in events) if w is not None]
        if position is not None:
            self._positions[str(partition)] = position
        self._apply(inputs)

    # ------------------------------------------------------------------ the pure core, made durable
    def _apply(
        self, inputs: Sequence[object], submissions: dict[UUID, PreparedTransaction] | None = None,
        payouts: dict[UUID, tuple[int, int]] | None = None,
    ) -> None:
        old = self.state
        state, outputs = old, []
        for item in inputs:
            state, out = transition(state, item)
            outputs += out
        # "final" in the stored failure means given up: a defence's final revert is retried, not final
        gave_up = {o.intent.intent_id for o in outputs if isinstance(o, ReportGiveUp)}
        finals = {i.intent_id: i.intent_id in gave_up for i in inputs if isinstance(i, Failed)}
        self._persist(old, state, submissions or {}, payouts or {}, finals)
        self._perform(outputs)

    def _persist(
        self, old: ProcessState, new: ProcessState,
        submissions: dict[UUID, PreparedTransaction], payouts: dict[UUID, tuple[int, int]],
        finals: dict[UUID, bool],
    ) -> None:
        changed: list[SettlementIntent] = []
        counted: list[tuple[Any, str]] = []  # (counter, intent kind): counted once the save succeeded
        for iid, rec in new.intents.items():
            if old.intents.get(iid) == rec:
                continue
            agg = self._intents.get(iid)
            kind = rec.intent.kind.value
            if agg is None:
                agg = SettlementIntent.raised(rec.intent)
                self._intents[iid] = agg
                if rec.intent.attempt == 0:  # a retry is a new intent too, but not a new request
                    counted.append((metrics.INTENTS_RAISED, kind))
            p = submissions.get(iid)
            if rec.status is IntentStatus.CONFIRMED and agg.status != IntentStatus.CONFIRMED.value:
                po = payouts.get(iid)
                agg.confirmed(rec.tx_hash or "", rec.block or 0, rec.gas_used or 0, list(po) if po else None)
                counted.append((metrics.INTENTS_CONFIRMED, kind))
            elif rec.status is IntentStatus.FAILED and agg.status != IntentStatus.FAILED.value:
                agg.failed(rec.error or "", final=finals.get(iid, False))
                counted.append((metrics.INTENTS_FAILED, kind))
            else:
                agg.follow(rec, (p.sender, p.nonce, "0x" + p.raw.hex()) if p else None)
            changed.append(agg)
        open_now = {str(iid) for iid, r in new.intents.items() if r.status in _OPEN}
        opened = sorted(open_now - set(self._cursor.open))
        closed = sorted(set(self._cursor.open) - open_now)
        moved = {k: v for k, v in self._positions.items() if self._saved_positions.get(k) != v}
        if not (changed or opened or closed):
            if not moved or sum(v - self._saved_positions.get(k, 0) for k, v in moved.items()) < 5000:
                self.state = new
                return  # only the position moved, a little: saved with the next change
        self._cursor.moved(moved, opened, closed)
        self.store.save(*changed, self._cursor)
        self._saved_positions.update(moved)
        for counter, kind in counted:
            counter.labels(kind).inc()
        if self.snapshot_every and self._cursor.version % self.snapshot_every == 0 and self.store.snapshots:
            self.store.take_snapshot(self._cursor.id)
        # keep only open intents in memory: a closed one is never needed again
        for iid in [i for i, r in new.intents.items() if r.status not in _OPEN]:
            self._intents.pop(iid, None)
        self.state = replace(new, intents={i: r for i, r in new.intents.items() if r.status in _OPEN})

    def _perform(self, outputs: Sequence[object]) -> None:
        for out in outputs:
            self._OUTPUTS[type(out)](self, out)

    def _send_later(self, out: SendTransaction) -> None:
        """Nothing now: the intent is pending in the state and tick() sends it once it is due."""

    def _confirm(self, out: ConfirmCheckpoint) -> None:
        self._confirm_channel(out.channel_id, out.sequence, out.tx_hash, out.block)

    def _close(self, out: CloseChannel) -> None:
        self._close_channel(out.channel_id, out.payouts)

    def _record_secret(self, out: RecordSecretRegistered) -> None:
        h = bytes.fromhex(out.secret_hash.removeprefix("0x"))
        try:
            if self.service.get_channel_aggregate(out.channel_id).secret_registered_at(h):
                return  # recorded already
            self.commands.record_secret(out.channel_id, h, out.revealed_at, out.tx_hash)
        except UnknownChannel:
            pass
        except ParsecError as err:
            log.warning("channel %s: registration of secret %s not recorded: %s", out.channel_id, out.secret_hash, err)

    def _report_give_up(self, out: ReportGiveUp) -> None:
        log.warning("gave up %s of channel %s: %s", out.intent.kind, out.intent.channel_id, out.reason)
        self.stats.gave_up.append(out)
        metrics.INTENTS_GIVEN_UP.labels(out.intent.kind.value).inc()

    _OUTPUTS: dict[type, Callable[[SettlementExecutor, Any], None]] = {
        SendTransaction: _send_later,
        ConfirmCheckpoint: _confirm,
        CloseChannel: _close,
        RecordSecretRegistered: _record_secret,
        ReportGiveUp: _report_give_up,
    }

    # ------------------------------------------------------------------ effects on the channels
    def _confirm_channel(self, channel_id: UUID, sequence: int, tx_hash: str, block: int) -> None:
        try:
            if self.service.get_channel_aggregate(channel_id).confirmed_sequence >= sequence:
                return  # seen already (our receipt, then the watcher's event)
            self.commands.confirm_checkpoint(channel_id, sequence, tx_hash, block)
        except UnknownChannel:
            pass
        except ParsecError as err:
            log.warning("channel %s: on-chain sequence %s not confirmed: %s", channel_id, sequence, err)

    def _close_channel(self, channel_id: UUID, payouts: tuple[int, int] | None) -> None:
        try:
            channel = self.service.get_channel_aggregate(channel_id)
        except UnknownChannel:
            return
        if channel.status == ChannelStatus.CLOSED.value:
            return
        self.commands.close_channel(channel_id, self._now, list(payouts) if payouts else None)
    # ------------------------------------------------------------------ chain observations
    def observe(self, chain_events: Iterable[ev.ChainEvent], now: int | None = None) -> None:
        """What the chain did (from receipts or the watcher), turned into domain inputs."""
        if now is not None:
            self._now = now
        chain_events = list(chain_events)
        seen = _Observed()
        for e in chain_events:
            handler = self._OBSERVERS.get(type(e))
            if handler is not None:
                handler(self, e, seen)
        for (cid, tx_hash), (seq, block) in seen.confirmed.items():
            self._confirm_channel(cid, seq, tx_hash, block)
        # a counterparty's update or dispute during the challenge period may leave the chain behind
        # the log again (e.g. the closer's own later proof was recorded after our answer)
        closing = {e.channel_id for e in chain_events if isinstance(e, ev.StateUpdated | ev.Disputed)}
        closing -= {e.channel_id for e in chain_events if isinstance(e, ev.ChannelClosedLog)}
        for cid in sorted(closing):
            seen.inputs += self._defence(cid)
        if seen.inputs:
            self._apply(seen.inputs)

    def _seen_checkpointed(self, e: ev.Checkpointed, seen: _Observed) -> None:
        key = (e.channel_id, e.tx_hash)
        seq, _ = seen.confirmed.get(key, (0, 0))
        seen.confirmed[key] = (max(seq, e.sequence), e.block_number)

    def _seen_disputed(self, e: ev.Disputed, seen: _Observed) -> None:
        seen.confirmed[(e.channel_id, e.tx_hash)] = (max(e.seq_a, e.seq_b), e.block_number)

    def _seen_closed(self, e: ev.ChannelClosedLog, seen: _Observed) -> None:
        try:
            channel = self.service.get_channel_aggregate(e.channel_id)
        except UnknownChannel:
            return
        if channel.status == ChannelStatus.OPEN.value:  # closed by someone else: stop taking payments
            self.commands.request_settlement(e.channel_id, self._now, f"chain: closed by {e.closer}")
        # a channel closes once, so its settle intent has sequence 0
        seen.inputs += [ClosedOnChain(e.channel_id, 0, e.settle_at), *self._defence(e.channel_id)]

    def _seen_paid_out(self, e: ev.ChannelSettled | ev.CooperativelyClosed, seen: _Observed) -> None:
        self._close_channel(e.channel_id, (e.balance_a, e.balance_b))

    _OBSERVERS: dict[type[ev.ChainEvent], Callable[[SettlementExecutor, Any, _Observed], None]] = {
        ev.Checkpointed: _seen_checkpointed,
        ev.Disputed: _seen_disputed,
        ev.ChannelClosedLog: _seen_closed,
        ev.ChannelSettled: _seen_paid_out,
        ev.CooperativelyClosed: _seen_paid_out,
    }

    def _defence(self, cid: UUID) -> list[object]:
        """Watchtower: while a channel is closed on-chain, the chain must end up with the newest state
        both parties signed. Each participant's latest signed payment (from the channel's log) that
        is newer than what the chain recorded for it is answered (``UpdateWanted``), due before the
        challenge period ends; the answer is never given up before then."""
        try:
            channel = self.service.get_channel_aggregate(cid)
        except UnknownChannel:
            return []
        onchain = self.chain.channel(cid)
        if not onchain.is_closed or not channel.latest:
            return []
        params = self.chain.params(cid)
        recorded = {params.a: onchain.seq_a, params.b: onchain.seq_b}
        newer = [p for buyer, p in channel.latest.items() if p["sequence"] > recorded.get(buyer, 0)]
        if not newer:
            return []
        head = max(p["sequence"] for p in channel.latest.values())
        log.info("watchtower: channel %s is closed on-chain at sequences %s; its log holds %s: answering",
                 cid, recorded, sorted(p["sequence"] for p in newer))
        return [UpdateWanted(cid, head, tuple(channel.latest[b] for b in sorted(channel.latest)), onchain.settle_at)]

    # ------------------------------------------------------------------ sending
    def tick(self, now: int, chain_time: int | None = None) -> TickReport:
        """Collect receipts, then send every due pending intent (one in flight per channel)."""
        self._now = now
        report = TickReport()
        if chain_time is None:
            chain_time = self.chain.latest_timestamp()
        self._chain_now = chain_time
        self._operators.clear()
        self._poll(report)
        busy = {r.intent.channel_id for r in self.state.intents.values() if r.status is IntentStatus.SUBMITTED}
        pending = sorted(
            (r for r in self.state.intents.values() if r.status is IntentStatus.PENDING),
            key=lambda r: (r.intent.not_before, str(r.intent.channel_id), r.intent.sequence),
        )
        for rec in pending:
            cid = rec.intent.channel_id
            if cid in busy:
                continue
            if rec.intent.not_before > chain_time:
                report.waiting += 1
                continue
            if self._send(rec, chain_time, report):
                busy.add(cid)
        self._poll(report)
        return report

    def _send(self, rec: IntentRecord, chain_time: int, report: TickReport) -> bool:
        intent = rec.intent
        iid = intent.intent_id
        plan = self._plan(rec, chain_time)
        if plan.wait:
            report.waiting += 1
            return False
        if plan.done is not None:
            tx_hash, block, payouts = plan.done
            # already on-chain (someone's transaction, or ours before a crash): the gas of that one
            receipt = self.chain.receipt(tx_hash) if tx_hash else None
            gas = receipt.gas_used if receipt is not None else 0
            self._apply([Confirmed(iid, tx_hash, block, gas, payouts, revealed_at=plan.revealed_at)],
                        payouts={iid: payouts} if payouts else None)
            report.confirmed += 1
            return False
        if plan.fail is not None:
            reason, final = plan.fail
            self._apply([Failed(iid, reason, final, at=self._chain_now)])
            report.failed += 1
            return False
        assert plan.call is not None
        try:
            gas = self.gas_base + self.gas_per_proof * max(plan.proofs, len(intent.payload))
            prepared = self.chain.prepare(plan.call, gas=gas if self.fixed_gas else None)
        except ContractReverted as err:
            self.stats.reverts[err.name] += 1
            self._apply([Failed(iid, str(err), final=err.name not in TRANSIENT_REVERTS, at=self._chain_now)])
            report.failed += 1
            return False
        self._apply([Submitted(iid, prepared.tx_hash)], submissions={iid: prepared})  # durable first
        self._broadcast(iid, prepared.raw)
        report.sent += 1
        metrics.TRANSACTIONS_SENT.labels(intent.kind.value).inc()
        return True

    def _broadcast(self, iid: UUID, raw: bytes) -> None:
        try:
            self.chain.broadcast(raw)
        except NonceTooLow as err:
            rec = self.state.record(iid)
            if rec is not None and rec.tx_hash and self.chain.receipt(rec.tx_hash) is not None:
                return  # it was mined after all
            self.chain.resync_nonce()
            self._apply([Failed(iid, f"nonce already used, will resend: {err}", at=self._chain_now)])

    def _poll(self, report: TickReport | None = None) -> None:
        """Receipts of submitted intents become Confirmed or Failed (in one save)."""
        inputs: list[object] = []
        payouts: dict[UUID, tuple[int, int]] = {}
        observed: list[ev.ChainEvent] = []
        for rec in list(self.state.intents.values()):
            if rec.status is not IntentStatus.SUBMITTED or not rec.tx_hash:
                continue
            receipt = self.chain.receipt(rec.tx_hash)
            if receipt is None:
                continue
            iid = rec.intent.intent_id
            metrics.GAS_USED.labels(rec.intent.kind.value).inc(receipt.gas_used)  # a reverted one costs gas too
            if not receipt.succeeded:
                inputs.append(Failed(iid, f"{rec.intent.kind}: transaction {rec.tx_hash} reverted when mined",
                                     at=self._chain_now))
                if report:
                    report.failed += 1
                continue
            events = list(receipt.events)
            settled = [e for e in events if isinstance(e, ev.ChannelSettled)]
            po = (settled[0].balance_a, settled[0].balance_b) if settled else None
            if po:
                payouts[iid] = po
            disputed = [e for e in events if isinstance(e, ev.Disputed)]
            reached = max(disputed[-1].seq_a, disputed[-1].seq_b) if disputed else None
            # a registration: the registry's time (ours, or an earlier one's if someone else was first)
            revealed = (self.chain.secret_revealed_at(_hash_of(rec.intent))
                        if rec.intent.kind is IntentKind.REGISTER_SECRET else None)
            inputs.append(Confirmed(iid, rec.tx_hash, receipt.block_number, receipt.gas_used, po, reached, revealed))
            self.stats.gas.append(
                GasUse(rec.intent.kind.value, rec.intent.channel_id, rec.tx_hash, receipt.block_number, receipt.gas_used)
            )
            observed += events
            if report:
                report.confirmed += 1
        if inputs:
            self._apply(inputs, payouts=payouts)
        if observed:
            self.observe(observed)

    # ------------------------------------------------------------------ reading the contract first
    def _plan(self, rec: IntentRecord, chain_time: int) -> _Plan:
        """What to do with a pending intent, from the contract's state now (one planner per kind)."""
        intent = rec.intent
        return self._PLANNERS[intent.kind](self, intent, self.chain.channel(intent.channel_id), chain_time)

    def _plan_settle(self, intent: Intent, onchain: OnChainChannel, chain_time: int) -> _Plan:
        cid = intent.channel_id
        if onchain.status is OnChainStatus.SETTLED:
            return _Plan(done=self._find(cid, ev.ChannelSettled))
        if not onchain.is_closed:
            return _Plan(fail=(f"channel {cid} is not closed on-chain ({onchain.status.name})", True))
        if chain_time < onchain.settle_at:
            return _Plan(wait=True)
        if not onchain.has_locks:
            return _Plan(call=Call(IntentKind.SETTLE, cid))
        return self._plan_settle_with_locks(cid, onchain, chain_time)

    def _plan_settle_with_locks(self, cid: UUID, onchain: OnChainChannel, chain_time: int) -> _Plan:
        """``settleWithLocks``: each side's pending locks as the channel's log had them at the sequence
        the contract recorded for that side, checked against what its proof committed and what the
        contract stored; it waits while a lock is neither registered nor expired (the contract
        would revert ``LockUndecided``)."""
        params = self.chain.params(cid)
        sides: list[list[Lock]] = []
        for name, buyer, seq, recorded in (("A", params.a, onchain.seq_a, onchain.locks_hash_a),
                                           ("B", params.b, onchain.seq_b, onchain.locks_hash_b)):
            if recorded == NO_LOCKS_HASH:
                sides.append([])
                continue
            proof = self._payment_at(cid, seq)
            if proof is None:
                return _Plan(fail=(f"channel {cid}: the log has no payment {seq}, the one the contract recorded for "
                                   f"{name}: its pending locks cannot be rebuilt", True))
            locks = self._locks_at(cid, buyer, seq)
            root, amount = locks_root(locks), sum(lock.amount for lock in locks)
            if root != proof.locks_root or amount != proof.locked_amount:
                return _Plan(fail=(f"channel {cid}: {name}'s pending locks rebuilt from the log at sequence {seq} "
                                   f"({len(locks)} locks, {amount} locked, root 0x{root.hex()}) are not what its proof "
                                   f"committed ({proof.locked_amount} locked, root 0x{proof.locks_root.hex()})", True))
            if locks_hash(amount, root) != recorded:
                return _Plan(fail=(f"channel {cid}: {name}'s pending locks at sequence {seq} do not hash to the lock "
                                   f"state the contract recorded (0x{recorded.hex()}): settleWithLocks would revert "
                                   "LocksRootMismatch", True))
            sides.append(locks)
        undecided = [lock for side in sides for lock in side
                     if chain_time <= lock.expiry and not self.chain.secret_revealed_at(lock.secret_hash)]
        if undecided:
            log.info("channel %s: settle waits for %d lock(s) to expire (the last at %d)", cid, len(undecided),
                     max(lock.expiry for lock in undecided))
            return _Plan(wait=True)
        count = len(sides[0]) + len(sides[1])
        return _Plan(call=Call(IntentKind.SETTLE, cid, locks=(pack_locks(sides[0]), pack_locks(sides[1]))),
                     proofs=count // LOCKS_PER_PROOF_GAS)

    def _locks_at(self, cid: UUID, buyer: str, sequence: int) -> list[Lock]:
        """``buyer``'s pending locks after payment ``sequence``: the ``locks`` of its last
        ``PaymentAccepted`` at or before it that changed them (none: no lock ever)."""
        found: list[dict[str, Any]] = []
        for e in self.service.payments_between(cid, 1, sequence):
            locks = getattr(e, "locks", None)
            if e.buyer == buyer and locks is not None:
                found = locks
        return [Lock.from_dict(d) for d in found]

    def _plan_register_secret(self, intent: Intent, onchain: OnChainChannel, chain_time: int) -> _Plan:
        """``registerSecret``, unless the registry has the secret already (anyone's registration counts)."""
        h = _hash_of(intent)
        revealed = self.chain.secret_revealed_at(h)
        if revealed:
            tx_hash = self.chain.secret_revealed_tx(h)
            receipt = self.chain.receipt(tx_hash) if tx_hash else None
            block = receipt.block_number if receipt is not None else self.chain.block_number()
            return _Plan(done=(tx_hash, block, None), revealed_at=revealed)
        if intent.deadline and chain_time > intent.deadline:
            return _Plan(fail=(f"channel {intent.channel_id}: the lock of secret hash {intent.subject} expired at "
                               f"{intent.deadline}; registered now, its secret would not pay it", True))
        secret = bytes.fromhex(str(intent.payload[0]["secret"]).removeprefix("0x"))
        return _Plan(call=Call(IntentKind.REGISTER_SECRET, intent.channel_id, secret=secret))

    def _plan_close(self, intent: Intent, onchain: OnChainChannel, chain_time: int) -> _Plan:
        if onchain.status is not OnChainStatus.OPEN:
            return _Plan(done=self._find(intent.channel_id, ev.ChannelClosedLog))
        return self._plan_evidence(intent, onchain)

    def _plan_checkpoint(self, intent: Intent, onchain: OnChainChannel, chain_time: int) -> _Plan:
        if onchain.status is not OnChainStatus.OPEN:
            return _Plan(fail=(f"channel {intent.channel_id} is no longer open on-chain ({onchain.status.name})", True))
        return self._plan_evidence(intent, onchain)

    def _plan_update(self, intent: Intent, onchain: OnChainChannel, chain_time: int) -> _Plan:
        cid = intent.channel_id
        if not onchain.is_closed:
            return _Plan(fail=(f"channel {cid} is not closed on-chain ({onchain.status.name})", True))
        if chain_time >= onchain.settle_at:
            return _Plan(fail=(f"the challenge period of channel {cid} is over", True))
        return self._plan_defence(intent, onchain)

    def _plan_dispute_request(self, intent: Intent, onchain: OnChainChannel, chain_time: int) -> _Plan:
        return self._plan_dispute(intent.sequence, intent.channel_id, onchain)

    _PLANNERS: dict[IntentKind, Callable[[SettlementExecutor, Intent, OnChainChannel, int], _Plan]] = {
        IntentKind.SETTLE: _plan_settle,
        IntentKind.CLOSE: _plan_close,
        IntentKind.CHECKPOINT: _plan_checkpoint,
        IntentKind.UPDATE: _plan_update,
        IntentKind.DISPUTE: _plan_dispute_request,
        IntentKind.REGISTER_SECRET: _plan_register_secret,
    }

    def _plan_evidence(self, intent: Intent, onchain: OnChainChannel) -> _Plan:
        """A checkpoint or a close: the intent's proofs the chain does not have yet."""
        cid = intent.channel_id
        newer = self._new_proofs(intent.payload, cid, onchain)
        # only proofs paying a participant this wallet acts for count on-chain (the evidence rule)
        proofs = [p for p in newer if self._may_submit_for(p.supplier_address)]
        if not proofs:
            if intent.kind is IntentKind.CLOSE:
                return _Plan(call=Call(IntentKind.CLOSE, cid))
            if newer:
                return _Plan(fail=(f"channel {cid}: its newer proofs pay no participant this wallet acts for "
                                   "(the contract would revert NotPayee)", True))
            return _Plan(done=self._find(cid, ev.Checkpointed, ev.StateUpdated, ev.Disputed))
        return _Plan(call=Call(intent.kind, cid, tuple(proofs)), proofs=len(proofs))

    def _plan_dispute(self, target: int, cid: UUID, onchain: OnChainChannel) -> _Plan:
        """The next step of the paper's disputed settlement: the signed payments after the chain's
        head, read from the channel's log, at most ``dispute_chunk`` of them (a transaction must fit
        in a block), ending with one that pays a participant this wallet may submit for."""
        head = onchain.head_sequence
        if head >= target:
            return _Plan(done=self._find(cid, ev.Disputed, ev.Checkpointed, ev.StateUpdated))
        payments = [
            SignedInvoice.parse(e.transaction)
            for e in self.service.payments_between(cid, head + 1, min(target, head + self.dispute_chunk))
        ]
        if not payments or payments[0].sequence != head + 1:
            first = payments[0].sequence if payments else None
            return _Plan(fail=(f"channel {cid}: the log has no payment {head + 1} (found {first}) to continue "
                               f"the dispute from the chain's head {head}", True))
        while payments and not self._may_submit_for(payments[-1].supplier_address):
            payments.pop()  # the contract wants the last payment to pay the submitter (or its principal)
        if not payments:
            return _Plan(fail=(f"channel {cid}: none of the next {self.dispute_chunk} payments after {head} pays a "
                               "participant this wallet acts for", True))
        head_payment = self._payment_at(cid, head) if head else None
        return _Plan(call=Call(IntentKind.DISPUTE, cid, tuple(payments), head=head_payment), proofs=len(payments))

    def _plan_defence(self, intent: Intent, onchain: OnChainChannel) -> _Plan:
        """The newest state both parties signed, onto the chain of a closed channel.

        ``update`` records each buyer's newer proof, but only one that pays a participant this
        wallet acts for. When a newer proof pays someone else (our node is not the counterparty's
        operator), the paper's dispute from the chain's head records it anyway, provided the chain
        of payments up to our head ends with one paying us: the counterparty's own later signature
        covers the hash links to every payment before it. Otherwise the proofs we may submit are
        sent, which is enough for our side: settle credits each side with what the other provably
        sent (docs/protocol.md, "Settling a contested channel")."""
        cid = intent.channel_id
        newer = self._new_proofs(intent.payload, cid, onchain)
        if not newer:
            return _Plan(done=self._find(cid, ev.StateUpdated, ev.Disputed, ev.Checkpointed))
        ours = [p for p in newer if self._may_submit_for(p.supplier_address)]
        if len(ours) < len(newer) and onchain.head_sequence < intent.sequence:
            head = self._payment_at(cid, intent.sequence)
            if head is not None and self._may_submit_for(head.supplier_address):
                return self._plan_dispute(intent.sequence, cid, onchain)
        if not ours:
            # nothing we may submit now (e.g. an operator right withdrawn): fail, retried until the deadline
            return _Plan(fail=(f"channel {cid}: its newer proofs pay no participant this wallet acts for "
                               "(the contract would revert NotPayee)", False))
        return _Plan(call=Call(IntentKind.UPDATE, cid, tuple(ours)), proofs=len(ours))

    def _may_submit_for(self, payee: str) -> bool:
        """Whether the contract takes a proof paying ``payee`` from this wallet (itself or its operator)."""
        me = self.chain.submitter
        if payee == me:
            return True
        # read once per tick: a participant may change its operator at any moment
        operator = self._operators.get(payee)
        if operator is None:
            operator = self._operators[payee] = self.chain.operator_of(payee)
        return operator == me

    def _payment_at(self, cid: UUID, sequence: int) -> SignedInvoice | None:
        e = self.service.payment_at(cid, sequence)
        return SignedInvoice.parse(e.transaction) if e is not None else None

    def _new_proofs(self, payload: Sequence[dict[str, Any]], cid: UUID, onchain: OnChainChannel) -> list[SignedInvoice]:
        """The intent's proofs that are newer than what the chain recorded for their buyer."""
        a = self.chain.params(cid).a
        proofs = [SignedInvoice.parse(d) for d in payload]
        return [p for p in proofs if p.sequence > (onchain.seq_a if p.buyer == a else onchain.seq_b)]

    def _find(self, cid: UUID, *kinds: type[ev.ChainEvent]) -> tuple[str, int, tuple[int, int] | None]:
        """The latest contract event of these kinds for the channel: whose transaction did it."""
        found = self.chain.channel_events(cid, *kinds)
        if not found:
            return "", self.chain.block_number(), None
        last = max(found, key=lambda e: (e.block_number, e.log_index))
        payouts = (last.balance_a, last.balance_b) if isinstance(last, ev.ChannelSettled) else None
        return last.tx_hash, last.block_number, payouts

    # ------------------------------------------------------------------ queries
    def open_intents(self) -> list[IntentRecord]:
        return self.state.open_intents()

    def intent(self, iid: UUID) -> SettlementIntent:
        """A stored intent with its whole history (open or closed)."""
        return self.store.repository.get(iid)


def _hash_of(intent: Intent) -> bytes:
    """A secret registration's secret hash (its subject)."""
    return bytes.fromhex(intent.subject.removeprefix("0x"))
