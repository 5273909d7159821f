"""The process manager's aggregates: one per intent, one cursor per follower.

Both live in the same eventsourcing application (event store) as the channels, so the
executor's state survives a crash with the log it follows:

- ``SettlementIntent`` (id = the intent's deterministic id): IntentRaised, then
  TransactionSubmitted (with the signed raw transaction and its nonce, saved *before* the
  transaction is broadcast), TransactionConfirmed or TransactionFailed, or IntentSuperseded.
- ``ProcessCursor`` (id derived from the follower's name): where a follower is in what it
  follows (log position per partition, or the chain's block) and which intents are still
  open, so a restart loads only those.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.settlement import Intent, IntentKind, IntentRecord, IntentStatus

CURSOR_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:parsec:process-cursor")


class SettlementIntent(Aggregate):
    """One transaction the process manager wants on-chain, and what became of it."""

    @staticmethod
    def create_id(intent_id: uuid.UUID, **_: Any) -> uuid.UUID:
        return intent_id

    @classmethod
    def raised(cls, intent: Intent) -> SettlementIntent:
        return cls(
            intent_id=intent.intent_id,
            kind=intent.kind.value,
            channel_id=intent.channel_id,
            sequence=intent.sequence,
            payload=[dict(p) for p in intent.payload],
            not_before=intent.not_before,
            attempt=intent.attempt,
            after=intent.after,
            deadline=intent.deadline,
            subject=intent.subject,
        )

    @event("IntentRaised")
    def __init__(
        self,
        *,
        intent_id: uuid.UUID,
        kind: str,
        channel_id: uuid.UUID,
        sequence: int,
        payload: list[dict[str, Any]],
        not_before: int,
        attempt: int,
        after: int = 0,
        deadline: int = 0,
        subject: str = "",
    ) -> None:
        self.kind = kind
        self.channel_id = channel_id
        self.sequence = sequence
        self.payload = payload
        self.not_before = not_before
        self.attempt = attempt
        self.after = after
        self.deadline = deadline
        self.subject = subject
        self.status = IntentStatus.PENDING.value
        self.tx_hash: str | None = None
        self.sender: str | None = None
        self.nonce: int | None = None
        self.raw_tx: str | None = None
        self.block: int | None = None
        self.gas_used: int | None = None
        self.payouts: list[int] | None = None
        self.error: str | None = None

    # Each later event repeats the intent's channel, kind and sequence, so a read model can
    # place it without having seen IntentRaised.
    def submitted(self, tx_hash: str, sender: str, nonce: int, raw_tx: str) -> None:
        self._submitted(self.channel_id, self.kind, self.sequence, tx_hash, sender, nonce, raw_tx)

    @event("TransactionSubmitted")
    def _submitted(
        self, channel_id: uuid.UUID, kind: str, sequence: int, tx_hash: str, sender: str, nonce: int, raw_tx: str
    ) -> None:
        self.status = IntentStatus.SUBMITTED.value
        self.tx_hash, self.sender, self.nonce, self.raw_tx = tx_hash, sender, nonce, raw_tx

    def confirmed(self, tx_hash: str, block: int, gas_used: int, payouts: list[int] | None) -> None:
        self._confirmed(self.channel_id, self.kind, self.sequence, tx_hash, block, gas_used, payouts)

    @event("TransactionConfirmed")
    def _confirmed(
        self, channel_id: uuid.UUID, kind: str, sequence: int, tx_hash: str, block: int, gas_used: int,
        payouts: list[int] | None,
    ) -> None:
        self.status = IntentStatus.CONFIRMED.value
        self.tx_hash, self.block, self.gas_used, self.payouts = tx_hash, block, gas_used, payouts

    def failed(self, reason: str, final: bool) -> None:
        self._failed(self.channel_id, self.kind, self.sequence, reason, final)

    @event("TransactionFailed")
    def _failed(self, channel_id: uuid.UUID, kind: str, sequence: int, reason: str, final: bool) -> None:
        self.status = IntentStatus.FAILED.value
        self.error = reason

    def superseded(self) -> None:
        self._superseded(self.channel_id, self.kind, self.sequence)

    @event("IntentSuperseded")
    def _superseded(self, channel_id: uuid.UUID, kind: str, sequence: int) -> None:
        self.status = IntentStatus.SUPERSEDED.value

    @property
    def intent(self) -> Intent:
        return Intent(
            intent_id=self.id,
            kind=IntentKind(self.kind),
            channel_id=self.channel_id,
            sequence=self.sequence,
            payload=tuple(self.payload),
            not_before=self.not_before,
            attempt=self.attempt,
            after=self.after,
            deadline=self.deadline,
            subject=self.__dict__.get("subject", ""),  # intents raised before subjects had none
        )

    def record(self) -> IntentRecord:
        return IntentRecord(
            intent=self.intent,
            status=IntentStatus(self.status),
            tx_hash=self.tx_hash,
            block=self.block,
            gas_used=self.gas_used,
            error=self.error,
        )

    def follow(self, target: IntentRecord, submission: tuple[str, int, str] | None) -> None:
        """Record the change from this aggregate's status to ``target`` as events."""
        status = target.status
        if status.value == self.status:
            return
        if status is IntentStatus.SUBMITTED:
            sender, nonce, raw = submission or ("", -1, "")
            self.submitted(target.tx_hash or "", sender, nonce, raw)
        elif status is IntentStatus.CONFIRMED:
            self.confirmed(target.tx_hash or "", target.block or 0, target.gas_used or 0, None)
        elif status is IntentStatus.FAILED:
            self.failed(target.error or "", final=False)
        elif status is IntentStatus.SUPERSEDED:
            self.superseded()


class ProcessCursor(Aggregate):
    """A follower's position (per partition, or per chain) and its open intents."""

    @staticmethod
    def create_id(name: str, **_: Any) -> uuid.UUID:
        return cursor_id(name)

    @event("CursorCreated")
    def __init__(self, *, name: str) -> None:
        self.name = name
        self.positions: dict[str, int] = {}
        self.open: dict[str, int] = {}  # intent id -> 1 (a dict, so snapshots stay JSON)

    @event("CursorMoved")
    def moved(self, positions: dict[str, int], opened: list[str], closed: list[str]) -> None:
        self.positions.update(positions)
        for iid in opened:
            self.open[iid] = 1
        for iid in closed:
            self.open.pop(iid, None)


def cursor_id(name: str) -> uuid.UUID:
    return uuid.uuid5(CURSOR_NAMESPACE, name)



# Intents and cursors stored before this module had its name keep reading: their events' topics
# name ``infrastructure.settlement.records`` (``records:SettlementIntent.IntentRaised`` ...), and
# a module registered under a topic resolves every class in it.
register_topic("infrastructure.settlement.records", sys.modules[__name__])
