"""Flags: a global flag is not lost when its subcommand has the same one; --version; channel ids.

``parsec --eth-rpc URL settler`` once lost the URL: the subcommand's own ``--eth-rpc`` default
(None) overwrote the global value when argparse copied the subcommand's namespace over the global
one. Every pair (command, global flag the command also has) is checked here, so a command added later
with such a flag is covered too.
"""

from __future__ import annotations

import argparse
import typing

import pytest

from infrastructure.cli import GLOBAL_FLAGS, build_parser, main, settings_from, version
from infrastructure.cli.exits import Exit
from infrastructure.settings import Settings, variable

VALUES = {"eth_rpc": "http://127.0.0.1:1", "kafka_bootstrap": "broker-1:9093", "postgres_dsn": "postgresql://x@y/z",
          "data_dir": "/tmp/parsec-flag-test"}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path of subcommand names, its parser) for every command, nested groups included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _required(parser: argparse.ArgumentParser) -> list[str]:
    """Arguments that make a parse succeed: a value for every required positional and option."""
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or not action.required:
            continue
        value = next(iter(action.choices)) if action.choices else "00000000-0000-0000-0000-000000000001"
        out += [value] if not action.option_strings else [action.option_strings[0], value]
    return out


def _value(name: str, action: argparse.Action) -> str:
    if action.choices:
        return list(action.choices)[-1]
    if name in VALUES:
        return VALUES[name]
    base = Settings.model_fields[name].annotation
    args = [a for a in (typing.get_args(base) or (base,)) if a is not type(None)]
    if typing.get_origin(args[0]) is typing.Literal:
        return str(typing.get_args(args[0])[-1])
    return "7" if args[0] is int else "value-from-the-flag"


def _pairs():
    parser = build_parser()
    for path, sub in _commands(parser):
        for action in sub._actions:
            if action.dest in GLOBAL_FLAGS and action.option_strings:
                yield path, sub, action


PAIRS = list(_pairs())


def test_the_settler_shares_eth_rpc_with_the_global_flags():
    assert any(path == ("settler",) and a.dest == "eth_rpc" for path, _, a in PAIRS)


@pytest.mark.parametrize("path,sub,action", PAIRS, ids=[f"{' '.join(p)}:{a.dest}" for p, _, a in PAIRS])
def test_a_global_flag_survives_a_subcommand_with_the_same_flag(path, sub, action, monkeypatch):
    monkeypatch.delenv(variable(action.dest), raising=False)
    parser = build_parser()
    global_flag = next(a for a in parser._actions if a.dest == action.dest).option_strings[0]
    value = _value(action.dest, action)
    tail = [*path, *_required(sub)]
    # the global flag before the command, the command's after it: either way the value arrives
    before = settings_from(parser.parse_args([global_flag, value, *tail]))
    after = settings_from(parser.parse_args([*tail, action.option_strings[0], value]))
    assert str(getattr(before, action.dest)) == value
    assert str(getattr(after, action.dest)) == value
    # both given: the command's own wins (it is the more specific)
    both = settings_from(parser.parse_args([global_flag, "http://global:1" if action.dest == "eth_rpc" else value,
                                            *tail, action.option_strings[0], value]))
    assert str(getattr(both, action.dest)) == value
    # neither: the subcommand leaves the setting to the environment and the defaults
    neither = parser.parse_args(tail)
    assert not hasattr(neither, action.dest) or getattr(neither, action.dest) is None


def test_every_settings_flag_of_a_command_is_suppressed_when_not_given():
    """A command's settings flags leave the attribute unset (argparse.SUPPRESS) when not given, so no
    default of theirs can hide the environment, the config file or a global flag."""
    for path, sub in _commands(build_parser()):
        for name in sub.get_default("settings_flags") or ():
            action = next(a for a in sub._actions if a.dest == name)
            assert action.default is argparse.SUPPRESS, (path, name)


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version as dist_version

    assert main(["--version"]) == Exit.OK
    assert capsys.readouterr().out.strip() == f"parsec {dist_version('parsec')}" == f"parsec {version()}"


@pytest.mark.parametrize("argv", [
    ["balances", "--channel", "not-a-uuid"],
    ["history", "--channel", "12345"],
    ["settlements", "--channel", "0f21ddb6-6cad-4a26-8d11"],
])
def test_a_bad_channel_id_is_a_usage_error_naming_the_flag(argv, capsys):
    assert main(argv) == Exit.USAGE
    err = capsys.readouterr().err
    assert "argument --channel" in err and "is not a channel id" in err


def test_a_channel_id_is_taken_in_any_uuid_spelling(tmp_path):
    args = build_parser().parse_args(["history", "--channel", "{0F21DDB6-6CAD-4A26-8D11-6ECE1738F7D9}"])
    assert args.channel == "0f21ddb6-6cad-4a26-8d11-6ece1738f7d9"
