"""Smoke tests (`[test] run`, under qemu-user for a foreign platform) run in a process group of
their own: on a timeout, and when the test itself is done, everything it started is stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import run_cli
from helpers.appws import riscv64_c_workspace

pytestmark = [pytest.mark.integration]

# The parent forks a child that sleeps, writes "child-pid process-group" where PIDFILE says,
# then hangs too ("hang") or exits at once, leaving the child behind ("detach").
FORKER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    pid_t child = fork();
    if (child == 0) {
        sleep(600);
        return 0;
    }
    FILE *f = fopen(getenv("PIDFILE"), "w");
    fprintf(f, "%d %d\n", (int)child, (int)getpgrp());
    fclose(f);
    printf("forked %d\n", (int)child);
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "detach") == 0)
        return 0;
    sleep(600);
    return 0;
}
"""


def recipe(ws: Path, mode: str, pidfile: Path, timeout: object) -> None:
    (ws / "recipes" / "forker.toml").write_text(
        'name = "forker"\nkind = "c"\nplatforms = ["linux/riscv64"]\n'
        '[source]\npath = "../src"\n[c]\nsources = ["forker.c"]\nstatic = true\n'
        f'[test]\nrun = ["forker", "{mode}"]\nexpect = "forked"\ntimeout = {timeout}\n'
        f'env = {{ PIDFILE = "{pidfile}" }}\n'
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return riscv64_c_workspace(tmp_path, {"forker.c": FORKER})


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes in process group `group`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


def pids(pidfile: Path) -> tuple[int, int]:
    """(the forked child's pid, the test's process group), as the program wrote them."""
    child, group = (int(x) for x in pidfile.read_text().split())
    return child, group


def kill_left_over(pidfile: Path) -> None:
    """After a failure, the sleeping child (never our own process group: without the fix the
    test shares it with pytest)."""
    if pidfile.exists():
        child, group = pids(pidfile)
        if group == os.getpgrp():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def test_a_hanging_test_is_stopped_at_its_timeout_with_what_it_forked(ws: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    recipe(ws, "hang", pidfile, 3)
    try:
        started = time.monotonic()
        result = run_cli("-C", str(ws), "build")
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        # under qemu-user it got a second try, which hung too
        assert "smoke test `forker hang` did not finish in 3s ([test] timeout) (tried 2 times under qemu-user)" \
            in result.stderr
        assert "Traceback" not in result.stderr
        assert elapsed < 60
        child, group = pids(pidfile)
        assert group != os.getpgrp()  # the test ran in a group of its own…
        assert group_members(group) == []  # …and nothing of it survives crossyard
        assert child != group  # the forked child was one of them
    finally:
        kill_left_over(pidfile)


def test_a_child_left_behind_by_a_passing_test_is_stopped_at_once(ws: Path, tmp_path: Path) -> None:
    """The test passes and exits; its sleeping child must neither keep the build waiting
    (until the timeout) nor outlive it."""
    pidfile = tmp_path / "pids"
    recipe(ws, "detach", pidfile, 60)
    try:
        started = time.monotonic()
        result = run_cli("-C", str(ws), "build")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 45
        _, group = pids(pidfile)
        assert group_members(group) == []
    finally:
        kill_left_over(pidfile)


# Hangs the first time it runs (MARKER missing: made, then sleep), answers the second: qemu-user's
# fork deadlock, which strikes one run and not the next.
HANG_ONCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    const char *marker = getenv("MARKER");
    if (access(marker, F_OK) != 0) {
        FILE *f = fopen(marker, "w");
        fclose(f);
        sleep(600);
    }
    printf("answered\n");
    return 0;
}
"""


def test_a_test_that_hangs_once_under_qemu_gets_a_second_try(tmp_path: Path) -> None:
    ws = riscv64_c_workspace(tmp_path, {"once.c": HANG_ONCE})
    marker = tmp_path / "marker"
    (ws / "recipes" / "once.toml").write_text(
        'name = "once"\nkind = "c"\nplatforms = ["linux/riscv64"]\n'
        '[source]\npath = "../src"\n[c]\nsources = ["once.c"]\nstatic = true\n'
        f'[test]\nrun = ["once"]\nexpect = "answered"\ntimeout = 3\nenv = {{ MARKER = "{marker}" }}\n'
    )
    result = run_cli("-C", str(ws), "build")
    assert result.returncode == 0, result.stderr
    assert marker.exists()  # the first try did hang


@pytest.mark.parametrize("value", ["0", "-5", '"30"', "true", "1.5"])
def test_timeout_must_be_a_positive_whole_number(ws: Path, tmp_path: Path, value: str) -> None:
    recipe(ws, "hang", tmp_path / "pids", value)
    result = run_cli("-C", str(ws), "plan")
    assert result.returncode == 2
    assert "forker.toml: [test] timeout" in result.stderr and "whole number above 0" in result.stderr
    assert "Traceback" not in result.stderr
