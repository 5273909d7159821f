"""The paper's sliding window: restore each channel's order from its hash pointers.

Kafka keeps order within a partition, but clients retry, reconnect and race:
transactions of one channel can arrive out of order or twice. A node keeps,
per channel, up to ``size`` transactions that arrived ahead of the channel's
head, and releases them as soon as they extend the chain. What cannot be
placed (too far ahead, pushed out by newer arrivals, or waiting longer than
``max_wait`` seconds) is returned as refused with a reason, never dropped
silently.

Pure: the caller says where each channel's head is and what time it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

from domain.errors import OutOfWindow, ParsecError, WindowExpired
from domain.protocol import SignedInvoice


@dataclass(frozen=True)
class Refused:
    transaction: SignedInvoice
    error: ParsecError


@dataclass
class _Held:
    by_sequence: dict[int, dict[bytes, tuple[SignedInvoice, int]]] = field(default_factory=dict)
    count: int = 0


class ReorderWindow:
    """Per-channel buffers of transactions that arrived ahead of the head."""

    def __init__(self, size: int = 64, max_wait: int = 30) -> None:
        if size < 1:
            raise ValueError("the window size n must be at least 1")
        self.size = size
        self.max_wait = max_wait
        self._held: dict[UUID, _Held] = {}

    def __len__(self) -> int:
        return sum(h.count for h in self._held.values())

    def held(self, channel: UUID) -> int:
        h = self._held.get(channel)
        return h.count if h else 0

    def offer(self, tx: SignedInvoice, head: int, now: int) -> tuple[list[SignedInvoice], list[Refused]]:
        """Take one arrival. Returns (ready to apply now, refused).

        ``head`` is the channel's current sequence. A transaction at or below
        ``head + 1`` is ready at once (the Channel decides repeat, fork or next).
        """
        if tx.sequence <= head + 1:
            return [tx], []
        if tx.sequence - head > self.size:
            return [], [
                Refused(
                    tx,
                    OutOfWindow(
                        f"sequence {tx.sequence} is {tx.sequence - head} ahead of channel {tx.channel}'s "
                        f"head {head}; the reorder window holds {self.size}"
                    ),
                )
            ]
        held = self._held.setdefault(tx.channel, _Held())
        slot = held.by_sequence.setdefault(tx.sequence, {})
        if tx.transaction_hash in slot:  # the same early arrival twice: hold it once
            return [], []
        slot[tx.transaction_hash] = (tx, now)
        held.count += 1
        refused: list[Refused] = []
        while held.count > self.size:  # keep the n nearest to the head
            far = max(held.by_sequence)
            victims = held.by_sequence.pop(far)
            held.count -= len(victims)
            refused += [
                Refused(t, OutOfWindow(f"sequence {t.sequence} pushed out of the full reorder window of {self.size}"))
                for t, _ in victims.values()
            ]
        return [], refused

    def release(self, channel: UUID, head: int) -> list[SignedInvoice]:
        """Everything held at or below ``head + 1``, lowest first: call after the head moved."""
        held = self._held.get(channel)
        if not held:
            return []
        out: list[SignedInvoice] = []
        for seq in sorted(s for s in held.by_sequence if s <= head + 1):
            slot = held.by_sequence.pop(seq)
            held.count -= len(slot)
            out += [t for t, _ in slot.values()]
        if not held.count:
            del self._held[channel]
        return out

    def expire(self, now: int) -> list[Refused]:
        """Refuse what has waited longer than ``max_wait`` for its predecessors."""
        refused: list[Refused] = []
        for channel in list(self._held):
            held = self._held[channel]
            for seq in list(held.by_sequence):
                slot = held.by_sequence[seq]
                for h, (t, since) in list(slot.items()):
                    if now - since > self.max_wait:
                        del slot[h]
                        held.count -= 1
                        refused.append(
                            Refused(
                                t,
                                WindowExpired(
                                    f"sequence {t.sequence} of channel {channel} waited {now - since}s for "
                                    f"earlier transactions that never came (max {self.max_wait}s)"
                                ),
                            )
                        )
                if not slot:
                    del held.by_sequence[seq]
            if not held.count:
                del self._held[channel]
        return refused

    def channels(self) -> Iterator[UUID]:
        return iter(list(self._held))

    def clear(self, channels: set[UUID] | None = None) -> list[SignedInvoice]:
        """Drop held transactions (e.g. partitions revoked); returns them for the caller to account for."""
        out: list[SignedInvoice] = []
        for channel in list(self._held):
            if channels is None or channel in channels:
                out += [t for slot in self._held.pop(channel).by_sequence.values() for t, _ in slot.values()]
        return out
