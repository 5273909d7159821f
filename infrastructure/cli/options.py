"""Flags that set a field of ``Settings``: their help comes from the field's description, so the
flag, the environment variable and docs/configuration.md say the same thing."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infrastructure.settings import Settings, variable

# the flags whose name is not the field's (``--group`` sets ``node_group``)
FLAG_NAMES = {"node_group": "--group"}
TOPIC_FIELDS = ("events_topic", "inbound_topic", "control_topic", "rejected_topic", "partitions")


def add_settings_flags(parser: argparse.ArgumentParser, *fields: str) -> None:
    """``--<field>`` flags for these settings; ``settings_from`` lays what is given over the environment."""
    for name in fields:
        info = Settings.model_fields[name]
        base = next((a for a in (getattr(info.annotation, "__args__", None) or (info.annotation,))
                     if a is not type(None)), str)
        kind = base if base in (int, float) else Path if base is Path else str
        default = "" if info.default_factory is not None or info.default in (None, "") else f", default {info.default}"
        # SUPPRESS: a flag not given leaves the attribute unset, so a global flag of the same
        # setting (``parsec --eth-rpc URL settler``) is not overwritten by the subcommand's default
        parser.add_argument(FLAG_NAMES.get(name, "--" + name.replace("_", "-")), dest=name, type=kind,
                            default=argparse.SUPPRESS, help=f"{info.description} (env {variable(name)}{default})")
    parser.set_defaults(settings_flags=tuple(parser.get_default("settings_flags") or ()) + fields)


def channel_id(text: str) -> str:
    """An argparse ``type`` for channel ids: a UUID (any of its spellings), returned in canonical form.
    A bad one is a usage error naming its flag (``argument --channel: …``)."""
    import uuid

    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a channel id (a UUID such as 0f21ddb6-6cad-4a26-8d11-6ece1738f7d9)") from None


def add_key_flags(parser: argparse.ArgumentParser, *, default: str = "PARSEC_KEY_FILE") -> None:
    """``--key`` and ``--password-file``, the same on every command that signs (infrastructure/keys.py)."""
    parser.add_argument("--key", metavar="FILE|ADDRESS",
                        help=f"the keystore that signs: a file, or the address of one in the key directory "
                             f"(default {default})")
    parser.add_argument("--password-file", type=Path,
                        help="a file holding the keystore's password (else PARSEC_KEY_PASSWORD_FILE, "
                             "PARSEC_KEY_PASSWORD, or a prompt); never a flag value")


def key_from(args: argparse.Namespace, settings: Settings) -> Any:
    """The private key ``--key`` / ``--password-file`` name (else the configured keystore), unlocked."""
    from infrastructure.keys import signing_key

    return signing_key(settings, args.key, password_file=args.password_file)


def add_command(sub: argparse._SubParsersAction, func: Callable[..., int], *, name: str | None = None,
                epilog: str | None = None) -> argparse.ArgumentParser:
    """A command whose name is its function's (``cmd_bench`` → ``bench``), whose one-line help is the first
    line of the function's docstring and whose description is the rest: the command documents itself once."""
    doc = inspect.cleandoc(func.__doc__ or "")
    summary, _, details = doc.partition("\n\n")
    parser = sub.add_parser(name or func.__name__.removeprefix("cmd_").replace("_", "-"),
                            help=_help_line(summary), description=details or summary, epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def _help_line(summary: str) -> str:
    line = " ".join(summary.split()).rstrip(".")
    return line[:1].lower() + line[1:]


WORKLOAD_FLAGS = ("channels", "payments", "seed", "duplicates", "invalid", "checkpoint_interval", "batch")


def workload_args(args: argparse.Namespace) -> dict[str, object]:
    """The workload flags as keyword arguments (the demo's and the simulator's parameters have their names)."""
    return {name: getattr(args, name) for name in WORKLOAD_FLAGS}


def add_workload_flags(parser: argparse.ArgumentParser, *, channels: int, payments: int | None, seed: int,
                       duplicates: float, invalid: float, checkpoint_interval: int, batch: int) -> None:
    """The generated workload's flags (infrastructure/tools/workload.py), shared by the demo and the simulator."""
    flags: list[tuple[str, type, object, str]] = [
        ("--channels", int, channels, "channels to open"),
        ("--payments", int, payments, "valid payments to send" + ("" if payments else " (2000 unless --duration)")),
        ("--seed", int, seed, "seed of the parties' keys and of the workload"),
        ("--duplicates", float, duplicates, "fraction of payments sent twice (0-1)"),
        ("--invalid", float, invalid, "fraction with an extra invalid message (0-1)"),
        ("--checkpoint-interval", int, checkpoint_interval, "m: the channels checkpoint every m-th sequence"),
        ("--batch", int, batch, "payments applied per store transaction (embedded store)"),
    ]
    for flag, kind, default, text in flags:
        shown = "" if default is None else f" (default {default})"
        parser.add_argument(flag, type=kind, default=default, help=text + shown)
