"""Planning and no-op build speed: `python benchmarks/bench_plan.py [--baseline REV]`.

1. plan 2,000 jobs from 1,000 synthetic C recipes (each with its own source tree, chains of
   dependencies), through the real CLI (`crossyard plan --json`) and in-process;
2. a no-op `crossyard build` of 200 cached jobs (100 recipes x riscv64/arm64, built for real first).

Each is measured twice in the same run: for this checkout's code, and for the baseline revision's
(`git archive REV`, default: the last commit before the JobSpec/BuildRecord redesign), so
"no slower than before" is read off one table. The target of 1 second each still applies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 1.0
# The last commit before the core redesign (issue #11): JobSpec, Executor, BuildRecord, pipeline.
BASELINE = "cc5334133c6ed50a44dac72900e8eb73176a5ee8"
REPO = Path(__file__).resolve().parent.parent


def make_workspace(root: Path, recipes: int, *, chain: int = 10) -> None:
    (root / "recipes").mkdir(parents=True)
    (root / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64", "linux/arm64"]\n')
    for i in range(recipes):
        src = root / "src" / f"r{i:04d}"
        src.mkdir(parents=True)
        (src / "lib.c").write_text(f"int value_{i}(void) {{ return {i}; }}\n")
        depends = f'depends = ["r{i - 1:04d}"]\n' if i % chain else ""
        (root / "recipes" / f"r{i:04d}.toml").write_text(
            f'name = "r{i:04d}"\nkind = "c"\nversion = "1.0.{i}"\n'
            f'platforms = ["linux/riscv64", "linux/arm64"]\n{depends}'
            f'[source]\npath = "../src/r{i:04d}"\n[c]\nsources = ["lib.c"]\noutput = "libr{i:04d}.a"\n'
        )


# An installed crossyard runs from cached bytecode; a shell with PYTHONDONTWRITEBYTECODE=1 would
# recompile every module on each run and time the compiler instead.
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

IN_PROCESS = """
import sys, time
from pathlib import Path
from crossyard.project import Project, load_settings
from crossyard.workspace import Workspace
best = None
for _ in range(3):
    started = time.perf_counter()
    workspace = Workspace(root=Path(sys.argv[1]))
    graph = Project(workspace, load_settings(workspace)).graph()
    assert len(graph.jobs) == 2000
    took = time.perf_counter() - started
    best = took if best is None else min(best, took)
print(best)
"""


def cli(ws: Path, *args: str, src: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "crossyard.cli", "-C", str(ws), *args],
                            capture_output=True, text=True, env={**CLI_ENV, "PYTHONPATH": str(src)})
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"crossyard {' '.join(args)} failed:\n{result.stderr}")
    return elapsed, result


def best_of(n: int, func) -> float:  # type: ignore[no-untyped-def]
    return min(func() for _ in range(n))


def verdict(seconds: float) -> str:
    return f"target < {TARGET_SECONDS:.1f} s: {'OK' if seconds < TARGET_SECONDS else 'MISSED'}"


def measure(src: Path, tmp: Path) -> dict[str, float]:
    """The three timings for the code under `src` (a `src/` directory with the crossyard package)."""
    big = tmp / "plan"
    make_workspace(big, 1000)
    cli(big, "plan", "--json", src=src)  # warm the toolchain probe cache, as any second run has it
    _, result = cli(big, "plan", "--json", src=src)
    jobs = len(json.loads(result.stdout)["jobs"])
    assert jobs == 2000, jobs
    cli_plan = best_of(3, lambda: cli(big, "plan", "--json", src=src)[0])
    process = subprocess.run([sys.executable, "-c", IN_PROCESS, str(big)], capture_output=True, text=True,
                             env={**CLI_ENV, "PYTHONPATH": str(src)}, check=True)
    process_plan = float(process.stdout.strip())

    small = tmp / "noop"
    make_workspace(small, 100)
    started = time.perf_counter()
    cli(small, "build", "--json", "-j", str(os.cpu_count() or 1), src=src)
    first = time.perf_counter() - started
    _, result = cli(small, "build", "--json", src=src)
    counts = json.loads(result.stdout)["counts"]
    assert counts == {"built": 0, "cached": 200, "failed": 0, "skipped": 0}, counts
    noop = best_of(3, lambda: cli(small, "build", "--json", src=src)[0])
    return {"cli_plan": cli_plan, "process_plan": process_plan, "noop": noop, "first": first}


def main() -> int:
    baseline = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else BASELINE
    with tempfile.TemporaryDirectory(prefix="crossyard-bench-") as tmp_name:
        tmp = Path(tmp_name)
        old_src = tmp / "baseline"
        old_src.mkdir()
        # the whole tree: src/crossyard/data links to the repository's toolchains/ and certs/
        archive = subprocess.run(["git", "-C", str(REPO), "archive", baseline], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        (tmp / "old").mkdir()
        (tmp / "new").mkdir()
        old = measure(old_src / "src", tmp / "old")
        new = measure(REPO / "src", tmp / "new")

    print(f"crossyard planning benchmark (best of 3); baseline = {baseline[:12]}, same run")
    rows = (("plan 2,000 jobs / 1,000 recipes, CLI process", "cli_plan"),
            ("plan 2,000 jobs / 1,000 recipes, in-process", "process_plan"),
            ("no-op build of 200 cached jobs, CLI process", "noop"))
    print(f"  {'':48} {'baseline':>9} {'now':>9}  verdict")
    for label, key in rows:
        print(f"  {label:48} {old[key]:8.3f}s {new[key]:8.3f}s  {verdict(new[key])}")
    print(f"  (first build of those 200 jobs, real cross gcc: baseline {old['first']:.1f} s, now {new['first']:.1f} s)")
    return 0 if max(new["cli_plan"], new["noop"]) < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
