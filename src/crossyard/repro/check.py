"""`crossyard repro check`: rebuild each recipe x platform under variations and compare.

In reprotest's spirit: a control build, then the variations (`VARIATIONS`): the local ones all
at once in one build, and each on its own only when that one differs (`Checker._job`); every
output compared with the control's by digest and, with `against_lock`, the control's with
`crossyard.lock`. Each mismatch is explained (`explain.explain`) and, with
diffoscope installed, diffed to HTML. The cache is bypassed and nothing goes into the store:
outputs, logs and explanations stay under `.crossyard/repro/<id>/`.

A job runs in the same directory for the control and for every variation but `path` (one at a
time, so they can), on a tmpfs when there is one: a tmpfs lists a directory in the order its
entries were made, so `order` (the source copied in reverse) really changes what a build's
`readdir` sees, which an ext4 directory's hash order would not. Jobs run one after another:
each build takes the machine's cores already, and `time` needs the control done first.

Dependencies are rebuilt under the same variation (hello-c's `umask` build links libgreet's
`umask` build), as reprotest rebuilds a whole tree; a dependency that differs therefore shows in
its dependents' keys too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ..buildkit.endpoints import TOOLCHAIN as BUILDKIT
from ..errors import ConfigurationError, CrossyardError, suggest
from ..executors import Executor, Outputs
from ..executors.local import SANDBOX_JOB, LocalExecutor
from ..fsutil import atomic_write_text
from ..images.assemble import plan_image_jobs
from ..jobspec import JobSpec, Variation
from ..lock import read_lock
from ..nodes import Cluster
from ..plan import ENGINE_KINDS, Job
from ..project import Project
from ..records import BuildRecord, OutputFile
from ..report.runs import new_run_id
from ..sources import ResolvedSource
from ..toolchains import ToolchainTarget
from . import diffoscope
from .explain import Explanation, Variant, explain, explain_trees

# What a variation changes, for --help, the table's legend and the report.
VARIATIONS: Final[Mapping[str, str]] = {
    "path": "another build directory (longer, elsewhere)",
    "time": "built later (2 s or more after the control), TZ shifted to GMT+12",
    "umask": "umask 002 instead of 022",
    "locale": "LC_ALL/LANG fr_CH.UTF-8 and TZ GMT-14 instead of C.UTF-8 and UTC",
    "user": "another uid/gid (65534), with a toolchain cache of its own",
    "order": "the source tree copied in reverse order (directory order on disk)",
    "node": "another configured node ([[nodes]] in crossyard.toml)",
    "emulated": "the other strategy with the same toolchain identity (cross <-> emulated-native)",
}
# Variations of the job's surroundings on this machine; the others change where or how.
LOCAL_VARIATIONS: Final = ("path", "time", "umask", "locale", "user", "order")
ALL: Final = "all"  # the local variations at once (see Checker._job)
LOCK: Final = "lock"  # the column comparing the control with crossyard.lock
TIME_GAP_S: Final = 2.0
OTHER_USER: Final = 65534
# States of a cell in the matrix.
IDENTICAL, DIFFERS, NOT_REBUILT, FAILED = "identical", "differs", "not rebuilt", "failed"


def parse_variations(words: Sequence[str]) -> tuple[str, ...]:
    """`--vary` values (repeated or comma-separated; none: all), in `VARIATIONS` order."""
    asked = [w.strip() for word in words for w in word.split(",") if w.strip()]
    for word in asked:
        if word not in VARIATIONS:
            raise ConfigurationError(
                f"--vary {word}: unknown variation{suggest(word, VARIATIONS)}; "
                f"known: {', '.join(VARIATIONS)}"
            )
    return tuple(v for v in VARIATIONS if not asked or v in asked)


@dataclass(frozen=True, kw_only=True)
class Build:
    """One rebuild of one job under one variation (or the control)."""

    variation: str
    status: str  # built | failed | not rebuilt
    input_key: str = ""
    strategy: str = ""
    node: str = ""
    outputs: tuple[OutputFile, ...] = ()
    files: Mapping[str, Path] = field(default_factory=dict)  # kept under the check's directory
    reason: str = ""  # why not rebuilt, or the build's error
    log: Path | None = None
    started: float = 0.0
    variant: Variant | None = None

    @property
    def digests(self) -> dict[str, str]:
        return {f.name: f.digest for f in self.outputs}

    def to_json(self) -> dict[str, Any]:
        return {"variation": self.variation, "status": self.status, "input_key": self.input_key or None,
                "strategy": self.strategy or None, "node": self.node or None, "outputs": self.digests,
                "reason": self.reason or None, "log": str(self.log) if self.log else None,
                "variant": self.variant.to_json() if self.variant else None}


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One variation of one job, held against the control (or the control against the lock)."""

    variation: str
    state: str  # identical | differs | not rebuilt | failed
    reason: str = ""
    node: str = ""  # where the variation's build ran
    digests: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # differing: (control, this)
    explanations: tuple[Explanation, ...] = ()
    diffs: Mapping[str, Path] = field(default_factory=dict)  # output name → diffoscope HTML

    def to_json(self, base: Path) -> dict[str, Any]:
        return {
            "variation": self.variation, "state": self.state, "reason": self.reason or None,
            "node": self.node or None,
            "digests": {name: {"expected": a, "got": b} for name, (a, b) in sorted(self.digests.items())},
            "explanations": [e.to_json() for e in self.explanations],
            "diffoscope": {name: str(path.relative_to(base)) for name, path in sorted(self.diffs.items())},
        }


@dataclass(frozen=True, kw_only=True)
class Row:
    """One recipe x platform: its control build and a cell per variation."""

    recipe: str
    platform: str  # an image's row of its index digest: `index`
    control: Build
    cells: tuple[Cell, ...]
    kind: str = "artifact"  # artifact | image (its manifest for the platform, or its index)

    @property
    def id(self) -> str:
        return f"{self.recipe}@{self.platform}"

    @property
    def ok(self) -> bool:
        return self.control.status != FAILED and all(c.state in (IDENTICAL, NOT_REBUILT) for c in self.cells)


@dataclass(frozen=True, kw_only=True)
class ReproReport:
    id: str
    directory: Path  # .crossyard/repro/<id>
    variations: tuple[str, ...]  # the columns, `lock` last with --against-lock
    rows: tuple[Row, ...]
    seconds: float

    @property
    def report(self) -> Path:
        return self.directory / "report.html"

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def count(self, state: str) -> int:
        return sum(1 for row in self.rows for cell in row.cells if cell.state == state)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "ok": self.ok, "directory": str(self.directory), "report": str(self.report),
            "seconds": round(self.seconds, 3), "variations": list(self.variations),
            "counts": {s: self.count(s) for s in (IDENTICAL, DIFFERS, NOT_REBUILT, FAILED)},
            "rows": [{"id": row.id, "recipe": row.recipe, "platform": row.platform, "kind": row.kind,
                      "control": row.control.to_json(),
                      "cells": [c.to_json(self.directory) for c in row.cells]} for row in self.rows],
        }


class _Inputs:
    """A rebuild's inputs: the run's resolved sources, and the dependency files this variation's
    own rebuilds kept (by digest)."""

    def __init__(self, sources: Mapping[str, ResolvedSource], files: Mapping[str, Path]) -> None:
        self.sources = sources
        self.files = files

    def source(self, digest: str) -> ResolvedSource:
        return self.sources[digest]

    def file(self, digest: str) -> Path:
        return self.files[digest]


def _job_base(directory: Path) -> Path:
    """Where rebuilds run: a tmpfs when this machine has a writable one (see the module's
    docstring), else the check's directory. World-traversable: `user` builds as another uid."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else directory
    base = Path(tempfile.mkdtemp(prefix="crossyard-repro-", dir=parent))
    base.chmod(0o755)
    return base


def variation_for(name: str, base: Path, chosen: Sequence[str] = tuple(VARIATIONS)) -> Variation:
    """The executor's options for a variation (the control's for `node` and `emulated`, which
    vary where and how, not the job's surroundings); `ALL`: every local one of `chosen` at once."""
    job_dir = str(base / "job")
    same = Variation(name=name, job_dir=job_dir)
    if name == ALL:
        together = same
        for each in (v for v in LOCAL_VARIATIONS if v in chosen):
            one = variation_for(each, base)
            together = replace(together, **{k: v for k, v in vars(one).items()
                                            if k != "name" and v != getattr(same, k)})
        if os.geteuid() != 0:
            together = replace(together, uid=None, gid=None)
        return together
    if name == "path":
        return replace(same, job_dir=str(base / "elsewhere" / "a-much-longer" / "build-directory" / "j"),
                       sandbox_dir="/tmp/elsewhere/a-much-longer/build-directory")
    if name == "time":
        return replace(same, tz="Etc/GMT+12")
    if name == "umask":
        return replace(same, umask=0o002)
    if name == "locale":
        return replace(same, locale="fr_CH.UTF-8", tz="Etc/GMT-14")
    if name == "user":  # its own toolchain cache: the shared one is this user's, and may sit in ~
        return replace(same, uid=OTHER_USER, gid=OTHER_USER, cache_dir=str(base / "cache-user"))
    if name == "order":
        return replace(same, reverse_order=True)
    return same


class Checker:
    """One `repro check` run: the jobs, the executors, the directory it writes."""

    def __init__(self, project: Project, *, variations: Sequence[str], against_lock: bool,
                 run_id: str | None = None, executor: LocalExecutor | None = None,
                 separately: bool = False) -> None:
        self.project = project
        self.variations = tuple(variations)
        self.against_lock = against_lock
        self.separately = separately
        self.id = run_id or new_run_id()
        self.directory = project.workspace.state / "repro" / self.id
        self.executor = executor or LocalExecutor(cache_root=project.workspace.toolchain_cache_dir)
        self._remote: list[Executor] | None = None
        self._buildkit_control: dict[str, str] = {}  # job id → the buildkitd its control ran on
        self._cluster: Cluster | None = None

    def run(self, names: Sequence[str] = ()) -> ReproReport:
        started = time.monotonic()
        project = self.project
        lock = read_lock(project.workspace.lock_path) if self.against_lock else None
        selected = self._with_images(names)
        graph = project.graph(selected)
        # an image only wrapping a named recipe may have no platform left under -p: then none
        image_jobs = plan_image_jobs(project, graph, selected, named=names)
        project.fetch_sources(graph)
        sources = {job.source_digest: project.resolver.resolve(job.recipe) for job in graph.jobs.values()}
        self.directory.mkdir(parents=True)
        base = _job_base(self.directory)
        builds: dict[str, dict[str, Build]] = {}  # job id → variation → build
        rows = []
        try:
            for job_id in graph.order:
                job = graph.jobs[job_id]
                done = self._job(job, builds, sources, base)
                builds[job_id] = done
                cells = [self._compare(job, done["control"], done[v]) for v in self.variations]
                if lock is not None:
                    cells.append(self._against_lock(job, done["control"], lock.entries.get(job_id)))
                rows.append(Row(recipe=job.recipe.name, platform=job.platform.oci, control=done["control"],
                                cells=tuple(cells)))
            if image_jobs:
                from .images import image_rows

                rows += image_rows(self, image_jobs, builds, lock)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            self._close()
        columns = (*self.variations, *((LOCK,) if lock is not None else ()))
        report = ReproReport(id=self.id, directory=self.directory, variations=columns, rows=tuple(rows),
                             seconds=time.monotonic() - started)
        from .report import write_report

        write_report(report)
        return report

    def _with_images(self, names: Sequence[str]) -> list[str]:
        """`names` and the image recipes wrapping any of them (all recipes when none is named)."""
        if not names:
            return []
        wrapping = [r.name for r in self.project.catalog.recipes.values()
                    if r.image is not None and set(r.image.artifact_recipes) & set(names)]
        return list(dict.fromkeys([*names, *sorted(wrapping)]))

    # -- rebuilding -------------------------------------------------------------------------------

    def _job(self, job: Job, builds: Mapping[str, Mapping[str, Build]],
             sources: Mapping[str, ResolvedSource], base: Path) -> dict[str, Build]:
        """The control and every variation of one job. As reprotest does by default, the local
        variations are first applied all at once in one build: when it is identical to the
        control, so is each of them, and a reproducible job costs two builds, not eight. Only
        when it differs (or `separately`) does each run on its own, to say which one it is."""
        done: dict[str, Build] = {}

        def rebuild(name: str) -> Build:
            deps = [builds[d].get(name) for d in job.deps]
            if name not in LOCAL_VARIATIONS and name != ALL:
                # `node` and `emulated` vary where and how this job is built; a dependency that
                # could not be built that way is taken as the control built it
                deps = [b if b is not None and b.status == "built" else builds[d]["control"]
                        for d, b in zip(job.deps, deps, strict=True)]
            if name in ("time", ALL) and "control" in done:  # built later than the control
                time.sleep(max(0.0, done["control"].started + TIME_GAP_S - time.time()))
            done[name] = self._rebuild(job, name, deps, sources, base)
            return done[name]

        control = rebuild("control")
        if control.status != "built":  # nothing to hold the variations against
            return {"control": control, **{v: Build(variation=v, status=NOT_REBUILT, reason=(
                f"the control build {control.status}")) for v in self.variations}}
        local = [v for v in self.variations if v in LOCAL_VARIATIONS and self._applies(v) is None]
        if len(local) > 1 and not self.separately:
            together = rebuild(ALL)
            if together.status == "built" and together.digests == control.digests:
                for name in local:
                    done[name] = replace(together, variation=name, reason=(
                        f"identical in one build with {', '.join(local)} varied at once"))
        for name in [v for v in self.variations if v not in done and v != "time"]:
            rebuild(name)
        if "time" in self.variations and "time" not in done:
            rebuild("time")  # last: the furthest from the control
        return done

    def _applies(self, name: str) -> str | None:
        """Why variation `name` cannot be tried here at all, if so."""
        if name == "user" and os.geteuid() != 0:
            return "building as another user needs root (run repro check as root)"
        return None

    def _rebuild(self, job: Job, name: str, deps: Sequence[Build | None],
                 sources: Mapping[str, ResolvedSource], base: Path) -> Build:
        buildkit = job.recipe.kind in ENGINE_KINDS and job.toolchain.name == BUILDKIT
        if job.recipe.kind in ENGINE_KINDS and not buildkit:
            return Build(variation=name, status=NOT_REBUILT, reason=(
                "a legacy Dockerfile build is only as reproducible as its Dockerfile (the engine stamps times)"))
        if buildkit and name not in ("control", "node"):
            return Build(variation=name, status=NOT_REBUILT, reason=(
                "a BuildKit job runs inside buildkitd: crossyard varies only the daemon (`node`)"))
        missing = [b for b in deps if b is None or b.status != "built"]
        if missing:
            return Build(variation=name, status=NOT_REBUILT, reason="a dependency was not rebuilt under it")
        records = [BuildRecord(recipe=dep.partition("@")[0], platform=job.platform, status="built",
                               outputs=b.outputs)
                   for dep, b in zip(job.deps, deps, strict=True) if b is not None]
        key = job.input_key({d: b.digests for d, b in zip(job.deps, deps, strict=True) if b is not None})
        placed = job
        executor: Executor = self.executor
        variation = variation_for(name, base, self.variations)
        refused = self._applies(name)
        if refused is not None:
            return Build(variation=name, status=NOT_REBUILT, input_key=key, reason=refused)
        if name == "emulated":
            other = self._other_strategy(job)
            if isinstance(other, str):
                return Build(variation=name, status=NOT_REBUILT, input_key=key, reason=other)
            placed = replace(job, toolchain=other)
        spec = placed.spec(key, records)
        if buildkit:  # the control on the first buildkitd that takes it, `node` on another one
            found = self._node_executor(spec, besides=self._buildkit_control.get(job.id))
            if isinstance(found, str):
                return Build(variation=name, status=NOT_REBUILT, input_key=key, reason=found)
            executor = found
            if name == "control":
                self._buildkit_control[job.id] = executor.node
        elif name == "node":
            found = self._node_executor(spec)
            if isinstance(found, str):
                return Build(variation=name, status=NOT_REBUILT, input_key=key, reason=found)
            executor = found
        keep = self.directory / "out" / name / job.recipe.name / job.platform.slug
        log = self.directory / "logs" / job.recipe.name / job.platform.slug / f"{name}.log"
        files = {digest: path for b in deps if b is not None for digest, path in
                 ((f.digest, b.files[f.name]) for f in b.outputs)}
        started = time.time()
        variant = Variant(label=name, build_dirs=_build_dirs(variation, spec), epoch=int(started),
                          source_date_epoch=spec.source_date_epoch, umask=variation.umask,
                          uid=variation.uid if variation.uid is not None else os.geteuid(),
                          gid=variation.gid if variation.gid is not None else os.getegid(),
                          tz=variation.tz, locale=variation.locale)
        ran = Build(variation=name, status=FAILED, input_key=key, strategy=placed.strategy, log=log,
                    started=started, variant=variant)
        try:
            with self._run(executor, spec, _Inputs(sources, files), log, variation) as outputs:
                if buildkit:
                    return replace(ran, status="built", node=outputs.node,
                                   **_kept_image(outputs, keep, recipe=job.recipe.name, spec=spec))
                kept = _keep(outputs, keep)
                return replace(ran, status="built", node=outputs.node, files=kept, outputs=tuple(
                    OutputFile(name=n, digest=outputs.digests[n], size=kept[n].stat().st_size,
                               mode=0o755 if os.access(kept[n], os.X_OK) else 0o644)
                    for n in sorted(kept)))
        except CrossyardError as error:
            return replace(ran, reason=str(error))

    def _run(self, executor: Executor, spec: JobSpec, inputs: _Inputs, log: Path,
             variation: Variation) -> AbstractContextManager[Outputs]:
        if isinstance(executor, LocalExecutor):
            return executor.run(spec, inputs, log, variation=variation)
        return executor.run(spec, inputs, log)  # another node: the plain run there

    def _other_strategy(self, job: Job) -> ToolchainTarget | str:
        """The toolchain reaching `job`'s platform the other way (emulated for a cross build and
        back) with the same identity, so the same key; or why there is none."""
        candidates = [t for t in self.project.prober.candidates(job.recipe.kind, job.platform)
                      if t.available and t.strategy != job.strategy and t.strategy in job.recipe.strategies]
        same = [t for t in candidates if t.identity_text == job.identity]
        if same:
            return same[0]
        if not candidates:
            return f"no other strategy than {job.strategy} among the available toolchains the recipe allows"
        others = ", ".join(f"{t.name} ({t.strategy}) is {t.identity_text}" for t in candidates)
        return f"no toolchain of identity {job.identity} reaches it another way: {others}"

    def _node_executor(self, spec: JobSpec, *, besides: str | None = None) -> Executor | str:
        """The first executor of another node than this machine that takes `spec` (and is not
        the one named `besides`)."""
        if not any(n.transport != "local" for n in self.project.settings.nodes):
            return "no [[nodes]] besides this machine in crossyard.toml (or BUILDKIT_HOST): no other node to rebuild on"
        if self._remote is None:
            from ..pipeline import connect_cluster

            self._cluster = connect_cluster(self.project)
            self._remote = [e for m in self._cluster.members if m.node.transport != "local"
                            for e in m.executors]
        for executor in self._remote:
            if executor.node != besides and executor.refuses(spec) is None:
                return executor
        return "no other configured node can run it" + (f" (besides {besides})" if besides else "")

    def _close(self) -> None:
        if self._cluster is not None:  # the SSH connections end with the check
            self._cluster.close()

    # -- comparing --------------------------------------------------------------------------------

    def _compare(self, job: Job, control: Build, other: Build) -> Cell:
        return self._compare_named(job.recipe.name, job.platform.slug, control, other)

    def _compare_named(self, recipe: str, platform: str, control: Build, other: Build) -> Cell:
        """`other` held against `control`; a kept output that is a directory (an image's layout
        view) is explained as a tree, with no diffoscope run over the blobs it links to."""
        name = other.variation
        if control.status != "built":
            return Cell(variation=name, state=NOT_REBUILT, reason=f"the control build {control.status}")
        if other.status == NOT_REBUILT:
            return Cell(variation=name, state=NOT_REBUILT, reason=other.reason)
        if other.status == FAILED:
            return Cell(variation=name, state=FAILED, reason=other.reason)
        a, b = control.digests, other.digests
        if a == b:
            return Cell(variation=name, state=IDENTICAL, reason=other.reason, node=other.node)
        differing = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
        explanations: list[Explanation] = []
        diffs = {}
        where = self.directory / "explain" / recipe / platform.replace("/", "-")
        for output in differing:
            if output not in a or output not in b:
                continue
            assert control.variant is not None and other.variant is not None
            if control.files[output].is_dir():
                explanations += causes_first(explain_trees(control.files[output], other.files[output],
                                                           left=control.variant, right=other.variant))
                continue
            explanations.append(explain(control.files[output], other.files[output], name=output,
                                        left=control.variant, right=other.variant))
            html = diffoscope.html_diff(control.files[output], other.files[output],
                                        where / f"{name}-{output}.diffoscope.html")
            if html is not None:
                diffs[output] = html
        cell = Cell(variation=name, state=DIFFERS, reason=_summary(explanations, differing), node=other.node,
                    digests={n: (a.get(n, "absent"), b.get(n, "absent")) for n in differing},
                    explanations=tuple(explanations), diffs=diffs)
        atomic_write_text(where / f"{name}.json", _json(cell.to_json(self.directory)))
        return cell

    def _against_lock(self, job: Job, control: Build, entry: BuildRecord | None) -> Cell:
        """The control rebuild held against the lock: same key, same digests, or the reason."""
        if entry is None:
            return Cell(variation=LOCK, state=NOT_REBUILT, reason=f"{job.id} is not in crossyard.lock")
        if control.status != "built":
            return Cell(variation=LOCK, state=NOT_REBUILT, reason=f"the control build {control.status}")
        if entry.input_key != control.input_key:
            return Cell(variation=LOCK, state=DIFFERS, reason=(
                f"stale lock: input key {entry.input_key} is now {control.input_key}; "
                "run `crossyard build` and commit crossyard.lock"))
        a, b = entry.digests, control.digests
        if a == b:
            return Cell(variation=LOCK, state=IDENTICAL)
        differing = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
        layout = self.project.store.layout
        stored = self.project.store.find(entry.input_key)
        explanations = []
        notes = []
        where = self.directory / "explain" / job.recipe.name / job.platform.slug
        diffs = {}
        for output in differing:
            locked, rebuilt = a.get(output, "absent"), b.get(output, "absent")
            if output in a and output in b and layout.has_blob(locked):
                variant = control.variant
                assert variant is not None
                explanations.append(explain(layout.blob_path(locked), control.files[output], name=output,
                                            left=replace(variant, label=LOCK), right=variant))
                html = diffoscope.html_diff(layout.blob_path(locked), control.files[output],
                                            where / f"{LOCK}-{output}.diffoscope.html")
                if html is not None:
                    diffs[output] = html
            elif stored is not None and stored.digests.get(output) == rebuilt:
                notes.append(f"{output}: the lock says {locked}, but the store's build of this input key "
                             f"and the rebuild are both {rebuilt}: the lock entry was edited or corrupted")
            else:
                notes.append(f"{output}: the lock says {locked}, the rebuild made {rebuilt}; "
                             "the locked bytes are not in the store to explain the difference")
        reason = "; ".join([*notes, *([_summary(explanations, differing)] if explanations else [])])
        cell = Cell(variation=LOCK, state=DIFFERS, reason=reason, explanations=tuple(explanations),
                    digests={n: (a.get(n, "absent"), b.get(n, "absent")) for n in differing}, diffs=diffs)
        atomic_write_text(where / f"{LOCK}.json", _json(cell.to_json(self.directory)))
        return cell


def check(project: Project, *, names: Sequence[str] = (), variations: Sequence[str] = tuple(VARIATIONS),
          against_lock: bool = False, separately: bool = False, run_id: str | None = None) -> ReproReport:
    """Rebuild `names` (all by default) under `variations`; the report, also written to disk.
    Bad input raises `ConfigurationError` before anything runs; mismatches do not raise."""
    return Checker(project, variations=variations, against_lock=against_lock, separately=separately,
                   run_id=run_id).run(names)


def _build_dirs(variation: Variation, spec: JobSpec) -> tuple[str, ...]:
    """The paths the build saw itself at, as an explanation looks for them in its outputs."""
    dirs = [variation.job_dir] if variation.job_dir else []
    if spec.toolchain.root is not None:
        dirs.append(variation.sandbox_dir or SANDBOX_JOB)
    return tuple(dirs)


def _kept_image(outputs: Outputs, where: Path, *, recipe: str, spec: JobSpec) -> dict[str, Any]:
    """A BuildKit rebuild's image imported into a layout of its own under `where` (as the store
    would hold it: the manifest digest is what the lock records), for comparing and explaining."""
    from ..executors.buildkit import import_job_image
    from ..oci.layout import OciLayout

    layout = OciLayout(where / "layout")
    manifest = import_job_image(outputs, layout, recipe=recipe, spec=spec)
    atomic_write_text(layout.root / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")
    atomic_write_text(layout.index_path, json.dumps({"schemaVersion": 2, "manifests": [manifest.to_json()]},
                                                    indent=2, sort_keys=True) + "\n")
    return {"files": {"image": layout.root},
            "outputs": (OutputFile(name="image", digest=manifest.digest, size=manifest.size, mode=0o644),)}


def _keep(outputs: Outputs, where: Path) -> dict[str, Path]:
    """Copy a rebuild's outputs out of its job directory before the executor removes it."""
    where.mkdir(parents=True, exist_ok=True)
    kept = {}
    for name, path in outputs.files.items():
        shutil.copyfile(path, where / name)
        os.chmod(where / name, 0o755 if os.access(path, os.X_OK) else 0o644)
        kept[name] = where / name
    return kept


def causes_first(explanations: Sequence[Explanation]) -> list[Explanation]:
    """A tree's explanations, the blobs naming a cause (a layer's file) before the documents
    that differ only because they name those blobs."""
    return sorted(explanations, key=lambda e: all(c.name == "content" for c in e.causes))


def _summary(explanations: Sequence[Explanation], differing: Sequence[str]) -> str:
    if not explanations:
        return f"{', '.join(differing)} differ"
    return "; ".join(e.summary for e in explanations)  # each names its output


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
