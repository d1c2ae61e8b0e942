"""`BuildRecord`: one job's outcome, the one type from the scheduler to the lock, the store,
provenance and publish.

The scheduler returns one per job (built, cached, failed, skipped); the store reads one back from
an artifact's manifest and index entry; `crossyard.lock` stores the reproducible part of one
(recipe, platform, input key, toolchain identity, outputs) and reads it back; provenance
describes a set of them; publish reads them. Fields a source does not know stay empty ("", None):
a record read from the lock has no node or times, a skipped job has no key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from .oci.layout import Descriptor
from .platforms import Platform

# What the scheduler says of a job (a record read back from the store or the lock says `stored`
# or `locked`): the counts every summary and metric gives.
JOB_STATUSES: Final = ("built", "cached", "failed", "skipped")


@dataclass(frozen=True, kw_only=True)
class OutputFile:
    """One file a job produced, as the store holds it."""

    name: str
    digest: str
    size: int = -1  # -1 where only the digest is known (a lock entry)
    mode: int = 0o644


@dataclass(frozen=True, kw_only=True)
class BuildRecord:
    """One recipe x platform job's outcome.

    status: built | cached | failed | skipped (from the scheduler), stored (read from the store),
    locked (read from crossyard.lock).
    """

    recipe: str
    platform: Platform
    status: str
    input_key: str = ""
    toolchain: str = ""  # the normalized toolchain identity (what the key holds)
    strategy: str = ""  # cross | native | emulated: how, not what (not in the key)
    node: str = ""  # which machine ran it (`local:HOST`, `docker:unix:///…`)
    started: str = ""  # RFC 3339, UTC
    finished: str = ""
    seconds: float = 0.0
    source: str = ""  # the source digest
    version: str = ""  # the recipe's version
    outputs: tuple[OutputFile, ...] = ()
    manifest: Descriptor | None = None  # the store's index entry for the outputs, when stored
    reproducible: bool = True  # false for `dockerfile` jobs: only as reproducible as the Dockerfile
    log: Path | None = None
    error: str | None = None
    attempts: int = 0  # times the scheduler started it (more than 1: its node was lost, it ran again)

    @property
    def id(self) -> str:
        """`recipe@os/arch`: how the lock, the plan and messages name a job."""
        return f"{self.recipe}@{self.platform.oci}"

    @property
    def digests(self) -> dict[str, str]:
        """Output file name → digest (what dependents' keys and the lock hold)."""
        return {f.name: f.digest for f in self.outputs}

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "skipped")

    def output(self, name: str) -> OutputFile | None:
        return next((f for f in self.outputs if f.name == name), None)

    def merged(self, other: BuildRecord) -> BuildRecord:
        """This record with the fields it lacks taken from `other` (the same job seen elsewhere:
        the lock knows the key and digests, the store's index entry the node and times)."""
        values: dict[str, Any] = {}
        for name in ("input_key", "toolchain", "strategy", "node", "started", "finished", "source",
                     "version", "manifest", "log", "error"):
            if not getattr(self, name) and getattr(other, name):
                values[name] = getattr(other, name)
        if not self.outputs and other.outputs:
            values["outputs"] = other.outputs
        elif other.outputs and all(f.size < 0 for f in self.outputs):
            # sizes and modes from the store, when the digests agree
            by_name = {f.name: f for f in other.outputs}
            if all(by_name.get(f.name) and by_name[f.name].digest == f.digest for f in self.outputs):
                values["outputs"] = tuple(by_name[f.name] for f in self.outputs)
        return replace(self, **values) if values else self

    def to_json(self) -> dict[str, Any]:
        """The summary `--json` prints for this job."""
        return {
            "id": self.id, "recipe": self.recipe, "platform": self.platform.oci, "status": self.status,
            "input_key": self.input_key or None, "outputs": self.digests, "toolchain": self.toolchain,
            "strategy": self.strategy, "node": self.node or None, "started": self.started or None,
            "finished": self.finished or None, "seconds": round(self.seconds, 3),
            "log": str(self.log) if self.log else None, "error": self.error,
            "reproducible": self.reproducible, "attempts": self.attempts,
        }


def outputs_from(digests: Mapping[str, str]) -> tuple[OutputFile, ...]:
    """Outputs known only by digest (a lock entry), sorted by name."""
    return tuple(OutputFile(name=name, digest=digest) for name, digest in sorted(digests.items()))
