"""The mediated transfer (issue 14) as a pure process: one party's transfers, (state, input) -> (state, outputs).

A payment I -> M1 -> ... -> T is a chain of locks on one secret hash h = sha256(s), each a signed
lockedTransfer paid by the upstream party (the payer) to the downstream one (the payee). The party
that knows s claims its incoming lock; a mediator pays downstream only what it can claim upstream,
because its outgoing lock expires ``expiry_delta`` before its incoming one. Known limit: colluding
hops on one route can skip those between them (same h everywhere) and take their fees.

Inputs are facts (past tense), outputs commands (imperative), each with a deterministic
``output_id`` so a restarted service recognises what it already did; an output is never emitted twice
for one transfer, so every input is idempotent. No I/O, no clock (time is an argument), no randomness
(the initiator's secret comes in :class:`PaymentStarted`). After Raiden's initiator/mediator/target
state machines and BOLT 2's add/fulfill/fail, simplified: a mediator does not retry another route, it
fails back and the initiator retries with a fresh secret.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from domain.errors import MalformedMessage, ParsecError

MEDIATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:parsec:mediation-process")


class MediationError(ParsecError):
    """A mediation input or parameter that cannot be right."""


class InvalidMediationParameters(MediationError):
    pass


class SecretMismatch(MalformedMessage):
    """A secret whose sha256 is not the hash it is given with."""


class Role(StrEnum):
    INITIATOR = "initiator"
    MEDIATOR = "mediator"
    TARGET = "target"


class LockStatus(StrEnum):
    PENDING = "pending"
    UNLOCKED = "unlocked"  # paid: off-chain unlock, or on-chain
    REMOVED = "removed"  # expired: back to the payer


class FailReason(StrEnum):
    EXPIRY_TOO_SHORT = "expiry too short"
    AMOUNT_TOO_SMALL = "amount too small for the fee"
    LOCK_EXPIRED = "lock expired"


@dataclass(frozen=True)
class MediationParameters:
    me: str
    reveal_timeout: int  # seconds: the danger zone before an incoming lock's expiry
    expiry_delta: int  # seconds: my outgoing lock expires this much before the incoming one
    fee_base: int = 0
    fee_ppm: int = 0
    lock_expiry_margin: int = 0  # seconds after a lock's expiry before its payer signs lockExpired
    reveal_offchain: bool = True  # False: reveal only on-chain (RegisterSecret), for the simulator

    def __post_init__(self) -> None:
        if self.reveal_timeout <= 0:
            raise InvalidMediationParameters("reveal_timeout must be positive")
        if self.expiry_delta <= self.reveal_timeout:
            raise InvalidMediationParameters(
                "expiry_delta must exceed reveal_timeout (and the time to register a secret on-chain)"
            )
        if self.fee_base < 0 or self.fee_ppm < 0 or self.lock_expiry_margin < 0:
            raise InvalidMediationParameters("fees and lock_expiry_margin are not negative")

    def fee(self, amount: int) -> int:
        return self.fee_base + amount * self.fee_ppm // 1_000_000

    def forwarded_amount(self, incoming: int) -> int:
        """The largest ``out`` with out + fee(out) <= incoming (0 or less: nothing to forward)."""
        out = (incoming - self.fee_base) * 1_000_000 // (1_000_000 + self.fee_ppm)
        while out + 1 + self.fee(out + 1) <= incoming:
            out += 1
        while out > 0 and out + self.fee(out) > incoming:
            out -= 1
        return out


# --- inputs (facts) ------------------------------------------------------------------------
@dataclass(frozen=True)
class LockReceived:
    channel: uuid.UUID
    payer: str
    payment_id: uuid.UUID
    secret_hash: bytes
    amount: int
    expiry: int
    initiator: str
    target: str
    at: int


@dataclass(frozen=True)
class LockSent:
    channel: uuid.UUID
    payee: str
    payment_id: uuid.UUID
    secret_hash: bytes
    amount: int
    expiry: int
    at: int = 0


@dataclass(frozen=True)
class ForwardFailed:
    secret_hash: bytes
    reason: str


@dataclass(frozen=True)
class LockFailedReceived:
    channel: uuid.UUID
    secret_hash: bytes
    reason: str


@dataclass(frozen=True)
class SecretRequested:
    sender: str
    payment_id: uuid.UUID
    secret_hash: bytes
    amount: int
    expiry: int
    at: int = 0


@dataclass(frozen=True)
class SecretLearned:
    secret: bytes
    source: str  # "peer" | "chain"
    at: int


@dataclass(frozen=True)
class LockUnlocked:
    channel: uuid.UUID
    secret_hash: bytes


@dataclass(frozen=True)
class LockRemoved:
    channel: uuid.UUID
    secret_hash: bytes


@dataclass(frozen=True)
class PaymentStarted:
    payment_id: uuid.UUID
    secret: bytes
    secret_hash: bytes
    amount: int
    target: str
    at: int


@dataclass(frozen=True)
class Tick:
    now: int


# --- outputs (commands) --------------------------------------------------------------------
@dataclass(frozen=True)
class ForwardLock:
    output_id: uuid.UUID
    secret_hash: bytes
    payment_id: uuid.UUID
    amount: int
    expiry: int  # 0 for the initiator's first hop: infrastructure sets it from the route
    initiator: str
    target: str
    avoid_channels: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class RequestSecret:
    output_id: uuid.UUID
    to: str
    payment_id: uuid.UUID
    secret_hash: bytes
    amount: int
    expiry: int


@dataclass(frozen=True)
class RevealSecretTo:
    output_id: uuid.UUID
    to: str
    secret: bytes


@dataclass(frozen=True)
class SendUnlock:
    output_id: uuid.UUID
    channel: uuid.UUID
    secret_hash: bytes
    secret: bytes


@dataclass(frozen=True)
class ExpireLock:
    output_id: uuid.UUID
    channel: uuid.UUID
    secret_hash: bytes


@dataclass(frozen=True)
class FailLock:
    output_id: uuid.UUID
    to: str
    channel: uuid.UUID
    secret_hash: bytes
    reason: str


@dataclass(frozen=True)
class RegisterSecret:
    output_id: uuid.UUID
    secret: bytes


@dataclass(frozen=True)
class CloseForLock:
    output_id: uuid.UUID
    channel: uuid.UUID
    secret_hash: bytes


@dataclass(frozen=True)
class PaymentSucceeded:
    output_id: uuid.UUID
    payment_id: uuid.UUID
    secret_hash: bytes


@dataclass(frozen=True)
class PaymentFailed:
    output_id: uuid.UUID
    payment_id: uuid.UUID
    secret_hash: bytes
    reason: str
    retryable: bool


@dataclass(frozen=True)
class InputIgnored:
    """For the log: an input that changed nothing, and why (e.g. a SecretRequest that does not match)."""

    output_id: uuid.UUID
    secret_hash: bytes
    reason: str


# The brief's name for the command; RevealSecretTo avoids a clash with hop_messages.RevealSecret.
RevealSecret = RevealSecretTo


# --- state ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lock:
    channel: uuid.UUID
    peer: str  # the payer of an incoming lock, the payee of an outgoing one
    amount: int
    expiry: int
    status: LockStatus = LockStatus.PENDING


@dataclass(frozen=True)
class Transfer:
    role: Role
    secret_hash: bytes
    payment_id: uuid.UUID
    initiator: str
    target: str
    amount: int  # the initiator's payment amount; else the incoming lock's
    incoming: Lock | None = None
    outgoing: Lock | None = None
    secret: bytes | None = None
    secret_back: bool = False  # initiator: the secret came back up the route (the target has it)
    revealed_to_target: bool = False
    registered: bool = False  # the secret is on-chain (registered by us or seen there)
    forwarding: bool = False  # a ForwardLock is out, neither LockSent nor ForwardFailed yet
    failed: str | None = None
    emitted: frozenset[str] = frozenset()

    @property
    def done(self) -> bool:
        settled = all(lock is None or lock.status != LockStatus.PENDING for lock in (self.incoming, self.outgoing))
        return settled and not self.forwarding and (self.incoming is not None or self.outgoing is not None
                                                     or self.failed is not None)


@dataclass(frozen=True)
class MediationState:
    transfers: dict[str, Transfer] = field(default_factory=dict)  # by secret hash hex
    finished: frozenset[str] = frozenset()  # pruned transfers: later inputs about them change nothing

    def transfer(self, secret_hash: bytes) -> Transfer | None:
        return self.transfers.get(secret_hash.hex())

    def to_json(self) -> dict[str, Any]:
        return {"transfers": {h: _transfer_json(t) for h, t in sorted(self.transfers.items())},
                "finished": sorted(self.finished)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediationState:
        return cls({h: _transfer_from_json(t) for h, t in data["transfers"].items()}, frozenset(data["finished"]))


def _lock_json(lock: Lock | None) -> dict[str, Any] | None:
    if lock is None:
        return None
    return {"channel": str(lock.channel), "peer": lock.peer, "amount": str(lock.amount),
            "expiry": lock.expiry, "status": lock.status.value}


def _lock_from_json(data: dict[str, Any] | None) -> Lock | None:
    if data is None:
        return None
    return Lock(uuid.UUID(data["channel"]), data["peer"], int(data["amount"]), int(data["expiry"]),
                LockStatus(data["status"]))


def _transfer_json(t: Transfer) -> dict[str, Any]:
    out = asdict(t)
    out.update(role=t.role.value, secretHash="0x" + t.secret_hash.hex(), paymentId=str(t.payment_id),
               amount=str(t.amount), incoming=_lock_json(t.incoming), outgoing=_lock_json(t.outgoing),
               secret=None if t.secret is None else "0x" + t.secret.hex(), emitted=sorted(t.emitted))
    del out["secret_hash"], out["payment_id"]
    out["secretBack"], out["revealedToTarget"] = out.pop("secret_back"), out.pop("revealed_to_target")
    return out


def _transfer_from_json(d: dict[str, Any]) -> Transfer:
    return Transfer(
        role=Role(d["role"]), secret_hash=bytes.fromhex(d["secretHash"][2:]), payment_id=uuid.UUID(d["paymentId"]),
        initiator=d["initiator"], target=d["target"], amount=int(d["amount"]),
        incoming=_lock_from_json(d["incoming"]), outgoing=_lock_from_json(d["outgoing"]),
        secret=None if d["secret"] is None else bytes.fromhex(d["secret"][2:]), secret_back=d["secretBack"],
        revealed_to_target=d["revealedToTarget"], registered=d["registered"], forwarding=d["forwarding"],
        failed=d["failed"], emitted=frozenset(d["emitted"]),
    )


# --- transition ----------------------------------------------------------------------------
def output_id(me: str, kind: str, secret_hash: bytes, *about: object) -> uuid.UUID:
    """Deterministic: the same command about the same transfer has the same id across restarts."""
    return uuid.uuid5(MEDIATION_NAMESPACE, "/".join([me, kind, secret_hash.hex(), *map(str, about)]))


class _Step:
    """Collects one transition's outputs, each at most once per transfer."""

    def __init__(self, params: MediationParameters, t: Transfer) -> None:
        self.params, self.t, self.outputs = params, t, []  # type: ignore[var-annotated]

    def emit(self, cls: type, *about: object, **fields: Any) -> bool:
        key = "/".join([cls.__name__, *map(str, about)])
        if key in self.t.emitted:
            return False
        oid = output_id(self.params.me, cls.__name__, self.t.secret_hash, *about)
        self.outputs.append(cls(output_id=oid, **fields))
        self.t = replace(self.t, emitted=self.t.emitted | {key})
        return True


def transition(params: MediationParameters, state: MediationState, event: object) -> tuple[MediationState, list]:
    h = _hash_of(event)
    if h is None:  # a Tick: every transfer
        outputs: list = []
        for key in sorted(state.transfers):
            state, more = _apply(params, state, state.transfers[key], event)
            outputs += more
        return state, outputs
    if h.hex() in state.finished:
        return state, []
    t = state.transfer(h)
    if t is None:
        t = _new_transfer(params, event, h)
        if t is None:
            return state, []
    return _apply(params, state, t, event)


def _hash_of(event: object) -> bytes | None:
    if isinstance(event, Tick):
        return None
    if isinstance(event, SecretLearned):
        return hashlib.sha256(event.secret).digest()
    h = getattr(event, "secret_hash", None)
    if not isinstance(h, bytes) or len(h) != 32:
        raise MalformedMessage(f"{type(event).__name__}: a secret hash is 32 bytes")
    return h


def _new_transfer(params: MediationParameters, event: object, h: bytes) -> Transfer | None:
    if isinstance(event, PaymentStarted):
        if hashlib.sha256(event.secret).digest() != h:
            raise SecretMismatch("PaymentStarted: sha256(secret) is not secret_hash")
        if event.amount <= 0:
            raise MediationError("a payment's amount is positive")
        return Transfer(Role.INITIATOR, h, event.payment_id, params.me, event.target, event.amount,
                        secret=event.secret)
    if isinstance(event, LockReceived):
        role = Role.TARGET if event.target == params.me else Role.MEDIATOR
        return Transfer(role, h, event.payment_id, event.initiator, event.target, event.amount)
    return None  # anything else about an unknown hash is not ours


def _apply(params: MediationParameters, state: MediationState, t: Transfer, event: object
           ) -> tuple[MediationState, list]:
    step = _Step(params, t)
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(step, event)
    t = step.t
    transfers = dict(state.transfers)
    if t.done:
        transfers.pop(t.secret_hash.hex(), None)
        return MediationState(transfers, state.finished | {t.secret_hash.hex()}), step.outputs
    transfers[t.secret_hash.hex()] = t
    return MediationState(transfers, state.finished), step.outputs


def _on_payment_started(s: _Step, e: PaymentStarted) -> None:
    if s.t.outgoing is None and s.t.failed is None:
        s.t = replace(s.t, forwarding=True) if s.emit(ForwardLock, "first", secret_hash=s.t.secret_hash,
                                                       payment_id=s.t.payment_id, amount=s.t.amount, expiry=0,
                                                       initiator=s.params.me, target=s.t.target,
                                                       avoid_channels=()) else s.t


def _on_lock_received(s: _Step, e: LockReceived) -> None:
    t = s.t
    if t.incoming is not None or t.role == Role.INITIATOR:
        return  # the same lock twice, or a lock on my own payment's hash coming back: not mine to take
    t = s.t = replace(t, incoming=Lock(e.channel, e.payer, e.amount, e.expiry))
    p = s.params
    if t.role == Role.TARGET:
        if e.expiry - e.at > p.reveal_timeout:
            s.emit(RequestSecret, to=t.initiator, payment_id=t.payment_id, secret_hash=t.secret_hash,
                   amount=e.amount, expiry=e.expiry)
        else:
            s.emit(FailLock, to=e.payer, channel=e.channel, secret_hash=t.secret_hash,
                   reason=FailReason.EXPIRY_TOO_SHORT.value)
        return
    out_expiry = e.expiry - p.expiry_delta
    out_amount = p.forwarded_amount(e.amount)
    reason = None
    if out_expiry - e.at < p.reveal_timeout + p.lock_expiry_margin:
        reason = FailReason.EXPIRY_TOO_SHORT.value
    elif out_amount <= 0:
        reason = FailReason.AMOUNT_TOO_SMALL.value
    if reason is not None:
        s.t = replace(s.t, failed=reason)
        s.emit(FailLock, to=e.payer, channel=e.channel, secret_hash=t.secret_hash, reason=reason)
        return
    s.t = replace(s.t, forwarding=True)
    s.emit(ForwardLock, secret_hash=t.secret_hash, payment_id=t.payment_id, amount=out_amount,
           expiry=out_expiry, initiator=t.initiator, target=t.target, avoid_channels=(e.channel,))


def _on_lock_sent(s: _Step, e: LockSent) -> None:
    if s.t.outgoing is None and s.t.role != Role.TARGET:
        s.t = replace(s.t, outgoing=Lock(e.channel, e.payee, e.amount, e.expiry), forwarding=False)


def _fail_back(s: _Step, reason: str) -> None:
    t = s.t = replace(s.t, failed=s.t.failed or reason, forwarding=False)
    if t.role == Role.INITIATOR:
        if not t.secret_back:
            s.emit(PaymentFailed, payment_id=t.payment_id, secret_hash=t.secret_hash, reason=reason,
                   retryable=not t.revealed_to_target)
    elif t.incoming is not None and t.incoming.status == LockStatus.PENDING and t.secret is None:
        s.emit(FailLock, to=t.incoming.peer, channel=t.incoming.channel, secret_hash=t.secret_hash, reason=reason)


def _on_forward_failed(s: _Step, e: ForwardFailed) -> None:
    if s.t.outgoing is None:
        _fail_back(s, e.reason)


def _on_lock_failed_received(s: _Step, e: LockFailedReceived) -> None:
    if s.t.outgoing is not None and s.t.outgoing.channel == e.channel:
        _fail_back(s, e.reason)


def _on_secret_requested(s: _Step, e: SecretRequested) -> None:
    t, p = s.t, s.params
    why = None
    if t.role != Role.INITIATOR:
        why = "not my payment"
    elif t.failed is not None:
        why = "the attempt failed"  # never reveal a failed attempt's secret: its locks may still be claimed
    elif e.sender != t.target or e.payment_id != t.payment_id:
        why = "sender or payment id does not match"
    elif e.amount < t.amount:
        why = "amount below the payment's"
    elif e.expiry - e.at <= p.reveal_timeout:
        why = "expiry too close"
    if why is not None:
        s.emit(InputIgnored, "SecretRequested", e.sender, e.amount, e.expiry, secret_hash=t.secret_hash,
               reason=f"SecretRequest ignored: {why}")
        return
    if s.emit(RevealSecretTo, t.target, to=t.target, secret=t.secret):
        s.t = replace(s.t, revealed_to_target=True)


def _on_secret_learned(s: _Step, e: SecretLearned) -> None:
    t, p = s.t, s.params
    on_chain = e.source == "chain"
    if t.role == Role.INITIATOR:
        s.t = t = replace(t, secret_back=True, registered=t.registered or on_chain)
    else:
        s.t = t = replace(t, secret=e.secret, registered=t.registered or on_chain)
    # Pay my payee: it has the secret and could claim on-chain anyway, until its lock expires.
    out = t.outgoing
    if out is not None and out.status == LockStatus.PENDING and e.at <= out.expiry:
        s.emit(SendUnlock, out.channel, channel=out.channel, secret_hash=t.secret_hash, secret=e.secret)
    inc = t.incoming
    if inc is not None and inc.status == LockStatus.PENDING:
        if p.reveal_offchain:
            s.emit(RevealSecretTo, inc.peer, to=inc.peer, secret=e.secret)
        elif not t.registered:
            s.emit(RegisterSecret, secret=e.secret)
            s.t = replace(s.t, registered=True)


def _set_status(s: _Step, channel: uuid.UUID, status: LockStatus) -> None:
    t = s.t
    if t.incoming is not None and t.incoming.channel == channel and t.incoming.status == LockStatus.PENDING:
        s.t = replace(t, incoming=replace(t.incoming, status=status))
    elif t.outgoing is not None and t.outgoing.channel == channel and t.outgoing.status == LockStatus.PENDING:
        s.t = replace(t, outgoing=replace(t.outgoing, status=status))
        if t.role == Role.INITIATOR and status == LockStatus.UNLOCKED:
            s.emit(PaymentSucceeded, payment_id=t.payment_id, secret_hash=t.secret_hash)


def _on_lock_unlocked(s: _Step, e: LockUnlocked) -> None:
    _set_status(s, e.channel, LockStatus.UNLOCKED)


def _on_lock_removed(s: _Step, e: LockRemoved) -> None:
    _set_status(s, e.channel, LockStatus.REMOVED)


def _on_tick(s: _Step, e: Tick) -> None:
    t, p = s.t, s.params
    inc, out = t.incoming, t.outgoing
    if inc is not None and inc.status == LockStatus.PENDING and t.secret is not None \
            and e.now >= inc.expiry - p.reveal_timeout:
        # The danger zone: my payer has not unlocked; the chain pays the lock if s is registered by its expiry.
        if not t.registered:
            s.emit(RegisterSecret, secret=t.secret)
            s.t = replace(s.t, registered=True)
        s.emit(CloseForLock, inc.channel, channel=inc.channel, secret_hash=t.secret_hash)
    secret_known = t.secret_back if t.role == Role.INITIATOR else t.secret is not None
    if out is not None and out.status == LockStatus.PENDING and not secret_known \
            and e.now > out.expiry + p.lock_expiry_margin:
        s.emit(ExpireLock, out.channel, channel=out.channel, secret_hash=t.secret_hash)
        if t.role == Role.INITIATOR:
            _fail_back(s, FailReason.LOCK_EXPIRED.value)


_HANDLERS: dict[type, Any] = {
    PaymentStarted: _on_payment_started, LockReceived: _on_lock_received, LockSent: _on_lock_sent,
    ForwardFailed: _on_forward_failed, LockFailedReceived: _on_lock_failed_received,
    SecretRequested: _on_secret_requested, SecretLearned: _on_secret_learned, LockUnlocked: _on_lock_unlocked,
    LockRemoved: _on_lock_removed, Tick: _on_tick,
}

__all__ = [
    "CloseForLock", "ExpireLock", "FailLock", "FailReason", "ForwardFailed", "ForwardLock", "InputIgnored",
    "InvalidMediationParameters", "Lock", "LockFailedReceived", "LockReceived", "LockRemoved", "LockSent",
    "LockStatus", "LockUnlocked", "MediationError", "MediationParameters", "MediationState", "PaymentFailed",
    "PaymentStarted", "PaymentSucceeded", "RegisterSecret", "RequestSecret", "RevealSecret", "RevealSecretTo",
    "Role", "SecretLearned", "SecretMismatch", "SecretRequested", "SendUnlock", "Tick", "Transfer", "output_id",
    "transition",
]
