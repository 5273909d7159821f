"""The wallet's durable record: one SQLite file of its channels and of every payment it signed.

What makes the no-fork rule hold across threads, processes and crashes:

* every change happens in one ``BEGIN IMMEDIATE`` transaction taken while holding a lock
  (:meth:`WalletRecord.locked`): a thread lock for this process, and ``flock`` on a ``.lock`` file
  beside the record for other processes (two ``parsec pay`` at once);
* a payment is written, with its exact bytes, in the same transaction that advances the channel's
  head, and that transaction commits *before* the payment is sent: a crash after it leaves a
  ``recorded`` payment that is re-sent as the same bytes, never signed again;
* a partial unique index allows at most one *live* payment (recorded, sent or accepted) per
  channel and sequence: even a bug above this layer cannot record a second signature for a
  sequence while the first may still be accepted.

Amounts are decimal text (uint256 does not fit SQLite's 64-bit integers); hashes are 0x-hex.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.protocol import HashPointer, SigningDomain

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels (
    channel TEXT NOT NULL,
    me TEXT NOT NULL,                 -- this wallet's address in the channel
    role TEXT NOT NULL CHECK (role IN ('A', 'B')),
    counterparty TEXT NOT NULL,
    currency TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    my_deposit TEXT NOT NULL,
    their_deposit TEXT NOT NULL,
    sequence INTEGER NOT NULL,        -- the head this wallet signs the next payment after
    head_id TEXT NOT NULL,
    head_hash TEXT NOT NULL,
    my_total TEXT NOT NULL,           -- cumulative total this wallet has paid at the head
    their_total TEXT NOT NULL,        -- the counterparty's, from its latest accepted payment
    their_latest TEXT,                -- that payment, as signed (JSON), the evidence for a close
    node_sequence INTEGER NOT NULL DEFAULT 0,  -- the channel's head as the node last showed it
    status TEXT NOT NULL DEFAULT 'open',
    tracked_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (channel, me)
);
CREATE TABLE IF NOT EXISTS payments (
    channel TEXT NOT NULL,
    me TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    invoice_id TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    previous_id TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    price TEXT NOT NULL,
    buyer_total TEXT NOT NULL,
    invoice_type TEXT NOT NULL DEFAULT '',
    raw BLOB NOT NULL,                -- the signed invoice JSON exactly as sent (and re-sent)
    state TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    partition INTEGER,
    "offset" INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sent_at REAL,
    settled_at REAL,
    PRIMARY KEY (channel, me, sequence, tx_hash)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_payment_per_sequence
    ON payments (channel, me, sequence) WHERE state IN ('recorded', 'sent', 'accepted');
CREATE INDEX IF NOT EXISTS payments_by_state ON payments (state);
"""


class PaymentState(StrEnum):
    RECORDED = "recorded"  # signed and written; not yet known to be on the inbound topic: re-send as is
    SENT = "sent"  # the broker (or the API) took it: on the inbound topic at partition/offset
    ACCEPTED = "accepted"  # in the channel's log at its sequence (the node's PaymentAccepted)
    REJECTED = "rejected"  # refused, with the node's (or the API's) reason
    VOID = "void"  # chains on a payment the channel did not take: it can never be accepted as signed


LIVE_STATES = (PaymentState.RECORDED, PaymentState.SENT, PaymentState.ACCEPTED)
UNSETTLED_STATES = (PaymentState.RECORDED, PaymentState.SENT)


@dataclass(frozen=True)
class ChannelState:
    """One channel as this wallet knows it: its terms, its head, both cumulative totals."""

    channel: UUID
    me: str
    role: str
    counterparty: str
    currency: str
    domain: SigningDomain
    my_deposit: int
    their_deposit: int
    sequence: int
    head: HashPointer
    my_total: int
    their_total: int
    their_latest: dict[str, Any] | None
    node_sequence: int
    status: str

    @property
    def balance(self) -> int:
        """What this wallet may still pay: its deposit, less what it paid, plus what it was paid."""
        return self.my_deposit - self.my_total + self.their_total

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": str(self.channel), "me": self.me, "role": self.role, "counterparty": self.counterparty,
            "currency": self.currency, "chainId": self.domain.chain_id,
            "contract": self.domain.verifying_contract, "myDeposit": str(self.my_deposit),
            "theirDeposit": str(self.their_deposit), "sequence": self.sequence,
            "headId": str(self.head.transaction_id), "headHash": "0x" + self.head.transaction_hash.hex(),
            "myTotal": str(self.my_total), "theirTotal": str(self.their_total), "balance": str(self.balance),
            "nodeSequence": self.node_sequence, "status": self.status,
        }


@dataclass(frozen=True)
class PaymentRecord:
    """One payment this wallet signed: its exact bytes and what became of it."""

    channel: UUID
    me: str
    sequence: int
    invoice_id: UUID
    tx_hash: str
    previous: HashPointer
    price: int
    buyer_total: int
    invoice_type: str
    raw: bytes
    state: PaymentState
    reason: str | None
    detail: str | None
    partition: int | None
    offset: int | None
    attempts: int
    created_at: float
    sent_at: float | None
    settled_at: float | None

    @property
    def pointer(self) -> HashPointer:
        return HashPointer(transaction_id=self.invoice_id, transaction_hash=bytes.fromhex(self.tx_hash[2:]))

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": str(self.channel), "sequence": self.sequence, "invoiceId": str(self.invoice_id),
            "transactionHash": self.tx_hash, "previousHash": "0x" + self.previous.transaction_hash.hex(),
            "price": str(self.price), "buyerTotal": str(self.buyer_total), "state": self.state.value,
            "reason": self.reason, "detail": self.detail, "partition": self.partition, "offset": self.offset,
            "attempts": self.attempts, "createdAt": self.created_at, "sentAt": self.sent_at,
            "settledAt": self.settled_at,
        }


class WalletRecord:
    """The SQLite file and its locks. Open one per process (or per thread: each ``locked`` section
    is serialised either way)."""

    def __init__(self, path: str | Path, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock_timeout = lock_timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        # check_same_thread=False: every use is under the thread lock, so one connection is shared safely
        self.db = sqlite3.connect(self.path, timeout=lock_timeout, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        os.chmod(self.path, 0o600)  # it holds what this wallet signed: for its owner only
        with self._thread_lock:
            self._file_lock()  # outside a transaction: the journal mode and the schema script need that
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")  # a committed record survives a power cut
                self.db.executescript(SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            finally:
                self._file_unlock()

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """One serialised transaction: this process's threads and every other process wait their turn.

        Re-entrant within a thread (an inner section joins the outer transaction)."""
        if not self._thread_lock.acquire(timeout=self.lock_timeout):
            raise TimeoutError(f"the wallet record {self.path} is busy (waited {self.lock_timeout:g}s)")
        try:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            self._file_lock()
            self._depth = 1
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
            finally:
                self._depth = 0
                self._file_unlock()
        finally:
            self._thread_lock.release()

    def _file_lock(self) -> None:
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TimeoutError(f"another process holds the wallet record {self.path} "
                                       f"(waited {self.lock_timeout:g}s)") from None
                time.sleep(0.005)
        self._lock_fd = fd

    def _file_unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        with self._thread_lock:
            self.db.close()

    # ------------------------------------------------------------------ channels
    def channel(self, channel: UUID, me: str) -> ChannelState | None:
        with self.locked() as db:
            row = db.execute("SELECT * FROM channels WHERE channel = ? AND me = ?", (str(channel), me)).fetchone()
        return _channel(row) if row else None

    def channels(self, me: str | None = None) -> list[ChannelState]:
        with self.locked() as db:
            if me is None:
                rows = db.execute("SELECT * FROM channels ORDER BY tracked_at").fetchall()
            else:
                rows = db.execute("SELECT * FROM channels WHERE me = ? ORDER BY tracked_at", (me,)).fetchall()
        return [_channel(r) for r in rows]

    def insert_channel(self, state: ChannelState) -> None:
        now = time.time()
        with self.locked() as db:
            db.execute(
                "INSERT INTO channels (channel, me, role, counterparty, currency, chain_id, contract, my_deposit,"
                " their_deposit, sequence, head_id, head_hash, my_total, their_total, their_latest, node_sequence,"
                " status, tracked_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (str(state.channel), state.me, state.role, state.counterparty, state.currency,
                 state.domain.chain_id, state.domain.verifying_contract, str(state.my_deposit),
                 str(state.their_deposit), state.sequence, str(state.head.transaction_id),
                 "0x" + state.head.transaction_hash.hex(), str(state.my_total), str(state.their_total),
                 json.dumps(state.their_latest) if state.their_latest else None, state.node_sequence,
                 state.status, now, now))

    def update_channel(self, channel: UUID, me: str, **fields: Any) -> None:
        """Set columns of one channel (``head``: a HashPointer, amounts: ints, ``their_latest``: a dict)."""
        cols: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "head":
                cols["head_id"], cols["head_hash"] = str(value.transaction_id), "0x" + value.transaction_hash.hex()
            elif name in ("my_total", "their_total", "my_deposit", "their_deposit"):
                cols[name] = str(value)
            elif name == "their_latest":
                cols[name] = json.dumps(value) if value is not None else None
            else:
                cols[name] = value
        cols["updated_at"] = time.time()
        with self.locked() as db:
            db.execute(f"UPDATE channels SET {', '.join(f'{k} = ?' for k in cols)} WHERE channel = ? AND me = ?",
                       (*cols.values(), str(channel), me))

    # ------------------------------------------------------------------ payments
    def insert_payment(self, p: PaymentRecord) -> None:
        with self.locked() as db:
            db.execute(
                "INSERT INTO payments (channel, me, sequence, invoice_id, tx_hash, previous_id, previous_hash, price,"
                " buyer_total, invoice_type, raw, state, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (str(p.channel), p.me, p.sequence, str(p.invoice_id), p.tx_hash, str(p.previous.transaction_id),
                 "0x" + p.previous.transaction_hash.hex(), str(p.price), str(p.buyer_total), p.invoice_type,
                 p.raw, p.state.value, p.attempts, p.created_at))

    def set_payment(self, channel: UUID, me: str, sequence: int, tx_hash: str, **fields: Any) -> None:
        cols = {k: (v.value if isinstance(v, PaymentState) else v) for k, v in fields.items()}
        names = ", ".join(f'"{k}" = ?' if k == "offset" else f"{k} = ?" for k in cols)
        with self.locked() as db:
            db.execute(f"UPDATE payments SET {names} WHERE channel = ? AND me = ? AND sequence = ? AND tx_hash = ?",
                       (*cols.values(), str(channel), me, sequence, tx_hash))

    def payments(self, channel: UUID | None = None, me: str | None = None,
                 states: tuple[PaymentState, ...] | None = None, *, limit: int | None = None,
                 newest_first: bool = False) -> list[PaymentRecord]:
        where, params = [], []
        if channel is not None:
            where.append("channel = ?")
            params.append(str(channel))
        if me is not None:
            where.append("me = ?")
            params.append(me)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params += [s.value for s in states]
        sql = "SELECT * FROM payments" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY channel, sequence" + (" DESC" if newest_first else "") + ", created_at"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.locked() as db:
            return [_payment(r) for r in db.execute(sql, params).fetchall()]

    def payment(self, channel: UUID, me: str, sequence: int, tx_hash: str | None = None) -> PaymentRecord | None:
        """The payment at ``sequence`` with ``tx_hash``, or (no hash given) the live one there."""
        with self.locked() as db:
            if tx_hash is None:
                row = db.execute(
                    "SELECT * FROM payments WHERE channel = ? AND me = ? AND sequence = ? AND state IN (?,?,?)",
                    (str(channel), me, sequence, *[s.value for s in LIVE_STATES])).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM payments WHERE channel = ? AND me = ? AND sequence = ? AND tx_hash = ?",
                    (str(channel), me, sequence, tx_hash)).fetchone()
        return _payment(row) if row else None


def _channel(r: sqlite3.Row) -> ChannelState:
    return ChannelState(
        channel=UUID(r["channel"]), me=r["me"], role=r["role"], counterparty=r["counterparty"],
        currency=r["currency"], domain=SigningDomain(chain_id=r["chain_id"], verifying_contract=r["contract"]),
        my_deposit=int(r["my_deposit"]), their_deposit=int(r["their_deposit"]), sequence=r["sequence"],
        head=HashPointer(transaction_id=UUID(r["head_id"]), transaction_hash=bytes.fromhex(r["head_hash"][2:])),
        my_total=int(r["my_total"]), their_total=int(r["their_total"]),
        their_latest=json.loads(r["their_latest"]) if r["their_latest"] else None,
        node_sequence=r["node_sequence"], status=r["status"])


def _payment(r: sqlite3.Row) -> PaymentRecord:
    return PaymentRecord(
        channel=UUID(r["channel"]), me=r["me"], sequence=r["sequence"], invoice_id=UUID(r["invoice_id"]),
        tx_hash=r["tx_hash"],
        previous=HashPointer(transaction_id=UUID(r["previous_id"]),
                             transaction_hash=bytes.fromhex(r["previous_hash"][2:])),
        price=int(r["price"]), buyer_total=int(r["buyer_total"]), invoice_type=r["invoice_type"], raw=bytes(r["raw"]),
        state=PaymentState(r["state"]), reason=r["reason"], detail=r["detail"], partition=r["partition"],
        offset=r["offset"], attempts=r["attempts"], created_at=r["created_at"], sent_at=r["sent_at"],
        settled_at=r["settled_at"])

