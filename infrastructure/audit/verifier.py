"""The auditor's checks, one channel at a time, on raw records: pure, no Kafka, no clock.

An auditor trusts nothing but the participants' signatures. For each channel it

1. opens a fresh ``domain.channel.Channel`` from the terms its ``ChannelOpened`` event gives (the
   participants' public keys, deposits, domain, currency);
2. replays every ``PaymentAccepted``'s signed transaction through that channel's ``accept_payment``
   (``SignedInvoice.parse`` verifies the buyer's signature; the aggregate checks the channel, the
   domain, the currency, the sequence, the hash link, the kind's effect on the totals, locked amounts
   and locks root, and that no one spends beyond its balance);
3. compares what each event *claims* (balances, buyer total, locked amounts, the head a checkpoint,
   settlement or close carries) with what the replay computed.

Events are identified by (channel, originator version), never by offset: offsets differ between
clusters, and MirrorMaker writes records again at new offsets after a restart. The same version with
the same bytes again is a duplicate (counted, not applied twice); with other bytes it is a ``Fork``.

A channel's first violation is kept (partition, offset, version, sequence, a specific reason) and the
channel is not checked further: everything after a bad event would only repeat the damage.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from domain import errors
from domain.application import ChannelService
from domain.channel import Channel, ChannelParameters, PaymentOutcome
from domain.protocol import SignedInvoice, SigningDomain
from infrastructure.kafka.codec import H_KIND, KIND_EVENT, decode_event

CHANNEL_TOPIC_PREFIX = "domain.channel:Channel."
"""The ``es.topic`` of every Channel event (``domain.channel:Channel.PaymentAccepted``). Records of
other aggregates are counted and skipped: the auditor verifies channels."""


def event_mapper() -> Mapper[Any]:
    """The mapper the channel service stores events with (the same JSON transcodings, no compressor
    or cipher), built without an application: the auditor has no event store."""
    transcoder = JSONTranscoder()
    ChannelService.register_transcodings(None, transcoder)  # type: ignore[arg-type]  # uses no state
    return Mapper(transcoder=transcoder)


@dataclass(frozen=True)
class RawRecord:
    """One record of the copy as read: where it is, and its bytes."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Violation:
    """The first bad event of a channel (or a record that names no channel)."""

    channel: str
    partition: int
    offset: int
    version: int | None  # the event's originator version (None: not decodable that far)
    sequence: int | None  # the transaction sequence it concerns (a payment's, else the replay's head)
    event: str  # the event's class (PaymentAccepted…), or "?" when undecodable
    reason: str  # BadSignature, BrokenHashLink, SequenceGap, TotalMismatch, BalanceMismatch, Fork…
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Bad(Exception):
    def __init__(self, reason: str, detail: str, sequence: int | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.sequence = reason, detail, sequence


# what the replay's refusal means to an auditor (domain.errors type -> reason reported)
_REFUSALS: dict[type[Exception], str] = {
    errors.SequenceGap: "SequenceGap",
    errors.BrokenHashPointer: "BrokenHashLink",
    errors.ConflictingPayment: "Fork",
    errors.StalePayment: "Fork",
    errors.CumulativeTotalMismatch: "TotalMismatch",
    errors.LockedAmountMismatch: "LockMismatch",
    errors.LocksRootMismatch: "LockMismatch",
    errors.Overspend: "Overspend",
    errors.WrongDomain: "WrongDomain",
    errors.CurrencyMismatch: "CurrencyMismatch",
    errors.NotAParticipant: "WrongParty",
    errors.WrongChannel: "WrongChannel",
    errors.ChannelNotOpen: "NotOpen",
    errors.ChannelIsClosed: "NotOpen",
}


def _refusal(exc: errors.ParsecError) -> str:
    for cls in type(exc).__mro__:
        if cls in _REFUSALS:
            return _REFUSALS[cls]
    return exc.reason


def _digest(topic: str, value: bytes) -> str:
    """What "the same event" means: its class and its stored bytes (what MirrorMaker copies verbatim)."""
    return hashlib.blake2b(topic.encode() + b"\0" + value, digest_size=16).hexdigest()


@dataclass
class ChannelAudit:
    """What the auditor knows of one channel: its replay, the versions seen, its first violation."""

    channel: str
    partition: int | None = None
    version: int = 0  # the last event version accepted
    digests: list[str] = field(default_factory=list)  # digests[v - 1]: version v's digest (duplicate vs fork)
    replay: Channel | None = None
    events: int = 0
    duplicates: int = 0
    after_violation: int = 0  # records of this channel read after its first violation (not checked)
    violation: Violation | None = None

    @property
    def ok(self) -> bool:
        return self.violation is None

    def summary(self) -> dict[str, Any]:
        """The report's row: money as integers (the report writes them as strings)."""
        out: dict[str, Any] = {"channel": self.channel, "ok": self.ok, "partition": self.partition,
                               "events": self.events, "duplicates": self.duplicates, "version": self.version}
        ch = self.replay
        if ch is not None:
            a, b = ch.participants
            out.update(status=ch.status, currency=ch.currency, participants=[a, b], sequence=ch.sequence,
                       head_hash=ch.head_hash, deposits=[ch.deposits[a], ch.deposits[b]],
                       sent=[ch.sent[a], ch.sent[b]], balances=[ch.balance_of(a), ch.balance_of(b)],
                       locked=[ch.locked_of(a), ch.locked_of(b)])
        if self.violation is not None:
            out["violation"] = self.violation.to_dict()
            out["after_violation"] = self.after_violation
        return out

    # --- the state file (infrastructure/audit/state.py): the replay as an eventsourcing snapshot ---------
    def to_state(self, mapper: Mapper[Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {"partition": self.partition, "version": self.version, "digests": self.digests,
                               "events": self.events, "duplicates": self.duplicates,
                               "after_violation": self.after_violation,
                               "violation": self.violation.to_dict() if self.violation else None}
        if self.replay is not None:
            stored = mapper.to_stored_event(Snapshot.take(self.replay))
            doc["replay"] = {"topic": stored.topic, "version": stored.originator_version,
                             "state": bytes(stored.state).decode("utf-8")}
        return doc

    @classmethod
    def from_state(cls, channel: str, doc: dict[str, Any], mapper: Mapper[Any]) -> ChannelAudit:
        audit = cls(channel=channel, partition=doc["partition"], version=doc["version"],
                    digests=list(doc["digests"]), events=doc["events"], duplicates=doc["duplicates"],
                    after_violation=doc.get("after_violation", 0),
                    violation=Violation(**doc["violation"]) if doc.get("violation") else None)
        if doc.get("replay"):
            r = doc["replay"]
            snapshot = mapper.to_domain_event(StoredEvent(originator_id=UUID(channel), originator_version=r["version"],
                                                          topic=r["topic"], state=r["state"].encode("utf-8")))
            audit.replay = snapshot.mutate(None)
        return audit


class Verifier:
    """Feed it every record of the copy, partition by partition in offset order (``check``); ask it for
    the channels' outcomes (``channels``) and the records that name no channel (``unattributed``)."""

    def __init__(self) -> None:
        self.mapper = event_mapper()
        self.channels: dict[str, ChannelAudit] = {}
        self.unattributed: list[Violation] = []  # undecodable records without a usable key
        self.other_records = 0  # records of other aggregates, or not events (skipped)
        self.records = 0

    @property
    def violations(self) -> list[Violation]:
        return self.unattributed + [c.violation for c in self.channels.values() if c.violation is not None]

    # ---------------------------------------------------------------------------------------------
    def check(self, rec: RawRecord) -> Violation | None:
        """Check one record; the violation it is (a channel's first), or None."""
        self.records += 1
        headers = dict(rec.headers)
        if headers.get(H_KIND, KIND_EVENT) != KIND_EVENT:
            self.other_records += 1
            return None
        try:
            stored = decode_event(rec.key, rec.value, rec.headers)
        except ValueError as exc:
            return self._undecodable(rec, f"not an event record: {exc}")
        if not stored.topic.startswith(CHANNEL_TOPIC_PREFIX):
            self.other_records += 1
            return None
        cid = str(stored.originator_id)
        audit = self.channels.get(cid)
        if audit is None:
            audit = self.channels[cid] = ChannelAudit(cid)
        if audit.violation is not None:
            audit.after_violation += 1
            return None
        name = stored.topic.removeprefix(CHANNEL_TOPIC_PREFIX)
        v = stored.originator_version
        try:
            if audit.partition is not None and rec.partition != audit.partition:
                raise _Bad("WrongPartition", f"an event of this channel in partition {rec.partition}; its earlier "
                                             f"events are in partition {audit.partition} (order is per partition)")
            digest = _digest(stored.topic, bytes(stored.state))
            if 1 <= v <= audit.version:
                if audit.digests[v - 1] == digest:
                    audit.duplicates += 1
                    return None
                raise _Bad("Fork", f"version {v} again with other content ({name}); the first one was kept")
            if v != audit.version + 1:
                missing = v - audit.version - 1
                raise _Bad("SequenceGap", f"event version {v} follows version {audit.version}: "
                                          f"{missing} event(s) of this channel missing" if missing > 0
                           else f"event version {v} is not a version")
            try:
                event = self.mapper.to_domain_event(stored)
            except Exception as exc:  # any way the bytes fail to decode is the copy's fault, not ours
                raise _Bad("Undecodable", f"the {name} event's value does not decode: "
                                          f"{type(exc).__name__}: {exc}") from None
            self._apply(audit, name, event)
        except _Bad as bad:
            seq = bad.sequence if bad.sequence is not None else (audit.replay.sequence if audit.replay else None)
            audit.violation = Violation(cid, rec.partition, rec.offset, v, seq, name, bad.reason, bad.detail)
            return audit.violation
        audit.partition = rec.partition
        audit.version = v
        audit.digests.append(digest)
        audit.events += 1
        return None

    def _undecodable(self, rec: RawRecord, detail: str) -> Violation:
        """A record that is not a decodable event: its channel's violation if its key names one."""
        try:
            cid = str(UUID((rec.key or b"").decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            cid = ""
        if cid:
            audit = self.channels.setdefault(cid, ChannelAudit(cid))
            if audit.violation is not None:
                audit.after_violation += 1
                return audit.violation
            seq = audit.replay.sequence if audit.replay else None
            audit.violation = Violation(cid, rec.partition, rec.offset, None, seq, "?", "Undecodable", detail)
            return audit.violation
        violation = Violation("?", rec.partition, rec.offset, None, None, "?", "Undecodable", detail)
        self.unattributed.append(violation)
        return violation

    # --- one event, by class -----------------------------------------------------------------------
    def _apply(self, audit: ChannelAudit, name: str, event: Any) -> None:
        if audit.replay is None:
            if name != "ChannelOpened":
                raise _Bad("SequenceGap", f"the channel's first event is {name}, not ChannelOpened")
            audit.replay = self._open(audit, event)
            return
        ch = audit.replay
        handler = getattr(self, "_on_" + name, None)
        if name == "ChannelOpened":
            raise _Bad("Fork", "a second ChannelOpened")
        if handler is not None:
            try:
                handler(ch, event)
            except errors.ParsecError as exc:
                raise _Bad(_refusal(exc), str(exc)) from None
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                # a field missing or of the wrong type: decoded JSON, but not the event it says it is
                raise _Bad("MalformedEvent", f"the {name} event's fields are not an event's: "
                                             f"{type(exc).__name__}: {exc}") from None
        # Other events (OperatorRegistered, FeePolicySet, SecretRegistrationRequested, SecretRegistered)
        # move no money: their version and content are checked above, their effect is not.
        ch.collect_events()  # the replay's own events are not needed: keep its memory flat

    def _open(self, audit: ChannelAudit, e: Any) -> Channel:
        if str(e.channel_id) != audit.channel:
            raise _Bad("WrongChannel", f"ChannelOpened of channel {e.channel_id} under the key of {audit.channel}")
        try:
            keys = [bytes.fromhex(str(k).removeprefix("0x")) for k in e.public_keys]
            ch = Channel.open(
                channel_id=UUID(audit.channel), public_key_a=keys[0], public_key_b=keys[1], currency=e.currency,
                deposit_a=int(e.deposits[0]), deposit_b=int(e.deposits[1]),
                parameters=ChannelParameters(challenge_period=e.challenge_period,
                                             checkpoint_interval=e.checkpoint_interval,
                                             checkpoint_timeout=e.checkpoint_timeout),
                domain=SigningDomain(chain_id=e.chain_id, verifying_contract=e.contract), at=e.opened_at)
        except (errors.ParsecError, ValueError, IndexError, TypeError) as exc:
            raise _Bad("BadOpen", f"the open event's terms do not open a channel: {exc}") from None
        if list(ch.participants) != list(e.participants):
            raise _Bad("KeyMismatch", f"the participants {e.participants} are not the addresses of the public "
                                      f"keys given ({ch.participants})")
        ch.collect_events()
        return ch

    # one handler per money-moving event class, named _on_<class> (``_apply`` finds it by name)
    def _on_DepositMade(self, ch: Channel, e: Any) -> None:
        ch.deposit(e.participant, int(e.amount))
        if ch.deposits[e.participant] != int(e.total):
            raise _Bad("DepositMismatch", f"a deposit of {e.amount} claims a total of {e.total}; the deposits "
                                          f"give {ch.deposits[e.participant]}")

    def _on_PaymentAccepted(self, ch: Channel, e: Any) -> None:
        seq = int(e.sequence)
        try:
            tx = SignedInvoice.parse(e.transaction)
        except (errors.InvalidSignature, errors.AddressMismatch) as exc:
            raise _Bad("BadSignature", f"the signed transaction does not verify: {exc}", seq) from None
        except errors.ParsecError as exc:
            raise _Bad("BadTransaction", f"the signed transaction is malformed: {exc.reason}: {exc}", seq) from None
        if str(tx.channel) != str(ch.id):
            raise _Bad("WrongChannel", f"the transaction is signed for channel {tx.channel}, not this one", seq)
        if tx.buyer != e.buyer:
            raise _Bad("BadSignature", f"the transaction is signed by {tx.buyer}; the event names {e.buyer} as "
                                       "the buyer", seq)
        claimed = {"sequence": (seq, tx.sequence), "price": (int(e.price), tx.price),
                   "supplier": (e.supplier, tx.supplier_address), "kind": (e.kind, tx.kind),
                   "transaction_hash": (e.transaction_hash, "0x" + tx.transaction_hash.hex()),
                   "invoice_id": (str(e.invoice_id), str(tx.invoice_id))}
        for what, (said, signed) in claimed.items():
            if said != signed:
                reason = "TotalMismatch" if what == "price" else "TransactionMismatch"
                raise _Bad(reason, f"the event's {what} {said} is not the signed transaction's {signed}", seq)
        try:
            outcome = ch.accept_payment(tx, at=int(e.timestamp.timestamp()))
        except errors.ParsecError as exc:
            raise _Bad(_refusal(exc), str(exc), seq) from None
        if outcome is PaymentOutcome.DUPLICATE:
            raise _Bad("ReplayedTransaction", f"transaction {seq} was already accepted by an earlier event", seq)
        buyer, supplier = tx.buyer, tx.supplier_address
        if int(e.buyer_total) != ch.sent[buyer]:
            raise _Bad("TotalMismatch", f"buyer_total {e.buyer_total}; the signed transactions give "
                                        f"{ch.sent[buyer]}", seq)
        claimed_balances = [int(x) for x in e.balances]
        if min(claimed_balances) < 0:
            raise _Bad("BalanceMismatch", f"a balance below zero: {claimed_balances}", seq)
        replayed = [ch.balance_of(buyer), ch.balance_of(supplier)]
        if claimed_balances != replayed:
            raise _Bad("BalanceMismatch", f"balances [buyer, supplier] {claimed_balances}; the signed transactions "
                                          f"give {replayed}", seq)
        locked = getattr(e, "locked", None)
        if locked is not None and [int(x) for x in locked] != [ch.locked_of(buyer), ch.locked_of(supplier)]:
            raise _Bad("LockMismatch", f"locked [buyer, supplier] {locked}; the signed transactions give "
                                       f"{[ch.locked_of(buyer), ch.locked_of(supplier)]}", seq)

    def _head_claim(self, ch: Channel, e: Any, what: str) -> None:
        """A checkpoint or settlement request carries the head and balances the payments give."""
        if int(e.sequence) != ch.sequence:
            raise _Bad("SequenceMismatch", f"{what} at sequence {e.sequence}; the payments reach {ch.sequence}",
                       int(e.sequence))
        if e.head_hash != ch.head_hash:
            raise _Bad("BrokenHashLink", f"{what} carries head {e.head_hash}; the payments' head is {ch.head_hash}")
        balances = [ch.balance_of(p) for p in ch.participants]
        if [int(x) for x in e.balances] != balances:
            raise _Bad("BalanceMismatch", f"{what} carries balances {list(e.balances)}; the payments give {balances}")
        evidence = [ch.latest[p] for p in ch.participants if p in ch.latest]
        if list(e.evidence) != evidence:
            raise _Bad("EvidenceMismatch", f"{what}'s evidence is not each participant's latest signed payment")

    def _on_CheckpointRequested(self, ch: Channel, e: Any) -> None:
        self._head_claim(ch, e, "the checkpoint")

    def _on_CheckpointConfirmed(self, ch: Channel, e: Any) -> None:
        seq = int(e.sequence)
        if not ch.confirmed_sequence < seq <= ch.sequence:
            raise _Bad("SequenceMismatch", f"a confirmation of sequence {seq}: the payments reach {ch.sequence}, "
                                           f"{ch.confirmed_sequence} was confirmed before", seq)
        ch.confirm_checkpoint(seq, e.tx_hash, e.block)

    def _on_SettlementRequested(self, ch: Channel, e: Any) -> None:
        self._head_claim(ch, e, "the settlement request")
        ch.request_settlement(at=int(e.at), requested_by=e.requested_by)

    def _on_DisputeRequested(self, ch: Channel, e: Any) -> None:
        if int(e.to_sequence) != ch.sequence or e.head_hash != ch.head_hash:
            raise _Bad("SequenceMismatch", f"a dispute up to {e.to_sequence} ({e.head_hash}); the payments reach "
                                           f"{ch.sequence} ({ch.head_hash})", int(e.to_sequence))
        if int(e.from_sequence) != ch.confirmed_sequence + 1:
            raise _Bad("SequenceMismatch", f"a dispute from {e.from_sequence}; {ch.confirmed_sequence} was the last "
                                           "confirmed sequence")

    def _on_ChannelClosed(self, ch: Channel, e: Any) -> None:
        if int(e.sequence) != ch.sequence:
            raise _Bad("SequenceMismatch", f"closed at sequence {e.sequence}; the payments reach {ch.sequence}",
                       int(e.sequence))
        paid = [int(x) for x in e.balances]
        balances = [ch.balance_of(p) for p in ch.participants]
        # The chain may pay pending hashed timelocks either way (a secret registered in time, or the lock
        # expired): each side gets at least its spendable balance and at most that plus every pending lock.
        pending = sum(ch.locked_of(p) for p in ch.participants)
        if sum(paid) != ch.total_deposits or any(not b <= x <= b + pending for x, b in zip(paid, balances, strict=True)):
            raise _Bad("BalanceMismatch", f"closed with balances {paid}; the payments give {balances}"
                                          + (f" (with {pending} in pending locks)" if pending else ""))
        ch.close(at=int(e.at), payouts=paid)
