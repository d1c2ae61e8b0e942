"""Planning and no-op build speed: `python benchmarks/bench_plan.py`.

1. plan 2,000 jobs from 1,000 synthetic C recipes (each with its own source tree, chains of
   dependencies), through the real CLI (`crossyard plan --json`) and in-process;
2. a no-op `crossyard build` of 200 cached jobs (100 recipes x riscv64/arm64, built for real first).

Baseline: the issue's target, 1 second each on this machine. Prints the times and the verdict.
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


def cli(ws: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "crossyard.cli", "-C", str(ws), *args],
                            capture_output=True, text=True, env=CLI_ENV)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"crossyard {' '.join(args)} failed:\n{result.stderr}")
    return elapsed, result


def best_of(n: int, func) -> float:  # type: ignore[no-untyped-def]
    return min(func() for _ in range(n))


def verdict(seconds: float) -> str:
    return f"{seconds:6.3f} s  (target < {TARGET_SECONDS:.1f} s: {'OK' if seconds < TARGET_SECONDS else 'MISSED'})"


def main() -> int:
    from crossyard.project import Project, load_settings
    from crossyard.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="crossyard-bench-") as tmp:
        big = Path(tmp) / "plan"
        make_workspace(big, 1000)
        cli(big, "plan", "--json")  # warm the toolchain probe cache, as any second run has it
        _, result = cli(big, "plan", "--json")
        jobs = len(json.loads(result.stdout)["jobs"])
        assert jobs == 2000, jobs
        cli_plan = best_of(3, lambda: cli(big, "plan", "--json")[0])

        def in_process() -> float:
            started = time.perf_counter()
            workspace = Workspace(root=big)
            graph = Project(workspace, load_settings(workspace)).graph()
            assert len(graph.jobs) == 2000
            return time.perf_counter() - started

        process_plan = best_of(3, in_process)

        small = Path(tmp) / "noop"
        make_workspace(small, 100)
        started = time.perf_counter()
        cli(small, "build", "--json", "-j", str(os.cpu_count() or 1))
        first = time.perf_counter() - started
        _, result = cli(small, "build", "--json")
        counts = json.loads(result.stdout)["counts"]
        assert counts == {"built": 0, "cached": 200, "failed": 0, "skipped": 0}, counts
        noop = best_of(3, lambda: cli(small, "build", "--json")[0])

    print("crossyard planning benchmark (best of 3)")
    print(f"  plan 2,000 jobs / 1,000 recipes, CLI process     {verdict(cli_plan)}")
    print(f"  plan 2,000 jobs / 1,000 recipes, in-process      {verdict(process_plan)}")
    print(f"  no-op build of 200 cached jobs, CLI process      {verdict(noop)}")
    print(f"  (first build of those 200 jobs, real cross gcc:  {first:6.1f} s)")
    return 0 if max(cli_plan, noop) < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
