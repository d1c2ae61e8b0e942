"""Where each job runs: list scheduling by critical path over the run's members.

Pure and clock-agnostic: the scheduler drives a `Placer` with real time and real executors, the
benchmark (benchmarks/bench_schedule.py) with a simulated clock; both take every decision here.

- Priority: a job's upward rank, its own estimated duration plus the longest chain of dependents
  after it (the critical path through it). Ready jobs are placed highest rank first.
- Where: on the member where it would finish first (earliest finish time): when a slot there is
  free now or, in the estimate, frees soonest, plus the time to ship inputs it does not hold
  (its dependencies' outputs, its source). A job may wait for a busy fast node rather than start
  on an idle slow one; a slot a higher-ranked job waits for is reserved for it in the estimate.
  Work that only one member can do (Dockerfile jobs on the one engine of the plan's identity)
  counts, for the jobs that could go elsewhere, as a delay on that member while they would hold
  its slot: the workstation keeps room for the images still to come.
- What can run it: a member whose toolchain has the identity the plan keyed the job with, for
  its platform, with a strategy the recipe accepts (native on a node of that arch, cross with a
  cross toolchain, emulated under qemu). The machine that made the plan can by construction. A
  Dockerfile job needs an engine of the planned identity. Emulated is the last resort by its
  estimate (5x a cross build until measured): it is chosen only where it would finish before any
  native or cross build could, i.e. when those nodes are busy or absent; on a tie it loses.
- Durations are learned per recipe, platform, strategy and node class (transport/arch) from
  earlier runs (`Durations`, .crossyard/durations.json); an unmeasured one is the recipe's size
  times how slow that strategy is on that node class, both fitted to what was measured, and
  before anything was: a base (60 s) times defaults (cross on amd64 1x, native riscv64 3x,
  arm64 2x, emulated 5x).
- Faults: a member lost mid-job takes no more jobs this run, and its job goes back to the queue
  (up to `max_retries` times); a member whose executors refuse a job is not offered it again.
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from .buildkit.endpoints import TOOLCHAIN as BUILDKIT
from .fsutil import atomic_write_text
from .nodes import Member
from .plan import ENGINE_KINDS, Job
from .platforms import Platform
from .records import BuildRecord
from .toolchains import ToolchainTarget

DEFAULT_BASE_S: Final = 60.0  # an unknown recipe's cross build, until one has run
# How much longer a strategy takes than a cross build on a workstation, until measured.
# Until measured, how much longer a job takes than a cross build on an amd64 workstation: a
# node's arch says how fast it is at anything (riscv64 boards 3x, arm64 compute modules 2x), and
# emulation under qemu-user costs 5x on top (measured here: about 5x).
ARCH_FACTORS: Final[Mapping[str, float]] = {"amd64": 1.0, "arm64": 2.0, "riscv64": 3.0}
STRATEGY_FACTORS: Final[Mapping[str, float]] = {"cross": 1.0, "native": 1.0, "emulated": 5.0}
LEARNING_RATE: Final = 0.5  # weight of the newest run in a learned duration
MAX_RETRIES: Final = 2  # re-queues of a job whose node was lost
LINK_BYTES_PER_S: Final = 50e6  # shipping inputs to a node: a busy gigabit link
LINK_LATENCY_S: Final = 0.5  # per input not already there (an archive, a round trip)
OVERRUN_FLOOR: Final = 0.2  # a job past its estimate is expected to need this share of it more
ASSEMBLY_KIND: Final = "image"  # an image assembled from the store's artifacts (scheduler.image_task)
ASSEMBLY_S: Final = 5.0  # an assembly's estimate until one was measured: seconds of gzip here
DURATIONS_VERSION: Final = 1
FIT_ROUNDS: Final = 200  # alternating means converge slowly where few recipes ran on two classes
FIT_TOLERANCE: Final = 1e-4  # in log space


def factor(strategy: str, architecture: str) -> float:
    """The default estimate of a `strategy` build on a node of `architecture`, in cross builds."""
    return STRATEGY_FACTORS.get(strategy, 1.0) * ARCH_FACTORS.get(architecture, 1.0)


# -- durations -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One job's measured duration."""

    recipe: str
    platform: Platform
    strategy: str
    node_class: str  # transport/arch
    seconds: float


class Durations:
    """Learned job durations (an exponentially weighted mean per recipe, platform, strategy and
    node class), kept in the workspace and replaced atomically after each run."""

    def __init__(self, path: Path | None = None, entries: Mapping[str, float] | None = None) -> None:
        self.path = path
        self.entries: dict[str, float] = dict(entries or {})
        self._model: tuple[dict[str, float], dict[str, float]] | None = None

    @classmethod
    def load(cls, path: Path) -> Durations:
        """The durations in `path`; none when it is missing or unreadable (estimates are a cache
        of past runs: a damaged file costs a worse first schedule, never a failed build)."""
        try:
            data = json.loads(path.read_text())
            entries = {str(k): float(v) for k, v in data["entries"].items()} \
                if data.get("version") == DURATIONS_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            entries = {}
        return cls(path, {k: v for k, v in entries.items() if math.isfinite(v) and v > 0 and k.count("|") == 3})

    @staticmethod
    def key(recipe: str, platform: Platform, strategy: str, node_class: str) -> str:
        return f"{recipe}|{platform.oci}|{strategy}|{node_class}"

    def learn(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            if not (math.isfinite(sample.seconds) and sample.seconds > 0):
                continue
            key = self.key(sample.recipe, sample.platform, sample.strategy, sample.node_class)
            old = self.entries.get(key)
            self.entries[key] = sample.seconds if old is None else old + LEARNING_RATE * (sample.seconds - old)
        self._model = None

    def save(self) -> None:
        if self.path is not None:
            data = {"version": DURATIONS_VERSION, "entries": dict(sorted(self.entries.items()))}
            atomic_write_text(self.path, json.dumps(data, indent=1) + "\n")

    def measured(self, recipe: str, platform: Platform, node_class: str) -> bool:
        """Whether any strategy of this was measured on this node class."""
        prefix = f"{recipe}|{platform.oci}|"
        return any(k.startswith(prefix) and k.endswith(f"|{node_class}") for k in self.entries)

    def estimate(self, recipe: str, platform: Platform, strategy: str, node_class: str) -> float:
        """Seconds: as measured for exactly this, else the recipe's size times how slow this
        strategy is on this node class, both fitted to every measurement (`_fit`)."""
        found = self.entries.get(self.key(recipe, platform, strategy, node_class))
        if found is not None:
            return found
        sizes, speeds = self._fit()
        size = sizes.get(recipe, sizes.get("", DEFAULT_BASE_S))
        return size * speeds.get(f"{strategy}|{node_class}", factor(strategy, node_class.rpartition("/")[2]))

    def _fit(self) -> tuple[dict[str, float], dict[str, float]]:
        """duration ≈ size(recipe) x speed(strategy, node class), fitted in log space by
        alternating means (least squares), starting from the default factors. The scale stays that of
        the defaults (the reference classes, those at 1x, stay there on average), so a class
        never measured keeps its default factor; a recipe never measured is the median size."""
        if self._model is None:
            points = []
            for key, seconds in self.entries.items():
                recipe, _, strategy, node_class = key.split("|")
                points.append((recipe, f"{strategy}|{node_class}", math.log(seconds)))
            default = {c: math.log(factor(c.split("|")[0], c.rpartition("/")[2])) for _, c, _ in points}
            reference = [c for c, v in default.items() if v == 0.0] or list(default)
            speed = dict(default)
            size: dict[str, float] = {}
            for _ in range(FIT_ROUNDS):
                size = _means((r, t - speed[c]) for r, c, t in points)
                fitted = _means((c, t - size[r]) for r, c, t in points)
                shift = statistics.fmean(fitted[c] - default[c] for c in reference) if reference else 0.0
                fitted = {c: v - shift for c, v in fitted.items()}
                moved = max((abs(fitted[c] - speed[c]) for c in fitted), default=0.0)
                speed = fitted
                if moved < FIT_TOLERANCE:
                    break
            sizes = {r: math.exp(v) for r, v in _means((r, t - speed[c]) for r, c, t in points).items()}
            if sizes:
                sizes[""] = statistics.median(sizes.values())
            self._model = (sizes, {c: math.exp(v) for c, v in speed.items()})
        return self._model


def _means(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for name, value in pairs:
        groups.setdefault(name, []).append(value)
    return {name: statistics.fmean(values) for name, values in groups.items()}


# -- tasks and the placer --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Task:
    """What placement needs to know of a job."""

    id: str
    recipe: str
    kind: str
    platform: Platform
    identity: str  # the toolchain identity the plan keyed it with
    strategies: tuple[str, ...]  # the recipe's accepted strategies
    deps: tuple[str, ...]
    planned: ToolchainTarget  # the toolchain chosen on the machine that made the plan
    source: str = ""  # the source digest: a node that has it is not sent it again
    toolchains: tuple[str, ...] = ()  # the recipe's `toolchains`: only those definitions build it

    @classmethod
    def of(cls, job: Job) -> Task:
        return cls(id=job.id, recipe=job.recipe.name, kind=job.recipe.kind, platform=job.platform,
                   identity=job.identity, strategies=tuple(job.recipe.strategies), deps=job.deps,
                   planned=job.toolchain, source=job.source_digest,
                   toolchains=job.recipe.toolchains)


@dataclass(frozen=True, kw_only=True)
class Assignment:
    task: Task
    member: Member
    toolchain: ToolchainTarget  # as it exists on that member (its strategy there)
    attempt: int  # 1 for the first time the job starts
    estimate: float  # seconds


def toolchains_on(member: Member, task: Task) -> list[ToolchainTarget] | str:
    """The toolchains on `member` that may build `task` (best first), or why there are none."""
    if task.kind == ASSEMBLY_KIND:  # it reads the artifacts and writes the image in the store
        return [task.planned] if member.holds_store else "images are assembled where the store is"
    if task.kind in ENGINE_KINDS and task.planned.name == BUILDKIT:
        return _buildkit_on(member, task)
    if member.facts is None:
        return [task.planned]  # the plan was made here
    if task.kind in ENGINE_KINDS:
        if member.facts.docker == task.identity:
            return [task.planned]
        return (f"its Docker engine is {member.facts.docker}, the plan's is {task.identity}"
                if member.facts.docker else "it has no Docker engine")
    same = [t for t in member.facts.toolchains if t.kind == task.kind and t.platform == task.platform
            and (not task.toolchains or t.name in task.toolchains)]
    accepted = [t for t in same if t.strategy in task.strategies]
    matching = [t for t in accepted if t.identity == task.identity]
    if matching:
        return sorted(matching, key=lambda t: task.strategies.index(t.strategy))
    if accepted:
        found = ", ".join(sorted({t.identity for t in accepted}))
        return f"it has {found} for {task.platform}, the plan keyed {task.identity}"
    if same:
        return (f"it builds {task.platform} only as {', '.join(sorted({t.strategy for t in same}))}, which "
                f"the recipe's strategies ({', '.join(task.strategies)}) exclude")
    named = " or ".join(f"`{n}`" for n in task.toolchains) if task.toolchains else task.kind
    return f"it has no {named} toolchain for {task.platform}"


def _buildkit_on(member: Member, task: Task) -> list[ToolchainTarget] | str:
    """A buildkitd of the planned identity whose workers build the task's platform: native
    where it is the daemon's own, emulated (binfmt) otherwise."""
    facts = member.facts
    if facts is None or facts.buildkit is None:
        return "it is no buildkitd (a `buildkit` node or BUILDKIT_HOST)"
    if facts.buildkit != task.identity:
        return f"its buildkitd is {facts.buildkit}, the plan's is {task.identity}"
    if task.platform not in facts.buildkit_platforms:
        return f"its workers build {', '.join(p.oci for p in facts.buildkit_platforms)}, not {task.platform}"
    strategy = "native" if task.platform == facts.buildkit_platforms[0] else "emulated"
    if strategy not in task.strategies:
        return f"it builds {task.platform} {strategy}, which the recipe's strategies exclude"
    return [replace(task.planned, strategy=strategy, command=member.node.address)]


@dataclass(kw_only=True)
class _Slots:
    member: Member
    order: int
    running: dict[str, tuple[float, float]] = field(default_factory=dict)  # task → (start, estimate)
    held: set[str] = field(default_factory=set)  # task ids whose outputs, and sources, it holds
    lost: bool = False
    # Running tasks that joined another's run there (one BuildKit solve for several platforms):
    # in `running` for the bookkeeping, but holding no slot of their own.
    riding: set[str] = field(default_factory=set)


@dataclass(frozen=True, kw_only=True)
class _Option:
    slots: _Slots
    toolchain: ToolchainTarget
    estimate: float


class Placer:
    """Decides which ready job starts where, and when. Not thread-safe: one driver calls it."""

    def __init__(self, tasks: Sequence[Task], members: Sequence[Member], durations: Durations | None = None,
                 *, max_retries: int = MAX_RETRIES, link_bytes_per_s: float = LINK_BYTES_PER_S,
                 link_latency_s: float = LINK_LATENCY_S) -> None:
        self.tasks = {t.id: t for t in tasks}
        self.durations = durations or Durations()
        self.max_retries = max_retries
        self.link_bytes_per_s = link_bytes_per_s
        self.link_latency_s = link_latency_s
        self.members = {m.name: _Slots(member=m, order=i) for i, m in enumerate(members)}
        self.attempts: dict[str, int] = {}
        self.history: dict[str, list[str]] = {}  # task → the members it was started on, in order
        self.refused: dict[str, dict[str, str]] = {}  # task → member → why its executors refused
        self.output_bytes: dict[str, int] = {}
        self.ready: dict[str, None] = {}  # insertion-ordered set
        self.unstarted: set[str] = {t.id for t in tasks}  # neither running nor settled
        self._exclusive: dict[str, tuple[str, float]] | None = None  # task → its only member, estimate
        self._options: dict[tuple[str, str], list[ToolchainTarget] | str] = {}
        self._order = {t.id: i for i, t in enumerate(tasks)}
        self._topo = self._topological()
        self._best: dict[str, float] = {}
        self._cands: dict[str, list[_Option]] = {}
        self.rank = self._ranks()

    # -- priorities

    def _toolchains(self, task: Task, slots: _Slots) -> list[ToolchainTarget] | str:
        key = (task.id, slots.member.name)
        if key not in self._options:
            self._options[key] = toolchains_on(slots.member, task)
        return self._options[key]

    def _estimate(self, task: Task, slots: _Slots, toolchain: ToolchainTarget) -> float:
        node_class = slots.member.node.node_class
        if task.kind == ASSEMBLY_KIND and not self.durations.measured(task.recipe, task.platform, node_class):
            return ASSEMBLY_S  # not a build: a recipe's fitted size says nothing of it
        return self.durations.estimate(task.recipe, task.platform, toolchain.strategy, node_class)

    def _best_estimate(self, task: Task) -> float:
        if task.id not in self._best:
            found = [o.estimate for o in self._candidates(task)]
            self._best[task.id] = min(found) if found else self.durations.estimate(
                task.recipe, task.platform, "cross", "")
        return self._best[task.id]

    def _ranks(self) -> dict[str, float]:
        """Upward rank: own best estimate plus the highest rank among the jobs that need it."""
        dependents: dict[str, list[str]] = {t: [] for t in self.tasks}
        for task in self.tasks.values():
            for dep in task.deps:
                if dep in dependents:
                    dependents[dep].append(task.id)
        rank: dict[str, float] = {}
        for task_id in reversed(self._topo):
            after = max((rank[d] for d in dependents[task_id]), default=0.0)
            rank[task_id] = self._best_estimate(self.tasks[task_id]) + after
        return rank

    def _topological(self) -> list[str]:
        done: dict[str, None] = {}

        def visit(task_id: str) -> None:
            stack = [(task_id, iter(self.tasks[task_id].deps))]
            while stack:
                current, deps = stack[-1]
                dep = next((d for d in deps if d in self.tasks and d not in done), None)
                if dep is None:
                    stack.pop()
                    done.setdefault(current, None)
                else:
                    stack.append((dep, iter(self.tasks[dep].deps)))

        for task_id in self.tasks:
            visit(task_id)
        return list(done)

    # -- events from the driver

    def add_ready(self, task_id: str) -> None:
        """All of the job's dependencies are built: it may be placed."""
        self.ready[task_id] = None

    def settle(self, task_id: str) -> None:
        """The job needs no node (cached, skipped, failed without running)."""
        self.unstarted.discard(task_id)
        self.ready.pop(task_id, None)

    def done(self, task_id: str, member: str, *, output_bytes: int = 0) -> None:
        """The job ended on `member` (built or failed by its build): the slot is free."""
        slots = self.members[member]
        slots.running.pop(task_id, None)
        slots.riding.discard(task_id)
        slots.held.add(task_id)
        self.output_bytes[task_id] = output_bytes

    def lost(self, task_id: str, member: str) -> bool:
        """`member` was lost running the job: it takes no more jobs this run, and the job goes
        back to the queue unless it has been retried `max_retries` times (False: it failed)."""
        slots = self.members[member]
        slots.running.pop(task_id, None)
        slots.riding.discard(task_id)
        slots.lost = True
        self._forget()
        if self.attempts[task_id] > self.max_retries:
            return False
        self.ready[task_id] = None
        self.unstarted.add(task_id)
        return True

    def refuse(self, task_id: str, member: str, reason: str) -> None:
        """The member's executors refused the job (it never started): offer it elsewhere."""
        self.members[member].running.pop(task_id, None)
        self.members[member].riding.discard(task_id)
        self.refused.setdefault(task_id, {})[member] = reason
        self.attempts[task_id] -= 1
        self.history[task_id].pop()
        self.ready[task_id] = None
        self.unstarted.add(task_id)
        self._forget()

    def toolchain_on(self, task_id: str, member: str) -> ToolchainTarget | None:
        """How `member` would run the task (None: it cannot, or is lost)."""
        options = [o for o in self._candidates(self.tasks[task_id]) if o.slots.member.name == member]
        return min(options, key=lambda o: o.estimate).toolchain if options else None

    def join(self, task_id: str, member: str, now: float) -> Assignment | None:
        """Start the ready task inside a run started on `member` (a buildkitd solving a recipe's
        platforms at once), where it takes no slot. None: it is not ready, `member` cannot run
        it, or would emulate it where another member builds it natively (worth waiting for)."""
        slots = self.members[member]
        candidates = self._candidates(self.tasks[task_id])
        options = [o for o in candidates if o.slots is slots]
        if task_id not in self.ready or not options:
            return None
        if all(o.toolchain.strategy == "emulated" for o in options) and any(
                o.toolchain.strategy != "emulated" for o in candidates):
            return None
        assignment = self._start(self.tasks[task_id], min(options, key=lambda o: o.estimate), now)
        slots.riding.add(task_id)
        return assignment

    def ride(self, task_id: str, member: str) -> None:
        """The task, just started on `member` by `assign`, runs inside another's run there: its
        slot is free again."""
        self.members[member].riding.add(task_id)

    # -- decisions

    def why_not(self, task: Task) -> str:
        """Why no member can run `task` now: each member and its reason."""
        reasons = []
        for name, slots in self.members.items():
            tools = self._toolchains(task, slots)
            if slots.lost:
                reasons.append(f"{name}: lost during this run")
            elif name in self.refused.get(task.id, {}):
                reasons.append(f"{name}: {self.refused[task.id][name]}")
            elif isinstance(tools, str):
                reasons.append(f"{name}: {tools}")
        return "; ".join(reasons) or "no node takes part in this run"

    def _candidates(self, task: Task) -> list[_Option]:
        """Where `task` may run and how long it should take there (kept until `_forget`)."""
        found = self._cands.get(task.id)
        if found is None:
            refused = self.refused.get(task.id, {})
            found = []
            for slots in self.members.values():
                if slots.lost or slots.member.slots < 1 or slots.member.name in refused:
                    continue
                tools = self._toolchains(task, slots)
                if isinstance(tools, str):
                    continue
                found += [_Option(slots=slots, toolchain=t, estimate=self._estimate(task, slots, t)) for t in tools]
            self._cands[task.id] = found
        return found

    def _forget(self) -> None:
        """A member lost or a job refused: what was derived from who may run what is stale."""
        self._cands.clear()
        self._best.clear()
        self._exclusive = None

    def _transfer(self, task: Task, slots: _Slots) -> float:
        """Seconds to ship what `task` needs and `slots`' member does not hold."""
        if slots.member.holds_store:
            return 0.0
        missing = [d for d in task.deps if d not in slots.held]
        seconds = sum(self.output_bytes.get(d, 0) for d in missing) / self.link_bytes_per_s
        count = len(missing) + (0 if not task.source or task.source in slots.held else 1)
        return seconds + count * self.link_latency_s

    def _reserved(self, now: float) -> dict[str, list[tuple[float, float]]]:
        """Per member, the work it owes to jobs not started yet that no other member can run (a
        Dockerfile job on the one engine of the plan's identity, say): (when each should be
        ready, its estimate per slot), by the estimates of what it waits for."""
        if self._exclusive is None:
            self._exclusive = {}
            for task in self.tasks.values():
                options = self._candidates(task)
                if len({o.slots.member.name for o in options}) == 1:
                    self._exclusive[task.id] = (options[0].slots.member.name, min(o.estimate for o in options))
        if not any(t in self._exclusive for t in self.unstarted):
            return {}
        # When each job should be done, in the estimate (dependencies first): running ones by
        # their estimate, the ones not started after their dependencies, the rest already.
        running = {t: max(now, start + estimate) for s in self.members.values()
                   for t, (start, estimate) in s.running.items()}
        ends: dict[str, float] = {}
        ready: dict[str, float] = {}
        for task_id in self._topo:
            if task_id in running:
                ends[task_id] = running[task_id]
            elif task_id in self.unstarted:
                ready[task_id] = max((ends[d] for d in self.tasks[task_id].deps if d in ends), default=now)
                ends[task_id] = ready[task_id] + self._best_estimate(self.tasks[task_id])
            else:
                ends[task_id] = now
        owed: dict[str, list[tuple[float, float]]] = {}
        for task_id in self._topo:  # not the set's order: sums in the same order every run
            if task_id in self.unstarted and task_id in self._exclusive:
                name, estimate = self._exclusive[task_id]
                owed.setdefault(name, []).append((ready[task_id], estimate / self.members[name].member.slots))
        return owed

    def _finish_time(self, task: Task, option: _Option, now: float, free: Mapping[str, list[float]],
                     reserved: Mapping[str, list[tuple[float, float]]]) -> tuple[float, bool, float, int]:
        name = option.slots.member.name
        transfer = self._transfer(task, option.slots)
        start = max(now, free[name][0])
        end = start + transfer + option.estimate
        # Work only this member can do, ready while this job would hold the slot, waits for it.
        end += sum(share for ready, share in reserved.get(name, ()) if start <= ready < end)
        emulated = option.toolchain.strategy == "emulated"
        return end, emulated, transfer, option.slots.order

    def assign(self, now: float) -> tuple[list[Assignment], list[tuple[Task, str]]]:
        """The jobs to start now, and the jobs no member can run (with why). Call after every
        event (a job ready, done, lost, refused) and from time to time while jobs wait."""
        # Each slot's expected free time: now, or when its job should end (a job past its
        # estimate is given a share of it more, so a waiting job does not count on it at once).
        free: dict[str, list[float]] = {}
        for name, slots in self.members.items():
            if slots.lost:
                continue
            busy = [now + max(start + estimate - now, OVERRUN_FLOOR * estimate, 1e-3)
                    for task_id, (start, estimate) in slots.running.items() if task_id not in slots.riding]
            free[name] = sorted(busy + [now] * max(0, slots.member.slots - len(busy)))
        reserved = self._reserved(now)
        started: list[Assignment] = []
        unplaceable: list[tuple[Task, str]] = []
        for task_id in sorted(self.ready, key=lambda t: (-self.rank[t], self._order[t])):
            task = self.tasks[task_id]
            options = self._candidates(task)
            if not options:
                self.settle(task_id)
                unplaceable.append((task, self.why_not(task)))
                continue
            if not any(slots[0] <= now for slots in free.values()):
                continue  # no slot is free now: nothing else starts in this call
            # Earliest finish first; on a tie, not emulated, then the member holding more inputs.
            # A job that could run elsewhere counts a member's reserved work as a delay there.
            flexible = len({o.slots.member.name for o in options}) > 1
            ends = {id(o): self._finish_time(task, o, now, free, reserved if flexible else {}) for o in options}
            best = min(options, key=lambda o: ends[id(o)])
            name = best.slots.member.name
            slot_free = free[name][0]
            heapq.heapreplace(free[name], max(now, slot_free) + ends[id(best)][2] + best.estimate)
            if slot_free > now:
                continue  # it waits for that member; the slot is reserved for it in the estimate
            started.append(self._start(task, best, now))
        return started, unplaceable

    def _start(self, task: Task, option: _Option, now: float) -> Assignment:
        del self.ready[task.id]
        self.unstarted.discard(task.id)
        self.attempts[task.id] = self.attempts.get(task.id, 0) + 1
        self.history.setdefault(task.id, []).append(option.slots.member.name)
        option.slots.running[task.id] = (now, option.estimate)
        option.slots.held.update(task.deps)
        if task.source:
            option.slots.held.add(task.source)
        return Assignment(task=task, member=option.slots.member, toolchain=option.toolchain,
                          attempt=self.attempts[task.id], estimate=option.estimate)


def samples_of(records: Iterable[BuildRecord], classes: Mapping[str, str]) -> list[Sample]:
    """Samples from built `BuildRecord`s; `classes` maps a record's id to where it ran."""
    return [Sample(recipe=r.recipe, platform=r.platform, strategy=r.strategy, node_class=classes[r.id],
                   seconds=r.seconds) for r in records if r.status == "built" and r.id in classes]
