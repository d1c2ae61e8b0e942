"""Executors run a `JobSpec` somewhere (this machine, a Docker engine, SSH hosts) and bring the
outputs back by digest; they know nothing about recipes. One module per transport, each an
`Executor`: the scheduler picks, for each job, the first executor that does not refuse it.
(A Docker engine has two: `docker.py` builds Dockerfiles with the engine's builder,
`container.py` runs steps in a toolchain container. `shipping.py` makes the tars they send.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..jobspec import Inputs, JobSpec


@dataclass(frozen=True, kw_only=True)
class Outputs:
    """What a job produced, on this machine until the `run` block ends."""

    files: Mapping[str, Path]  # output name → local file
    digests: Mapping[str, str]  # output name → sha256, computed where the bytes were read
    node: str  # the machine that ran the job, as records and provenance name it
    facts: Mapping[str, str] = field(default_factory=dict)  # e.g. the engine's image id


class Executor(Protocol):
    name: str  # the transport: local | docker | ssh
    node: str  # the machine, as the store and provenance name it (`local:HOSTNAME`, …)

    def refuses(self, spec: JobSpec) -> str | None:
        """Why this executor cannot run `spec` (None: it can). Asked before `run`."""
        ...

    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> AbstractContextManager[Outputs]:
        """Run the job, its output going to `log`; the context yields the outputs. A failed
        build raises `BuildError` (with the log's tail); the job's directory is removed after."""
        ...

    def cancel(self) -> None:
        """Stop the jobs running now and refuse new ones (Ctrl-C, SIGTERM); each then fails and
        cleans up after itself. Called from another thread than the jobs'."""
        ...


@runtime_checkable
class ReportsProgress(Protocol):
    """An executor that can say what a job is doing now (BuildKit's steps): the scheduler sets
    `progress` to its reporter's `job_progress(job_id, text)` when the reporter has one."""

    progress: Callable[[str, str], None] | None


@runtime_checkable
class SolvesTogether(Protocol):
    """An executor that can build several jobs in one run (BuildKit: a recipe's platforms in one
    solve): the scheduler hands it the ready jobs it places there together that it says may be."""

    def can_join(self, first: JobSpec, other: JobSpec) -> bool:
        """Whether `other` may run in `first`'s run."""
        ...

    def run_together(self, specs: Sequence[JobSpec], inputs: Inputs,
                     log: Path) -> AbstractContextManager[list[Outputs]]:
        """Run the jobs as one, its output going to `log`; the context yields each one's outputs."""
        ...
