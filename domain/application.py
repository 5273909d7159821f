"""Command handlers: the Channel application service.

One method per command (load, decide, save) and queries for a channel's
state. Persistence is whatever eventsourcing module the environment names
(``PERSISTENCE_MODULE``); the composition root (``infrastructure.bootstrap``)
builds every ChannelService from the settings: SQLite in the data directory by
default, or the Kafka event store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from domain.channel import (
    Channel,
    CheckpointReason,
    PaymentOutcome,
)
from domain.control import RequestAuth
from domain.errors import (
    ChannelAlreadyExists,
    ConflictingPayment,
    ParsecError,
    StalePayment,
    UnknownChannel,
)
from domain.protocol import SignedInvoice


@dataclass(frozen=True)
class ChannelView:
    """A channel's state as a query returns it (plain values, safe to hand out)."""

    channel_id: UUID
    version: int
    status: str
    currency: str
    participants: tuple[str, str]
    deposits: tuple[int, int]
    sent: tuple[int, int]
    balances: tuple[int, int]  # spendable: deposit - sent + received - locked
    sequence: int
    head_hash: str
    checkpoint_sequence: int
    confirmed_sequence: int
    chain_id: int
    contract: str
    locked: tuple[int, int] = (0, 0)  # in pending hashed timelocks, per sender

    @classmethod
    def of(cls, ch: Channel) -> ChannelView:
        a, b = ch.participants
        derived: dict[str, Any] = {
            "channel_id": ch.id, "participants": (a, b), "deposits": (ch.deposits[a], ch.deposits[b]),
            "sent": (ch.sent[a], ch.sent[b]), "balances": (ch.balance_of(a), ch.balance_of(b)),
            "locked": (ch.locked_of(a), ch.locked_of(b)),
        }
        # every other field is the aggregate's attribute of the same name
        return cls(**derived, **{f.name: getattr(ch, f.name) for f in fields(cls) if f.name not in derived})


@dataclass(frozen=True)
class PaymentResult:
    channel_id: UUID
    sequence: int
    outcome: PaymentOutcome
    checkpoint_requested: bool


DEFAULT_MIN_CHALLENGE_PERIOD = 3600
"""Seconds: the shortest challenge period a service operates a channel with by default (and the
contract's default minimum at deployment); the composition root passes the configured one."""


class ChannelService(Application[UUID]):
    """The write side: every change to a channel goes through one of these methods.

    ``auth``: a signed control request's authenticated signer, nonce and expiry (the node
    verified the signature); the Channel decides whether that signer may ask. Without it the
    caller is trusted (in-process: the demo, the settlement executor's direct adapter).
    """

    name = "parsec"
    snapshotting_intervals = {Channel: 200}

    def __init__(self, env: Mapping[str, str] | None = None, *,
                 min_challenge_period: int = DEFAULT_MIN_CHALLENGE_PERIOD) -> None:
        super().__init__(env=env)
        # A watchtower must have time to answer a stale close: channels with a shorter challenge
        # period are refused (the opener alone chooses it; the contract enforces its own minimum).
        self.min_challenge_period = min_challenge_period

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        try:
            return super().save(*objs, **kwargs)
        except Exception:
            # A cache that is not fast-forwarded holds the mutated aggregate: drop it,
            # so the next command reloads what the store really has.
            cache = self.repository.cache
            if cache is not None:
                for obj in objs:
                    if isinstance(obj, Channel):
                        try:
                            cache.get(obj.id, evict=True)
                        except KeyError:
                            pass
            raise

    # --- commands ----------------------------------------------------------
    def open_channel(self, **terms: Any) -> UUID:
        """Open a channel on the keywords of :meth:`Channel.open` (``channel_id``, the public keys,
        ``currency``, deposits, ``parameters``, ``domain``, ``at``, ``auth``), refusing a challenge
        period below this service's minimum."""
        channel = Channel.open(min_challenge_period=self.min_challenge_period, **terms)
        try:
            self.save(channel)
        except IntegrityError:
            raise ChannelAlreadyExists(f"channel {channel.id} already exists") from None
        return channel.id

    def deposit(
        self, channel_id: UUID, participant: str, amount: int, *, auth: RequestAuth | None = None, at: int = 0
    ) -> ChannelView:
        with self._changing(channel_id) as channel:
            channel.deposit(participant, amount, auth=auth, at=at)
        return ChannelView.of(channel)

    def accept_payment(self, tx: SignedInvoice | bytes | str, at: int) -> PaymentResult:
        """Verify (if given raw bytes) and apply one signed transaction; a refusal raises."""
        (result,) = self.accept_payments([tx], at)
        if isinstance(result, ParsecError):
            raise result
        return result

    def accept_payments(
        self, messages: Iterable[SignedInvoice | bytes | str], at: int
    ) -> list[PaymentResult | ParsecError]:
        """Apply a batch in order and save every changed channel in one transaction.

        Each message gets its own result: a PaymentResult, or the ParsecError that
        refused it (refusals change nothing). If the save itself fails, nothing of
        the batch is stored and the exception propagates; the caller retries.
        """
        results: list[PaymentResult | ParsecError] = []
        changed: dict[UUID, Channel] = {}
        for message in messages:
            try:
                tx = message if isinstance(message, SignedInvoice) else SignedInvoice.from_json(message)
                channel = changed.get(tx.channel) or self.get_channel_aggregate(tx.channel)
                before = channel.checkpoint_sequence
                try:
                    outcome = channel.accept_payment(tx, at)
                except StalePayment:
                    outcome = self._late_repeat(channel, tx)
            except ParsecError as err:
                results.append(err)
                continue
            if outcome is PaymentOutcome.ACCEPTED:
                changed[channel.id] = channel
            results.append(
                PaymentResult(channel.id, tx.sequence, outcome, channel.checkpoint_sequence != before)
            )
        if changed:
            self.save(*changed.values())
        return results

    def _late_repeat(self, channel: Channel, tx: SignedInvoice) -> PaymentOutcome:
        """A sequence older than the hashes the channel keeps: the channel's log decides.

        The aggregate keeps only its latest hashes (its state must stay bounded); a repeat of an
        older payment (a redelivery after a node takeover, a client resending) is looked up in
        the channel's own ``PaymentAccepted`` events: the same transaction is a DUPLICATE, a
        different one at that sequence a fork."""
        accepted = self.payment_at(channel.id, tx.sequence, pending=channel)
        if accepted is None:
            raise StalePayment(f"sequence {tx.sequence} of channel {channel.id} is not in its log")
        if accepted.transaction_hash == "0x" + tx.transaction_hash.hex():
            return PaymentOutcome.DUPLICATE
        raise ConflictingPayment(f"sequence {tx.sequence} of channel {channel.id} already holds another transaction")

    def payment_at(self, channel_id: UUID, sequence: int, pending: Channel | None = None) -> Any | None:
        """The channel's ``PaymentAccepted`` event of ``sequence`` (None if it has none).

        Every payment is one event after ``ChannelOpened`` (version 1), so the event of sequence
        s has a version above s: the search starts there and reads forward a page at a time.
        ``pending``: an aggregate whose unsaved events are searched too (a batch not yet saved)."""
        for e in self.payments_between(channel_id, sequence, sequence):
            return e
        if pending is not None:
            for e in pending.pending_events:
                if type(e).__name__ == "PaymentAccepted" and e.sequence == sequence:
                    return e
        return None

    def payments_between(self, channel_id: UUID, first: int, last: int, page: int = 500) -> Iterable[Any]:
        """The channel's stored ``PaymentAccepted`` events with first <= sequence <= last, in order."""
        gt = max(first, 1)
        while True:
            events = list(self.events.get(channel_id, gt=gt, limit=page))
            for e in events:
                if type(e).__name__ != "PaymentAccepted" or e.sequence < first:
                    continue
                if e.sequence > last:
                    return
                yield e
            if len(events) < page:
                return
            gt = events[-1].originator_version

    def request_checkpoint(self, channel_id: UUID, at: int, auth: RequestAuth | None = None) -> bool:
        channel = self.get_channel_aggregate(channel_id)
        requested = channel.request_checkpoint(at, CheckpointReason.REQUEST, auth)
        if requested:
            self.save(channel)
        return requested

    def check_timeouts(self, channel_ids: Iterable[UUID], now: int) -> list[UUID]:
        """Request a checkpoint on every listed channel whose checkpoint timeout has passed."""
        due = []
        for cid in channel_ids:
            channel = self.get_channel_aggregate(cid)
            if channel.check_timeout(now):
                due.append(channel)
        if due:
            self.save(*due)
        return [c.id for c in due]

    def confirm_checkpoint(self, channel_id: UUID, sequence: int, tx_hash: str, block: int) -> None:
        with self._changing(channel_id) as channel:
            channel.confirm_checkpoint(sequence, tx_hash, block)

    def request_settlement(
        self, channel_id: UUID, at: int, requested_by: str = "operator", auth: RequestAuth | None = None
    ) -> None:
        with self._changing(channel_id) as channel:
            channel.request_settlement(at, requested_by, auth)

    def request_dispute(
        self, channel_id: UUID, at: int, requested_by: str = "operator", auth: RequestAuth | None = None
    ) -> None:
        with self._changing(channel_id) as channel:
            channel.request_dispute(at, requested_by, auth)

    def register_operator(
        self, channel_id: UUID, participant: str, operator: str, *, auth: RequestAuth | None = None, at: int = 0
    ) -> None:
        with self._changing(channel_id) as channel:
            channel.register_operator(participant, operator, auth=auth, at=at)

    def set_fee_policy(self, channel_id: UUID, update: Any, at: int) -> bool:
        """Record a participant's verified forwarding policy (False: not newer than the one recorded)."""
        channel = self.get_channel_aggregate(channel_id)
        changed = channel.set_fee_policy(update, at)
        if changed:
            self.save(channel)
        return changed

    def request_secret_registration(
        self, channel_id: UUID, secret: bytes, at: int, requested_by: str = "operator",
        auth: RequestAuth | None = None,
    ) -> bool:
        """Ask for a pending lock's secret to be registered on-chain (False: already registered)."""
        channel = self.get_channel_aggregate(channel_id)
        requested = channel.request_secret_registration(secret, at, requested_by, auth)
        if requested:
            self.save(channel)
        return requested

    def record_secret_registered(self, channel_id: UUID, secret_hash: bytes, revealed_at: int, tx_hash: str) -> None:
        with self._changing(channel_id) as channel:
            channel.record_secret_registered(secret_hash, revealed_at, tx_hash)

    def close_channel(self, channel_id: UUID, at: int, payouts: list[int] | None = None) -> ChannelView:
        with self._changing(channel_id) as channel:
            channel.close(at, payouts)
        return ChannelView.of(channel)

    @contextmanager
    def _changing(self, channel_id: UUID) -> Iterator[Channel]:
        """Load a channel for one command and save what the command decided; a refusal
        (an exception from the aggregate) saves nothing."""
        channel = self.get_channel_aggregate(channel_id)
        yield channel
        self.save(channel)

    # --- queries -------------------------------------------------------------
    def get_channel_aggregate(self, channel_id: UUID) -> Channel:
        try:
            return self.repository.get(channel_id)
        except AggregateNotFoundError:
            raise UnknownChannel(f"no channel {channel_id}") from None

    def get_channel(self, channel_id: UUID) -> ChannelView:
        return ChannelView.of(self.get_channel_aggregate(channel_id))

    def channel_events(self, channel_id: UUID) -> list[Any]:
        return list(self.events.get(channel_id))
