"""The ChannelService of one partition, with a unit of work around each poll batch.

Inside ``begin()`` … ``commit()`` the command handlers run as usual, but their
saves are collected instead of written, and a command sees the channels that
earlier commands of the batch changed. ``commit`` then writes every changed
channel, the consumer positions and the rejected records in one Kafka
transaction (the recorder's ``trackings``/``out_records``), so a batch is in
the log entirely or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Tracking

from domain.application import ChannelService
from domain.channel import Channel
from domain.errors import ChannelAlreadyExists
from infrastructure.kafka.codec import OutRecord
from infrastructure.kafka.writer import GroupOffsets

log = logging.getLogger("parsec.node")

SNAPSHOT_WRITE_INTERVAL = 1.0
"""Seconds between two writes of the snapshots due (see ``NodeChannelService._snapshot_from_memory``)."""


class NodeChannelService(ChannelService):
    def __init__(self, env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(env=env, **kwargs)
        self._pending: dict[UUID, Channel] | None = None
        # snapshots taken, encoded, not yet written: the latest per channel
        self._due_snapshots: dict[UUID, Any] = {}
        self._next_snapshot_write = 0.0

    def begin(self) -> None:
        self._pending = {}

    def pending(self) -> list[Channel]:
        return list((self._pending or {}).values())

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if self._pending is not None and not kwargs:
            for obj in objs:
                if obj is not None:
                    self._pending[obj.id] = obj
            return []
        return super().save(*objs, **kwargs)

    def get_channel_aggregate(self, channel_id: UUID) -> Channel:
        if self._pending and channel_id in self._pending:
            return self._pending[channel_id]
        return super().get_channel_aggregate(channel_id)

    def open_channel(self, *, channel_id: UUID, **kwargs: Any) -> UUID:
        if self._pending is not None:
            # Deferred saves cannot meet the store's duplicate check: ask first.
            exists = channel_id in self._pending
            if not exists:
                try:
                    self.repository.get(channel_id)
                    exists = True
                except AggregateNotFoundError:
                    pass
            if exists:
                raise ChannelAlreadyExists(f"channel {channel_id} already exists")
        return super().open_channel(channel_id=channel_id, **kwargs)

    def _take_snapshots(self, processing_event: Any) -> None:
        """Snapshots are taken after the batch committed: a failed one must not look like a failed batch.

        (It did: the worker then logged that nothing was committed and rebuilt the partition.)
        A snapshot only speeds up loading; without it the channel loads from its events."""
        try:
            self._snapshot_from_memory(processing_event)
        except Exception as exc:
            log.warning("events committed, but a snapshot was not taken (%s: %s); channels load from events",
                        type(exc).__name__, exc)

    def _snapshot_from_memory(self, processing_event: Any) -> None:
        """A snapshot of each channel whose batch reached a multiple of its snapshotting interval,
        taken from the channel as it is in memory (the batch just committed it), and written with
        the others due at most once per ``SNAPSHOT_WRITE_INTERVAL``.

        eventsourcing's ``take_snapshot`` rebuilds the channel from the store at that event's
        version instead: the snapshot and every event since, read back from Kafka on the batch's
        path, for a state this process holds already. The snapshot is of the channel's version
        after the batch (loading replays what follows it either way).

        Snapshots go to their own topic, so each write is a Kafka transaction of its own (5-10 ms
        here): written with every batch that had one due, at 1,000 payments/s over 100 channels
        that was a second transaction in one batch of every fifteen. So each is encoded now (the
        committed state, frozen as bytes: the channel goes on changing) and the encoded ones are
        written together, the latest per channel. Those not yet written when the partition's
        worker closes are dropped, not written on the way out (a close after a broker outage would
        wait on them): like one lost in a crash, that costs a longer load, replayed from the events."""
        intervals = self.snapshotting_intervals
        if not (self.snapshots and intervals):
            return
        due: dict[Any, Any] = {}
        for event in processing_event.events:
            channel = processing_event.aggregates.get(event.originator_id)
            interval = intervals.get(type(channel)) if channel is not None else None
            if interval and event.originator_version % interval == 0:
                due[event.originator_id] = channel
        for channel_id, channel in due.items():
            snapshot_class = getattr(type(channel), "Snapshot", type(self).snapshot_class)
            self._due_snapshots[channel_id] = self.snapshots.mapper.to_stored_event(snapshot_class.take(channel))
        if self._due_snapshots and time.monotonic() >= self._next_snapshot_write:
            self.write_snapshots()

    def write_snapshots(self) -> None:
        """Write the snapshots taken and not yet written, in one transaction."""
        due, self._due_snapshots = list(self._due_snapshots.values()), {}
        self._next_snapshot_write = time.monotonic() + SNAPSHOT_WRITE_INTERVAL
        if due:
            self.snapshots.recorder.insert_events(due)

    def commit(
        self, trackings: Sequence[Tracking], out_records: Sequence[OutRecord], group_offsets: GroupOffsets | None = None
    ) -> list[Any]:
        """Write the batch: changed channels, positions, other records, and the consumer group's
        offsets (if given) in one transaction; returns the recordings."""
        pending, self._pending = self._pending or {}, None
        if not (pending or trackings or out_records):
            return []
        return super().save(*pending.values(), trackings=list(trackings), out_records=list(out_records),
                            group_offsets=group_offsets)

    def abort(self) -> None:
        """Forget the batch: the changed channels are evicted, so they are reloaded from the log."""
        pending, self._pending = self._pending or {}, None
        cache = self.repository.cache
        if cache is not None:
            for cid in pending:
                try:
                    cache.get(cid, evict=True)
                except KeyError:
                    pass
