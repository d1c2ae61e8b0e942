"""CLI command groups. Each module has `register(subparsers)`; handlers take parsed args and
return an exit status. The table below is the only place that lists them.

Command modules import what their handlers need (cryptography, httpx, the docker SDK, rich);
importing all of them costs about a third of a second, which `crossyard plan` on a big catalog
cannot spare. So the CLI registers only the module that owns the command being run, and all of
them when it has to print the overview (`crossyard --help`, no command, an unknown one)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Protocol, cast


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
