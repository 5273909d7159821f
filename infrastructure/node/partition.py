"""One owned partition p: its writer, its reorder window, its positions.

A worker is built when the consumer group assigns p to this node. Building it
acquires the Kafka writer of events partition p (transactional id
``parsec-<events>-<p>``: ``init_transactions`` fences the previous owner and
aborts its open transaction), reads the partition, and takes the positions
from the tracking records that the previous owner committed with its last
batch. Each poll batch then becomes one Kafka transaction: the channels'
events, the rejected records, and the positions.

Positions (tracking names, value = next offset to read)
-------------------------------------------------------
* ``<control>#p``: the next control offset (control requests are applied at once).
* ``<inbound>#p``: the *safe* inbound position: the offset of the oldest
  payment still held in the reorder window, or the next offset when nothing
  is held. A held payment is only in memory; if the node dies, the next owner
  reads it again from there. What it re-reads between the safe position and
  where this node had got to was either applied (the Channel answers
  DUPLICATE: a no-op), held (it is held again), or rejected: those are found
  by scanning the rejected partition p from ``<rejected>#p`` (a lower bound
  of the rejected offset of anything at or after the safe position) and are
  skipped, so a rejection is published exactly once. Rejected records also
  carry their source topic/partition/offset, so they are deduplicable anyway.

  The rejected mark committed with a safe position s must stay a lower bound
  for the refusals of every offset >= s, across any number of takeovers. A
  held payment therefore carries the mark of its *first* reading: the end of
  the rejected partition when it was first read, or, for a message that a
  previous owner may already have read (an offset below the inbound end at
  takeover), the mark this worker started from. (Taking the current end for a
  re-read message moved the committed mark past refusals the next owner then
  did not find, and published them again.)

  When nothing is held the mark is the end of the rejected partition, except
  while refusals that an earlier owner published are still ahead of this
  worker (the skip set): those sit below that end, so the mark stays at the
  oldest of them. (Committing the end there, after passing every held payment
  but before reaching an earlier owner's refusal, hid it from the next owner,
  which refused the message a second time: seen once in the chaos test.)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import confluent_kafka as ck
from eventsourcing.persistence import PersistenceError, Tracking

from domain.channel import ChannelParameters, ChannelStatus, PaymentOutcome
from domain.control import authorize_settler
from domain.errors import MalformedMessage, ParsecError, UnknownChannel, WindowExpired
from domain.protocol import SignedInvoice
from domain.reorder import Refused, ReorderWindow
from infrastructure import metrics
from infrastructure.kafka import RecordTooLargeError, tracking_name
from infrastructure.kafka.codec import OutRecord
from infrastructure.kafka.writer import GroupOffsets
from infrastructure.node import messages as msg
from infrastructure.node.messages import (
    ProcessingError,
    Rejection,
    SetAside,
    WrongPartition,
    check_size,
    parse_control,
    partition_of,
)
from infrastructure.node.service import NodeChannelService
from infrastructure.schemas.validation import explain as explain_refusal
from infrastructure.settings import Settings

log = logging.getLogger("parsec.node")

UNOPENED = -1  # the head of a channel whose open has not been applied yet: its open is "transaction 0"
SETTLEMENT_EVENTS = ("CheckpointRequested", "SettlementRequested", "DisputeRequested", "SecretRegistrationRequested")


class Executor(Protocol):
    """The settlement process manager's executor, as the node drives it (one per partition)."""

    def handle(self, events: Sequence[Any], *, partition: int, position: int | None) -> None: ...

    def tick(self, now: int) -> Any: ...


ExecutorFactory = Callable[[int, NodeChannelService], Executor]


@dataclass(frozen=True, slots=True)
class InRecord:
    """One consumed record of the inbound or control topic, as a worker reads it."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class _Held:
    """Where a held payment came from: enough to reject it later, or to re-read it."""

    offset: int
    rejected_mark: int
    key: bytes | None
    raw: bytes


@dataclass
class BatchReport:
    partition: int
    control: int = 0
    inbound: int = 0
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    rejected: Counter = field(default_factory=Counter)
    rejected_control: Counter = field(default_factory=Counter)  # the part of ``rejected`` from the control topic
    events: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def anything(self) -> bool:
        return bool(self.control or self.inbound or self.rejected or self.events)

    def add(self, other: BatchReport) -> None:
        for name in ("control", "inbound", "accepted", "duplicates", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.held = other.held
        self.rejected.update(other.rejected)
        self.rejected_control.update(other.rejected_control)
        self.events.update(other.events)

    def describe(self) -> str:
        parts = [f"p{self.partition}: {self.inbound} payments, {self.control} control"]
        parts.append(f"{self.accepted} accepted, {self.duplicates} duplicate, {self.held} held")
        if self.rejected:
            parts.append("rejected " + ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items())))
        interesting = {k: v for k, v in self.events.items() if k in SETTLEMENT_EVENTS}
        if interesting:
            parts.append(", ".join(f"{k}={v}" for k, v in sorted(interesting.items())))
        return "; ".join(parts) + f" ({self.seconds * 1000:.0f} ms)"


class UncommittableBatch(Exception):
    """Kafka will never take one of the batch's records (``RecordTooLargeError``).

    Nothing of the batch was written. The node rebuilds the worker with ``isolate_until``
    (the batch's last offsets), so the same records are committed one per transaction and the
    one that cannot be committed is found and set aside, instead of the batch being retried
    forever while every other channel of the partition waits."""

    def __init__(self, partition: int, until: dict[str, int], reason: str) -> None:
        super().__init__(f"p{partition}: batch up to {until} cannot be committed: {reason}")
        self.partition, self.until, self.reason = partition, until, reason


class UncommittableRecord(Exception):
    """The one record whose outcome Kafka will not take: the next worker refuses it as ``SetAside``."""

    def __init__(self, partition: int, topic: str, offset: int, reason: str) -> None:
        super().__init__(f"p{partition}: {topic}@{offset} cannot be committed: {reason}")
        self.partition, self.topic, self.offset, self.reason = partition, topic, offset, reason


class PartitionWorker:
    def __init__(
        self,
        partition: int,
        config: Settings,
        service: NodeChannelService,
        *,
        executor_factory: ExecutorFactory | None = None,
        isolate_until: dict[str, int] | None = None,
        set_aside: dict[tuple[str, int], str] | None = None,
        group_metadata: Callable[[], Any] | None = None,
    ) -> None:
        self.partition = partition
        self.config = config
        # the node's consumer group metadata (KIP-447): with it, each batch's transaction commits
        # the group's offsets too, and a member the group dropped cannot commit (its generation
        # is refused). None: a worker outside a group (tests, tools) commits tracking records only.
        self.group_metadata = group_metadata
        # records up to these offsets are committed one per transaction (after an UncommittableBatch)
        self.isolate_until = dict(isolate_until or {})
        # (topic, offset) -> why: records refused as SetAside when read again
        self.set_aside = dict(set_aside or {})
        self.service = service  # this partition's writer (infrastructure.bootstrap.partition_service)
        try:
            self.recorder: Any = self.service.recorder
            self.recorder.acquire()  # fence the previous owner, read partition p
            self.t_inbound = tracking_name(config.inbound_topic, partition)
            self.t_control = tracking_name(config.control_topic, partition)
            self.t_rejected = tracking_name(config.rejected_topic, partition)
            self.committed = {
                t: self.recorder.max_tracking_id(t) or 0 for t in (self.t_inbound, self.t_control, self.t_rejected)
            }
            self.next_inbound = self.committed[self.t_inbound]
            self.next_control = self.committed[self.t_control]
            self.window = ReorderWindow(config.window, config.max_wait)
            self.held: dict[tuple[UUID, bytes], _Held] = {}
            # the inbound end at takeover: offsets below it may have been read by a previous owner
            self.skip, self.next_rejected, self.inbound_end_at_start = self._already_rejected()
            self.start_mark = self.committed[self.t_rejected]
            self.executor = executor_factory(partition, self.service) if executor_factory else None
        except BaseException:
            self.service.close()
            raise
        self.next_tick = 0.0
        self.next_timeout_check = time.monotonic() + config.timeout_check_interval
        log.info(
            "p%d: writer acquired (%s); resuming inbound at %d, control at %d%s",
            partition,
            self.recorder.log.transactional_id,
            self.next_inbound,
            self.next_control,
            f"; {len(self.skip)} already-rejected offsets to skip" if self.skip else "",
        )

    # ------------------------------------------------------------------ startup
    def _already_rejected(self) -> tuple[dict[int, int], int, int]:
        """Inbound offsets at or after the safe position that were already rejected (each with
        the rejected offset of its refusal), the end of rejected partition p (a lower bound for
        the next rejected offset), and the end of inbound partition p now."""
        c = self.config
        p = self.partition
        consumer = ck.Consumer(c.kafka.librdkafka(**{
            "group.id": f"parsec-node-rejected-scan-{p}",  # librdkafka wants one; nothing is committed
            "client.id": f"parsec-node-rejected-scan-{p}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": logging.getLogger("parsec.node.librdkafka"),
        }))
        try:
            timeout = c.kafka_timeout
            # read_committed: the high mark librdkafka reports is the last stable offset
            _, end = consumer.get_watermark_offsets(ck.TopicPartition(c.rejected_topic, p), timeout=timeout,
                                                    cached=False)
            _, inbound_end = consumer.get_watermark_offsets(ck.TopicPartition(c.inbound_topic, p), timeout=timeout,
                                                            cached=False)
            start = self.committed[self.t_rejected]
            found: dict[int, int] = {}
            if start >= end:
                return found, end, inbound_end
            consumer.assign([ck.TopicPartition(c.rejected_topic, p, start)])
            deadline = time.monotonic() + timeout
            position = start
            while position < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {c.rejected_topic} partition {p} to {end}")
                messages = consumer.consume(num_messages=5000, timeout=0.2)
                if messages:
                    deadline = time.monotonic() + timeout
                for m in messages:
                    if m.error() is not None:
                        continue
                    position = m.offset() + 1
                    try:
                        rej = Rejection.of(m.key(), m.value(), m.headers())
                    except (KeyError, ValueError):
                        continue
                    if rej.source_topic == c.inbound_topic and rej.source_offset >= self.next_inbound:
                        found.setdefault(rej.source_offset, m.offset())
                if not messages:
                    # aborted transactions' records and markers are not delivered: ask where we are
                    (tp,) = consumer.position([ck.TopicPartition(c.rejected_topic, p)])
                    if tp.offset >= 0:
                        position = max(position, tp.offset)
            return found, end, inbound_end
        finally:
            consumer.close()

    # ------------------------------------------------------------------ one batch
    def process(self, control: Sequence[Any], inbound: Sequence[Any], now: float | None = None) -> BatchReport:
        """Apply one poll's records of partition p (and the timers) as one Kafka transaction.

        On any exception nothing of the batch is in the log; the caller drops this
        worker and builds a new one, which resumes from the committed positions.
        ``UncommittableBatch``/``UncommittableRecord`` tell the caller what to isolate
        or set aside in the next worker.
        """
        c, i = self.config.control_topic, self.config.inbound_topic
        if not (
            any(r.offset <= self.isolate_until.get(c, -1) for r in control)
            or any(r.offset <= self.isolate_until.get(i, -1) for r in inbound)
        ):
            return self._batch(control, inbound, now)
        report = BatchReport(self.partition)
        for r in control:
            report.add(self._batch([r], [], now, single=(c, r.offset)))
        for r in inbound:
            report.add(self._batch([], [r], now, single=(i, r.offset)))
        return report

    def _batch(
        self, control: Sequence[Any], inbound: Sequence[Any], now: float | None, single: tuple[str, int] | None = None
    ) -> BatchReport:
        started = time.perf_counter()
        wall = time.time() if now is None else now
        at = int(wall)
        report = BatchReport(self.partition)
        out: list[OutRecord] = []
        self.service.begin()
        try:
            for r in control:
                if r.offset < self.next_control:
                    continue  # already processed (a re-delivery after a seek)
                self.next_control = r.offset + 1
                report.control += 1
                if not self._set_aside(self.config.control_topic, r, at, out, report):
                    self._control(r, at, out, report)
            for r in inbound:
                if r.offset < self.next_inbound:
                    continue
                self.next_inbound = r.offset + 1
                report.inbound += 1
                if self.skip.pop(r.offset, None) is not None:
                    continue  # rejected before a restart: published already
                if not self._set_aside(self.config.inbound_topic, r, at, out, report):
                    self._payment(r, at, out, report)
            mono = time.monotonic()
            if mono >= self.next_tick:
                self.next_tick = mono + self.config.tick_interval
                for refused in self.window.expire(at):
                    self._reject_held(refused, at, out, report)
            if mono >= self.next_timeout_check:
                self.next_timeout_check = mono + self.config.timeout_check_interval
                self._check_timeouts(at)
            trackings = self._trackings()
            writes = bool(trackings or out or self.service.pending())
            committing = time.perf_counter()
            recordings = self.service.commit(trackings, out, self._group_offsets(trackings))
            commit_seconds = time.perf_counter() - committing if writes else None
        except RecordTooLargeError as err:
            self.service.abort()
            if single is not None:
                raise UncommittableRecord(self.partition, *single, str(err)) from err
            until = {t: max(r.offset for r in rs) for t, rs in
                     ((self.config.control_topic, control), (self.config.inbound_topic, inbound)) if rs}
            raise UncommittableBatch(self.partition, until, str(err)) from err
        except BaseException:
            self.service.abort()
            raise
        for t in trackings:
            self.committed[t.application_name] = t.notification_id
        written = [r.offset for r in out if r.offset is not None]
        if written:
            self.next_rejected = max(self.next_rejected, max(written) + 1)
        events = [rec.domain_event for rec in recordings]
        for e in events:
            report.events[type(e).__name__] += 1
        report.held = len(self.window)
        report.seconds = time.perf_counter() - started
        metrics.record_batch(report, commit_seconds)  # once per transaction, never per payment
        if self.executor is not None and events:
            self.executor.handle(events, partition=self.partition, position=recordings[-1].notification.id)
        return report

    def _set_aside(self, topic: str, r: Any, at: int, out: list[OutRecord], report: BatchReport) -> bool:
        reason = self.set_aside.get((topic, r.offset))
        if reason is None:
            return False
        log.error("p%d: %s@%d set aside: %s", self.partition, topic, r.offset, reason)
        self._reject(SetAside(f"its outcome cannot be committed to Kafka: {reason}"), topic, r.offset, r.key, r.value,
                     at, out, report)
        return True

    def tick_executor(self, now: int) -> None:
        if self.executor is not None:
            self.executor.tick(now)

    def _trackings(self) -> list[Tracking]:
        if self.held:
            oldest = min(self.held.values(), key=lambda h: h.offset)
            safe, mark = oldest.offset, oldest.rejected_mark
        else:
            safe, mark = self.next_inbound, self.next_rejected
        if self.skip:
            # earlier owners' refusals of offsets not reached yet: keep them in the next owner's scan
            # (an offset the consumer never delivered, behind next_inbound, can no longer be reached)
            for offset in [o for o in self.skip if o < self.next_inbound]:
                del self.skip[offset]
            mark = min([mark, *self.skip.values()])
        wanted = {self.t_inbound: safe, self.t_control: self.next_control, self.t_rejected: mark}
        return [Tracking(name, pos) for name, pos in wanted.items() if pos > self.committed[name]]

    def _group_offsets(self, trackings: list[Tracking]) -> GroupOffsets | None:
        """The group's offsets for this batch's transaction: the same positions as the tracking records."""
        if self.group_metadata is None or not trackings:
            return None
        topic = {self.t_inbound: self.config.inbound_topic, self.t_control: self.config.control_topic}
        offsets = [(topic[t.application_name], self.partition, t.notification_id) for t in trackings
                   if t.application_name in topic]
        return GroupOffsets(offsets, self.group_metadata()) if offsets else None

    # ------------------------------------------------------------------ payments
    def _payment(self, r: Any, at: int, out: list[OutRecord], report: BatchReport) -> None:
        def reject(err: ParsecError) -> None:
            self._reject(err, self.config.inbound_topic, r.offset, r.key, r.value, at, out, report)

        try:
            check_size(r.value)
            tx = SignedInvoice.from_json(r.value if r.value is not None else b"")
        except ParsecError as err:
            reject(explain_refusal(err, "payment", r.value))  # + the schema's path and reason, for a form error
            return
        except PersistenceError:
            raise
        except Exception as err:  # anything a hostile byte string can provoke
            reject(MalformedMessage(f"{type(err).__name__}: {err}"))
            return
        if partition_of(tx.channel, self.recorder.num_partitions) != self.partition:
            reject(WrongPartition(f"channel {tx.channel} is not in partition {self.partition}; key by channel id"))
            return
        key = (tx.channel, tx.transaction_hash)
        if key in self.held:
            return  # the same early arrival again: it is held once (the window says so too)
        try:
            head = self.service.get_channel_aggregate(tx.channel).sequence
        except UnknownChannel:
            # Its open may still be on the control topic (Kafka does not order across
            # topics): the open is the channel's transaction 0, so hold it like any
            # early arrival; it is refused as UnknownChannel if the open never comes.
            head = UNOPENED
        except ParsecError as err:
            reject(err)
            return
        ready, refused = self.window.offer(tx, head, at)
        for rf in refused:
            if rf.transaction is tx:
                reject(rf.error)
            else:
                self._reject_held(rf, at, out, report)
        if not ready and not any(rf.transaction is tx for rf in refused):
            first_read_mark = self.start_mark if r.offset < self.inbound_end_at_start else self.next_rejected
            self.held[key] = _Held(r.offset, first_read_mark, r.key, r.value or b"")
            return
        for t in ready:
            self._apply(t, (r.offset, r.key, r.value), at, out, report)

    def _apply(
        self, tx: SignedInvoice, source: tuple[int, Any, Any], at: int, out: list[OutRecord], report: BatchReport
    ) -> None:
        """Apply one payment, then whatever the window can release behind it."""
        queue = [(tx, source)]
        while queue:
            t, (offset, key, raw) = queue.pop(0)
            (result,) = self.service.accept_payments([t], at)
            if isinstance(result, ParsecError):
                self._reject(result, self.config.inbound_topic, offset, key, raw, at, out, report)
                continue
            if result.outcome is PaymentOutcome.DUPLICATE:
                report.duplicates += 1
                continue
            report.accepted += 1
            head = self.service.get_channel_aggregate(t.channel).sequence
            for nxt in self.window.release(t.channel, head):
                h = self.held.pop((nxt.channel, nxt.transaction_hash))
                queue.append((nxt, (h.offset, h.key, h.raw)))

    def _reject_held(self, refused: Refused, at: int, out: list[OutRecord], report: BatchReport) -> None:
        t = refused.transaction
        h = self.held.pop((t.channel, t.transaction_hash))
        err = refused.error
        if isinstance(err, WindowExpired):
            try:
                self.service.get_channel_aggregate(t.channel)
            except UnknownChannel:
                err = UnknownChannel(f"no channel {t.channel}: it was not opened within {self.window.max_wait}s")
        self._reject(err, self.config.inbound_topic, h.offset, h.key, h.raw, at, out, report)

    def _release_opened(self, channel: UUID, at: int, out: list[OutRecord], report: BatchReport) -> None:
        """Payments that arrived before their channel's open: apply them now."""
        for nxt in self.window.release(channel, 0):
            h = self.held.pop((nxt.channel, nxt.transaction_hash))
            self._apply(nxt, (h.offset, h.key, h.raw), at, out, report)

    def _reject(
        self,
        err: ParsecError,
        topic: str,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        at: int,
        out: list[OutRecord],
        report: BatchReport,
    ) -> None:
        rej = Rejection.from_error(err, topic, self.partition, offset, key, raw, at)
        out.append(rej.record(self.config.rejected_topic))
        report.rejected[err.reason] += 1
        if topic == self.config.control_topic:
            report.rejected_control[err.reason] += 1
        log.debug("p%d: rejected %s@%d: %s: %s", self.partition, topic, offset, err.reason, err)

    # ------------------------------------------------------------------ control
    def _control(self, r: Any, at: int, out: list[OutRecord], report: BatchReport) -> None:
        try:
            req = parse_control(r.value)
            if partition_of(req.channel, self.recorder.num_partitions) != self.partition:
                raise WrongPartition(f"channel {req.channel} is not in partition {self.partition}; key by channel id")
            self._command(req, at, self._authenticate(req))
            if isinstance(req, msg.OpenChannelRequest):
                self._release_opened(req.channel, at, out, report)
        except ParsecError as err:
            self._reject(err, self.config.control_topic, r.offset, r.key, r.value, at, out, report)
        except PersistenceError:
            raise  # the store, not the request: the batch is retried by a rebuilt worker
        except Exception as err:
            # A request the handlers choke on must not stop the partition forever (it
            # would fail again on every retry): refuse it, loudly.
            log.exception("p%d: control request at offset %d failed", self.partition, r.offset)
            self._reject(ProcessingError(f"{type(err).__name__}: {err}"), self.config.control_topic,
                         r.offset, r.key, r.value, at, out, report)

    def _authenticate(self, req: Any) -> Any:
        """Who signed ``req``: a RequestAuth (whether that signer may ask is the Channel's call), or
        for a settler's notice the address of a settler this node trusts. Refusals: UnsignedRequest,
        BadRequestSignature, UnauthorizedRequest (an untrusted settler), UnknownChannel."""
        if isinstance(req, msg.OpenChannelRequest):
            return req.authenticate(req.signing_domain)  # A's signature binds the deployment named
        req.require_signature()
        domain = self.service.get_channel_aggregate(req.channel).domain
        if isinstance(req, msg.ChannelUpdateRequest):
            return req.update(domain)  # verified: signed by its participant in this channel's deployment
        if isinstance(req, msg.SETTLER_NOTICES):
            return authorize_settler(req.signer(domain), self.config.trusted_settlers)
        return req.authenticate(domain)

    def _command(self, req: Any, at: int, auth: Any) -> None:
        s = self.service
        if isinstance(req, msg.OpenChannelRequest):
            s.open_channel(
                channel_id=req.channel,
                public_key_a=bytes.fromhex(req.public_key_a),
                public_key_b=bytes.fromhex(req.public_key_b),
                currency=req.currency,
                deposit_a=req.deposit_a,
                deposit_b=req.deposit_b,
                parameters=ChannelParameters(req.challenge_period, req.checkpoint_interval, req.checkpoint_timeout),
                domain=req.signing_domain,
                at=at,
                auth=auth,
            )
            log.info("p%d: channel %s opened by %s", self.partition, req.channel, auth.signer)
        elif isinstance(req, msg.DepositRequest):
            s.deposit(req.channel, req.participant, req.amount, auth=auth, at=at)
        elif isinstance(req, msg.SetOperatorRequest):
            s.register_operator(req.channel, req.participant, req.operator, auth=auth, at=at)
            log.info("p%d: %s registered operator %s on %s", self.partition, req.participant, req.operator,
                     req.channel)
        elif isinstance(req, msg.CheckpointRequest):
            if not s.request_checkpoint(req.channel, at, auth):
                log.info("p%d: checkpoint of %s requested: nothing new since the last one", self.partition, req.channel)
        elif isinstance(req, msg.SettlementRequest):
            s.request_settlement(req.channel, at, auth=auth)
            log.info("p%d: settlement of %s requested by %s", self.partition, req.channel, auth.signer)
        elif isinstance(req, msg.DisputeRequest):
            s.request_dispute(req.channel, at, auth=auth)
            log.info("p%d: dispute of %s requested by %s", self.partition, req.channel, auth.signer)
        elif isinstance(req, msg.RegisterSecretRequest):
            if s.request_secret_registration(req.channel, bytes.fromhex(req.secret[2:]), at, auth=auth):
                log.info("p%d: registration of a secret of %s requested by %s", self.partition, req.channel,
                         auth.signer)
            else:
                log.info("p%d: secret of %s already registered or asked for: nothing new", self.partition, req.channel)
        elif isinstance(req, msg.ChannelUpdateRequest):  # ``auth`` is the verified ChannelUpdate
            if s.set_fee_policy(req.channel, auth, at):
                log.info("p%d: %s's forwarding policy on %s: %d + %d ppm, expiry delta %d s", self.partition,
                         auth.participant, req.channel, auth.fee_base, auth.fee_proportional, auth.expiry_delta)
        elif isinstance(req, msg.SecretRegisteredNotice):  # from the settler; a repeat is a no-op
            s.record_secret_registered(req.channel, bytes.fromhex(req.secret_hash[2:]), req.revealed_at, req.tx_hash)
        elif isinstance(req, msg.SettleNotice):  # from the settler: the chain saw a close, stop payments
            if s.get_channel_aggregate(req.channel).status == ChannelStatus.OPEN.value:  # else: a no-op
                s.request_settlement(req.channel, at, requested_by=req.reason or "settler")
                log.info("p%d: settlement of %s on settler %s's notice: %s", self.partition, req.channel, auth,
                         req.reason)
        elif isinstance(req, msg.CheckpointConfirmedNotice):
            # from the settler; repeated notices (receipt, then the watcher's event) are no-ops
            if s.get_channel_aggregate(req.channel).confirmed_sequence < req.sequence:
                s.confirm_checkpoint(req.channel, req.sequence, req.tx_hash, req.block)
                log.info("p%d: checkpoint %d of %s confirmed on-chain (block %d)", self.partition, req.sequence,
                         req.channel, req.block)
        elif isinstance(req, msg.ClosedOnChainNotice):
            if s.get_channel_aggregate(req.channel).status != ChannelStatus.CLOSED.value:
                s.close_channel(req.channel, at=req.at or at, payouts=req.payouts)
                log.info("p%d: channel %s closed on-chain, payouts %s", self.partition, req.channel, req.payouts)
        else:  # pragma: no cover - the parser knows only the types above
            raise MalformedMessage(f"unknown control request {req!r}")

    # ------------------------------------------------------------------ timers
    def channel_ids(self) -> list[UUID]:
        with self.recorder.log.exclusive():
            keys = list(self.recorder.index.sequences)
        out = []
        for k in keys:
            try:
                out.append(UUID(k))
            except ValueError:
                continue
        return out

    def _check_timeouts(self, at: int) -> None:
        ids = self.channel_ids()
        due = []
        for cid in ids:
            try:
                due += self.service.check_timeouts([cid], at)
            except UnknownChannel:
                continue
        if due:
            log.info("p%d: checkpoint timeout passed on %d channel(s): checkpoints requested", self.partition, len(due))

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        dropped = self.window.clear()
        if dropped:
            log.info(
                "p%d: %d held payment(s) dropped from memory; the next owner re-reads them from offset %d",
                self.partition,
                len(dropped),
                self.committed[self.t_inbound],
            )
        self.service.close()
