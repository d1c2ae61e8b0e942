"""Scheduling on a simulated cluster: `python benchmarks/bench_schedule.py [--graphs N] [--seed S]`.

A cluster that cannot exist on one machine — one amd64 workstation (8 slots, the machine that
plans), 20 arm64 compute modules and 3 riscv64 boards (2 slots each) — and synthetic catalogs of
200 jobs for linux/riscv64 and linux/arm64: Kubernetes components and Go tools, C libraries and
the programs linking them, Rust services, and Dockerfile images that depend on those binaries.

crossyard's placement is the real code: `crossyard.placement.Placer`, the object the scheduler
asks for every decision, with the real capability rule (`toolchains_on`: a node runs a job only
with the plan's toolchain identity) and real `Durations` learning. Only the clock and the nodes
are simulated: a job's duration is its size (a build on the workstation) times how much slower
the node is (arm64 2.5x, riscv64 4x; crossyard guesses 2x and 3x until it has measured), times 5
when emulated, times noise from run to run (lognormal, sigma 0.1); shipping inputs to a remote
node costs their bytes over a gigabit link. Round-robin and least-loaded (Nix's build-remote
rule: lowest running jobs per declared speed factor) run in the same simulation, driven the same
way and held to the same capability rule.

The lower bound is max(critical path, total work / capacity), each job at its fastest anywhere:
capacity as plain slots, and (tighter, still a bound) as slots weighted by node speed, total
work then in workstation-seconds. A feasibility bound, tighter again, shows how far even that is
from what any schedule can reach here (see `feasibility_bound`). crossyard is measured with no
history (default estimates) and after learning from one earlier run of the same catalog (other
noise). Target: learned within 1.15x of the lower bound, ahead of both others; exit 1 if not.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from crossyard.nodes import Member, Node, NodeFacts
from crossyard.placement import Assignment, Durations, Placer, Sample, Task, toolchains_on
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.toolchains import ToolchainTarget

TARGET = 1.15
PLATFORMS = (RISCV64, ARM64)
GO, RUST, DOCKER = "go1.24.4", "rustc 1.85.1", "docker 26.1.5 (linux/amd64)"
# How much longer a build takes than on the workstation (the simulation's truth; crossyard's
# defaults guess arm64 2x, riscv64 3x, emulated 5x until it has measured).
SLOWNESS = {"amd64": 1.0, "arm64": 2.5, "riscv64": 4.0}
EMULATION = 5.0
LINK_BYTES_PER_S = 100e6
LINK_LATENCY_S = 0.2
NOISE_SIGMA = 0.1  # lognormal spread of a job's duration from one run to the next
TICK_S = 2.0  # how often the scheduler looks again while a job waits for a busy node


def gcc(platform: Platform) -> str:
    return f"gcc 12.2.0 {platform.gnu_triplet}"


def tool(kind: str, platform: Platform, strategy: str, identity: str) -> ToolchainTarget:
    return ToolchainTarget(name=kind, kind=kind, platform=platform, strategy=strategy, available=True,
                           identity=identity, command=kind)


def cluster() -> list[Member]:
    """The workstation plans (its toolchains are the plan's); the boards were probed. Go targets
    every arch from anywhere; the compute modules also have Debian's riscv64 cross gcc and Rust's
    riscv64 std; their Docker engine is arm64, not the plan's amd64 one."""
    members = [Member(node=Node(name="ws", transport="local", arch=AMD64, max_jobs=8), slots=8)]
    for i in range(20):
        facts = NodeFacts(uname_m="aarch64", arch=ARM64, cores=4, memory=4 << 30, docker="docker 26.1.5 (linux/arm64)",
                          toolchains=(tool("go", ARM64, "native", GO), tool("go", RISCV64, "cross", GO),
                                      tool("c", ARM64, "native", gcc(ARM64)), tool("c", RISCV64, "cross", gcc(RISCV64)),
                                      tool("rust", ARM64, "native", RUST), tool("rust", RISCV64, "cross", RUST)))
        members.append(Member(node=Node(name=f"cm4-{i:02d}", transport="ssh", arch=ARM64, max_jobs=2), slots=2,
                              facts=facts))
    for i in range(3):
        # One board was left on an older Go: it disagrees with the plan's key, so no Go job goes there.
        go = GO if i < 2 else "go1.23.2"
        facts = NodeFacts(uname_m="riscv64", arch=RISCV64, cores=4, memory=8 << 30,
                          toolchains=(tool("go", RISCV64, "native", go), tool("go", ARM64, "cross", go),
                                      tool("c", RISCV64, "native", gcc(RISCV64)),
                                      tool("rust", RISCV64, "native", RUST)))
        members.append(Member(node=Node(name=f"rv-{i}", transport="ssh", arch=RISCV64, max_jobs=2), slots=2,
                              facts=facts))
    return members


SPEED_FACTOR = {"ws": 4.0, "cm4": 1.6, "rv": 1.0}  # what a Nix machines file would declare (the truth)


@dataclass(frozen=True, kw_only=True)
class SimJob:
    task: Task
    size: float  # seconds as a cross build on the workstation
    output_bytes: int
    source_bytes: int


def catalog(rng: random.Random) -> dict[str, SimJob]:
    """200 jobs: per platform 7 Kubernetes components, 25 Go tools, 8 C libraries and 12 programs
    on them, 12 Rust services (3 linking a C library), 36 images of 1-3 of those binaries. Three
    Go tools (cgo against the target's libraries) and four C programs (autotools running what
    they build) accept only native or emulated builds."""
    recipes: list[tuple[str, str, float, tuple[int, int], str, int, tuple[str, ...]]] = []
    native_only = {"tool-0", "tool-1", "tool-2", "app-0", "app-1", "app-2", "app-3"}
    for name in ("kubelet", "kubectl", "kube-proxy", "kubeadm", "kube-scheduler", "kube-controller-manager",
                 "kube-apiserver"):
        recipes.append((name, "go", rng.uniform(150, 300), (40 << 20, 120 << 20), "kubernetes", 250 << 20, ()))
    recipes += [(f"tool-{i}", "go", rng.uniform(15, 90), (8 << 20, 30 << 20), f"tool-{i}", rng.randint(1, 10) << 20, ())
                for i in range(25)]
    libs = [f"lib-{i}" for i in range(8)]
    recipes += [(lib, "c", rng.uniform(5, 25), (200 << 10, 2 << 20), lib, 1 << 20, ()) for lib in libs]
    recipes += [(f"app-{i}", "c", rng.uniform(8, 40), (100 << 10, 1 << 20), f"app-{i}", 1 << 20,
                 tuple(rng.sample(libs, rng.randint(1, 2)))) for i in range(12)]
    recipes += [(f"svc-{i}", "rust", rng.uniform(80, 300), (5 << 20, 20 << 20), f"svc-{i}", rng.randint(2, 50) << 20,
                 (rng.choice(libs),) if i < 3 else ()) for i in range(12)]
    binaries = [r[0] for r in recipes if not r[0].startswith("lib-")]
    recipes += [(f"image-{i}", "dockerfile", rng.uniform(3, 10), (0, 0), f"image-{i}", 100 << 10,
                 tuple(rng.sample(binaries, rng.randint(1, 3)))) for i in range(36)]
    jobs: dict[str, SimJob] = {}
    for name, kind, size, (low, high), source, source_bytes, deps in recipes:
        for platform in PLATFORMS:
            if kind == "dockerfile":  # on the workstation's amd64 engine, RUN steps under qemu
                identity, planned, strategies = DOCKER, tool("docker", platform, "emulated", DOCKER), ("native", "emulated")
            elif name in native_only:  # the workstation plans them under qemu, in a root of that arch
                identity = {"go": GO, "c": gcc(platform)}[kind]
                planned, strategies = tool(kind, platform, "emulated", identity), ("native", "emulated")
            else:
                identity = {"go": GO, "c": gcc(platform), "rust": RUST}[kind]
                planned, strategies = tool(kind, platform, "cross", identity), ("cross", "native", "emulated")
            task = Task(id=f"{name}@{platform.oci}", recipe=name, kind=kind, platform=platform, identity=identity,
                        strategies=strategies, deps=tuple(f"{d}@{platform.oci}" for d in deps), planned=planned,
                        source=f"sha256:{source}")
            jobs[task.id] = SimJob(task=task, size=size, output_bytes=rng.randint(low, high) if high else 0,
                                   source_bytes=source_bytes)
    assert len(jobs) == 200, len(jobs)
    return jobs


def truth(job: SimJob, member: Member, strategy: str, noise: float) -> float:
    return job.size * slowness(member) * (EMULATION if strategy == "emulated" else 1.0) * noise


def slowness(member: Member) -> float:
    return SLOWNESS[member.node.arch.architecture]


def options(job: SimJob, members: Sequence[Member]) -> list[tuple[Member, ToolchainTarget]]:
    return [(m, t) for m in members if isinstance(tools := toolchains_on(m, job.task), list) for t in tools]


@dataclass(frozen=True, kw_only=True)
class Bound:
    """Lower bounds on the makespan of one run (its realized durations, no transfers)."""

    critical_path: float  # the longest chain, each job at its fastest anywhere
    per_slot: float  # total work (each job at its fastest) / slots
    per_capacity: float  # total work in workstation-seconds / slots weighted by speed
    feasible: float  # `feasibility_bound`: no schedule of this run ends sooner

    @property
    def value(self) -> float:
        """The lower bound the target is measured against: max(critical path, work / capacity)."""
        return max(self.critical_path, self.per_slot, self.per_capacity)


def lower_bound(jobs: dict[str, SimJob], members: Sequence[Member], noise: dict[str, float]) -> Bound:
    """max(critical path, total work / capacity). A slot of a node `k` times slower than the
    workstation does at most T/k workstation-seconds of work in T (each job's work being its
    fastest duration anywhere, counted in workstation-seconds), so total work / Σ slots/k bounds
    the makespan too; with plain slots it does as well, more loosely: both are shown."""
    fastest = {i: min(truth(j, m, t.strategy, noise[i]) for m, t in options(j, members)) for i, j in jobs.items()}
    work = {i: min(truth(j, m, t.strategy, noise[i]) / slowness(m) for m, t in options(j, members))
            for i, j in jobs.items()}
    longest: dict[str, float] = {}
    for job_id in jobs:  # the catalog lists dependencies before dependents
        longest[job_id] = fastest[job_id] + max((longest[d] for d in jobs[job_id].task.deps), default=0.0)
    return Bound(critical_path=max(longest.values()), per_slot=sum(fastest.values()) / sum(m.slots for m in members),
                 per_capacity=sum(work.values()) / sum(m.slots / slowness(m) for m in members),
                 feasible=feasibility_bound(jobs, members, noise))


def feasibility_bound(jobs: dict[str, SimJob], members: Sequence[Member], noise: dict[str, float]) -> float:
    """A tighter lower bound, to tell how far the one above is from any real schedule. For a
    makespan T, a job can only run on a group of like nodes where its earliest start (its
    dependencies at their fastest), its duration there and the longest chain after it fit in T;
    and the jobs that can run only within a set of groups must fit in that set's capacity. The
    smallest T meeting both (bisection) bounds every schedule; it also covers the two above."""
    groups: dict[object, list[Member]] = {}
    for m in members:
        key = (m.node.node_class, m.facts.docker if m.facts else None,
               tuple((t.kind, t.platform, t.strategy, t.identity) for t in m.facts.toolchains) if m.facts else None)
        groups.setdefault(key, []).append(m)
    grouped = list(groups.values())
    duration = {i: {g: min(truth(j, m, t.strategy, noise[i]) for m, t in options(j, grouped[g][:1]))
                    for g in range(len(grouped)) if options(j, grouped[g][:1])} for i, j in jobs.items()}
    fastest = {i: min(d.values()) for i, d in duration.items()}
    head: dict[str, float] = {}
    for i, job in jobs.items():
        head[i] = max((head[d] + fastest[d] for d in job.task.deps), default=0.0)
    tail = dict.fromkeys(jobs, 0.0)
    for i in reversed(list(jobs)):
        for d in jobs[i].task.deps:
            tail[d] = max(tail[d], fastest[i] + tail[i])
    speed = [1 / slowness(g[0]) for g in grouped]
    capacity = [sum(m.slots for m in g) * speed[k] for k, g in enumerate(grouped)]
    subsets = [frozenset(c) for r in range(1, len(grouped) + 1) for c in itertools.combinations(range(len(grouped)), r)]

    def feasible(limit: float) -> bool:
        allowed = {}
        for i in jobs:
            allowed[i] = frozenset(g for g, d in duration[i].items() if head[i] + d + tail[i] <= limit)
            if not allowed[i]:
                return False
        return all(sum(min(duration[i][g] * speed[g] for g in allowed[i]) for i in jobs if allowed[i] <= subset)
                   <= limit * sum(capacity[g] for g in subset) for subset in subsets)

    low, high = 0.0, sum(fastest.values())
    while high - low > 0.5:
        middle = (low + high) / 2
        low, high = (low, middle) if feasible(middle) else (middle, high)
    return high


class Policy(Protocol):
    ready: dict[str, None]

    def add_ready(self, task_id: str) -> None: ...
    def assign(self, now: float) -> tuple[list[Assignment], list[tuple[Task, str]]]: ...
    def done(self, task_id: str, member: str, *, output_bytes: int = 0) -> None: ...


@dataclass(kw_only=True)
class Baseline:
    """Ready jobs in the order they became ready; each to a capable node with a free slot."""

    members: Sequence[Member]
    jobs: dict[str, SimJob]
    ready: dict[str, None] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)

    def add_ready(self, task_id: str) -> None:
        self.ready[task_id] = None

    def done(self, task_id: str, member: str, *, output_bytes: int = 0) -> None:
        self.running[member] -= 1

    def choose(self, free: list[tuple[int, Member, ToolchainTarget]]) -> tuple[int, Member, ToolchainTarget]:
        raise NotImplementedError

    def assign(self, now: float) -> tuple[list[Assignment], list[tuple[Task, str]]]:
        started = []
        for task_id in list(self.ready):
            job = self.jobs[task_id]
            free = [(i, m, t) for i, m in enumerate(self.members) for t in _tools(m, job.task)
                    if self.running.get(m.name, 0) < m.slots]
            if not free:
                continue
            _, member, toolchain = self.choose(free)
            del self.ready[task_id]
            self.running[member.name] = self.running.get(member.name, 0) + 1
            started.append(Assignment(task=job.task, member=member, toolchain=toolchain, attempt=1, estimate=0.0))
        return started, []


def _tools(member: Member, task: Task) -> list[ToolchainTarget]:
    found = toolchains_on(member, task)
    return found[:1] if isinstance(found, list) else []


@dataclass(kw_only=True)
class RoundRobin(Baseline):
    cursor: int = 0

    def choose(self, free: list[tuple[int, Member, ToolchainTarget]]) -> tuple[int, Member, ToolchainTarget]:
        count = len(self.members)
        chosen = min(free, key=lambda f: (f[0] - self.cursor) % count)
        self.cursor = chosen[0] + 1
        return chosen


@dataclass(kw_only=True)
class LeastLoaded(Baseline):
    def choose(self, free: list[tuple[int, Member, ToolchainTarget]]) -> tuple[int, Member, ToolchainTarget]:
        def load(f: tuple[int, Member, ToolchainTarget]) -> tuple[float, int, int]:
            running = self.running.get(f[1].name, 0)
            return running / SPEED_FACTOR[f[1].name.partition("-")[0]], running, f[0]

        return min(free, key=load)


def simulate(policy: Policy, jobs: dict[str, SimJob], noise: dict[str, float]) -> tuple[float, list[tuple[Assignment, float]]]:
    """Run the catalog to the end under `policy`; the makespan and what ran where, how long."""
    waiting = {i: len(j.task.deps) for i, j in jobs.items()}
    dependents: dict[str, list[str]] = {i: [] for i in jobs}
    for job_id, job in jobs.items():
        for dep in job.task.deps:
            dependents[dep].append(job_id)
    for job_id, count in waiting.items():
        if count == 0:
            policy.add_ready(job_id)
    held: dict[str, set[str]] = {}
    events: list[tuple[float, int, Assignment, float]] = []
    ran: list[tuple[Assignment, float]] = []
    now, sequence, finished = 0.0, 0, 0
    while finished < len(jobs):
        assignments, unplaceable = policy.assign(now)
        assert not unplaceable, unplaceable
        for assignment in assignments:
            job = jobs[assignment.task.id]
            member = assignment.member
            have = held.setdefault(member.name, set())
            shipped = 0.0
            if not member.holds_store:
                missing = [d for d in job.task.deps if d not in have]
                shipped = sum(jobs[d].output_bytes for d in missing) / LINK_BYTES_PER_S + LINK_LATENCY_S * len(missing)
                if job.task.source not in have:
                    shipped += job.source_bytes / LINK_BYTES_PER_S + LINK_LATENCY_S
                have.update(job.task.deps)
                have.add(job.task.source)
            took = shipped + truth(job, member, assignment.toolchain.strategy, noise[job.task.id])
            sequence += 1
            heapq.heappush(events, (now + took, sequence, assignment, took))
        assert events, "nothing runs and nothing can start"
        if policy.ready and events[0][0] > now + TICK_S:
            now += TICK_S  # the scheduler's periodic second look while a job waits for a node
            continue
        now, _, assignment, took = heapq.heappop(events)
        job_id = assignment.task.id
        held.setdefault(assignment.member.name, set()).add(job_id)
        policy.done(job_id, assignment.member.name, output_bytes=jobs[job_id].output_bytes)
        ran.append((assignment, took))
        finished += 1
        for after in dependents[job_id]:
            waiting[after] -= 1
            if waiting[after] == 0:
                policy.add_ready(after)
    return now, ran


def learned_from(ran: list[tuple[Assignment, float]]) -> Durations:
    durations = Durations()
    durations.learn(Sample(recipe=a.task.recipe, platform=a.task.platform, strategy=a.toolchain.strategy,
                           node_class=a.member.node.node_class, seconds=took) for a, took in ran)
    return durations


def noise_for(jobs: dict[str, SimJob], rng: random.Random) -> dict[str, float]:
    return {i: rng.lognormvariate(0.0, NOISE_SIGMA) for i in jobs}


@dataclass(frozen=True, kw_only=True)
class Row:
    seed: int
    bound: Bound
    makespans: dict[str, float]


COLUMNS = ("crossyard", "crossyard (no history)", "least-loaded", "round-robin")


def measure(seed: int) -> Row:
    rng = random.Random(seed)
    jobs = catalog(rng)
    members = cluster()
    tasks = [j.task for j in jobs.values()]
    earlier = noise_for(jobs, rng)  # a previous run of the same catalog, to learn from
    _, history = simulate(Placer(tasks, members, Durations()), jobs, earlier)
    noise = noise_for(jobs, rng)
    policies: dict[str, Callable[[], Policy]] = {
        "crossyard": lambda: Placer(tasks, members, learned_from(history)),
        "crossyard (no history)": lambda: Placer(tasks, members, Durations()),
        "least-loaded": lambda: LeastLoaded(members=members, jobs=jobs),
        "round-robin": lambda: RoundRobin(members=members, jobs=jobs),
    }
    return Row(seed=seed, bound=lower_bound(jobs, members, noise),
               makespans={name: simulate(make(), jobs, noise)[0] for name, make in policies.items()})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=10, help="catalogs to simulate (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="first catalog's seed")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = [measure(seed) for seed in range(args.seed, args.seed + args.graphs)]
    members = cluster()
    print(f"cluster: 1 amd64 workstation (8 slots), 20 arm64 and 3 riscv64 boards (2 slots each): "
          f"{sum(m.slots for m in members)} slots, {sum(m.slots / slowness(m) for m in members):.1f} "
          "workstation-slots of capacity; 200 jobs per catalog; makespan in seconds (x lower bound)")
    header = (f"{'catalog':>7} {'path':>6} {'work/slots':>10} {'work/capacity':>13} {'bound':>6} {'feasible':>8} | "
              + " | ".join(f"{c:>22}" for c in COLUMNS))
    print(header)
    print("-" * len(header))
    for row in rows:
        b = row.bound
        cells = " | ".join(f"{row.makespans[c]:>10.0f} {row.makespans[c] / b.value:>9.3f}x" for c in COLUMNS)
        print(f"{row.seed:>7} {b.critical_path:>6.0f} {b.per_slot:>10.0f} {b.per_capacity:>13.0f} {b.value:>6.0f} "
              f"{b.feasible:>8.0f} | {cells}")
    ratios = {c: [r.makespans[c] / r.bound.value for r in rows] for c in COLUMNS}
    print("-" * len(header))
    for label, pick in (("mean", statistics.fmean), ("worst", max)):
        print(f"{label:>7} {'':>6} {'':>10} {'':>13} {'':>6} {'':>8} | "
              + " | ".join(f"{'':>10} {pick(ratios[c]):>9.3f}x" for c in COLUMNS))
    feasible = [r.makespans["crossyard"] / r.bound.feasible for r in rows]
    print(f"crossyard / feasibility bound: mean {statistics.fmean(feasible):.3f}x, worst {max(feasible):.3f}x; "
          f"feasibility bound / lower bound: up to {max(r.bound.feasible / r.bound.value for r in rows):.3f}x "
          "(what no schedule can beat here)")
    ahead = all(r.makespans["crossyard"] < min(r.makespans["least-loaded"], r.makespans["round-robin"]) for r in rows)
    met = max(ratios["crossyard"]) <= TARGET and ahead
    print(f"target: crossyard within {TARGET}x of the lower bound on every catalog and ahead of both others: "
          f"{'met' if met else 'NOT met'} ({time.perf_counter() - started:.1f}s)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
