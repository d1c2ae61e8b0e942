"""The placer's decisions, driven by hand with a clock of our own (as the benchmark does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossyard.nodes import Member, Node, NodeFacts
from crossyard.placement import ASSEMBLY_KIND, ASSEMBLY_S, Durations, Placer, Sample, Task
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.toolchains import ToolchainTarget

GO = "go1.24.4"


def tool(platform: Platform, strategy: str, identity: str = GO) -> ToolchainTarget:
    return ToolchainTarget(name="go", kind="go", platform=platform, strategy=strategy, available=True,
                           identity=identity, command="go")


def task(name: str, *, platform: Platform = RISCV64, deps: tuple[str, ...] = (),
         strategies: tuple[str, ...] = ("cross", "native", "emulated"), planned: str = "cross") -> Task:
    return Task(id=f"{name}@{platform.oci}", recipe=name, kind="go", platform=platform, identity=GO,
                strategies=strategies, deps=tuple(f"{d}@{platform.oci}" for d in deps),
                planned=tool(platform, planned), source=f"sha256:{name}")


def node(name: str, arch: Platform, *tools: ToolchainTarget, slots: int = 1, transport: str = "ssh") -> Member:
    return Member(node=Node(name=name, transport=transport, arch=arch, max_jobs=slots), slots=slots,
                  facts=NodeFacts(uname_m=arch.uname_m, arch=arch, cores=slots, memory=2**32, toolchains=tools))


def learned(*entries: tuple[str, Platform, str, str, float]) -> Durations:
    durations = Durations()
    durations.learn(Sample(recipe=r, platform=p, strategy=s, node_class=c, seconds=t) for r, p, s, c, t in entries)
    return durations


def started(placer: Placer, now: float) -> list[tuple[str, str, str]]:
    assignments, unplaceable = placer.assign(now)
    assert unplaceable == []
    return [(a.task.id, a.member.name, a.toolchain.strategy) for a in assignments]


def test_default_estimates_are_a_base_times_the_strategy_and_node() -> None:
    durations = Durations()
    assert durations.estimate("x", RISCV64, "cross", "local/amd64") == 60
    assert durations.estimate("x", RISCV64, "native", "ssh/riscv64") == 180
    assert durations.estimate("x", RISCV64, "cross", "ssh/arm64") == 120  # a slow board is slow at anything
    assert durations.estimate("x", RISCV64, "emulated", "local/amd64") == 300
    # one measurement gives the recipe its size everywhere else
    durations.learn([Sample(recipe="x", platform=RISCV64, strategy="cross", node_class="local/amd64", seconds=20)])
    assert durations.estimate("x", RISCV64, "cross", "local/amd64") == 20
    assert durations.estimate("x", RISCV64, "native", "ssh/riscv64") == pytest.approx(60)
    assert durations.estimate("unknown", RISCV64, "cross", "local/amd64") == pytest.approx(20)  # the median
    durations.learn([Sample(recipe="x", platform=RISCV64, strategy="cross", node_class="local/amd64", seconds=40)])
    assert durations.estimate("x", RISCV64, "cross", "local/amd64") == 30  # the newest run weighs half


def test_learned_node_speeds_carry_over_to_recipes_not_measured_there() -> None:
    # The arm64 boards turn out 4x slower than the workstation, not the 2x guessed: a recipe only
    # ever built on the workstation is expected to take 4x there as well.
    durations = Durations()
    durations.learn(Sample(recipe=r, platform=ARM64, strategy=s, node_class=c, seconds=t) for r, s, c, t in (
        ("a", "cross", "local/amd64", 10), ("a", "native", "ssh/arm64", 40),
        ("b", "cross", "local/amd64", 30), ("b", "native", "ssh/arm64", 120),
        ("c", "cross", "local/amd64", 50)))
    assert durations.estimate("c", ARM64, "native", "ssh/arm64") == pytest.approx(200, rel=0.01)
    assert durations.estimate("c", ARM64, "native", "ssh/riscv64") == pytest.approx(150, rel=0.01)  # default 3x


def test_durations_are_kept_atomically_and_a_damaged_file_is_no_knowledge(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    durations = Durations(path)
    durations.learn([Sample(recipe="x", platform=ARM64, strategy="native", node_class="ssh/arm64", seconds=12.5)])
    durations.save()
    assert Durations.load(path).entries == {"x|linux/arm64|native|ssh/arm64": 12.5}
    assert [p.name for p in tmp_path.iterdir()] == ["durations.json"]  # no temp file left
    path.write_text('{"version": 1, "entries": {"x|linux/arm64|native|ssh/arm64": "NaN", "x|y": 3}}')
    assert Durations.load(path).entries == {}
    path.write_text("{not json")
    assert Durations.load(path).entries == {}
    path.write_text(json.dumps({"version": 99, "entries": {"a|b|c|d": 1}}))
    assert Durations.load(path).entries == {}


def test_rank_is_own_estimate_plus_the_longest_chain_after_it() -> None:
    tasks = [task("lib"), task("app", deps=("lib",)), task("img", deps=("app",)), task("tool", deps=("lib",))]
    durations = learned(*((n, RISCV64, "cross", "ssh/amd64", s) for n, s in
                          (("lib", 10), ("app", 100), ("img", 5), ("tool", 30))))
    placer = Placer(tasks, [node("ws", AMD64, tool(RISCV64, "cross"))], durations)
    assert placer.rank == {"lib@linux/riscv64": 115, "app@linux/riscv64": 105, "img@linux/riscv64": 5,
                           "tool@linux/riscv64": 30}


def test_ready_jobs_start_highest_rank_first_within_the_slots() -> None:
    tasks = [task("a"), task("b"), task("c"), task("d", deps=("c",))]
    placer = Placer(tasks, [node("ws", AMD64, tool(RISCV64, "cross"), slots=2)])
    for t in ("a", "b", "c"):
        placer.add_ready(f"{t}@linux/riscv64")
    assert [s[0] for s in started(placer, 0.0)] == ["c@linux/riscv64", "a@linux/riscv64"]
    assert started(placer, 1.0) == []  # both slots are taken
    placer.done("a@linux/riscv64", "ws")
    assert [s[0] for s in started(placer, 2.0)] == ["b@linux/riscv64"]


def test_a_job_waits_for_a_much_faster_busy_node_and_the_next_takes_the_idle_one() -> None:
    ws = node("ws", AMD64, tool(RISCV64, "cross"), tool(ARM64, "cross"))
    board = node("rv1", RISCV64, tool(RISCV64, "native"))
    durations = learned(("long", RISCV64, "cross", "ssh/amd64", 10), ("long", RISCV64, "native", "ssh/riscv64", 100),
                        ("next", RISCV64, "cross", "ssh/amd64", 10), ("next", RISCV64, "native", "ssh/riscv64", 20),
                        ("busy", ARM64, "cross", "ssh/amd64", 10))
    placer = Placer([task("busy", platform=ARM64), task("long"), task("next")], [ws, board], durations)
    placer.add_ready("busy@linux/arm64")
    assert started(placer, 0.0) == [("busy@linux/arm64", "ws", "cross")]
    placer.add_ready("long@linux/riscv64")
    placer.add_ready("next@linux/riscv64")
    # `long` would end at 108.5 on the idle board, at 20.5 on the workstation once that is free
    # (expected at 10; 0.5 s to send the source): it waits. `next` then finds the workstation
    # reserved until 20.5 (it would end at 31 there) and ends at 28.5 on the board: it starts.
    assert started(placer, 8.0) == [("next@linux/riscv64", "rv1", "native")]
    placer.done("busy@linux/arm64", "ws")
    assert started(placer, 9.0) == [("long@linux/riscv64", "ws", "cross")]


def test_emulated_is_the_last_resort() -> None:
    ws = node("ws", AMD64, tool(RISCV64, "emulated"), slots=4)
    board = node("rv1", RISCV64, tool(RISCV64, "native"))
    placer = Placer([task("a", planned="emulated"), task("b", planned="emulated")], [ws, board])
    placer.add_ready("a@linux/riscv64")
    placer.add_ready("b@linux/riscv64")
    # Until measured: native riscv64 3x a cross build, emulated 5x. `a` goes to the idle board;
    # `b` would wait for it (ending at 361) or run emulated at once (ending at 300.5).
    assert started(placer, 0.0) == [("a@linux/riscv64", "rv1", "native"), ("b@linux/riscv64", "ws", "emulated")]
    # On a tie, not emulated.
    even = Placer([task("c", planned="emulated")], [ws, board],
                  learned(("c", RISCV64, "emulated", "ssh/amd64", 50), ("c", RISCV64, "native", "ssh/riscv64", 50)))
    even.add_ready("c@linux/riscv64")
    assert started(even, 0.0) == [("c@linux/riscv64", "rv1", "native")]


def test_a_job_goes_where_its_inputs_already_are() -> None:
    one = node("one", ARM64, tool(ARM64, "native"))
    two = node("two", ARM64, tool(ARM64, "native"))
    tasks = [task("lib", platform=ARM64), task("app", platform=ARM64, deps=("lib",))]
    placer = Placer(tasks, [one, two], link_bytes_per_s=1e6)
    placer.add_ready("lib@linux/arm64")
    assert started(placer, 0.0) == [("lib@linux/arm64", "one", "native")]
    placer.done("lib@linux/arm64", "one", output_bytes=50_000_000)  # 50 s to send elsewhere
    placer.add_ready("app@linux/arm64")
    assert started(placer, 1.0) == [("app@linux/arm64", "one", "native")]
    assert placer._transfer(tasks[1], placer.members["two"]) == pytest.approx(50 + 2 * placer.link_latency_s)


def test_refused_and_lost_members_are_not_offered_the_job_again() -> None:
    members = [node(n, ARM64, tool(ARM64, "native")) for n in ("a", "b", "c")]
    placer = Placer([task("x", platform=ARM64), task("y", platform=ARM64)], members)
    placer.add_ready("x@linux/arm64")
    assert started(placer, 0.0) == [("x@linux/arm64", "a", "native")]
    placer.refuse("x@linux/arm64", "a", "toolchain root go-trixie is not prepared")
    assert placer.attempts["x@linux/arm64"] == 0
    assert started(placer, 0.0) == [("x@linux/arm64", "b", "native")]
    assert placer.lost("x@linux/arm64", "b")
    placer.add_ready("y@linux/arm64")
    assert sorted(started(placer, 1.0)) == [("x@linux/arm64", "c", "native"), ("y@linux/arm64", "a", "native")]
    placer.lost("x@linux/arm64", "c")
    placer.done("y@linux/arm64", "a")
    assignments, unplaceable = placer.assign(2.0)
    assert assignments == []
    ((failed, why),) = unplaceable
    assert failed.id == "x@linux/arm64"
    assert why == "a: toolchain root go-trixie is not prepared; b: lost during this run; c: lost during this run"


def test_a_job_that_could_go_elsewhere_leaves_room_for_work_only_one_node_can_do() -> None:
    # The image builds only on the workstation's engine (the plan's identity) and is ready as soon
    # as `lib` is; `app` would end sooner on the workstation (70 against 120.5 on the board), but
    # there it would hold the one slot the image needs: it goes to the board.
    engine = "docker 26.1.5 (linux/amd64)"
    image = Task(id="img@linux/arm64", recipe="img", kind="dockerfile", platform=ARM64, identity=engine,
                 strategies=("native", "emulated"), deps=("lib@linux/arm64",), source="sha256:img",
                 planned=ToolchainTarget(name="docker", kind="dockerfile", platform=ARM64, strategy="emulated",
                                         available=True, identity=engine))
    tasks = [task("lib", platform=ARM64), task("app", platform=ARM64), image]
    ws = Member(node=Node(name="ws", transport="local", arch=AMD64, max_jobs=1), slots=1)
    board = Member(node=Node(name="cm4", transport="ssh", arch=ARM64, max_jobs=1), slots=1,
                   facts=NodeFacts(uname_m="aarch64", arch=ARM64, cores=1, memory=2**32, docker="docker 26.1.5 "
                                   "(linux/arm64)", toolchains=(tool(ARM64, "native"),)))
    durations = learned(("lib", ARM64, "cross", "local/amd64", 10), ("lib", ARM64, "native", "ssh/arm64", 20),
                        ("app", ARM64, "cross", "local/amd64", 60), ("app", ARM64, "native", "ssh/arm64", 120),
                        ("img", ARM64, "emulated", "local/amd64", 300))
    placer = Placer(tasks, [ws, board], durations)
    assert placer.rank["lib@linux/arm64"] == 310
    placer.add_ready("lib@linux/arm64")
    placer.add_ready("app@linux/arm64")
    assert started(placer, 0.0) == [("lib@linux/arm64", "ws", "cross"), ("app@linux/arm64", "cm4", "native")]
    placer.done("lib@linux/arm64", "ws")
    placer.add_ready("img@linux/arm64")
    assert started(placer, 10.0) == [("img@linux/arm64", "ws", "emulated")]


class CountingDurations(Durations):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def estimate(self, recipe: str, platform: Platform, strategy: str, node_class: str) -> float:
        self.calls += 1
        return super().estimate(recipe, platform, strategy, node_class)


def test_each_option_is_estimated_once_however_often_placement_is_asked() -> None:
    # The scheduler asks after every event and every tick while jobs wait: a 200-job run on 24
    # nodes asked the model some 190,000 times, the bulk of the placer's time.
    members = [node(f"b{i}", ARM64, tool(ARM64, "native")) for i in range(3)]
    durations = CountingDurations()
    placer = Placer([task(f"t{i}", platform=ARM64) for i in range(6)], members, durations)
    for i in range(6):
        placer.add_ready(f"t{i}@linux/arm64")
    first = durations.calls
    assert first == 6 * 3  # for the ranks: every job on every member, once
    for now in range(10):
        placer.assign(float(now))
    assert durations.calls == first
    # A lost member is forgotten: the jobs are estimated again, on the members left.
    (lost,) = placer.members["b0"].running
    assert placer.lost(lost, "b0")
    (done,) = placer.members["b1"].running
    placer.done(done, "b1")
    assert started(placer, 11.0) == [(lost, "b1", "native")]
    assert durations.calls > first


def assembly(name: str, *deps: str) -> Task:
    """An image's assembly, as the scheduler files it (`scheduler.image_task`)."""
    planned = ToolchainTarget(name="assembler", kind=ASSEMBLY_KIND, platform=RISCV64, strategy="cross",
                              available=True, identity="crossyard image assembly", command="crossyard")
    return Task(id=f"image:{name}", recipe=name, kind=ASSEMBLY_KIND, platform=RISCV64,
                identity=planned.identity, strategies=("cross",), deps=deps, planned=planned)


def test_an_image_is_assembled_only_where_the_store_is_and_counts_seconds_not_a_builds_minutes() -> None:
    # The board is idle and would build anything of the plan; the workstation is busy. The image
    # still waits for the workstation: the store is there. Unmeasured, it is ASSEMBLY_S, not the
    # 60 s of an unknown build, and once measured, what was measured.
    ws = Member(node=Node(name="ws", transport="local", arch=AMD64, max_jobs=1), slots=1)
    board = node("board", ARM64, tool(RISCV64, "cross"), slots=1)
    tasks = [task("long"), assembly("app")]
    placer = Placer(tasks, [ws, board])
    assert [o.estimate for o in placer._candidates(tasks[1])] == [ASSEMBLY_S]
    placer.add_ready("long@linux/riscv64")
    assert started(placer, 0) == [("long@linux/riscv64", "ws", "cross")]
    placer.add_ready("image:app")
    assert started(placer, 1) == []  # not on the idle board
    placer.done("long@linux/riscv64", "ws")
    assert started(placer, 60) == [("image:app", "ws", "cross")]
    measured = learned(("app", RISCV64, "cross", "local/amd64", 12.0))
    assert [o.estimate for o in Placer(tasks, [ws, board], measured)._candidates(tasks[1])] == [12.0]


def test_with_every_slot_busy_a_job_no_node_can_run_is_still_reported_at_once() -> None:
    # Placement stops weighing ready jobs once no slot is free now; a job that no member can run
    # at all must still come back as unplaceable in that same call, not wait for a free slot.
    board = node("board", ARM64, tool(RISCV64, "cross"), slots=1)
    tasks = [task("a"), task("b"), task("cgo", strategies=("native",), planned="native")]
    placer = Placer(tasks, [board])
    for t in tasks:
        placer.add_ready(t.id)
    assignments, unplaceable = placer.assign(0)
    assert [a.task.id for a in assignments] == ["a@linux/riscv64"]
    assert [t.id for t, _ in unplaceable] == ["cgo@linux/riscv64"]
    assert "board: it builds linux/riscv64 only as cross" in unplaceable[0][1]
    assert list(placer.ready) == ["b@linux/riscv64"]


def test_a_member_without_slots_is_no_candidate() -> None:
    idle = node("zero", RISCV64, tool(RISCV64, "native"), slots=0)
    placer = Placer([task("a")], [idle])
    placer.add_ready("a@linux/riscv64")
    assignments, unplaceable = placer.assign(0)
    assert assignments == [] and [t.id for t, _ in unplaceable] == ["a@linux/riscv64"]
def test_a_recipes_named_toolchain_is_the_only_one_a_node_may_use() -> None:
    """A recipe with `toolchains = ["go-k8s"]` (a root with the Go packages its GOPATH build imports)
    is not sent to a node whose only Go has the same release but is another definition."""
    from dataclasses import replace

    from crossyard.placement import toolchains_on

    named = replace(task("kubectl"), toolchains=("go-k8s",))
    plain_go = node("rv1", AMD64, tool(RISCV64, "cross"))
    assert toolchains_on(plain_go, named) == "it has no `go-k8s` toolchain for linux/riscv64"
    assert toolchains_on(plain_go, task("kubectl")) == [tool(RISCV64, "cross")]
    k8s_go = replace(tool(RISCV64, "cross"), name="go-k8s")
    assert toolchains_on(node("rv2", AMD64, tool(RISCV64, "cross"), k8s_go), named) == [k8s_go]


def test_a_buildkit_job_goes_to_a_buildkitd_of_its_identity_native_first() -> None:
    identity = "buildkit v0.13.2 r1"

    def daemon(name: str, *platforms: Platform, build: str = identity) -> Member:
        return Member(node=Node(name=name, transport="buildkit", arch=platforms[0], address=f"unix:///{name}"),
                      slots=1, facts=NodeFacts(uname_m=platforms[0].uname_m, arch=platforms[0], cores=1, memory=0,
                                               buildkit=build, buildkit_platforms=platforms))

    planned = ToolchainTarget(name="buildkit", kind="dockerfile", platform=RISCV64, strategy="emulated",
                              available=True, identity=identity, command="unix:///amd")
    web = Task(id="web@linux/riscv64", recipe="web", kind="dockerfile", platform=RISCV64, identity=identity,
               strategies=("native", "emulated"), deps=(), planned=planned)
    here = Member(node=Node(name="local", transport="local", arch=AMD64), slots=4)  # the plan's machine
    amd, rv = daemon("amd", AMD64, RISCV64, ARM64), daemon("rv", RISCV64)
    placer = Placer([web], [here, amd, rv, daemon("old", RISCV64, build="buildkit v0.12.0")])
    placer.add_ready(web.id)
    assert started(placer, 0.0) == [("web@linux/riscv64", "rv", "native")]
    # Busy or absent, the emulating daemon takes it; never the machine without a buildkitd.
    alone = Placer([web], [here, amd])
    alone.add_ready(web.id)
    assert started(alone, 0.0) == [("web@linux/riscv64", "amd", "emulated")]
    arm = Placer([web], [here, daemon("arm", ARM64)])
    arm.add_ready(web.id)
    assignments, unplaceable = arm.assign(0.0)
    assert assignments == [] and [t.id for t, _ in unplaceable] == [web.id]
    assert "its workers build linux/arm64, not linux/riscv64" in unplaceable[0][1]
    assert "it is no buildkitd" in unplaceable[0][1]


def test_a_job_joining_anothers_run_takes_no_slot_and_ends_like_any_job() -> None:
    """`join` (a ready job starts inside a run on that member: a buildkitd solving a recipe's
    platforms at once) and `ride` (a job `assign` just started there gives its slot back): the
    member's one slot stays with the run, and done/lost/refuse treat the joined job as any."""
    a, b, c = task("web"), task("web", platform=ARM64), task("other")
    member = node("n", AMD64, tool(RISCV64, "cross"), tool(ARM64, "cross"), slots=1)
    placer = Placer([a, b, c], [member])
    for t in (a, b, c):
        placer.add_ready(t.id)
    [first] = placer.assign(0.0)[0]
    joined = placer.join(b.id, "n", 0.0)
    assert joined is not None and (joined.task.id, joined.member.name, joined.attempt) == (b.id, "n", 1)
    assert b.id not in placer.ready and placer.history[b.id] == ["n"]
    assert placer.join(b.id, "n", 0.0) is None  # started already
    assert started(placer, 1.0) == []  # the one slot is the first job's run; the other job waits
    placer.done(b.id, "n")
    placer.done(first.task.id, "n")
    assert [x[0] for x in started(placer, 2.0)] == [c.id]
    # A member that cannot run the job is not joined, nor one that would emulate it where
    # another member builds it natively.
    arm_only = Placer([a], [node("arm", ARM64, tool(ARM64, "native"))])
    arm_only.add_ready(a.id)
    assert arm_only.join(a.id, "arm", 0.0) is None and a.id in arm_only.ready
    board = node("rv", RISCV64, tool(RISCV64, "native"))
    emulating = node("amd", AMD64, tool(RISCV64, "emulated"), tool(ARM64, "emulated"))
    placer = Placer([a, b], [emulating, board])
    placer.add_ready(a.id)
    assert placer.join(a.id, "amd", 0.0) is None and a.id in placer.ready
    assert placer.join(a.id, "rv", 0.0) is not None


def test_a_job_assign_started_can_ride_in_anothers_run_and_free_its_slot() -> None:
    a, b, c = task("web"), task("web", platform=ARM64), task("other")
    member = node("n", AMD64, tool(RISCV64, "cross"), tool(ARM64, "cross"), slots=2)
    placer = Placer([a, b, c], [member])
    for t in (a, b):
        placer.add_ready(t.id)
    assert len(placer.assign(0.0)[0]) == 2
    placer.add_ready(c.id)
    assert started(placer, 0.5) == []  # both slots taken
    placer.ride(b.id, "n")
    assert [x[0] for x in started(placer, 1.0)] == [c.id]
    placer.lost(b.id, "n")  # lost as any job: back in the queue, the member out of the run
    assert b.id in placer.ready and placer.toolchain_on(b.id, "n") is None
