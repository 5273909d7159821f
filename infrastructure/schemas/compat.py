"""Is a new version of a schema backward compatible with its previous one?

Backward compatible: a reader of the new version reads every document the old version described. So a
new version may add optional properties (and new union branches, enum values); it may not

* remove a property (or a ``$defs`` entry, or a union branch, that the old one had),
* change a property's type to one that does not take every old value,
* make a property required that was optional (or add a required one),
* narrow an enum (or change a ``const``).

Applied recursively to the properties, array items and definitions of both schemas, following ``$ref``
within each document. Constraints the rule does not speak of (patterns, lengths, bounds) are not
compared: a change to those is a review's call.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _resolve(node: Any, root: Schema) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 32:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node, seen = target, seen + 1
    return node


def _types(node: Any, root: Schema) -> set[str] | None:
    """The JSON types a (resolved) schema node takes; None when it takes any."""
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return None
    if "type" in node:
        t = node["type"]
        return set(t) if isinstance(t, list) else {t}
    if "const" in node:
        return {_json_type(node["const"])}
    if "enum" in node:
        return {_json_type(v) for v in node["enum"]}
    for union in ("anyOf", "oneOf"):
        if union in node:
            out: set[str] = set()
            for branch in node[union]:
                t = _types(branch, root)
                if t is None:
                    return None
                out |= t
            return out
    if "properties" in node:
        return {"object"}
    return None


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _values(node: Any, root: Schema) -> list[Any] | None:
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return None
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


def _refs(node: Any) -> list[str]:
    for union in ("anyOf", "oneOf"):
        if isinstance(node, dict) and union in node:
            return [b["$ref"] for b in node[union] if isinstance(b, dict) and "$ref" in b]
    return []


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """Every way ``new`` fails to read what ``old`` described (empty: backward compatible)."""
    problems: list[str] = []
    _compare(old, new, old, new, "$", problems, 0)
    for name in old.get("$defs", {}):
        if name not in new.get("$defs", {}):
            problems.append(f"$defs.{name}: removed (the old version had this definition)")
    return problems


def _compare(o: Any, n: Any, old: Schema, new: Schema, where: str, problems: list[str], depth: int) -> None:
    if depth > 64:  # a recursive schema: what is below was compared on the way down
        return
    gone = [r for r in _refs(o) if r not in _refs(n)]
    if gone and _refs(n):
        problems.append(f"{where}: union branches removed: {', '.join(gone)}")
    o, n = _resolve(o, old), _resolve(n, new)
    if not isinstance(o, dict) or not isinstance(n, dict):
        return
    ot, nt = _types(o, old), _types(n, new)
    if ot is not None and nt is not None:
        # a type the new version no longer takes (an integer is also a "number")
        lost = {t for t in ot if t not in nt and not (t == "integer" and "number" in nt)}
        if lost:
            problems.append(f"{where}: type changed from {sorted(ot)} to {sorted(nt)}")
            return
    ov, nv = _values(o, old), _values(n, new)
    if ov is not None and nv is not None:
        lost = [v for v in ov if v not in nv]
        if lost:
            problems.append(f"{where}: enum narrowed: {lost} no longer allowed")
    oprops, nprops = o.get("properties", {}), n.get("properties", {})
    oreq, nreq = set(o.get("required", ())), set(n.get("required", ()))
    for name, sub in oprops.items():
        if name not in nprops:
            problems.append(f"{where}.{name}: removed")
            continue
        if name in nreq and name not in oreq:
            problems.append(f"{where}.{name}: was optional, now required")
        _compare(sub, nprops[name], old, new, f"{where}.{name}", problems, depth + 1)
    for name in sorted(nreq - set(oprops)):
        problems.append(f"{where}.{name}: a new required property (a new property must be optional)")
    if isinstance(o.get("items"), dict) and isinstance(n.get("items"), dict):
        _compare(o["items"], n["items"], old, new, f"{where}[]", problems, depth + 1)
    # the union branches both versions have (a branch that left is reported above): compare each
    for ref in _refs(o):
        if ref in _refs(n):
            _compare({"$ref": ref}, {"$ref": ref}, old, new, f"{where}<{ref.rsplit('/', 1)[-1]}>", problems, depth + 1)
