"""Pydantic models of wire forms that had none, so that their schemas are generated like the others.

* ``HopMessageWire``: a hop message's JSON (``domain/hop_messages.py`` parses it by hand from the
  EIP-712 struct: ``to_json`` / ``from_json``). Written here field by field to match those functions;
  a unit test checks that every message ``to_json`` writes validates, and that the fields are the
  struct's.
* ``ChannelEventState``: the value of a Channel event record, i.e. the event's state as eventsourcing's
  JSON transcoder stores it. One model per event class, built from the event's own command method
  (its parameters, their types and defaults), so a new event field changes the schema, and the
  committed-schema test says to regenerate it.
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from domain import channel as channel_module
from domain.channel import Channel
from domain.hop_messages import LOCK_FAILED_TYPE_STRING, MAX_REASON_LENGTH

# ------------------------------------------------------------------ hop messages
Decimal256 = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,77})$", description="a uint256 as a decimal string")]
Decimal64 = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,19})$", description="a uint64 as a decimal string")]
Hex32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="32 bytes: 0x and 64 hex digits")]
Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"}, description="a UUID (bytes16), canonical text")]
EthAddress = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="an Ethereum address")]
Signature = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$",
                                 description="the sender's EIP-712 signature r||s||v: 0x and 130 hex digits")]


class _Hop(BaseModel):
    """Every field is required (``from_json`` refuses missing and unknown fields alike)."""

    model_config = ConfigDict(extra="forbid")

    sender: EthAddress
    recipient: EthAddress
    signature: Signature


class SecretRequestWire(_Hop):
    """The target asks the initiator for the secret of a lock it holds."""

    type: Literal["secretRequest"]
    paymentId: Uuid
    secretHash: Hex32
    amount: Decimal256
    expiry: Decimal64


class RevealSecretWire(_Hop):
    """A secret, told to a party that holds (or is owed) a lock on its hash."""

    type: Literal["revealSecret"]
    secret: Hex32


class LockFailedWire(_Hop):
    """A payee tells its payer it cannot forward the lock on ``secretHash`` in ``channelId``."""

    type: Literal["lockFailed"]
    channelId: Uuid
    secretHash: Hex32
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH)]


HopMessageWire = Annotated[Union[SecretRequestWire, RevealSecretWire, LockFailedWire],  # noqa: UP007
                           Field(discriminator="type")]
HOP_WIRE_MODELS = {"secretRequest": SecretRequestWire, "revealSecret": RevealSecretWire,
                   "lockFailed": LockFailedWire}
assert "reason" in LOCK_FAILED_TYPE_STRING  # the struct the wire model above follows


# ------------------------------------------------------------------ Channel events as stored
class TranscodedUUID(BaseModel):
    """How eventsourcing's JSON transcoder writes a UUID value (``UUIDAsHex``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type_: Literal["uuid_hex"] = Field(alias="_type_")
    data: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] = Field(alias="_data_")


class TranscodedDatetime(BaseModel):
    """How eventsourcing's JSON transcoder writes a datetime (``DatetimeAsISO``): the event's timestamp."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type_: Literal["datetime_iso"] = Field(alias="_type_")
    data: Annotated[str, Field(json_schema_extra={"format": "date-time"})] = Field(alias="_data_")


_WIRE_TYPES: dict[Any, Any] = {UUID: TranscodedUUID}


def _wire_type(hint: Any) -> Any:
    """A command method's parameter type as the transcoder stores it (a UUID is a transcoded object)."""
    if hint in _WIRE_TYPES:
        return _WIRE_TYPES[hint]
    args = typing.get_args(hint)
    if args and any(a in _WIRE_TYPES for a in args):
        return Union[tuple(_wire_type(a) for a in args)]  # noqa: UP007
    return hint


def _event_methods() -> list[tuple[str, Any]]:
    """(event class name, its command method) for every event of the Channel aggregate, in source order."""
    out = []
    for value in vars(Channel).values():
        name = getattr(value, "event_cls_name", None)
        func = getattr(value, "decorated_func", None)
        if name and func is not None:
            out.append((name, func))
    return out


def _event_model(name: str, func: Any, created: bool) -> type[BaseModel]:
    hints = typing.get_type_hints(func, globalns=vars(channel_module))
    fields: dict[str, Any] = {"timestamp": (TranscodedDatetime, ...)}
    if created:  # the aggregate's first event also names the aggregate's class
        fields["originator_topic"] = (Literal["domain.channel:Channel"], ...)
    for pname, p in inspect.signature(func).parameters.items():
        if pname == "self":
            continue
        # a parameter with a default is optional: events stored before it existed lack it
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (_wire_type(hints[pname]), default)
    doc = f"The stored state of Channel.{name} (es.topic domain.channel:Channel.{name})."
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)


CHANNEL_EVENT_MODELS: dict[str, type[BaseModel]] = {
    name: _event_model(name, func, created=(func is vars(Channel)["__init__"].decorated_func))
    for name, func in _event_methods()
}
ChannelEventState = Union[tuple(CHANNEL_EVENT_MODELS.values())]  # noqa: UP007
