"""Tables on stdout (plan, toolchains, store ls, image ls)."""

from __future__ import annotations

import sys

from rich.console import Console


def table_console(width: int) -> Console:
    """The terminal's width on a terminal; piped into a file or a CI log (where rich would
    assume 80 columns and fold every digest), `width`."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else width)
