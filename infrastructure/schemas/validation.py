"""A JSON document against one of the published schemas, with where and why it fails.

Each failure is a :class:`Violation`: the JSON path of the offending value (``$.domain.chainId``) and
what is wrong with it. A union told apart by a field (``"type"`` of control requests and hop messages,
pydantic's ``discriminator``) is checked against the one branch that field names, so the reason is
that branch's, not "valid under none of the given schemas". The Channel events are told apart by their
record's ``es.topic`` header: give ``variant`` (the event class's name) to check against that event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from infrastructure.schemas import registry


@dataclass(frozen=True)
class Violation:
    path: str
    """The JSON path of the value that fails (``$`` is the document itself)."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


@cache
def _validator(name: str, version: int | None, variant: str | None) -> Draft202012Validator:
    schema = registry.load(name, version)
    if variant is not None:
        defs = schema.get("$defs", {})
        if variant not in defs:
            raise registry.UnknownSchema(f"schema {name} has no variant {variant!r} (it has {', '.join(defs)})")
        schema = {**schema, "$ref": f"#/$defs/{variant}"}
        for union in ("anyOf", "oneOf", "discriminator"):
            schema.pop(union, None)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _branch(err: ValidationError) -> list[ValidationError] | None:
    """The errors of the one union branch the discriminator names (None: not a discriminated union)."""
    disc = err.schema.get("discriminator") if isinstance(err.schema, dict) else None
    if err.validator not in ("oneOf", "anyOf") or not disc or not isinstance(err.instance, dict):
        return None
    prop, mapping = disc["propertyName"], disc.get("mapping", {})
    value = err.instance.get(prop)
    if value not in mapping:
        allowed = ", ".join(repr(v) for v in mapping)
        where = [*err.absolute_path, prop]
        what = f"missing; it is one of {allowed}" if prop not in err.instance else \
            f"{value!r} is not one of {allowed}"
        return [ValidationError(what, path=where)]
    index = [b.get("$ref") for b in err.schema[err.validator]].index(mapping[value])
    return [e for e in err.context if e.relative_schema_path and e.relative_schema_path[0] == index]


def _flatten(errors: list[ValidationError]) -> list[Violation]:
    out: list[Violation] = []
    for err in errors:
        branch = _branch(err)
        if branch is not None:
            out += _flatten(branch)
        elif err.validator in ("oneOf", "anyOf") and err.context:
            # a union without a discriminator (an event, an optional field): the closest branch's reason
            out += _flatten([best_match(err.context)])
        else:
            out.append(Violation(json_path(err.absolute_path), err.message))
    return sorted(set(out), key=lambda v: (v.path, v.message))


def violations(name: str, doc: Any, *, version: int | None = None, variant: str | None = None) -> list[Violation]:
    """What is wrong with ``doc`` under schema ``name`` (empty: it validates)."""
    return _flatten(list(_validator(name, version, variant).iter_errors(doc)))


def violations_of_bytes(name: str, raw: bytes | str, **kw: Any) -> list[Violation]:
    """As :func:`violations`, for a message's bytes (not JSON at all is one violation at ``$``)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return [Violation("$", f"not valid JSON: {exc}")]
    return violations(name, doc, **kw)


def detail(name: str, raw: bytes | str | None, limit: int = 3) -> str:
    """The schema's reasons for refusing ``raw``, for a refusal's message: ``schema control/v1: $.amount:
    ...`` ("" when the schema finds nothing wrong: the refusal is then about more than the form)."""
    if raw is None:
        return ""
    found = violations_of_bytes(name, raw)
    if not found:
        return ""
    shown = "; ".join(str(v) for v in found[:limit]) + (f" (and {len(found) - limit} more)" if len(found) > limit else "")
    return f"schema {registry.entry(name).ref}: {shown}"
