"""Executors run a job's commands somewhere (this machine, SSH hosts, Docker engines) and bring
the outputs back; they know nothing about recipes. One module per transport behind `Executor`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .local import ExecRequest


class Executor(Protocol):
    name: str  # the transport: local | ssh | docker
    node: str  # the machine, as the store and provenance name it (`local:HOSTNAME`, …)

    def run(self, request: ExecRequest) -> AbstractContextManager[dict[str, Path]]:
        """Build; the context yields output name -> local file, valid until it exits."""
        ...

    def cancel(self) -> None:
        """Stop the jobs running now and refuse new ones (Ctrl-C, SIGTERM); each then fails and
        cleans up after itself. Called from another thread than the jobs'."""
        ...
