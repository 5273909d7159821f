"""The settlement process manager's core: a pure transition (state, input) -> (state, outputs).

Inputs are facts, named in the past tense: the Channel's requests
(``CheckpointWanted``, ``SettlementWanted``, ``DisputeWanted``,
``SecretRegistrationWanted``, the watchtower's ``UpdateWanted``) and what the executor observed on the chain (``Submitted``,
``Confirmed``, ``Failed``, ``ClosedOnChain``). Outputs are commands, named in
the imperative: ``SendTransaction`` an intent, and to the Channel
``ConfirmCheckpoint``, ``CloseChannel``, ``RecordSecretRegistered``, or ``ReportGiveUp``. Nothing here does
I/O: the executor in ``infrastructure`` sends, waits for receipts, and feeds
the results back in.

Rules (after Raiden's pending-until-observed transfers):
- every intent has a deterministic id (channel, kind, sequence, attempt; a secret's
  registration: channel and secret hash), so a restarted executor recognises what it already sent;
- an intent is pending until a chain observation settles it;
- a newer checkpoint of a channel supersedes an older one not yet submitted;
- a failed intent is retried (a new attempt, a new id) up to ``max_attempts``,
  unless the failure is final (a revert that will repeat);
- except a defence: an intent with a ``deadline`` (the watchtower's answer to a
  close, due before the challenge period ends) is never given up while its
  deadline is ahead. Whatever the failure, it is retried (after a revert later
  each time, ``RETRY_BACKOFF``), and re-planned from the chain's state on every attempt;
  it is given up only once the challenge period is over, when nothing can be
  submitted any more: a defence given up early lets the counterparty's stale
  state settle. A secret's registration has the lock's expiry as its deadline: registered
  after it, the lock would go back to its sender.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from domain.channel import Channel

PROCESS_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:parsec:settlement-process")
RETRY_BACKOFF = (2, 4, 8, 15, 30)  # seconds before a defence's next attempt; then every 30 s


class IntentKind(StrEnum):
    CHECKPOINT = "checkpoint"
    CLOSE = "close"  # unilateral close with the latest evidence (starts the challenge period)
    SETTLE = "settle"  # after the challenge period
    DISPUTE = "dispute"  # the paper's disputed settlement: the signed chain since the last checkpoint
    UPDATE = "update"  # watchtower: answer a counterparty's stale close with a newer proof of the closer
    REGISTER_SECRET = "register-secret"  # reveal a pending lock's secret in the contract's registry


class IntentStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    SUPERSEDED = "superseded"


def intent_id(
    kind: IntentKind, channel_id: uuid.UUID, sequence: int, attempt: int = 0, after: int = 0, subject: str = ""
) -> uuid.UUID:
    """Deterministic: the same request (and the same step of a long dispute) has the same id.

    ``subject`` names what an intent is about besides the channel (a secret's registration: the
    secret hash, 0x-hex), for the kinds that are not about a sequence."""
    step = f"/after/{after}" if after else ""
    about = f"/{subject}" if subject else ""
    return uuid.uuid5(PROCESS_NAMESPACE, f"{kind.value}/{channel_id}/{sequence}/{attempt}{step}{about}")


@dataclass(frozen=True)
class Intent:
    intent_id: uuid.UUID
    kind: IntentKind
    channel_id: uuid.UUID
    sequence: int
    payload: tuple[dict[str, Any], ...] = ()  # signed payments: evidence or the disputed chain
    not_before: int = 0  # unix seconds; SETTLE waits for the challenge period
    attempt: int = 0
    after: int = 0  # a long dispute's later step: the head sequence it continues from
    deadline: int = 0  # unix seconds: a defence due before then is never given up (0: none)
    subject: str = ""  # a secret's registration: the secret hash (0x-hex), part of the id


@dataclass(frozen=True)
class IntentRecord:
    intent: Intent
    status: IntentStatus = IntentStatus.PENDING
    tx_hash: str | None = None
    block: int | None = None
    gas_used: int | None = None
    error: str | None = None


# --- inputs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointWanted:
    channel_id: uuid.UUID
    sequence: int
    evidence: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class SettlementWanted:
    channel_id: uuid.UUID
    sequence: int
    evidence: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class DisputeWanted:
    """The signed payments from ``from_sequence`` to ``to_sequence``, as the channel's log holds
    them (the request names the range; the executor reads the payments, a chunk at a time)."""

    channel_id: uuid.UUID
    from_sequence: int
    to_sequence: int


@dataclass(frozen=True)
class UpdateWanted:
    """The chain holds an older state of a closed channel than the channel's log: ``evidence`` holds
    each participant's latest signed payment, ``sequence`` the channel's head, ``deadline`` the end
    of the challenge period (the defence must land before it)."""

    channel_id: uuid.UUID
    sequence: int
    evidence: tuple[dict[str, Any], ...]
    deadline: int = 0


@dataclass(frozen=True)
class SecretRegistrationWanted:
    """A participant asked for the secret of a pending lock (``secret_hash`` = sha256(``secret``),
    both 0x-hex) to be registered on-chain before the lock's ``expiry``."""

    channel_id: uuid.UUID
    secret_hash: str
    secret: str
    expiry: int


@dataclass(frozen=True)
class Submitted:
    intent_id: uuid.UUID
    tx_hash: str


@dataclass(frozen=True)
class Confirmed:
    intent_id: uuid.UUID
    tx_hash: str
    block: int
    gas_used: int
    payouts: tuple[int, int] | None = None  # a settle: what the chain paid (A, B)
    # a dispute: the head sequence the chain recorded (a long dispute goes in several
    # transactions, each within the block gas limit; short of the target, it continues)
    reached: int | None = None
    revealed_at: int | None = None  # a secret's registration: when the chain's registry got it


@dataclass(frozen=True)
class Failed:
    intent_id: uuid.UUID
    reason: str
    final: bool = False  # a revert that will repeat: do not retry (unless a defence's deadline is ahead)
    at: int = 0  # unix seconds (chain time) of the failure


@dataclass(frozen=True)
class ClosedOnChain:
    channel_id: uuid.UUID
    sequence: int
    settle_after: int  # unix seconds when the challenge period ends


# --- outputs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SendTransaction:
    """Put the intent on-chain (the executor sends it once it is due)."""

    intent: Intent


@dataclass(frozen=True)
class ConfirmCheckpoint:
    """Tell the Channel its state up to ``sequence`` is on-chain."""

    channel_id: uuid.UUID
    sequence: int
    tx_hash: str
    block: int


@dataclass(frozen=True)
class CloseChannel:
    """Tell the Channel the chain settled it, with what the chain paid."""

    channel_id: uuid.UUID
    tx_hash: str
    block: int
    payouts: tuple[int, int] | None = None  # what the chain paid (A, B)


@dataclass(frozen=True)
class RecordSecretRegistered:
    """Tell the Channel the chain's registry has a lock's secret since ``revealed_at``."""

    channel_id: uuid.UUID
    secret_hash: str
    revealed_at: int
    tx_hash: str


@dataclass(frozen=True)
class ReportGiveUp:
    """The intent will not be tried again: log it and count it."""

    intent: Intent
    reason: str


@dataclass(frozen=True)
class ProcessState:
    intents: dict[uuid.UUID, IntentRecord] = field(default_factory=dict)
    max_attempts: int = 3

    def record(self, iid: uuid.UUID) -> IntentRecord | None:
        return self.intents.get(iid)

    def open_intents(self) -> list[IntentRecord]:
        return [r for r in self.intents.values() if r.status in (IntentStatus.PENDING, IntentStatus.SUBMITTED)]


ChannelRequest = CheckpointWanted | SettlementWanted | DisputeWanted | SecretRegistrationWanted

CHANNEL_REQUESTS: dict[type, Callable[[Any], ChannelRequest]] = {
    Channel.CheckpointRequested: lambda e: CheckpointWanted(e.originator_id, e.sequence, tuple(e.evidence)),
    Channel.SettlementRequested: lambda e: SettlementWanted(e.originator_id, e.sequence, tuple(e.evidence)),
    Channel.DisputeRequested: lambda e: DisputeWanted(e.originator_id, e.from_sequence, e.to_sequence),
    Channel.SecretRegistrationRequested: lambda e: SecretRegistrationWanted(
        e.originator_id, e.secret_hash, e.secret, e.expiry),
}
"""The Channel events that ask something of the chain, each with the process input it becomes."""


def wanted(event: Any) -> ChannelRequest | None:
    """The process manager's input for a Channel event (None: the event asks nothing of the chain)."""
    to_input = CHANNEL_REQUESTS.get(type(event))
    return to_input(event) if to_input is not None else None


def _with(state: ProcessState, *records: IntentRecord) -> ProcessState:
    intents = dict(state.intents)
    for r in records:
        intents[r.intent.intent_id] = r
    return replace(state, intents=intents)


def _new_intent(state: ProcessState, intent: Intent) -> tuple[ProcessState, list[object]]:
    if intent.intent_id in state.intents:  # a replayed request: already known, nothing new
        return state, []
    return _with(state, IntentRecord(intent)), [SendTransaction(intent)]


def _raise(
    state: ProcessState,
    kind: IntentKind,
    channel_id: uuid.UUID,
    sequence: int,
    payload: tuple[dict[str, Any], ...],
    not_before: int = 0,
) -> tuple[ProcessState, list[object]]:
    intent = Intent(intent_id(kind, channel_id, sequence), kind, channel_id, sequence, payload, not_before)
    return _new_intent(state, intent)


def _on_checkpoint_wanted(state: ProcessState, event: CheckpointWanted) -> tuple[ProcessState, list[object]]:
    intent = Intent(
        intent_id(IntentKind.CHECKPOINT, event.channel_id, event.sequence),
        IntentKind.CHECKPOINT, event.channel_id, event.sequence, event.evidence,
    )
    if intent.intent_id in state.intents:
        return state, []
    superseded = [
        replace(r, status=IntentStatus.SUPERSEDED)
        for r in state.intents.values()
        if r.intent.channel_id == event.channel_id
        and r.intent.kind is IntentKind.CHECKPOINT
        and r.status is IntentStatus.PENDING
        and r.intent.sequence < event.sequence
    ]
    return _new_intent(_with(state, *superseded), intent)


def _on_settlement_wanted(state: ProcessState, event: SettlementWanted) -> tuple[ProcessState, list[object]]:
    return _raise(state, IntentKind.CLOSE, event.channel_id, event.sequence, event.evidence)


def _on_dispute_wanted(state: ProcessState, event: DisputeWanted) -> tuple[ProcessState, list[object]]:
    return _raise(state, IntentKind.DISPUTE, event.channel_id, event.to_sequence, ())


def _on_update_wanted(state: ProcessState, event: UpdateWanted) -> tuple[ProcessState, list[object]]:
    intent = Intent(intent_id(IntentKind.UPDATE, event.channel_id, event.sequence), IntentKind.UPDATE,
                    event.channel_id, event.sequence, event.evidence, deadline=event.deadline)
    return _new_intent(state, intent)


def _on_secret_registration_wanted(
    state: ProcessState, event: SecretRegistrationWanted
) -> tuple[ProcessState, list[object]]:
    kind = IntentKind.REGISTER_SECRET
    intent = Intent(intent_id(kind, event.channel_id, 0, subject=event.secret_hash), kind, event.channel_id, 0,
                    ({"secret": event.secret, "secretHash": event.secret_hash},), deadline=event.expiry,
                    subject=event.secret_hash)
    return _new_intent(state, intent)


def _on_closed_on_chain(state: ProcessState, event: ClosedOnChain) -> tuple[ProcessState, list[object]]:
    return _raise(state, IntentKind.SETTLE, event.channel_id, event.sequence, (), not_before=event.settle_after)


def _on_submitted(state: ProcessState, event: Submitted) -> tuple[ProcessState, list[object]]:
    rec = state.record(event.intent_id)
    if rec is None or rec.status is not IntentStatus.PENDING:
        return state, []
    return _with(state, replace(rec, status=IntentStatus.SUBMITTED, tx_hash=event.tx_hash)), []


def _on_confirmed(state: ProcessState, event: Confirmed) -> tuple[ProcessState, list[object]]:
    rec = state.record(event.intent_id)
    if rec is None or rec.status is IntentStatus.CONFIRMED:
        return state, []
    done = replace(
        rec, status=IntentStatus.CONFIRMED, tx_hash=event.tx_hash, block=event.block, gas_used=event.gas_used
    )
    outputs: list[object] = []
    kind = rec.intent.kind
    stepped = kind in (IntentKind.DISPUTE, IntentKind.UPDATE)  # a defence may take the dispute's path
    if stepped and event.reached is not None and event.reached < rec.intent.sequence:
        # one step of a long dispute: confirm what the chain has, continue from there
        outputs.append(ConfirmCheckpoint(rec.intent.channel_id, event.reached, event.tx_hash, event.block))
        nxt = replace(
            rec.intent,
            intent_id=intent_id(kind, rec.intent.channel_id, rec.intent.sequence, after=event.reached),
            attempt=0,
            after=event.reached,
        )
        if nxt.intent_id in state.intents:
            return _with(state, done), outputs
        return _with(state, done, IntentRecord(nxt)), [*outputs, SendTransaction(nxt)]
    return _with(state, done), [*outputs, *_TELL_CHANNEL[kind](rec.intent, event)]


def _tell_checkpoint(intent: Intent, event: Confirmed) -> list[object]:
    return [ConfirmCheckpoint(intent.channel_id, intent.sequence, event.tx_hash, event.block)]


def _tell_closed(intent: Intent, event: Confirmed) -> list[object]:
    return [CloseChannel(intent.channel_id, event.tx_hash, event.block, event.payouts)]


def _tell_secret_registered(intent: Intent, event: Confirmed) -> list[object]:
    return [RecordSecretRegistered(intent.channel_id, intent.subject, event.revealed_at or 0, event.tx_hash)]


def _tell_nothing(intent: Intent, event: Confirmed) -> list[object]:
    return []  # a close's outcome is the ChannelClosed the chain emits; an update's, its StateUpdated


_TELL_CHANNEL: dict[IntentKind, Callable[[Intent, Confirmed], list[object]]] = {
    IntentKind.CHECKPOINT: _tell_checkpoint,
    IntentKind.DISPUTE: _tell_checkpoint,
    IntentKind.SETTLE: _tell_closed,
    IntentKind.REGISTER_SECRET: _tell_secret_registered,
    IntentKind.CLOSE: _tell_nothing,
    IntentKind.UPDATE: _tell_nothing,
}
"""What a confirmed intent of each kind tells the Channel (one entry per kind)."""


def _on_failed(state: ProcessState, event: Failed) -> tuple[ProcessState, list[object]]:
    rec = state.record(event.intent_id)
    if rec is None or rec.status in (IntentStatus.CONFIRMED, IntentStatus.FAILED, IntentStatus.SUPERSEDED):
        return state, []
    failed = replace(rec, status=IntentStatus.FAILED, error=event.reason)
    nxt = rec.intent.attempt + 1
    defending = rec.intent.deadline > 0 and event.at < rec.intent.deadline
    if not defending and (event.final or nxt >= state.max_attempts):
        return _with(state, failed), [ReportGiveUp(rec.intent, event.reason)]
    retry = replace(
        rec.intent,
        intent_id=intent_id(rec.intent.kind, rec.intent.channel_id, rec.intent.sequence, nxt, rec.intent.after,
                            rec.intent.subject),
        attempt=nxt,
        # a revert that would repeat now waits a little; a passing failure (a stale nonce) retries at once
        not_before=event.at + RETRY_BACKOFF[min(rec.intent.attempt, len(RETRY_BACKOFF) - 1)]
        if defending and event.final else rec.intent.not_before,
    )
    return _with(state, failed, IntentRecord(retry)), [SendTransaction(retry)]


_TRANSITIONS: dict[type, Callable[[ProcessState, Any], tuple[ProcessState, list[object]]]] = {
    CheckpointWanted: _on_checkpoint_wanted,
    SettlementWanted: _on_settlement_wanted,
    DisputeWanted: _on_dispute_wanted,
    UpdateWanted: _on_update_wanted,
    SecretRegistrationWanted: _on_secret_registration_wanted,
    ClosedOnChain: _on_closed_on_chain,
    Submitted: _on_submitted,
    Confirmed: _on_confirmed,
    Failed: _on_failed,
}


def transition(state: ProcessState, event: object) -> tuple[ProcessState, list[object]]:
    """The whole process manager: one input in, the new state and the outputs out."""
    handler = _TRANSITIONS.get(type(event))
    if handler is None:
        raise TypeError(f"the process manager does not know {type(event).__name__}")
    return handler(state, event)
