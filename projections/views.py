"""Event views: the fields of a stored event that read models read, decoded straight from its bytes.

A rebuild decodes every event of the log. Decoded into the domain event, a payment costs a JSON
parse of its whole state (the signed transaction is 1.4 kB, some twenty objects and strings), a
dict per object, and eventsourcing's reconstruction of the event object: ~18 µs of the ~80 µs a
rebuild spent per event. A view is a ``msgspec.Struct`` that names only the fields a read model
reads; msgspec decodes the stored JSON into it in C and skips the rest of the bytes without building
them (~3 µs). The stored format is unchanged: a view is another reading of the same bytes.

A read model opts in with ``reads_views=True`` in its class statement: its handlers then receive,
for each event name in ``VIEWS``, that view instead of the domain event (``projections.runner``
decodes it once for every read model that wants it). Every event such a read model handles must
have a view here; ``ReadModel.__init_subclass__`` refuses one that does not. Fields that events
recorded before a change lack have defaults (``kind``, ``locked``), as the domain event's
parameters do; every other field is required, and an event without it is refused with its name
(``UndecodableView``), never read as zero.

The settlement process manager's transaction events have views too: decoded as domain events they
import the settlement package, web3 and its pairing tables with it (1.7 s, in the first catch-up of
a process that meets one: a rebuild of the demo's log reported 2,000 events/s for it).

Amounts are JSON integers and decode to exact Python ints of any size (msgspec never makes them
floats); ``timestamp`` is eventsourcing's ``{"_type_": "datetime_iso", "_data_": ISO}`` and stays
the ISO string it was written as (``Stamp``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Mapper, Transcoder


class Stamp(msgspec.Struct, frozen=True, gc=False):
    """When eventsourcing recorded the event: its ``datetime_iso`` value, kept as the ISO text."""

    iso: str = msgspec.field(name="_data_")

    def isoformat(self) -> str:
        """The same text ``datetime.isoformat`` gives for the recorded time (it was written by it)."""
        return self.iso

    def timestamp(self) -> float:
        return datetime.fromisoformat(self.iso).timestamp()


class View(msgspec.Struct, kw_only=True, gc=False):
    """What every view has: the channel (the aggregate) and the event's version and time."""

    timestamp: Stamp | None = None
    # not in the stored state (eventsourcing keeps them beside it): set by ``decode`` from the record
    originator_id: str = ""
    originator_version: int = 0


class ChannelOpened(View, gc=False):
    participants: tuple[str, str]
    currency: str
    deposits: tuple[int, int]
    opened_at: int


class DepositMade(View, gc=False):
    participant: str
    total: int


class PreviousPointer(msgspec.Struct, frozen=True, gc=False):
    transactionHash: str | None = None  # the wire format's names (camelCase)
    transactionID: str | None = None


class TransactionFields(msgspec.Struct, frozen=True, gc=False):
    """The two fields of the signed transaction a read model keeps (the rest is skipped unparsed)."""

    currency: str | None = None
    hashPointerToPrevious: PreviousPointer | None = None


class PaymentAccepted(View, gc=False):
    sequence: int
    transaction_hash: str
    invoice_id: str
    buyer: str
    supplier: str
    price: int
    buyer_total: int
    balances: tuple[int, int]
    transaction: TransactionFields
    kind: str = "payment"
    # [buyer's, supplier's] locked after it; None in events recorded before hashed timelocks
    locked: tuple[int, int] | None = None


class CheckpointRequested(View, gc=False):
    sequence: int
    head_hash: str
    reason: str
    balances: tuple[int, int]
    at: int


class CheckpointConfirmed(View, gc=False):
    sequence: int
    tx_hash: str
    block: int


class SettlementRequested(View, gc=False):
    sequence: int
    head_hash: str
    balances: tuple[int, int]
    requested_by: str
    at: int


class DisputeRequested(View, gc=False):
    from_sequence: int
    to_sequence: int
    head_hash: str
    requested_by: str
    at: int


class ChannelClosed(View, gc=False):
    sequence: int
    balances: tuple[int, int]
    at: int


class FeePolicySet(View, gc=False):
    participant: str
    fee_base: int
    fee_ppm: int
    expiry_delta: int
    issued_at: int


class StoredUUID(msgspec.Struct, frozen=True, gc=False):
    """A UUID attribute of an event, as eventsourcing stores it: ``{"_type_": "uuid_hex", "_data_": HEX}``."""

    hex: str = msgspec.field(name="_data_")

    def __str__(self) -> str:
        return str(UUID(hex=self.hex))


class IntentEvent(View, gc=False):
    """The settlement process manager's events repeat their intent's channel, kind and sequence
    (infrastructure/settlement/aggregates.py), so a read model places them without ``IntentRaised``."""

    channel_id: StoredUUID
    kind: str
    sequence: int


class TransactionSubmitted(IntentEvent, gc=False):
    tx_hash: str


class TransactionConfirmed(IntentEvent, gc=False):
    tx_hash: str
    block: int
    gas_used: int


class TransactionFailed(IntentEvent, gc=False):
    reason: str
    final: bool


VIEWS: dict[str, type[View]] = {
    **{f"Channel.{cls.__name__}": cls
       for cls in (ChannelOpened, DepositMade, PaymentAccepted, CheckpointRequested, CheckpointConfirmed,
                   SettlementRequested, DisputeRequested, ChannelClosed, FeePolicySet)},
    **{f"SettlementIntent.{cls.__name__}": cls
       for cls in (TransactionSubmitted, TransactionConfirmed, TransactionFailed)},
}
"""Event name (the stored topic's qualified class name) → its view."""

_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {name: msgspec.json.Decoder(cls) for name, cls in VIEWS.items()}


class UndecodableView(ValueError):
    """A stored event's bytes do not fit its view (a field of another type): the log is not one this
    code wrote, or the view is wrong. Named with the event, never skipped."""


def decode(name: str, state: bytes, originator_id: Any, originator_version: int) -> View:
    """The view of the stored event ``name`` (one of ``VIEWS``) with these bytes."""
    try:
        view = _DECODERS[name].decode(state)
    except msgspec.ValidationError as err:
        raise UndecodableView(f"{name} of {originator_id} v{originator_version}: {err}") from err
    view.originator_id = originator_id if type(originator_id) is str else str(originator_id)
    view.originator_version = originator_version
    return view


def _transcoder() -> Transcoder:
    """eventsourcing's JSON transcoder with the transcodings an ``Application`` registers (it uses
    no state of the application: called unbound, as infrastructure/audit/verifier.py does)."""
    transcoder = JSONTranscoder()
    Application.register_transcodings(None, transcoder)  # type: ignore[arg-type]
    return transcoder


_MAPPER = Mapper(transcoder=_transcoder())


def view_of(event: Any) -> View:
    """The view of a domain event, as a reader of the log would decode it (the event is stored with
    eventsourcing's own mapper first): for tests and for feeding read models outside a log."""
    name = type(event).__qualname__
    stored = _MAPPER.to_stored_event(event)
    return decode(name, stored.state, stored.originator_id, stored.originator_version)
