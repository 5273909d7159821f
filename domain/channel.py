"""The Channel aggregate: one two-party payment channel, event-sourced.

Every decision about a channel is made here, from its events alone:
whether a signed transaction extends the hash chain, whether the payer can
afford it, when a checkpoint is due (every m-th sequence number, or after the
checkpoint timeout), and what a settlement or dispute must carry.
Time comes in as arguments (``at``: unix seconds); the aggregate never reads
a clock or a random source, and never does I/O.

Events (past tense): ChannelOpened, DepositMade, PaymentAccepted,
CheckpointRequested, CheckpointConfirmed, SettlementRequested,
DisputeRequested, ChannelClosed, OperatorRegistered.

Signed control requests (``domain.control``) arrive with their authenticated
signer, nonce and expiry (a ``RequestAuth``): the channel decides whether that
signer may ask (a participant, or the operator it registered), whether the
request has expired, and whether its nonce is above the last one it accepted
from that signer; the events it produces record the signer and the nonce.
Without a ``RequestAuth`` a command is the in-process operator's (trusted).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import kinds
from domain.addresses import eth_address_from_public_key
from domain.control import NO_OPERATOR, RequestAuth
from domain.crypto import PrivateKey
from domain.errors import (
    BrokenHashPointer,
    ChallengePeriodTooShort,
    ChannelIsClosed,
    ChannelNotOpen,
    ConflictingPayment,
    CumulativeTotalMismatch,
    CurrencyMismatch,
    InvalidChannelParameters,
    LockedAmountMismatch,
    LocksRootMismatch,
    NotAParticipant,
    Overspend,
    ReplayedRequest,
    RequestExpired,
    SecretOfNoPendingLock,
    SequenceGap,
    StalePayment,
    UnauthorizedRequest,
    WrongChannel,
    WrongDomain,
)
from domain.locks import Lock, locks_root, secret_hash
from domain.money import Currency, check_amount
from domain.protocol import (
    GENESIS_HASH,
    GENESIS_TRANSACTION_ID,
    HashPointer,
    Invoice,
    SignedInvoice,
    SigningDomain,
    sign_invoice,
)


class ChannelStatus(StrEnum):
    OPEN = "open"
    SETTLING = "settling"  # a settlement was requested: no new payments
    CLOSED = "closed"


class PaymentOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same transaction again: an idempotent no-op


class CheckpointReason(StrEnum):
    INTERVAL = "interval"  # every m-th sequence number
    TIMEOUT = "timeout"  # checkpoint timeout since the last one
    REQUEST = "request"  # an unscheduled request (control topic, operator)


@dataclass(frozen=True)
class ChannelParameters:
    challenge_period: int  # seconds the counterparty has to answer a unilateral close
    checkpoint_interval: int  # m: checkpoint every m-th sequence number
    checkpoint_timeout: int  # seconds after which unchecked payments are checkpointed

    def __post_init__(self) -> None:
        for name in ("challenge_period", "checkpoint_interval", "checkpoint_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidChannelParameters(f"{name} must be a positive integer, got {value!r}")


_ZERO = "0x" + GENESIS_HASH.hex()

RETAINED_HASHES = 1024
"""How many of the latest transaction hashes a channel keeps to tell a repeat from a fork.

A bound, so that a channel's state (and its snapshot, one Kafka record) does not grow with
its history. An older sequence is ``StalePayment`` to the aggregate; the command handlers
then look the sequence up in the channel's own log (``ChannelService``), so a late repeat
is still recognised as a repeat."""


class Channel(Aggregate):
    """A two-party channel. Participant A opened it; B is the counterparty."""

    @staticmethod
    def create_id(channel_id: UUID, **_: Any) -> UUID:
        return channel_id

    # --- open --------------------------------------------------------------
    @classmethod
    def open(
        cls,
        *,
        channel_id: UUID,
        public_key_a: bytes,
        public_key_b: bytes,
        currency: Currency | str,
        deposit_a: int,
        deposit_b: int,
        parameters: ChannelParameters,
        domain: SigningDomain,
        at: int,
        auth: RequestAuth | None = None,
        min_challenge_period: int = 0,
    ) -> Channel:
        """Participant A opens a channel with B; ``auth``: A's signed request, checked against ``at``.

        A watchtower must have time to answer a stale close: a challenge period below
        ``min_challenge_period`` (the operating service's) is refused."""
        if parameters.challenge_period < min_challenge_period:
            raise ChallengePeriodTooShort(
                f"a challenge period of {parameters.challenge_period}s is below this node's minimum of "
                f"{min_challenge_period}s (PARSEC_MIN_CHALLENGE_PERIOD)"
            )
        cur = Currency.parse(currency)
        check_amount(deposit_a, positive=False, what="deposit_a")
        check_amount(deposit_b, positive=False, what="deposit_b")
        addr_a = eth_address_from_public_key(public_key_a)
        addr_b = eth_address_from_public_key(public_key_b)
        if addr_a == addr_b:
            raise InvalidChannelParameters("a channel needs two different participants")
        if auth is not None:
            if auth.signer != addr_a:
                raise UnauthorizedRequest(f"an open must be signed by participant A {addr_a}, not {auth.signer}")
            _check_expiry(auth, at)
        return cls(
            channel_id=channel_id,
            participants=[addr_a, addr_b],
            public_keys=["0x" + public_key_a.hex(), "0x" + public_key_b.hex()],
            currency=cur.value,
            deposits=[deposit_a, deposit_b],
            challenge_period=parameters.challenge_period,
            checkpoint_interval=parameters.checkpoint_interval,
            checkpoint_timeout=parameters.checkpoint_timeout,
            chain_id=domain.chain_id,
            contract=domain.verifying_contract,
            opened_at=at,
            opened_by=auth.signer if auth else "",
            nonce=auth.nonce if auth else 0,
        )

    @event("ChannelOpened")
    def __init__(
        self,
        *,
        channel_id: UUID,
        participants: list[str],
        public_keys: list[str],
        currency: str,
        deposits: list[int],
        challenge_period: int,
        checkpoint_interval: int,
        checkpoint_timeout: int,
        chain_id: int,
        contract: str,
        opened_at: int,
        opened_by: str = "",
        nonce: int = 0,
    ) -> None:
        self.participants = list(participants)
        self.public_keys = list(public_keys)
        self.currency = currency
        self.deposits = {p: d for p, d in zip(participants, deposits, strict=False)}
        self.sent = {p: 0 for p in participants}
        self.challenge_period = challenge_period
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_timeout = checkpoint_timeout
        self.chain_id = chain_id
        self.contract = contract
        self.status = ChannelStatus.OPEN.value
        self.sequence = 0
        self.head_hash = _ZERO
        self.head_id = str(GENESIS_TRANSACTION_ID)
        # the latest RETAINED_HASHES transaction hashes, oldest first: tells a repeat from a fork
        self.hashes: list[str] = []
        self.latest: dict[str, dict[str, Any]] = {}  # each participant's latest signed payment
        self.locks: dict[str, list[dict[str, Any]]] = {p: [] for p in participants}  # pending, oldest first
        self.checkpoint_sequence = 0  # last requested
        self.checkpoint_at = opened_at
        self.confirmed_sequence = 0  # last confirmed on-chain
        self.final_balances: dict[str, int] | None = None
        self.operators: dict[str, str] = {}  # participant -> the operator it registered
        self.nonces: dict[str, int] = {}  # signer -> the last nonce a signed request of it was accepted with
        self._note_nonce(opened_by, nonce)

    # --- queries -------------------------------------------------------------
    @property
    def domain(self) -> SigningDomain:
        return SigningDomain(chain_id=self.chain_id, verifying_contract=self.contract)

    def counterparty(self, participant: str) -> str:
        a, b = self.participants
        if participant == a:
            return b
        if participant == b:
            return a
        raise NotAParticipant(f"{participant} is not a participant of channel {self.id}")

    def balance_of(self, participant: str) -> int:
        """Spendable: deposit - sent + received - locked (a pending lock is neither side's yet)."""
        other = self.counterparty(participant)
        return self.deposits[participant] - self.sent[participant] + self.sent[other] - self.locked_of(participant)

    def locked_of(self, participant: str) -> int:
        """What ``participant`` has locked in pending hashed timelocks (owed to its counterparty if the
        secret is revealed in time)."""
        return sum(int(lock["amount"]) for lock in self.__dict__.get("locks", {}).get(participant, ()))

    def pending_locks(self, participant: str) -> list[Lock]:
        """``participant``'s pending locks, oldest first (what its locksRoot is over)."""
        return [Lock.from_dict(d) for d in self.__dict__.get("locks", {}).get(participant, ())]

    def direction(self, participant: str) -> kinds.Direction:
        return kinds.Direction(sent=self.sent[participant], locks=tuple(self.pending_locks(participant)))

    def sign_next(self, key: PrivateKey, *, kind: str, price: int, terms: dict[str, Any] | None, invoice_id: UUID,
                  at: int, invoice_type: str = "") -> SignedInvoice:
        """The key holder's next transaction after this channel's head, as :meth:`accept_payment` would
        take it at ``at``: its cumulative total, locked amount and locks root are the kind's effect on
        the buyer's side now (a client that signs from the log's state, e.g. a mediator)."""
        buyer = eth_address_from_public_key(key.public_key)
        kind_ = kinds.get(kind)
        parsed = kind_.terms_model.model_validate(terms) if kind_.terms_model is not None else None
        after = kind_.effect(price, parsed, self.direction(buyer),
                             kinds.Circumstances(at=at, challenge_period=self.challenge_period))
        previous = HashPointer(transaction_id=UUID(self.head_id), transaction_hash=bytes.fromhex(self.head_hash[2:]))
        invoice = Invoice(invoice_address=self.counterparty(buyer), price=price, currency=Currency.parse(self.currency),
                          invoice_type=invoice_type)
        return sign_invoice(invoice, key=key, channel=self.id, invoice_id=invoice_id, sequence=self.sequence + 1,
                            previous=previous, buyer_total=after.sent, domain=self.domain, kind=kind, terms=terms,
                            locked_amount=after.locked, locks_root=locks_root(after.locks))

    @property
    def balances(self) -> dict[str, int]:
        return {p: self.balance_of(p) for p in self.participants}

    @property
    def total_deposits(self) -> int:
        return sum(self.deposits.values())

    def checkpoint_due(self, now: int) -> bool:
        return (
            self.status == ChannelStatus.OPEN.value
            and self.sequence > self.checkpoint_sequence
            and now - self.checkpoint_at >= self.checkpoint_timeout
        )

    # --- deposits ----------------------------------------------------------
    def deposit(self, participant: str, amount: int, *, auth: RequestAuth | None = None, at: int = 0) -> None:
        self._require_open()
        self.counterparty(participant)
        if auth is not None:
            self.authorize(auth, at, participant=participant)
        check_amount(amount, what="deposit")
        check_amount(self.deposits[participant] + amount, what="total deposit")
        self._deposit_made(participant=participant, amount=amount, total=self.deposits[participant] + amount,
                           **_by(auth))

    @event("DepositMade")
    def _deposit_made(self, participant: str, amount: int, total: int, requested_by: str = "", nonce: int = 0) -> None:
        self.deposits[participant] = total
        self._note_nonce(requested_by, nonce)

    # --- payments ----------------------------------------------------------
    def accept_payment(self, tx: SignedInvoice, at: int) -> PaymentOutcome:
        """Apply one verified transaction, or say it is a repeat, or refuse it."""
        if tx.channel != self.id:
            raise WrongChannel(f"transaction {tx.invoice_id} is for channel {tx.channel}, not {self.id}")
        seq = tx.sequence
        tx_hash = "0x" + tx.transaction_hash.hex()
        if seq <= self.sequence:  # decide repeats first: a repeat stays harmless even once closed
            if self.hashes and seq > self.sequence - len(self.hashes):
                if self.hashes[seq - 1 - (self.sequence - len(self.hashes))] == tx_hash:
                    return PaymentOutcome.DUPLICATE
                raise ConflictingPayment(
                    f"sequence {seq} of channel {self.id} already holds another transaction"
                )
            raise StalePayment(f"sequence {seq} is older than what channel {self.id} retains")
        self._require_open()
        if tx.domain.chain_id != self.chain_id or tx.domain.verifying_contract != self.contract:
            raise WrongDomain(
                f"signed for chain {tx.domain.chain_id} contract {tx.domain.verifying_contract}; "
                f"channel {self.id} is on chain {self.chain_id} contract {self.contract}"
            )
        if tx.currency.value != self.currency:
            raise CurrencyMismatch(f"transaction is in {tx.currency.value}; channel {self.id} is in {self.currency}")
        buyer, supplier = tx.buyer, tx.supplier_address
        if buyer not in self.deposits:
            raise NotAParticipant(f"buyer {buyer} is not a participant of channel {self.id}")
        if supplier != self.counterparty(buyer):
            raise NotAParticipant(f"supplier {supplier} is not the buyer's counterparty in channel {self.id}")
        if seq > self.sequence + 1:
            raise SequenceGap(
                f"sequence {seq} skips ahead of channel {self.id}'s head {self.sequence}; "
                f"{seq - self.sequence - 1} earlier transaction(s) missing"
            )
        prev = tx.hash_pointer_to_previous
        if "0x" + prev.transaction_hash.hex() != self.head_hash or str(prev.transaction_id) != self.head_id:
            raise BrokenHashPointer(
                f"transaction {seq} points to {prev.transaction_id}/0x{prev.transaction_hash.hex()[:16]}…, "
                f"but the channel's head is {self.head_id}/{self.head_hash[:18]}…"
            )
        before = self.direction(buyer)
        after = kinds.get(tx.kind).effect(
            tx.price, tx.parsed_terms, before, kinds.Circumstances(at=at, challenge_period=self.challenge_period)
        )
        if tx.buyer_total != after.sent:
            raise CumulativeTotalMismatch(
                f"buyerTotal {tx.buyer_total} should be {after.sent} "
                f"(sent so far {before.sent}, then this {tx.kind} of {tx.price})"
            )
        if tx.locked_amount != after.locked:
            raise LockedAmountMismatch(
                f"lockedAmount {tx.locked_amount} should be {after.locked} (the buyer's pending locks after this "
                f"{tx.kind})"
            )
        root = locks_root(after.locks)
        if tx.locks_root != root:
            raise LocksRootMismatch(
                f"locksRoot 0x{tx.locks_root.hex()[:16]}… is not the root over the buyer's {len(after.locks)} "
                f"pending lock(s) after this {tx.kind} (0x{root.hex()[:16]}…)"
            )
        available = self.balance_of(buyer)
        takes = (after.sent - before.sent) + (after.locked - before.locked)  # from the buyer's spendable
        if takes > available:
            raise Overspend(
                f"this {tx.kind} of {takes} exceeds the buyer's balance {available} in channel {self.id} "
                "(spendable: deposit - sent + received - locked)"
            )
        supplier_after = self.balance_of(supplier) + (after.sent - before.sent)
        self._payment_accepted(
            sequence=seq,
            transaction_hash=tx_hash,
            invoice_id=str(tx.invoice_id),
            buyer=buyer,
            supplier=supplier,
            price=tx.price,
            buyer_total=tx.buyer_total,
            balances=[available - takes, supplier_after],
            transaction=tx.to_dict(),
            kind=tx.kind,
            transferred=after.sent - before.sent,
            locked=[after.locked, self.locked_of(supplier)],
            locks=[lock.to_dict() for lock in after.locks] if after.locks != before.locks else None,
        )
        if seq % self.checkpoint_interval == 0:
            self._request_checkpoint(CheckpointReason.INTERVAL, at)
        return PaymentOutcome.ACCEPTED

    @event("PaymentAccepted")
    def _payment_accepted(
        self,
        sequence: int,
        transaction_hash: str,
        invoice_id: str,
        buyer: str,
        supplier: str,
        price: int,
        buyer_total: int,
        balances: list[int],
        transaction: dict[str, Any],
        kind: str = "payment",
        transferred: int | None = None,
        locked: list[int] | None = None,
        locks: list[dict[str, Any]] | None = None,
    ) -> None:
        """``kind``, ``transferred`` (what moved to the supplier), ``locked`` ([buyer's, supplier's] after)
        and ``locks`` (the buyer's pending locks after, when this transaction changed them) are absent
        from events recorded before the kind catalogue: those were payments, nothing locked."""
        self.sequence = sequence
        self.head_hash = transaction_hash
        self.head_id = invoice_id
        self.hashes.append(transaction_hash)
        if len(self.hashes) > RETAINED_HASHES:
            del self.hashes[0]
        self.sent[buyer] = buyer_total
        self.latest[buyer] = transaction
        if locks is not None:
            self.__dict__.setdefault("locks", {})[buyer] = list(locks)

    # --- checkpoints, settlement, dispute ----------------------------------
    def request_checkpoint(
        self, at: int, reason: CheckpointReason = CheckpointReason.REQUEST, auth: RequestAuth | None = None
    ) -> bool:
        """Checkpoint the current head; False if nothing new since the last checkpoint (a signed
        request then consumes no nonce: its replay is the same no-op)."""
        if auth is not None:
            self.authorize(auth, at)
        self._require_open()
        if self.sequence == self.checkpoint_sequence:
            return False
        self._request_checkpoint(reason, at, auth)
        return True

    def _state_at_head(self) -> dict[str, Any]:
        """What a checkpoint or a settlement carries to the chain: the head, both balances, and
        each participant's latest signed payment (the evidence the contract verifies)."""
        return dict(
            sequence=self.sequence,
            head_hash=self.head_hash,
            balances=[self.balance_of(p) for p in self.participants],
            evidence=[self.latest[p] for p in self.participants if p in self.latest],
        )

    def check_timeout(self, now: int) -> bool:
        if not self.checkpoint_due(now):
            return False
        self._request_checkpoint(CheckpointReason.TIMEOUT, now)
        return True

    def _request_checkpoint(self, reason: CheckpointReason, at: int, auth: RequestAuth | None = None) -> None:
        self._checkpoint_requested(reason=reason.value, at=at, **self._state_at_head(), **_by(auth))

    @event("CheckpointRequested")
    def _checkpoint_requested(
        self, sequence: int, head_hash: str, reason: str, balances: list[int], evidence: list[dict[str, Any]], at: int,
        requested_by: str = "", nonce: int = 0,
    ) -> None:
        self.checkpoint_sequence = sequence
        self.checkpoint_at = at
        self._note_nonce(requested_by, nonce)

    def confirm_checkpoint(self, sequence: int, tx_hash: str, block: int) -> None:
        """The chain recorded this channel's state up to ``sequence``."""
        if sequence <= self.confirmed_sequence:
            return
        if sequence > self.sequence:
            raise InvalidChannelParameters(
                f"cannot confirm sequence {sequence}: channel {self.id} is at {self.sequence}"
            )
        self._checkpoint_confirmed(sequence=sequence, tx_hash=tx_hash, block=block)

    @event("CheckpointConfirmed")
    def _checkpoint_confirmed(self, sequence: int, tx_hash: str, block: int) -> None:
        self.confirmed_sequence = sequence

    def request_settlement(self, at: int, requested_by: str = "operator", auth: RequestAuth | None = None) -> None:
        if auth is not None:
            self.authorize(auth, at)
        self._require_open()
        self._settlement_requested(at=at, **self._state_at_head(), **_by(auth, requested_by))

    @event("SettlementRequested")
    def _settlement_requested(
        self,
        sequence: int,
        head_hash: str,
        balances: list[int],
        evidence: list[dict[str, Any]],
        requested_by: str,
        at: int,
        nonce: int = 0,
    ) -> None:
        self.status = ChannelStatus.SETTLING.value
        self._note_nonce(requested_by, nonce)

    def request_dispute(self, at: int, requested_by: str = "operator", auth: RequestAuth | None = None) -> None:
        """The paper's disputed settlement: every signed payment since the last confirmed checkpoint.

        The event names the range and the head it must end at; it does not copy the payments:
        they are this channel's own ``PaymentAccepted`` events, and a copy would grow with the
        channel's history past any record size (a channel with thousands of unconfirmed
        payments would jam its partition). The settlement executor reads them from the log."""
        if auth is not None:
            self.authorize(auth, at)
        if self.status == ChannelStatus.CLOSED.value:
            raise ChannelIsClosed(f"channel {self.id} is closed")
        self._dispute_requested(
            from_sequence=self.confirmed_sequence + 1,
            to_sequence=self.sequence,
            head_hash=self.head_hash,
            at=at,
            **_by(auth, requested_by),
        )

    @event("DisputeRequested")
    def _dispute_requested(
        self, from_sequence: int, to_sequence: int, head_hash: str, requested_by: str, at: int, nonce: int = 0,
    ) -> None:
        self._note_nonce(requested_by, nonce)

    # --- hashed timelocks on-chain: registering a secret ---------------------
    def pending_lock(self, secret_hash_: bytes) -> tuple[str, Lock] | None:
        """The pending lock with this secret hash and its buyer (who owes it), if there is one."""
        for buyer in self.participants:
            for lock in self.pending_locks(buyer):
                if lock.secret_hash == secret_hash_:
                    return buyer, lock
        return None

    # --- forwarding policies (routing) --------------------------------------
    MAX_POLICY_CLOCK_SKEW = 600
    """Seconds an update's ``issuedAt`` may be ahead of the node's clock: a policy dated far ahead would
    win over every honest update its participant signs until then."""

    def fee_policy(self, participant: str) -> dict[str, int] | None:
        """``participant``'s announced forwarding policy (fee_base, fee_ppm, expiry_delta, issued_at), or
        None: the defaults of ``domain.routing`` apply."""
        return self.__dict__.get("fee_policies", {}).get(participant)

    def set_fee_policy(self, update: Any, at: int) -> bool:
        """Record a participant's verified ``domain.routing.ChannelUpdate`` for its side; False (nothing
        recorded) when it is not newer than the policy recorded, so a replay or an older one is a no-op."""
        if update.channel_id != self.id:
            raise WrongChannel(f"a channel update for {update.channel_id} sent to channel {self.id}")
        if update.participant not in self.deposits:
            raise NotAParticipant(f"{update.participant} is not a participant of channel {self.id}")
        if update.domain != self.domain:
            raise WrongDomain(f"channel update signed for chain {update.domain.chain_id} contract "
                              f"{update.domain.verifying_contract}, not channel {self.id}'s deployment")
        if self.status == ChannelStatus.CLOSED.value:
            raise ChannelIsClosed(f"channel {self.id} is closed")
        if update.issued_at > at + self.MAX_POLICY_CLOCK_SKEW:
            raise InvalidChannelParameters(
                f"channel update issued at {update.issued_at}, more than {self.MAX_POLICY_CLOCK_SKEW}s after now ({at})")
        current = self.fee_policy(update.participant)
        if current is not None and update.issued_at <= current["issued_at"]:
            return False
        self._fee_policy_set(participant=update.participant, fee_base=update.fee_base,
                             fee_ppm=update.fee_proportional, expiry_delta=update.expiry_delta,
                             issued_at=update.issued_at, signature="0x" + bytes(update.signature).hex())
        return True

    @event("FeePolicySet")
    def _fee_policy_set(self, participant: str, fee_base: int, fee_ppm: int, expiry_delta: int, issued_at: int,
                        signature: str) -> None:
        self.__dict__.setdefault("fee_policies", {})[participant] = {
            "fee_base": fee_base, "fee_ppm": fee_ppm, "expiry_delta": expiry_delta, "issued_at": issued_at}

    def request_secret_registration(
        self, secret: bytes, at: int, requested_by: str = "operator", auth: RequestAuth | None = None
    ) -> bool:
        """Ask the settlement process to register ``secret`` on-chain (the receiver of a lock whose
        payer does not unlock it: settleWithLocks pays the lock to it if the secret was registered at
        or before the lock's expiry). Only a secret of a pending lock of this channel; False when the
        chain already has it (recorded ``SecretRegistered``) or it was asked for already (one request per
        secret: the process retries it until the lock expires): nothing to ask, no nonce consumed."""
        h = secret_hash(secret)
        if auth is not None:
            self.authorize(auth, at)
        if self.status == ChannelStatus.CLOSED.value:
            raise ChannelIsClosed(f"channel {self.id} is closed")
        found = self.pending_lock(h)
        if found is None:
            raise SecretOfNoPendingLock(
                f"no pending lock of channel {self.id} has secret hash 0x{h.hex()} (the sha256 of the secret given)"
            )
        key = "0x" + h.hex()
        if key in self.__dict__.get("secrets", {}) or key in self.__dict__.get("secrets_requested", {}):
            return False
        buyer, lock = found
        self._secret_registration_requested(
            secret="0x" + secret.hex(), secret_hash="0x" + h.hex(), buyer=buyer, amount=lock.amount,
            expiry=lock.expiry, at=at, **_by(auth, requested_by),
        )
        return True

    @event("SecretRegistrationRequested")
    def _secret_registration_requested(
        self, secret: str, secret_hash: str, buyer: str, amount: int, expiry: int, at: int,
        requested_by: str, nonce: int = 0,
    ) -> None:
        self.__dict__.setdefault("secrets_requested", {})[secret_hash] = expiry
        self._note_nonce(requested_by, nonce)

    def record_secret_registered(self, secret_hash_: bytes, revealed_at: int, tx_hash: str) -> None:
        """The chain's registry has the secret of ``secret_hash_`` since ``revealed_at`` (a fact about
        the chain: recorded whatever the channel's status; a repeat is a no-op)."""
        key = "0x" + secret_hash_.hex()
        if key in self.__dict__.get("secrets", {}):
            return
        self._secret_registered(secret_hash=key, revealed_at=revealed_at, tx_hash=tx_hash)

    @event("SecretRegistered")
    def _secret_registered(self, secret_hash: str, revealed_at: int, tx_hash: str) -> None:
        self.__dict__.setdefault("secrets", {})[secret_hash] = revealed_at

    def secret_registered_at(self, secret_hash_: bytes) -> int:
        """When the chain registered this secret, as recorded (0: not recorded)."""
        return int(self.__dict__.get("secrets", {}).get("0x" + secret_hash_.hex(), 0))

    def close(self, at: int, payouts: list[int] | None = None) -> None:
        """Close for good; ``payouts`` are what the chain paid (A, B), else the computed balances."""
        if self.status == ChannelStatus.CLOSED.value:
            raise ChannelIsClosed(f"channel {self.id} is already closed")
        balances = [self.balance_of(p) for p in self.participants]
        if payouts is not None:
            if len(payouts) != 2 or sum(payouts) != self.total_deposits:
                raise InvalidChannelParameters(
                    f"payouts {payouts} must be two amounts summing to the deposits {self.total_deposits}"
                )
            balances = list(payouts)
        self._channel_closed(sequence=self.sequence, balances=balances, at=at)

    @event("ChannelClosed")
    def _channel_closed(self, sequence: int, balances: list[int], at: int) -> None:
        self.status = ChannelStatus.CLOSED.value
        self.final_balances = dict(zip(self.participants, balances, strict=False))

    def _require_open(self) -> None:
        if self.status == ChannelStatus.CLOSED.value:
            raise ChannelIsClosed(f"channel {self.id} is closed; nothing more is accepted")
        if self.status != ChannelStatus.OPEN.value:
            raise ChannelNotOpen(f"channel {self.id} is {self.status}; nothing more is accepted")

    # --- signed control requests: who may ask, replay, expiry -----------------
    def operator_of(self, participant: str) -> str | None:
        return self.__dict__.get("operators", {}).get(participant)

    def last_nonce(self, signer: str) -> int:
        """The nonce of the last signed request this channel accepted from ``signer`` (0: none)."""
        return self.__dict__.get("nonces", {}).get(signer, 0)

    def authorize(self, auth: RequestAuth, at: int, *, participant: str | None = None) -> None:
        """Refuse a signed request its signer may not make, an expired one, or a replayed one.

        ``participant`` given: only that participant may sign (a deposit, an operator
        registration); otherwise either participant or an operator one of them registered.
        """
        if participant is not None:
            if auth.signer != participant:
                raise UnauthorizedRequest(
                    f"only {participant} may sign this request for channel {self.id}, not {auth.signer}"
                )
        elif auth.signer not in self.participants and auth.signer not in self.__dict__.get("operators", {}).values():
            raise UnauthorizedRequest(
                f"{auth.signer} is neither a participant of channel {self.id} nor an operator one registered"
            )
        _check_expiry(auth, at)
        last = self.last_nonce(auth.signer)
        if auth.nonce <= last:
            raise ReplayedRequest(
                f"nonce {auth.nonce} of {auth.signer} is not above {last}, the last one channel {self.id} accepted"
            )

    def register_operator(
        self, participant: str, operator: str, *, auth: RequestAuth | None = None, at: int = 0
    ) -> None:
        """``operator`` may send checkpoint, settlement and dispute requests for ``participant``
        (one per participant: a new one replaces the old; the zero address withdraws it)."""
        self.counterparty(participant)
        if auth is not None:
            self.authorize(auth, at, participant=participant)
        if self.status == ChannelStatus.CLOSED.value:
            raise ChannelIsClosed(f"channel {self.id} is closed; nothing more is accepted")
        self._operator_registered(participant=participant, operator=operator, **_by(auth))

    @event("OperatorRegistered")
    def _operator_registered(self, participant: str, operator: str, requested_by: str = "", nonce: int = 0) -> None:
        operators = self.__dict__.setdefault("operators", {})
        if operator == NO_OPERATOR:
            operators.pop(participant, None)
        else:
            operators[participant] = operator
        self._note_nonce(requested_by, nonce)

    def _note_nonce(self, signer: str, nonce: int) -> None:
        if nonce:
            self.__dict__.setdefault("nonces", {})[signer] = nonce


def _check_expiry(auth: RequestAuth, at: int) -> None:
    if auth.expiry < at:
        raise RequestExpired(f"the request expired at {auth.expiry}; it is {at} now")


def _by(auth: RequestAuth | None, default: str = "") -> dict[str, Any]:
    """The ``requested_by`` and ``nonce`` an event records: the signer's, or the trusted caller's."""
    if auth is None:
        return {"requested_by": default, "nonce": 0}
    return {"requested_by": auth.signer, "nonce": auth.nonce}
