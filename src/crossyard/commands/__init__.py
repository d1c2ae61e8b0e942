"""CLI command groups. Each module has `register(subparsers)`; handlers take parsed args and
return an exit status. The table below is the only place that lists them.

Command modules import what their handlers need (cryptography, httpx, the docker SDK, rich);
importing all of them costs about a third of a second, which `crossyard plan` on a big catalog
cannot spare. So the CLI registers only the module that owns the command being run, and all of
them when it has to print the overview (`crossyard --help`, no command, an unknown one)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from ..fsutil import atomic_write_text


class CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


# top-level command -> the module (in this package) that registers it
COMMANDS: dict[str, str] = {
    "init": "build",
    "plan": "build",
    "build": "build",
    "toolchains": "build",
    "store": "store",
    "certs": "certs",
    "image": "image",
    "keys": "publish",
    "sign": "publish",
    "verify": "publish",
    "publish": "publish",
    "registry": "registry",
    "nodes": "nodes",
    "repro": "repro",
    "lock": "repro",
}


def modules(command: str | None = None) -> list[CommandModule]:
    """The module that owns `command`, or every module (in table order) when it is None or
    unknown, so argparse can list the commands or say which one does not exist."""
    names = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    return [cast(CommandModule, importlib.import_module(f"{__name__}.{name}")) for name in names]


def command_word(argv: Sequence[str], options_with_values: frozenset[str]) -> str | None:
    """The first positional word of `argv` (the command), skipping global options and their
    values; None when there is none."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in options_with_values:
            skip = True
        elif word == "--":
            return None
        elif not word.startswith("-"):
            return word
    return None


def add_json_options(parser: argparse.ArgumentParser) -> None:
    """`--json` (summary on stdout, instead of the human output) and `--json-file FILE` (the
    same summary written to FILE, the human output kept). `--json` takes no value, so a word
    after it (`build --json hello-go`) stays a recipe and never becomes a file name."""
    parser.add_argument("--json", action="store_true",
                        help="print a machine-readable summary to stdout instead of the table")
    parser.add_argument("--json-file", type=Path, default=None, metavar="FILE",
                        help="also write the machine-readable summary to FILE")


def emit_json(args: argparse.Namespace, summary: Any) -> bool:
    """Write `summary` where `add_json_options` asked for it; True when it went to stdout (the
    caller then prints nothing else there)."""
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    if args.json_file is not None:
        atomic_write_text(args.json_file, text)
    if args.json:
        sys.stdout.write(text)
    return bool(args.json)
