"""`crossyard` command line. `main(argv) -> int`; the one place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .commands import command_word, modules
from .errors import CrossyardError

# global options that take a value: the command word is not among them
_VALUED = frozenset({"-C", "--workspace"})


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with every command when argv is None or names none, else with
    the one module that owns the command (see commands.modules)."""
    parser = argparse.ArgumentParser(
        prog="crossyard",
        description="Cross-architecture builds for riscv64 and arm64 edge clusters.",
    )
    parser.add_argument("--version", action="version", version=f"crossyard {__version__}")
    parser.add_argument(
        "-C", "--workspace", type=Path, default=None, help="workspace directory (default: nearest with crossyard.toml or recipes/)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = command_word(argv, _VALUED) if argv is not None else None
    for module in modules(command):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader that went away (`| head -1`) shows here, not at exit
    except BrokenPipeError:
        return _reader_gone()
    return code


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    previous = _on_sigterm(_terminate)
    try:
        code: int = args.func(args)
        return code
    except CrossyardError as error:
        print(f"crossyard: error: {error}", file=sys.stderr)
        return error.return_code
    except Terminated:
        print("crossyard: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("crossyard: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        _on_sigterm(previous)


def _reader_gone() -> int:
    """stdout's reader closed the pipe: stop quietly with the status of a tool killed by SIGPIPE
    (141). Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job, `docker stop`, systemd) unwinds like Ctrl-C: running builds
    are stopped and their directories removed, instead of the process vanishing mid-write."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _on_sigterm(handler: Any) -> Any:
    """Install `handler` for SIGTERM and return the previous one (no-op off the main thread,
    where Python cannot set handlers: main() called from a worker thread keeps the default)."""
    if threading.current_thread() is not threading.main_thread():
        return handler
    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
