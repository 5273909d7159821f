"""The payer's client: a wallet that signs its channel's next payment from its own record.

A buyer (or a seller paying back) runs a :class:`Wallet` on its own machine. It keeps its own
record of each channel (:mod:`infrastructure.client.record`): the head it signs after, its
cumulative total, its counterparty's latest signed payment, and every payment it signed with its
exact bytes and outcome. It never asks the operator what to sign.

The rule it keeps: **one live signature per sequence.** A payment is written to the record, in the
same transaction that advances the head, *before* it is sent; concurrent calls (threads, processes)
are serialised by the record's lock; after a crash the record says what was signed, and a payment
whose outcome is unknown is re-sent as the same bytes (the node applies a repeat once: DUPLICATE is a
no-op). A sequence is signed again only once the payment there can no longer be applied: the node
(or the API) refused it, or it chains on a refused one (``void``).

How it learns a channel: :meth:`Wallet.track` with :class:`ChannelTerms` (from the open it signed or
took part in, :meth:`ChannelTerms.from_open_request`; from a JSON file, :meth:`ChannelTerms.parse`;
or from the node's log, :meth:`Wallet.track_from_node`). How it learns outcomes:
:meth:`Wallet.reconcile` against an :class:`~infrastructure.client.acks.Acknowledgements` (the node's
events and rejected topics).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.addresses import eth_address_from_public_key, parse_eth_address
from domain.crypto import PrivateKey
from domain.errors import ChannelNotOpen, NotAParticipant, Overspend, ParsecError, UnknownChannel
from domain.money import Currency, check_amount
from domain.protocol import GENESIS, HashPointer, Invoice, SignedInvoice, SigningDomain, signed_invoice_json
from infrastructure.client.acks import Acknowledgements, NodeChannel
from infrastructure.client.record import (
    UNSETTLED_STATES,
    ChannelState,
    PaymentRecord,
    PaymentState,
    WalletRecord,
)
from infrastructure.client.transport import DeliveryUnknown, PaymentRefused, Transport

log = logging.getLogger("parsec.wallet")


class UntrackedChannel(ParsecError):
    """The wallet has no record of this channel: track it first (``parsec wallet track``)."""


class TermsMismatch(ParsecError):
    """The channel is tracked with other terms than the ones given."""


class NotReconcilable(ParsecError):
    """The wallet has no source of acknowledgements (the node's topics) to reconcile with."""


@dataclass(frozen=True)
class ChannelTerms:
    """What a wallet needs to sign in a channel: who is A and B, the currency, the deposits, and the
    deployment its signatures are bound to; and, when imported mid-life, the head and both totals."""

    channel: UUID
    participant_a: str
    participant_b: str
    currency: str
    deposit_a: int
    deposit_b: int
    domain: SigningDomain
    sequence: int = 0
    head: HashPointer = GENESIS
    sent_a: int = 0
    sent_b: int = 0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> its latest signed payment

    @classmethod
    def from_open_request(cls, request: Any) -> ChannelTerms:
        """From the ``OpenChannelRequest`` that opened the channel (``parsec send open``, the node's)."""
        return cls(channel=request.channel,
                   participant_a=eth_address_from_public_key(bytes.fromhex(request.public_key_a)),
                   participant_b=eth_address_from_public_key(bytes.fromhex(request.public_key_b)),
                   currency=Currency.parse(request.currency).value, deposit_a=request.deposit_a,
                   deposit_b=request.deposit_b, domain=request.signing_domain)

    @classmethod
    def from_node(cls, view: NodeChannel) -> ChannelTerms:
        a, b = view.participants
        return cls(channel=view.channel, participant_a=a, participant_b=b, currency=view.currency,
                   deposit_a=view.deposits[a], deposit_b=view.deposits[b], domain=view.domain,
                   sequence=view.sequence, head=view.head, sent_a=view.sent[a], sent_b=view.sent[b],
                   latest=dict(view.latest))

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> ChannelTerms:
        """From JSON: ``channel``, ``participantA``, ``participantB``, ``currency``, ``depositA``,
        ``depositB`` (strings of digits, smallest unit), ``chainId``, ``contract``; optionally
        ``sequence``, ``headId``, ``headHash``, ``sentA``, ``sentB`` for a channel already in use."""
        def amount(name: str) -> int:
            value = doc.get(name, "0")
            if not (isinstance(value, str) and value.isascii() and value.isdigit()):
                raise ValueError(f"{name} is a string of digits in the smallest unit, got {value!r}")
            return int(value)

        missing = [k for k in ("channel", "participantA", "participantB", "chainId", "contract") if k not in doc]
        if missing:
            raise ValueError(f"channel terms lack {', '.join(missing)}")
        head = GENESIS
        if doc.get("headHash"):
            head = HashPointer(transaction_id=UUID(doc["headId"]), transaction_hash=doc["headHash"])
        return cls(channel=UUID(str(doc["channel"])), participant_a=parse_eth_address(doc["participantA"]),
                   participant_b=parse_eth_address(doc["participantB"]),
                   currency=Currency.parse(doc.get("currency", "ETH")).value, deposit_a=amount("depositA"),
                   deposit_b=amount("depositB"),
                   domain=SigningDomain(chain_id=doc["chainId"], verifying_contract=doc["contract"]),
                   sequence=int(doc.get("sequence", 0)), head=head, sent_a=amount("sentA"), sent_b=amount("sentB"))

    def state_for(self, me: str) -> ChannelState:
        if me == self.participant_a:
            role, other, mine, theirs = "A", self.participant_b, (self.deposit_a, self.sent_a), (self.deposit_b, self.sent_b)
        elif me == self.participant_b:
            role, other, mine, theirs = "B", self.participant_a, (self.deposit_b, self.sent_b), (self.deposit_a, self.sent_a)
        else:
            raise NotAParticipant(f"{me} is not a participant of channel {self.channel} "
                                  f"({self.participant_a}, {self.participant_b})")
        return ChannelState(channel=self.channel, me=me, role=role, counterparty=other, currency=self.currency,
                            domain=self.domain, my_deposit=mine[0], their_deposit=theirs[0], sequence=self.sequence,
                            head=self.head, my_total=mine[1], their_total=theirs[1],
                            their_latest=self.latest.get(other), node_sequence=self.sequence, status="open")


@dataclass
class Reconciled:
    """What one reconcile learnt about a channel."""

    channel: UUID
    node_sequence: int
    accepted: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)  # sequence -> reason
    void: list[int] = field(default_factory=list)
    counterparty: list[int] = field(default_factory=list)  # the counterparty's payments newly seen
    unsettled: int = 0

    def merge(self, later: Reconciled) -> Reconciled:
        return Reconciled(self.channel, later.node_sequence, self.accepted + later.accepted,
                          {**self.rejected, **later.rejected}, self.void + later.void,
                          self.counterparty + later.counterparty, later.unsettled)

    def to_json(self) -> dict[str, Any]:
        return {"channel": str(self.channel), "nodeSequence": self.node_sequence, "accepted": self.accepted,
                "rejected": {str(k): v for k, v in self.rejected.items()}, "void": self.void,
                "counterparty": self.counterparty, "unsettled": self.unsettled}


class Wallet:
    """One key's channels, payments and their outcomes. Thread-safe; several processes may share
    the record file (each call takes its lock)."""

    def __init__(self, record: WalletRecord, key: PrivateKey, *, transport: Transport | None = None,
                 acks: Acknowledgements | None = None,
                 after_record: Callable[[PaymentRecord], None] | None = None) -> None:
        self.record, self.key = record, key
        self.address = eth_address_from_public_key(key.public_key)
        self.transport, self.acks = transport, acks
        # a test hook: called after a payment is recorded and before it is sent (a crash there is
        # what the record must survive; see docs/client.md)
        self.after_record = after_record
        # payments this process is sending now: ``resend`` leaves them to their sender (another
        # process may still send one twice: the node applies a repeat once)
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()
        # one reconcile at a time: the acknowledgements' reader and consumer are not shared across threads
        self._reconcile_lock = threading.Lock()

    def close(self) -> None:
        for part in (self.transport, self.acks):
            if part is not None:
                part.close()
        self.record.close()

    # ------------------------------------------------------------------ channels
    def track(self, terms: ChannelTerms) -> ChannelState:
        """Start keeping this channel (idempotent). A channel already tracked keeps its own head:
        the record, not the terms, says what this wallet signed; only larger deposits are taken."""
        mine = terms.state_for(self.address)
        with self.record.locked():
            known = self.record.channel(terms.channel, self.address)
            if known is None:
                self.record.insert_channel(mine)
                log.info("tracking channel %s as %s at sequence %d", terms.channel, mine.role, mine.sequence)
                return mine
            if (known.role, known.counterparty, known.currency, known.domain) != (
                    mine.role, mine.counterparty, mine.currency, mine.domain):
                raise TermsMismatch(f"channel {terms.channel} is tracked with other terms (role {known.role}, "
                                    f"counterparty {known.counterparty}, {known.currency}, chain "
                                    f"{known.domain.chain_id} contract {known.domain.verifying_contract})")
            if (mine.my_deposit, mine.their_deposit) > (known.my_deposit, known.their_deposit):
                self.record.update_channel(terms.channel, self.address,
                                           my_deposit=max(mine.my_deposit, known.my_deposit),
                                           their_deposit=max(mine.their_deposit, known.their_deposit))
            return self.record.channel(terms.channel, self.address)  # type: ignore[return-value]

    def track_from_node(self, channel: UUID) -> ChannelState:
        """Track a channel as the node's log has it now (its terms, head and totals)."""
        if self.acks is None:
            raise NotReconcilable("no connection to the node's topics to read the channel from")
        return self.track(ChannelTerms.from_node(self.acks.channel(channel)))

    def channel(self, channel: UUID) -> ChannelState:
        state = self.record.channel(channel, self.address)
        if state is None:
            raise UntrackedChannel(f"this wallet ({self.address}) does not track channel {channel}: "
                                   "`parsec wallet track --channel ID` (or Wallet.track) first")
        return state

    def channels(self) -> list[ChannelState]:
        return self.record.channels(self.address)

    def payments(self, channel: UUID | None = None, states: tuple[PaymentState, ...] | None = None) -> list[PaymentRecord]:
        return self.record.payments(channel, self.address, states)

    # ------------------------------------------------------------------ paying
    def pay(self, channel: UUID, price: int, invoice_type: str = "") -> PaymentRecord:
        """Sign, record and send one payment of ``price`` (smallest unit) to the counterparty.

        Earlier payments of the channel still ``recorded`` (outcome unknown) are re-sent first, as
        they are. Returns the record after sending (``sent``); raises ``PaymentRefused`` (recorded as
        rejected) or ``DeliveryUnknown`` (kept ``recorded``: re-sent by the next call or ``resend``)."""
        if self.transport is None:
            raise DeliveryUnknown("this wallet has no transport: it can sign and record, not send")
        self.resend(channel)
        payment = self.sign_next(channel, price, invoice_type)
        if self.after_record is not None:
            self.after_record(payment)
        return self.send(payment)

    def sign_next(self, channel: UUID, price: int, invoice_type: str = "") -> PaymentRecord:
        """Sign the payment after the head and record it (same transaction as the head's advance);
        nothing is sent. Refuses locally what the node would refuse for this wallet's own state."""
        check_amount(price, what="price")
        with self.record.locked():
            st = self.channel(channel)
            if st.status != "open":
                raise ChannelNotOpen(f"channel {channel} is {st.status}; nothing more can be paid")
            if price > st.balance:
                raise Overspend(f"payment of {price} exceeds this wallet's balance {st.balance} in channel {channel} "
                                f"(deposit {st.my_deposit} - paid {st.my_total} + received {st.their_total})")
            invoice = Invoice(invoice_address=st.counterparty, price=price, currency=Currency.parse(st.currency),
                              invoice_type=invoice_type)
            raw, pointer = signed_invoice_json(invoice, key=self.key, channel=channel, invoice_id=uuid.uuid4(),
                                               sequence=st.sequence + 1, previous=st.head,
                                               buyer_total=st.my_total + price, domain=st.domain)
            tx = SignedInvoice.from_json(raw)  # what is recorded is what a node will parse and verify
            assert tx.transaction_hash == pointer.transaction_hash
            payment = PaymentRecord(
                channel=channel, me=self.address, sequence=tx.sequence, invoice_id=tx.invoice_id,
                tx_hash="0x" + pointer.transaction_hash.hex(), previous=st.head, price=price,
                buyer_total=tx.buyer_total, invoice_type=invoice_type, raw=raw, state=PaymentState.RECORDED,
                reason=None, detail=None, partition=None, offset=None, attempts=0, created_at=time.time(),
                sent_at=None, settled_at=None)
            self.record.insert_payment(payment)
            self.record.update_channel(channel, self.address, sequence=payment.sequence, head=pointer,
                                       my_total=payment.buyer_total)
            with self._in_flight_lock:
                self._in_flight.add(payment.tx_hash)
        return payment

    def send(self, payment: PaymentRecord) -> PaymentRecord:
        """Send a recorded payment's exact bytes; record what the transport answered."""
        if self.transport is None:
            raise DeliveryUnknown("this wallet has no transport")
        with self._in_flight_lock:
            self._in_flight.add(payment.tx_hash)
        try:
            return self._send(payment)
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(payment.tx_hash)

    def _send(self, payment: PaymentRecord) -> PaymentRecord:
        assert self.transport is not None
        current = self.record.payment(payment.channel, self.address, payment.sequence, payment.tx_hash)
        if current is None or current.state is not PaymentState.RECORDED:
            return current or payment  # settled meanwhile (or never ours): never send a void or rejected one
        try:
            delivery = self.transport.send(current.raw, current.channel)
        except PaymentRefused as refused:
            with self.record.locked():
                self._settle(current, PaymentState.REJECTED, refused.reason, refused.detail)
                self._rewind_after(current)
            raise
        except DeliveryUnknown:
            with self.record.locked():
                self.record.set_payment(current.channel, self.address, current.sequence, current.tx_hash,
                                        attempts=current.attempts + 1)
            raise
        with self.record.locked():
            now = self.record.payment(current.channel, self.address, current.sequence, current.tx_hash)
            fields: dict[str, Any] = {"partition": delivery.partition, "offset": delivery.offset,
                                      "attempts": current.attempts + 1, "sent_at": time.time()}
            if now is not None and now.state is PaymentState.RECORDED:
                fields["state"] = PaymentState.SENT
            self.record.set_payment(current.channel, self.address, current.sequence, current.tx_hash, **fields)
        return self.record.payment(current.channel, self.address, current.sequence, current.tx_hash)  # type: ignore[return-value]

    def resend(self, channel: UUID | None = None) -> list[PaymentRecord]:
        """Send again, byte for byte, every payment whose delivery is not known (``recorded``), in
        sequence order; what the transport still cannot deliver stays ``recorded``."""
        out = []
        recorded = self.record.payments(channel, self.address, (PaymentState.RECORDED,))
        # after the query: a payment recorded by a thread is in flight before its record commits, and
        # one whose sender has finished since is no longer ``recorded`` when ``send`` reads it again
        with self._in_flight_lock:
            busy = set(self._in_flight)
        for p in recorded:
            if p.tx_hash in busy:
                continue
            log.info("re-sending payment %d of channel %s (recorded, outcome unknown)", p.sequence, p.channel)
            out.append(self.send(p))
        return out

    # ------------------------------------------------------------------ outcomes
    def reconcile(self, channel: UUID) -> Reconciled:
        """Take what the node decided: its accepted payments (ours and the counterparty's), its
        refusals of ours; move the head back to the node's where ours were refused."""
        if self.acks is None:
            raise NotReconcilable("this wallet has no acknowledgements source (the node's events and rejected "
                                  "topics) to reconcile with")
        with self._reconcile_lock:
            return self._reconcile(channel, self.acks)

    def _reconcile(self, channel: UUID, acks: Acknowledgements) -> Reconciled:
        st = self.channel(channel)
        view = acks.channel(channel, since_sequence=min(st.node_sequence, st.sequence))
        pending = [p for p in self.payments(channel, UNSETTLED_STATES) if p.sequence > view.sequence]
        refused = acks.refusals(channel, {str(p.invoice_id) for p in pending},
                                     since=min((p.created_at for p in pending), default=time.time()))
        report = Reconciled(channel, view.sequence)
        with self.record.locked():
            st = self.channel(channel)
            mine = {p.tx_hash: p for p in self.payments(channel)}
            for a in view.accepted:
                p = mine.get(a.tx_hash)
                if a.buyer == self.address and p is not None:
                    if p.state is not PaymentState.ACCEPTED:
                        self._void_live_at(channel, a.sequence, except_hash=a.tx_hash, report=report,
                                           why=f"sequence {a.sequence} holds this wallet's other payment")
                        self._settle(p, PaymentState.ACCEPTED)
                        report.accepted.append(a.sequence)
                    continue
                if a.buyer == self.address:
                    log.warning("channel %s: sequence %d was paid with this wallet's key but is not in its record "
                                "(another copy of the key, or a lost record)", channel, a.sequence)
                else:
                    report.counterparty.append(a.sequence)
                self._void_live_at(channel, a.sequence, except_hash=None, report=report,
                                   why=f"sequence {a.sequence} holds another transaction")
            for p in self.payments(channel, UNSETTLED_STATES):
                r = refused.get(str(p.invoice_id))
                if r is not None:
                    self._settle(p, PaymentState.REJECTED, r.reason, r.message)
                    report.rejected[p.sequence] = r.reason
            self._rebuild_head(st, view, report)
            report.unsettled = len(self.payments(channel, UNSETTLED_STATES))
        return report

    def wait(self, channel: UUID, timeout: float = 30.0, interval: float = 0.5) -> Reconciled:
        """Reconcile until no payment of the channel is unsettled, or ``timeout`` seconds pass; what
        every pass learnt, together."""
        deadline = time.monotonic() + timeout
        total: Reconciled | None = None
        while True:
            try:
                report = self.reconcile(channel)
            except UnknownChannel:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(interval)  # the channel's open may still be on its way to the node
                continue
            total = report if total is None else total.merge(report)
            if report.unsettled == 0 or time.monotonic() >= deadline:
                return total
            time.sleep(interval)

    # ------------------------------------------------------------------ internals (under the lock)
    def _settle(self, p: PaymentRecord, state: PaymentState, reason: str | None = None,
                detail: str | None = None) -> None:
        self.record.set_payment(p.channel, self.address, p.sequence, p.tx_hash, state=state, reason=reason,
                                detail=detail, settled_at=time.time())

    def _void_live_at(self, channel: UUID, sequence: int, *, except_hash: str | None, report: Reconciled,
                      why: str) -> None:
        live = self.record.payment(channel, self.address, sequence)
        if live is not None and live.tx_hash != except_hash and live.state is not PaymentState.ACCEPTED:
            self._settle(live, PaymentState.VOID, "Superseded", why)
            report.void.append(sequence)

    def _rewind_after(self, refused: PaymentRecord) -> None:
        """An API refusal: the payment never reached the node. Later payments chain on it (void);
        the head goes back to the one it was signed after."""
        for p in self.payments(refused.channel, UNSETTLED_STATES):
            if p.sequence > refused.sequence:
                self._settle(p, PaymentState.VOID, "Superseded",
                             f"chains on payment {refused.sequence}, which was refused")
        st = self.channel(refused.channel)
        if st.sequence >= refused.sequence:
            self.record.update_channel(refused.channel, self.address, sequence=refused.sequence - 1,
                                       head=refused.previous, my_total=refused.buyer_total - refused.price)

    def _rebuild_head(self, st: ChannelState, view: NodeChannel, report: Reconciled) -> None:
        """The head to sign after: the node's, extended by this wallet's payments still in flight
        that chain on it; those that cannot (they follow a refused one) are void."""
        other = st.counterparty
        head, sequence, my_total = view.head, view.sequence, view.sent.get(self.address, 0)
        for p in self.payments(st.channel, UNSETTLED_STATES):
            if p.sequence <= view.sequence:  # not accepted above: another transaction holds its sequence
                self._settle(p, PaymentState.VOID, "Superseded",
                             f"sequence {p.sequence} of channel {st.channel} holds another transaction")
                report.void.append(p.sequence)
                continue
            if p.sequence == sequence + 1 and p.previous == head:
                head, sequence, my_total = p.pointer, p.sequence, p.buyer_total
                continue
            self._settle(p, PaymentState.VOID, "Superseded",
                         f"chains on {p.previous.transaction_id}, which channel {st.channel} did not take")
            report.void.append(p.sequence)
        self.record.update_channel(
            st.channel, self.address, sequence=sequence, head=head, my_total=my_total,
            their_total=view.sent.get(other, 0), their_latest=view.latest.get(other) or st.their_latest,
            node_sequence=view.sequence, status=view.status,
            my_deposit=view.deposits.get(self.address, st.my_deposit),
            their_deposit=view.deposits.get(other, st.their_deposit))
