"""Every error crossyard raises on purpose, and the exit status each one maps to.

User mistakes (bad TOML, unknown platform, missing toolchain…) are `ConfigurationError`s: one
message that names the file, key or host and says what to do, exit status 2. A build that ran and
failed is a `BuildError`: exit status 1 and the tail of its log. The CLI catches `CrossyardError`
once; library code never prints or exits.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class CrossyardError(Exception):
    """Base of all expected failures; `return_code` is the process exit status."""

    return_code: int = 1


class ConfigurationError(CrossyardError):
    """A mistake in what the user gave us: fix the input and run again."""

    return_code = 2


class BuildError(CrossyardError):
    """A job ran and failed. Carries the job, the log path and the log's last lines."""

    return_code = 1

    def __init__(self, message: str, *, log: Path | None = None, tail: str = "") -> None:
        self.log = log
        self.tail = tail
        text = message
        if log is not None:
            text += f"\n  log: {log}"
        if tail:
            text += "\n" + "\n".join("    " + line for line in tail.rstrip().splitlines())
        super().__init__(text)


class NodeLost(BuildError):
    """The node running a job went away (connection dropped or timed out, sshd or the engine
    gone): not the build's fault, so the scheduler may run the job on another capable node.
    Whatever the job wrote there is discarded."""


class NodeUnreachable(CrossyardError):
    """A node did not answer a probe (no route, refused, timed out, not this build's transport):
    a build leaves it out with a warning; `crossyard nodes probe` reports it (exit 1)."""


class DriftError(CrossyardError):
    """Outputs differ from what crossyard.lock records (`build --locked`)."""

    return_code = 1


class IntegrityError(CrossyardError):
    """Bytes that crossed a boundary do not match their digest. Never a warning."""

    return_code = 1


class StorageError(CrossyardError):
    """The disk under crossyard's state is full: nothing half-written is kept; make room."""

    return_code = 1


def suggest(word: str, known: Iterable[str]) -> str:
    """' (did you mean `x`?)' for the nearest known word, or ''."""
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{match[0]}`?)" if match else ""


def check_keys(
    table: Mapping[str, Any], known: Iterable[str], *, where: str, file: Path | str | None = None
) -> None:
    """Raise for the first key of `table` that is not in `known`, suggesting the nearest one."""
    known_set = set(known)
    for key in table:
        if key not in known_set:
            origin = f"{file}: " if file is not None else ""
            raise ConfigurationError(
                f"{origin}unknown key `{key}` in {where}{suggest(key, known_set)}; "
                f"known keys: {', '.join(sorted(known_set))}"
            )
