"""The list of Parsec's message schemas: where each comes from, its current version, its files.

A schema ``NAME`` has one file per version, ``schemas/NAME/vN.json`` (top-level directory of the
repository); the newest is the current one, generated from its model (``parsec schema generate`` or
``scripts/schemas``) and checked equal to it by the unit tests. An older version stays committed as it
was published: the compatibility test reads the previous file against the new one.

To change a message: change its model, bump ``version`` here when the change must be visible to
consumers (a field added), run ``parsec schema generate``; the test ``test_schemas`` says whether the
new version is backward compatible with the previous (``compat.py``: add optional fields only).

Records Parsec writes carry the header ``parsec.schema`` = ``NAME/vN`` (:func:`header`); readers accept
records without it (logs written before the header existed).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

SCHEMA_HEADER = "parsec.schema"
"""The record header naming the schema of the record's value (or, for a rejection, its headers)."""

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:parsec:schema:"


@dataclass(frozen=True)
class SchemaEntry:
    name: str
    version: int
    source: str
    """``module:attribute`` of the pydantic model (or annotated type) the schema is generated from."""
    title: str
    topic: str
    """The settings field naming the topic these records travel on (Confluent subject ``<topic>-value``)."""
    description: str

    @property
    def ref(self) -> str:
        """``NAME/vN``: the header value and how a version is named on the command line."""
        return f"{self.name}/v{self.version}"


SCHEMAS: tuple[SchemaEntry, ...] = (
    SchemaEntry("payment", 1, "domain.protocol:SignedInvoice", "Parsec signed payment", "inbound_topic",
                "One channel transaction signed by its buyer (the paper's SignedInvoice), as sent to the "
                "inbound topic; docs/protocol.md gives the signed bytes."),
    SchemaEntry("control", 1, "infrastructure.node.messages:ControlRequest", "Parsec control request or notice",
                "control_topic",
                "A signed control request of a participant (open, deposit, set-operator, checkpoint, settle, "
                "dispute, register-secret, channel-update) or a settler's signed notice, told apart by 'type'."),
    SchemaEntry("hop-message", 1, "infrastructure.schemas.models:HopMessageWire", "Parsec hop message",
                "hops_topic",
                "A signed message between the parties of a multi-hop payment (secretRequest, revealSecret, "
                "lockFailed), told apart by 'type'; key = the recipient's address."),
    SchemaEntry("event", 1, "infrastructure.schemas.models:ChannelEventState", "Parsec Channel event (stored state)",
                "events_topic",
                "The value of a Channel event record on the events topic: the event's state as eventsourcing's "
                "JSON transcoder stores it (the event's class is the es.topic header; key = the channel id)."),
    SchemaEntry("rejected", 1, "infrastructure.node.messages:RejectionHeaders", "Parsec rejection (record headers)",
                "rejected_topic",
                "The headers of a record on the rejected topic, as text: why the node refused a message and "
                "where it came from. The record's value is the refused message's bytes as they arrived "
                "(cut at 64 KiB: then parsec.raw.size and parsec.raw.sha256 say what the whole was)."),
)
BY_NAME: dict[str, SchemaEntry] = {s.name: s for s in SCHEMAS}


class UnknownSchema(LookupError):
    """A schema name (or version) that the registry does not have."""


def entry(name: str) -> SchemaEntry:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownSchema(f"no schema {name!r}; the schemas are {', '.join(BY_NAME)}") from None


def header(name: str) -> tuple[str, bytes]:
    """The ``parsec.schema`` header of a record Parsec writes with schema ``name`` (its current version)."""
    return SCHEMA_HEADER, _header_value(name)


@cache
def _header_value(name: str) -> bytes:
    return entry(name).ref.encode()


def parse_ref(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME/vN`` -> (name, version or None for the current one)."""
    name, _, version = text.partition("/v")
    if version and not version.isdigit():
        raise UnknownSchema(f"{text!r}: a schema is NAME or NAME/vN (N a number)")
    entry(name)
    return name, int(version) if version else None


# ------------------------------------------------------------------ generating
def _source(s: SchemaEntry) -> Any:
    module, _, attribute = s.source.partition(":")
    return getattr(importlib.import_module(module), attribute)


def generate(name: str) -> dict[str, Any]:
    """The current version of schema ``name`` as its model gives it (what ``schemas/NAME/vN.json`` must hold)."""
    s = entry(name)
    source = _source(s)
    if isinstance(source, type) and issubclass(source, BaseModel):
        body = source.model_json_schema(by_alias=True)
    else:
        body = TypeAdapter(source).json_schema(by_alias=True)
    # the identity first, then the model's schema (its own title, if any, gives way to the entry's)
    body.pop("title", None)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{ID_BASE}{s.ref}", "title": s.title, "version": s.version,
            "description": s.description, **{k: v for k, v in body.items() if k != "description"}}


def render(schema: dict[str, Any]) -> str:
    """A schema as its file holds it: indented, keys in the generator's order, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ the files
def schema_dir() -> Path:
    """The repository's ``schemas/`` directory (this file is infrastructure/schemas/registry.py)."""
    return Path(__file__).resolve().parents[2] / "schemas"


def path(name: str, version: int) -> Path:
    return schema_dir() / name / f"v{version}.json"


def versions(name: str) -> list[int]:
    """The versions of ``name`` committed in ``schemas/``, oldest first."""
    entry(name)
    folder = schema_dir() / name
    found = [int(p.stem[1:]) for p in folder.glob("v*.json") if p.stem[1:].isdigit()] if folder.is_dir() else []
    return sorted(found)


def load(name: str, version: int | None = None) -> dict[str, Any]:
    """Version ``version`` of ``name`` (the current one when None) as published in ``schemas/``.

    Outside a repository checkout (an installed wheel has no ``schemas/``) the current version is
    generated from its model instead: the tests keep the two equal."""
    s = entry(name)
    version = s.version if version is None else version
    p = path(name, version)
    if p.is_file():
        return json.loads(p.read_text(encoding="utf-8"))
    if version == s.version:
        return generate(name)
    raise UnknownSchema(f"schema {name} has no version {version} (published: {versions(name) or 'none'})")


def write(name: str) -> tuple[Path, bool]:
    """Write the current version of ``name`` from its model; (its path, whether the file changed)."""
    s = entry(name)
    p = path(name, s.version)
    text = render(generate(name))
    changed = not p.is_file() or p.read_text(encoding="utf-8") != text
    if changed:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return p, changed
