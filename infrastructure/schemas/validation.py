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

from domain.errors import (
    CurrencyNotAllowed,
    InvalidAddress,
    InvalidAmount,
    InvalidPublicKey,
    MalformedMessage,
    ParsecError,
)
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
        if isinstance(p, int):
            out += f"[{p}]"
        else:  # a key that is not a plain name (a header such as parsec.reason) in brackets
            out += f".{p}" if str(p).isidentifier() else f"[{json.dumps(str(p))}]"
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
        elif err.validator in ("oneOf", "anyOf") and err.context and isinstance(err.instance, dict):
            # an object under a union without a discriminator (an event): the closest branch's reason
            out += _flatten([best_match(err.context)])
        elif err.validator in ("oneOf", "anyOf"):
            # a value of one of several forms (an amount: digits or an integer): say what the forms are
            what = err.schema.get("description") if isinstance(err.schema, dict) else None
            forms = [b.get("type", "?") for b in err.schema.get(err.validator, ())] if isinstance(err.schema, dict) \
                else []
            expected = what or f"one of the types {', '.join(map(str, forms))}"
            out.append(Violation(json_path(err.absolute_path), f"{err.instance!r} is not {expected}"))
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


# The refusals about a message's form: the ones a schema can explain. Others (a wrong signer, an
# overspend) concern what a well-formed message says, and are not worth a validation pass each.
FORM_ERRORS: tuple[type[ParsecError], ...] = (MalformedMessage, InvalidAmount, InvalidAddress, InvalidPublicKey,
                                              CurrencyNotAllowed)
MAX_EXPLAINED_BYTES = 64 * 1024  # the node's largest message: a bigger one is refused unread


def explain(err: ParsecError, name: str, raw: bytes | str | None) -> ParsecError:
    """``err`` (the same class, so the same reason code) with the schema's path and reason appended to
    its message, when ``err`` is about the form of ``raw`` and the schema says where; else ``err`` as is."""
    if not isinstance(err, FORM_ERRORS) or raw is None or len(raw) > MAX_EXPLAINED_BYTES:
        return err
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return err  # not JSON: the refusal already says so
    found = violations(name, doc)
    if not found:
        return err
    shown = "; ".join(str(v) for v in found[:3]) + (f" (and {len(found) - 3} more)" if len(found) > 3 else "")
    err.args = (f"{err} [schema {registry.entry(name).ref}: {shown}]", *err.args[1:])
    return err
