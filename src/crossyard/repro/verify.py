"""`crossyard lock verify`: is crossyard.lock still what the recipes and toolchains make?

Each job's input key is computed again from the recipes, sources and toolchains as they are now,
with the lock's own output digests for its dependencies (what its dependents were keyed on), and
held against the locked key. A key that moved means the inputs changed and the outputs were not
rebuilt: the lock is stale. Nothing is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..lock import read_lock
from ..plan import BUILD_KINDS
from ..plan import job_id as lock_id
from ..project import Project


@dataclass(frozen=True, kw_only=True)
class Stale:
    recipe: str
    platform: str
    locked_key: str  # "" when the lock has no entry
    current_key: str  # "" when nothing in the catalog produces the entry any more
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "platform": self.platform, "locked_key": self.locked_key or None,
                "current_key": self.current_key or None, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class LockVerification:
    checked: int
    stale: tuple[Stale, ...]

    @property
    def ok(self) -> bool:
        return not self.stale

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "stale": [s.to_json() for s in self.stale]}


def verify_lock(project: Project, names: Sequence[str] = ()) -> LockVerification:
    lock = read_lock(project.workspace.lock_path)
    graph = project.graph(names)
    stale: list[Stale] = []
    checked = 0
    for job_id in graph.order:
        job = graph.jobs[job_id]
        entry = lock.entries.get(job_id)
        where = {"recipe": job.recipe.name, "platform": job.platform.oci}
        if entry is None:
            stale.append(Stale(**where, locked_key="", current_key="", reason=(
                "not in crossyard.lock; run `crossyard build` and commit the lock")))
            continue
        missing = [d for d in job.deps if d not in lock.entries]
        if missing:
            stale.append(Stale(**where, locked_key=entry.input_key, current_key="", reason=(
                f"its dependency {missing[0]} is not in crossyard.lock; run `crossyard build`")))
            continue
        checked += 1
        current = job.input_key({d: lock.entries[d].digests for d in job.deps})
        if current != entry.input_key:
            why = "inputs changed without a rebuild"
            if entry.toolchain and entry.toolchain != job.identity:
                why = f"toolchain changed ({entry.toolchain} -> {job.identity}) without a rebuild"
            stale.append(Stale(**where, locked_key=entry.input_key, current_key=current,
                               reason=f"{why}; run `crossyard build` and commit crossyard.lock"))
    if not names:
        producible = {lock_id(r.name, p) for r in project.catalog.recipes.values()
                      if r.kind in BUILD_KINDS for p in r.platforms}
        for entry_id, entry in sorted(lock.entries.items()):
            if entry_id not in producible:
                stale.append(Stale(recipe=entry.recipe, platform=entry.platform.oci,
                                   locked_key=entry.input_key, current_key="", reason=(
                                       "no recipe builds it any more; run `crossyard build` to prune it")))
    return LockVerification(checked=checked, stale=tuple(stale))
