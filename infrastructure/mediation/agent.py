"""One party's side of multi-hop payments: the pure mediation core (``domain/mediation.py``) run
against the channel log, the hop messages and the chain.

A :class:`MediationAgent` belongs to one key. It is fed facts, in the order they happen:

* the Channel events of the log (:meth:`on_event`), every channel's: it keeps its own mirror of each
  channel (the domain ``Channel`` aggregate, mutated event by event, so it signs from exactly the state
  the node will check) and of the network's graph for routing; a ``lockedTransfer`` to or from it, an
  ``unlock`` or a ``lockExpired`` of its channels becomes the core's ``LockReceived`` / ``LockSent`` /
  ``LockUnlocked`` / ``LockRemoved``;
* the signed hop messages addressed to it (:meth:`on_hop`): ``SecretRequest``, ``RevealSecret``,
  ``LockFailed``;
* secrets registered on-chain (:meth:`on_secret_registered`);
* the time (:meth:`tick`).

Its outputs are performed by :meth:`flush` through a :class:`Network` port (Kafka, or the embedded
store for the simulator): a channel transaction to sign and submit, a hop message to send, a secret to
register, a channel to close.

Nothing is sent twice, nothing is lost (after the settlement executor's rule): the core marks each
output emitted, and the agent saves the core's state together with the outbox (what is still to be
done) *before* doing anything; a channel transaction is signed and saved with its exact bytes before
it is submitted, so after a crash the same bytes are sent again (the node applies a repeat once).
One transaction per channel is in flight at a time: the next is signed only once the log shows the
previous one (or another transaction in that slot: then it is signed again on the new head).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from domain import mediation as core
from domain.addresses import eth_address_from_public_key
from domain.channel import Channel
from domain.crypto import PrivateKey
from domain.errors import ParsecError
from domain.hop_messages import HopMessage, LockFailed, RevealSecret, SecretRequest, secret_hash_of
from domain.locks import Lock
from domain.routing import (
    DEFAULT_EXPIRY_DELTA,
    DEFAULT_FEE_BASE,
    DEFAULT_FEE_PPM,
    ChannelUpdate,
    sign_channel_update,
)
from infrastructure.routing.pathfinder import MissionControl, Pathfinder, Route, RoutingError
from projections.channel_graph import Direction, GraphChannel

log = logging.getLogger("parsec.mediation")


class TransactionRefused(ParsecError):
    """The node refused a channel transaction at once (embedded store); ``reason`` is its code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.code, self.detail = reason, detail


class Network(Protocol):
    """How an agent reaches the channels, the other parties and the chain."""

    def submit(self, raw: bytes, channel: UUID) -> None:
        """Hand a signed channel transaction to the channel's node. Raises TransactionRefused when the
        refusal is known at once; otherwise the outcome shows in the log."""

    def send_hop(self, message: HopMessage) -> None: ...

    def register_secret(self, channel: UUID, secret: bytes) -> None:
        """Have ``secret`` registered on-chain (the lock it unlocks is in ``channel``)."""

    def close_channel(self, channel: UUID) -> None:
        """Ask for a unilateral close of ``channel`` (its locks are then decided on-chain)."""

    def announce(self, update: ChannelUpdate) -> None:
        """Have a signed forwarding policy recorded by its channel (``Channel.FeePolicySet``)."""


class AgentStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


@dataclass
class MemoryAgentStore:
    saved: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.saved

    def save(self, state: dict[str, Any]) -> None:
        self.saved = state


@dataclass(frozen=True)
class Misbehaviour:
    """What a party does wrong, for the simulator and the chaos tests (all off for a real party)."""

    never_forward: bool = False  # a mediator that takes locks and goes silent
    withhold_unlocks: bool = False  # an upstream that never sends the unlock it owes
    offline: bool = False  # a target that never asks for the secret


@dataclass(frozen=True)
class AgentConfig:
    """A party's mediation settings. The fee policy and expiry delta are also what this agent assumes
    of every forwarder when it routes (until fee policies are recorded per channel)."""

    reveal_timeout: int = 60
    expiry_delta: int = DEFAULT_EXPIRY_DELTA
    fee_base: int = DEFAULT_FEE_BASE
    fee_ppm: int = DEFAULT_FEE_PPM
    final_expiry: int = 1200  # seconds the payee's lock lasts
    lock_expiry_margin: int = 31  # after a lock's expiry: the node's LOCK_EXPIRY_MARGIN (30 s) plus a second
    max_attempts: int = 3  # routes tried per payment
    max_hops: int = 6
    resend_after: int = 5  # seconds without seeing a submitted transaction in the log: send its bytes again
    refused_after: int = 30  # seconds: a transaction the log never shows was refused
    reveal_offchain: bool = True  # False: a target reveals only on-chain
    misbehaviour: Misbehaviour = Misbehaviour()


@dataclass
class Attempt:
    secret_hash: str
    route: list[dict[str, Any]]
    total_amount: int
    fee: int
    status: str = "pending"  # pending | succeeded | failed
    reason: str | None = None


@dataclass
class Payment:
    """A payment this agent initiated, with every route it tried."""

    payment_id: str
    target: str
    amount: int
    currency: str | None
    started_at: int
    status: str = "pending"  # pending | succeeded | failed
    reason: str | None = None
    finished_at: int | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        ok = next((a for a in self.attempts if a.status == "succeeded"), None)
        return {"paymentId": self.payment_id, "target": self.target, "amount": str(self.amount),
                "currency": self.currency, "status": self.status, "reason": self.reason,
                "startedAt": self.started_at, "finishedAt": self.finished_at,
                "fee": None if ok is None else str(ok.fee), "route": None if ok is None else ok.route,
                "attempts": [{"secretHash": a.secret_hash, "status": a.status, "reason": a.reason,
                              "totalAmount": str(a.total_amount), "fee": str(a.fee), "route": a.route}
                             for a in self.attempts]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Payment:
        return cls(d["paymentId"], d["target"], int(d["amount"]), d["currency"], d["startedAt"], d["status"],
                   d["reason"], d["finishedAt"],
                   [Attempt(a["secretHash"], a["route"], int(a["totalAmount"]), int(a["fee"]), a["status"], a["reason"])
                    for a in d["attempts"]])


@dataclass
class PendingTransaction:
    """A channel transaction of this agent, queued, or signed and in flight."""

    output_id: str
    channel: str
    kind: str
    price: int
    terms: dict[str, Any]
    raw: str | None = None  # the signed bytes (saved before they are submitted)
    sequence: int | None = None
    tx_hash: str | None = None
    first_sent: int | None = None
    last_sent: int | None = None


# --- outputs to JSON and back (the outbox is saved) ----------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def output_to_json(out: object) -> dict[str, Any]:
    return {"type": type(out).__name__,
            **{f.name: _encode(getattr(out, f.name)) for f in dataclasses.fields(out)}}  # type: ignore[arg-type]


_OUTPUT_TYPES = {cls.__name__: cls for cls in (
    core.ForwardLock, core.RequestSecret, core.RevealSecretTo, core.SendUnlock, core.ExpireLock, core.FailLock,
    core.RegisterSecret, core.CloseForLock, core.PaymentSucceeded, core.PaymentFailed, core.InputIgnored)}


def output_from_json(d: dict[str, Any]) -> object:
    cls = _OUTPUT_TYPES[d["type"]]
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        v, t = d[f.name], hints[f.name]
        if t is bytes:
            v = bytes.fromhex(v[2:])
        elif t is uuid.UUID:
            v = UUID(v)
        elif f.name == "avoid_channels":
            v = tuple(UUID(x) for x in v)
        kwargs[f.name] = v
    return cls(**kwargs)


class MediationAgent:
    """One key's multi-hop payments: initiator, mediator and target at once."""

    def __init__(self, key: PrivateKey, network: Network, *, config: AgentConfig = AgentConfig(),
                 store: AgentStore | None = None, random_secret: Callable[[], bytes] = lambda: os.urandom(32)) -> None:
        self.key = key
        self.me = eth_address_from_public_key(key.public_key)
        self.network, self.config = network, config
        self.store = store or MemoryAgentStore()
        self.random_secret = random_secret
        self.params = core.MediationParameters(
            me=self.me, reveal_timeout=config.reveal_timeout, expiry_delta=config.expiry_delta,
            fee_base=config.fee_base, fee_ppm=config.fee_ppm, lock_expiry_margin=config.lock_expiry_margin,
            reveal_offchain=config.reveal_offchain)
        self.channels: dict[UUID, Channel] = {}  # the log's channels, as the log has them
        self.mission = MissionControl()
        self.state = core.MediationState()
        self.outbox: list[object] = []  # core outputs not yet performed
        self.queues: dict[str, list[PendingTransaction]] = {}  # per channel: my transactions, in order
        self.hop_outbox: list[dict[str, Any]] = []  # hop messages to send (re-sent after a crash: idempotent)
        self.chain_outbox: list[dict[str, Any]] = []  # register / close requests to make
        self.payments: dict[str, Payment] = {}
        self.positions: dict[str, int] = {}  # the caller's positions in its sources, saved with the rest
        self.announced: dict[str, int] = {}  # channel -> when my policy was last announced there
        self._dirty = False  # something the saved state does not hold yet
        self.counters: dict[str, int] = {"forwarded": 0, "unlocksSent": 0, "expiriesSent": 0,
                                         "secretsRegistered": 0, "closesForLocks": 0, "locksFailedBack": 0}
        self._load()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        d = self.store.load()
        if not d:
            return
        self.state = core.MediationState.from_json(d["core"])
        self.outbox = [output_from_json(o) for o in d["outbox"]]
        self.queues = {c: [PendingTransaction(**p) for p in q] for c, q in d["queues"].items()}
        self.hop_outbox, self.chain_outbox = list(d["hopOutbox"]), list(d["chainOutbox"])
        self.payments = {k: Payment.from_json(v) for k, v in d["payments"].items()}
        self.positions = dict(d["positions"])
        self.announced = dict(d.get("announced", {}))
        self.counters.update(d.get("counters", {}))

    def save(self) -> None:
        self._dirty = False
        self.store.save({
            "me": self.me, "core": self.state.to_json(), "outbox": [output_to_json(o) for o in self.outbox],
            "queues": {c: [dataclasses.asdict(p) for p in q] for c, q in self.queues.items() if q},
            "hopOutbox": self.hop_outbox, "chainOutbox": self.chain_outbox,
            "payments": {k: p.to_json() for k, p in self.payments.items()}, "positions": self.positions,
            "announced": self.announced, "counters": self.counters})

    # ------------------------------------------------------------------ inputs
    def _feed(self, fact: object) -> None:
        before = self.state
        self.state, outputs = core.transition(self.params, self.state, fact)
        self.outbox.extend(outputs)
        if outputs or self.state is not before:
            self._dirty = True

    def on_event(self, event: Any, now: int, *, replaying: bool = False) -> None:
        """One Channel event of the log, in log order. ``replaying``: only rebuild the mirror (the
        event is older than the saved positions: the core has seen it)."""
        cid = event.originator_id
        channel = event.mutate(self.channels.get(cid))
        if channel is None:
            return
        self.channels[cid] = channel
        name = type(event).__name__
        if name != "PaymentAccepted" or self.me not in channel.participants:
            return
        self._settle_in_flight(cid, event)
        if replaying:
            return
        kind = getattr(event, "kind", "payment")
        if kind not in ("lockedTransfer", "unlock", "lockExpired"):
            return
        terms = event.transaction.get("terms") or {}
        h = bytes.fromhex(terms["secretHash"][2:])
        if kind == "lockedTransfer":
            amount, expiry, pid = int(terms["amount"]), int(terms["expiry"]), UUID(terms["paymentId"])
            if event.supplier == self.me:
                self._feed(core.LockReceived(cid, event.buyer, pid, h, amount, expiry, terms["initiator"],
                                             terms["target"], now))
            else:
                self._feed(core.LockSent(cid, event.supplier, pid, h, amount, expiry, now))
        elif kind == "unlock":
            self._feed(core.LockUnlocked(cid, h))
        else:
            self._feed(core.LockRemoved(cid, h))

    def on_hop(self, message: HopMessage, now: int) -> None:
        """A verified hop message; one addressed to someone else is ignored."""
        if message.recipient != self.me:
            return
        if isinstance(message, SecretRequest):
            self._feed(core.SecretRequested(message.sender, message.payment_id, message.secret_hash,
                                            message.amount, message.expiry, now))
        elif isinstance(message, RevealSecret):
            self._feed(core.SecretLearned(message.secret, "peer", now))
        elif isinstance(message, LockFailed):
            # only my payee in that channel can say it will not forward: anyone else's word would let a
            # stranger fail my payments (the core then gives up a lock that may still succeed)
            ch = self.channels.get(message.channel_id)
            if ch is None or self.me not in ch.participants or ch.counterparty(self.me) != message.sender:
                log.warning("%s: LockFailed about channel %s from %s ignored: not my counterparty there",
                            self.me, message.channel_id, message.sender)
                return
            self._feed(core.LockFailedReceived(message.channel_id, message.secret_hash, message.reason))

    # refusals that mean "the slot was taken": sign again on the new head once the log shows it
    SLOT_TAKEN = frozenset({"ConflictingPayment", "BrokenHashPointer", "SequenceGap", "StalePayment"})

    def on_refused(self, channel: UUID, raw: bytes, reason: str, detail: str, now: int) -> None:
        """The node refused one of the transactions this agent sent (read from the rejected topic).
        Matched by its exact bytes; a refusal of anything else is not this agent's business."""
        q = self.queues.get(str(channel))
        if not q or q[0].raw is None or q[0].raw.encode() != raw:
            return
        head = q[0]
        self._dirty = True
        if reason in self.SLOT_TAKEN:
            log.info("%s: %s in channel %s refused (%s): signing it again on the new head", self.me, head.kind,
                     channel, reason)
            head.raw = head.sequence = head.tx_hash = None
            head.first_sent = head.last_sent = None
            return
        self._drop(q, f"{reason}: {detail}", now)

    def on_secret_registered(self, secret: bytes, at: int) -> None:
        self._feed(core.SecretLearned(secret, "chain", at))

    def tick(self, now: int) -> None:
        self._feed(core.Tick(now))

    def pay(self, target: str, amount: int, now: int, *, currency: str | None = None,
            payment_id: UUID | None = None) -> str:
        """Start a payment of ``amount`` to ``target`` across a route; returns its id (see :meth:`payment`)."""
        pid = str(payment_id or uuid.uuid4())
        if pid in self.payments:
            return pid
        self.payments[pid] = Payment(pid, target, amount, currency, now)
        self._start_attempt(self.payments[pid], now)
        return pid

    def payment(self, payment_id: str) -> Payment:
        return self.payments[payment_id]

    def _start_attempt(self, p: Payment, now: int) -> None:
        secret = self.random_secret()
        h = secret_hash_of(secret)
        p.attempts.append(Attempt(h.hex(), [], 0, 0))
        self._feed(core.PaymentStarted(UUID(p.payment_id), secret, h, p.amount, p.target, now))

    # ------------------------------------------------------------------ outputs
    def flush(self, now: int) -> None:
        """Turn the outbox into actions, save, then act (see the module's docstring). Nothing is
        written when nothing changed since the last save (a quiet agent's tick costs no I/O)."""
        self._announce(now)
        self._plan(now)
        self._sign(now)
        if self._dirty:
            self.save()
        self._act(now)
        if self._dirty:
            self.save()

    def _plan(self, now: int) -> None:
        while self.outbox:
            out = self.outbox.pop(0)
            handler = getattr(self, "_out_" + type(out).__name__)
            handler(out, now)

    def _queue(self, output_id: UUID, channel: UUID, kind: str, price: int, terms: dict[str, Any]) -> None:
        q = self.queues.setdefault(str(channel), [])
        if any(p.output_id == str(output_id) for p in q):
            return
        q.append(PendingTransaction(str(output_id), str(channel), kind, price, terms))
        self._dirty = True

    def _out_ForwardLock(self, out: core.ForwardLock, now: int) -> None:
        if self.config.misbehaviour.never_forward and out.initiator != self.me:
            log.info("%s: not forwarding lock %s (misbehaving)", self.me, out.secret_hash.hex()[:12])
            return
        try:
            channel, amount, expiry, route = self._choose(out, now)
        except RoutingError as err:
            self._feed(core.ForwardFailed(out.secret_hash, f"no route: {err}"))
            return self._plan(now)
        if out.initiator == self.me:
            attempt = self._attempt(out.secret_hash)
            if attempt is not None:
                attempt.route = [{"channel": h.channel_id, "from": h.source, "to": h.target, "amount": str(h.amount),
                                  "fee": str(h.fee), "expiry": h.expiry} for h in route.hops]
                attempt.total_amount, attempt.fee = route.total_amount, route.total_fee
        terms = {"amount": str(amount), "secretHash": "0x" + out.secret_hash.hex(), "expiry": expiry,
                 "paymentId": str(out.payment_id), "initiator": out.initiator, "target": out.target}
        self._queue(out.output_id, channel, "lockedTransfer", amount, terms)
        self.counters["forwarded"] += out.initiator != self.me

    def _choose(self, out: core.ForwardLock, now: int) -> tuple[UUID, int, int, Route]:
        """The channel, amount and expiry of the lock to send: the initiator's from the cheapest route
        (priced backwards by the pathfinder); a mediator's amount and expiry are the core's, its next
        hop the first of its own cheapest route to the target that does not go back upstream."""
        avoid = {str(c) for c in out.avoid_channels}
        upstream = {self.channels[c].counterparty(self.me) for c in out.avoid_channels if c in self.channels}
        amount = out.amount
        if out.initiator == self.me:
            p = self.payments.get(str(out.payment_id))
            if p is not None:
                for a in p.attempts[:-1]:  # what failed before: its channels after my own first hop
                    for hop in a.route[1:]:
                        self.mission.report_failure(hop["channel"], hop["from"], now)
        finder = Pathfinder(self._graph(), self.mission)
        routes = finder.routes(self.me, out.target, amount, now=now, k=5, max_hops=self.config.max_hops,
                               final_expiry=self.config.final_expiry)
        for route in routes:
            first = route.hops[0]
            if first.channel_id in avoid or upstream & set(route.path[1:]):
                continue
            cid = UUID(first.channel_id)
            ch = self.channels[cid]
            send, expiry = (route.total_amount, first.expiry) if out.initiator == self.me else (amount, out.expiry)
            if send > ch.balance_of(self.me):
                continue
            if expiry - now > ch.challenge_period:
                raise RoutingError(f"the route's first lock would live {expiry - now}s, past channel {cid}'s "
                                   f"challenge period of {ch.challenge_period}s")
            return cid, send, expiry, route
        raise RoutingError(f"no route from {self.me} to {out.target} for {amount} avoids where the lock came from")

    def _graph(self) -> list[GraphChannel]:
        """The channel graph from the mirror (as the ``graph`` read model has it): capacity is the
        forwarder's spendable balance; a side's policy is the one its participant announced (mine: my
        own), else the defaults of ``domain.routing``."""
        out = []
        for cid, ch in self.channels.items():
            a, b = ch.participants
            out.append(GraphChannel(str(cid), ch.currency, (a, b), ch.status, None,
                                    self._direction(ch, a, b), self._direction(ch, b, a)))
        return out

    def _direction(self, ch: Channel, source: str, target: str) -> Direction:
        if source == self.me:
            cfg = self.config
            return Direction(source, target, ch.balance_of(source), cfg.fee_base, cfg.fee_ppm, cfg.expiry_delta, None)
        policy = ch.fee_policy(source)
        if policy is None:
            return Direction(source, target, ch.balance_of(source), DEFAULT_FEE_BASE, DEFAULT_FEE_PPM,
                             DEFAULT_EXPIRY_DELTA, None)
        return Direction(source, target, ch.balance_of(source), policy["fee_base"], policy["fee_ppm"],
                         policy["expiry_delta"], policy["issued_at"])

    ANNOUNCE_RETRY = 60
    """Seconds before a policy announced and not yet recorded is announced again (a lost message)."""

    def _announce(self, now: int) -> None:
        """Announce my forwarding policy on each of my open channels whose recorded one differs."""
        cfg = self.config
        mine = {"fee_base": cfg.fee_base, "fee_ppm": cfg.fee_ppm, "expiry_delta": cfg.expiry_delta}
        for cid, ch in self.channels.items():
            if self.me not in ch.participants or ch.status != "open":
                continue
            recorded = ch.fee_policy(self.me)
            if recorded is not None and {k: recorded[k] for k in mine} == mine:
                continue
            if recorded is None and mine == {"fee_base": DEFAULT_FEE_BASE, "fee_ppm": DEFAULT_FEE_PPM,
                                             "expiry_delta": DEFAULT_EXPIRY_DELTA}:
                continue  # the defaults are what everyone assumes of an unannounced side
            last = self.announced.get(str(cid))
            if last is not None and now - last < self.ANNOUNCE_RETRY:
                continue
            issued = max(now, (recorded or {}).get("issued_at", 0) + 1)
            update = sign_channel_update(self.key, ch.domain, cid, fee_base=cfg.fee_base,
                                         fee_proportional=cfg.fee_ppm, expiry_delta=cfg.expiry_delta,
                                         issued_at=issued)
            self.announced[str(cid)] = now
            self._dirty = True
            self.network.announce(update)

    def _attempt(self, secret_hash: bytes) -> Attempt | None:
        for p in self.payments.values():
            for a in p.attempts:
                if a.secret_hash == secret_hash.hex():
                    return a
        return None

    def _payment_of(self, secret_hash: bytes) -> Payment | None:
        for p in self.payments.values():
            if any(a.secret_hash == secret_hash.hex() for a in p.attempts):
                return p
        return None

    def _out_SendUnlock(self, out: core.SendUnlock, now: int) -> None:
        if self.config.misbehaviour.withhold_unlocks:
            log.info("%s: withholding the unlock of %s (misbehaving)", self.me, out.secret_hash.hex()[:12])
            return
        lock = self._my_lock(out.channel, out.secret_hash)
        if lock is None:
            return
        self._queue(out.output_id, out.channel, "unlock", lock.amount,
                    {"secretHash": "0x" + out.secret_hash.hex(), "secret": "0x" + out.secret.hex()})
        self.counters["unlocksSent"] += 1

    def _out_ExpireLock(self, out: core.ExpireLock, now: int) -> None:
        lock = self._my_lock(out.channel, out.secret_hash)
        if lock is None:
            return
        self._queue(out.output_id, out.channel, "lockExpired", lock.amount, {"secretHash": "0x" + out.secret_hash.hex()})
        self.counters["expiriesSent"] += 1

    def _my_lock(self, channel: UUID, secret_hash: bytes) -> Lock | None:
        ch = self.channels.get(channel)
        if ch is None:
            return None
        return next((x for x in ch.pending_locks(self.me) if x.secret_hash == secret_hash), None)

    def _hop(self, cls: type[HopMessage], channel: UUID | None, **fields: Any) -> None:
        domain = self._domain(channel)
        if domain is None:
            log.warning("%s: no channel to take the signing domain from; %s not sent", self.me, cls.KIND)
            return
        msg = cls.signed(self.key, domain, **fields)
        self.hop_outbox.append(msg.to_json() | {"_channel": str(channel) if channel else None})
        self._dirty = True

    def _domain(self, channel: UUID | None) -> Any:
        ch = self.channels.get(channel) if channel else None
        if ch is None:
            ch = next((c for c in self.channels.values() if self.me in c.participants), None)
        return None if ch is None else ch.domain

    def _transfer_channel(self, secret_hash: bytes) -> UUID | None:
        t = self.state.transfer(secret_hash)
        lock = None if t is None else (t.incoming or t.outgoing)
        return None if lock is None else lock.channel

    def _out_RequestSecret(self, out: core.RequestSecret, now: int) -> None:
        if self.config.misbehaviour.offline:
            return
        self._hop(SecretRequest, self._transfer_channel(out.secret_hash), payment_id=out.payment_id,
                  secret_hash=out.secret_hash, amount=out.amount, expiry=out.expiry, recipient=out.to)

    def _out_RevealSecretTo(self, out: core.RevealSecretTo, now: int) -> None:
        self._hop(RevealSecret, self._transfer_channel(secret_hash_of(out.secret)), secret=out.secret,
                  recipient=out.to)

    def _out_FailLock(self, out: core.FailLock, now: int) -> None:
        self._hop(LockFailed, out.channel, channel_id=out.channel, secret_hash=out.secret_hash,
                  reason=out.reason[:200], recipient=out.to)
        self.counters["locksFailedBack"] += 1

    def _out_RegisterSecret(self, out: core.RegisterSecret, now: int) -> None:
        channel = self._transfer_channel(secret_hash_of(out.secret))
        self.chain_outbox.append({"do": "register", "channel": str(channel), "secret": "0x" + out.secret.hex()})
        self._dirty = True
        self.counters["secretsRegistered"] += 1

    def _out_CloseForLock(self, out: core.CloseForLock, now: int) -> None:
        self.chain_outbox.append({"do": "close", "channel": str(out.channel)})
        self._dirty = True
        self.counters["closesForLocks"] += 1

    def _out_PaymentSucceeded(self, out: core.PaymentSucceeded, now: int) -> None:
        p, a = self._payment_of(out.secret_hash), self._attempt(out.secret_hash)
        if p is None or a is None:
            return
        a.status, p.status, p.finished_at = "succeeded", "succeeded", now
        log.info("payment %s to %s succeeded: %d hop(s), fee %d", p.payment_id, p.target, len(a.route), a.fee)

    def _out_PaymentFailed(self, out: core.PaymentFailed, now: int) -> None:
        p, a = self._payment_of(out.secret_hash), self._attempt(out.secret_hash)
        if p is None or a is None or a.status != "pending":
            return
        a.status, a.reason = "failed", out.reason
        if p.status != "pending":
            return
        if out.retryable and len(p.attempts) < self.config.max_attempts:
            log.info("payment %s: attempt %d failed (%s); trying another route", p.payment_id, len(p.attempts),
                     out.reason)
            self._start_attempt(p, now)
            return
        p.status, p.reason, p.finished_at = "failed", out.reason, now
        log.info("payment %s to %s failed: %s", p.payment_id, p.target, out.reason)

    def _out_InputIgnored(self, out: core.InputIgnored, now: int) -> None:
        log.info("%s: %s", self.me, out.reason)

    # ------------------------------------------------------------------ channel transactions
    def _settle_in_flight(self, cid: UUID, event: Any) -> None:
        q = self.queues.get(str(cid))
        if not q or q[0].sequence is None or event.sequence != q[0].sequence:
            return
        head = q[0]
        self._dirty = True
        if event.transaction_hash == head.tx_hash:
            q.pop(0)
        else:  # another transaction took the slot: sign ours again on the new head, and send it at once
            log.info("%s: sequence %d of channel %s holds another transaction; signing ours again",
                     self.me, head.sequence, cid)
            head.raw = head.sequence = head.tx_hash = None
            head.first_sent = head.last_sent = None

    def _sign(self, now: int) -> None:
        for cid, q in self.queues.items():
            if not q or q[0].raw is not None:
                continue
            head = q[0]
            ch = self.channels.get(UUID(cid))
            if ch is None:
                continue
            try:
                tx = ch.sign_next(self.key, kind=head.kind, price=head.price, terms=head.terms,
                                  invoice_id=uuid.uuid5(UUID(head.output_id), str(ch.sequence)), at=now)
            except ParsecError as err:
                self._drop(q, f"{type(err).__name__}: {err}", now)
                continue
            head.raw, head.sequence, head.tx_hash = tx.to_json().decode(), tx.sequence, "0x" + tx.transaction_hash.hex()
            self._dirty = True  # the signed bytes are saved before they are sent

    def _drop(self, q: list[PendingTransaction], reason: str, now: int) -> None:
        head = q.pop(0)
        self._dirty = True
        log.warning("%s: %s in channel %s not possible: %s", self.me, head.kind, head.channel, reason)
        if head.kind == "lockedTransfer":
            self._feed(core.ForwardFailed(bytes.fromhex(head.terms["secretHash"][2:]), reason))

    def _act(self, now: int) -> None:
        for cid, q in self.queues.items():
            if not q or q[0].raw is None:
                continue
            head = q[0]
            if head.first_sent is not None and now - head.first_sent > self.config.refused_after:
                if head.kind == "lockedTransfer":
                    self._drop(q, "the node did not accept it", now)
                else:
                    head.raw = head.sequence = head.tx_hash = head.first_sent = None  # sign again, send again
                continue
            if head.last_sent is not None and now - head.last_sent < self.config.resend_after:
                continue
            head.first_sent = head.first_sent or now
            head.last_sent = now
            try:
                self.network.submit(head.raw.encode(), UUID(cid))
            except TransactionRefused as refused:
                self._drop(q, str(refused), now)
        if self.hop_outbox or self.chain_outbox:
            self._dirty = True  # sent: the saved outboxes are emptied by the save after acting
        for msg in self.hop_outbox:
            self.network.send_hop(_hop_from_json(msg, self))
        self.hop_outbox = []
        for req in self.chain_outbox:
            if req["do"] == "register":
                self.network.register_secret(UUID(req["channel"]), bytes.fromhex(req["secret"][2:]))
            else:
                self.network.close_channel(UUID(req["channel"]))
        self.chain_outbox = []
        if self.outbox:  # a refusal just fed the core
            self._plan(now)
            self._sign(now)

    # ------------------------------------------------------------------ views
    def busy(self) -> bool:
        """Something is still to be done or awaited."""
        return bool(self.outbox or self.hop_outbox or self.chain_outbox or any(self.queues.values())
                    or self.state.transfers)


def _hop_from_json(d: dict[str, Any], agent: MediationAgent) -> HopMessage:
    from domain.hop_messages import parse_hop_message

    channel = d.get("_channel")
    domain = agent._domain(UUID(channel) if channel else None)
    return parse_hop_message({k: v for k, v in d.items() if k != "_channel"}, domain)


def replay_events(agent: MediationAgent, events: Iterable[Any], now: int) -> None:
    for e in events:
        agent.on_event(e, now, replaying=True)


__all__ = ["AgentConfig", "AgentStore", "Attempt", "MediationAgent", "MemoryAgentStore", "Misbehaviour", "Network",
           "Payment", "PendingTransaction", "TransactionRefused", "output_from_json", "output_to_json"]
