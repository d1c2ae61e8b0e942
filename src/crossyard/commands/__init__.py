"""CLI command groups. Each module has `register(subparsers)`; handlers take parsed args and
return an exit status. The table below is the only place that lists them."""

from __future__ import annotations

import argparse
from typing import Protocol


class CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def modules() -> list[CommandModule]:
    from . import build, certs, image, publish, registry

    return [build, certs, image, publish, registry]
