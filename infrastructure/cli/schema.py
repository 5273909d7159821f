"""``parsec schema list|show|check|generate``: the published JSON Schemas of Parsec's messages.

The schemas are in the repository's ``schemas/NAME/vN.json`` (``infrastructure/schemas/registry.py``
lists them). ``check`` validates a message offline, as the node would read it, and prints each failure
with its JSON path; it exits 65 (refused input) when the message fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from infrastructure.cli.console import console, err_console
from infrastructure.cli.exits import Exit
from infrastructure.cli.options import add_command
from infrastructure.schemas import registry, validation
from infrastructure.settings import Settings


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the schemas: name, current version, published versions, topic, source model."""
    rows = [{"name": s.name, "version": s.version, "published": registry.versions(s.name), "topic": s.topic,
             "source": s.source, "id": f"{registry.ID_BASE}{s.ref}"} for s in registry.SCHEMAS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="Parsec message schemas (schemas/NAME/vN.json)")
    for col in ("name", "current", "published", "topic (setting)", "generated from"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"v{r['version']}", ", ".join(f"v{v}" for v in r["published"]) or "-",
                      r["topic"], r["source"])
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print one schema (NAME, or NAME/vN for a published older version) as JSON."""
    name, version = registry.parse_ref(args.name)
    sys.stdout.write(registry.render(registry.load(name, version)))
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate a message (a JSON file, or - for standard input) against its schema.

    Without --schema the schema is guessed from the message: a "type" of a control request or a hop
    message, or else a signed payment. Prints "valid" or each failure as its JSON path and reason;
    exit status 65 when the message fails. For a Channel event give --variant (the event class's name,
    from the record's es.topic header) to check it against that event alone; a rejection's schema
    describes the record's headers as a JSON object of header name to text.
    """
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        err_console.print(f"[red]refused[/]: $: not valid JSON: {escape(str(exc))}")
        return Exit.REFUSED
    name, version = registry.parse_ref(args.schema) if args.schema else (_guess(doc), None)
    found = validation.violations(name, doc, version=version, variant=args.variant)
    ref = f"{name}/v{version or registry.entry(name).version}" + (f"#{args.variant}" if args.variant else "")
    if args.json:
        print(json.dumps({"schema": ref, "valid": not found,
                          "violations": [{"path": v.path, "message": v.message} for v in found]}, indent=2))
    elif found:
        err_console.print(f"[red]refused[/] by schema {ref}:")
        for v in found:
            err_console.print(f"  {escape(v.path)}: {escape(v.message)}")
    else:
        console.print(f"valid ({ref})")
    return Exit.REFUSED if found else Exit.OK


def _guess(doc: object) -> str:
    from infrastructure.schemas.models import HOP_WIRE_MODELS

    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind in HOP_WIRE_MODELS:
        return "hop-message"
    if kind is not None:
        return "control"
    return "payment"


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Write each schema's current version from its model (schemas/NAME/vN.json).

    Run after changing a message's model (or scripts/schemas); with --check, write nothing and exit 1
    when a committed schema differs from what its model generates (the unit tests check the same).
    """
    stale = 0
    for s in registry.SCHEMAS:
        path = registry.path(s.name, s.version)
        text = registry.render(registry.generate(s.name))
        same = path.is_file() and path.read_text(encoding="utf-8") == text
        if args.check:
            stale += not same
            console.print(f"{s.ref}: {'up to date' if same else 'STALE (run parsec schema generate)'}")
            continue
        registry.write(s.name)
        console.print(f"{s.ref}: {'unchanged' if same else 'written'} {path}")
    return 1 if stale else 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("schema", help="the JSON Schemas of Parsec's messages: list, show, check, generate",
                           description="Versioned JSON Schemas of every message Parsec puts on Kafka "
                                       "(schemas/NAME/vN.json; docs/protocol.md, Schemas).")
    cmds = group.add_subparsers(dest="schema_command", metavar="COMMAND", required=True)
    p = add_command(cmds, cmd_list, name="list")
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    p = add_command(cmds, cmd_show, name="show")
    p.add_argument("name", help="a schema: NAME (its current version) or NAME/vN")
    p = add_command(cmds, cmd_check, name="check")
    p.add_argument("file", help="a JSON file, or - for standard input")
    p.add_argument("--schema", metavar="NAME", help="NAME or NAME/vN (default: guessed from the message)")
    p.add_argument("--variant", metavar="DEF", help="one definition of the schema, e.g. an event class: PaymentAccepted")
    p.add_argument("--json", action="store_true", help="one JSON document: schema, valid, violations")
    p = add_command(cmds, cmd_generate, name="generate")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed schema is stale")
