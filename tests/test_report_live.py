"""The live view: one row per node with what runs there now, plain lines off a terminal, the
old `job_started(job)` call and the new `job_started(job, node)` both accepted."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from crossyard.platforms import ARM64, RISCV64
from crossyard.records import BuildRecord
from crossyard.report.live import UNPLACED, LiveReporter


def _job(job_id: str) -> Any:
    return SimpleNamespace(id=job_id)  # the reporter reads a plan Job's id only


def _record(job_id: str, status: str, node: str = "", seconds: float = 1.25) -> BuildRecord:
    recipe, _, platform = job_id.partition("@")
    return BuildRecord(recipe=recipe, platform=RISCV64 if platform.endswith("riscv64") else ARM64,
                       status=status, node=node, seconds=seconds)


def _screen(reporter: LiveReporter) -> str:
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(reporter.render())
    return console.export_text()


def test_plain_lines_off_a_terminal_old_and_new_calls() -> None:
    out = io.StringIO()
    reporter = LiveReporter(out)
    reporter.start(4)
    reporter.job_started(_job("a@linux/riscv64"))  # a scheduler that does not say where
    reporter.job_started(_job("b@linux/arm64"), "ssh:cm4")
    reporter.job_finished(_record("c@linux/arm64", "cached", node="ssh:elsewhere"))
    reporter.job_finished(_record("b@linux/arm64", "built", node="ssh:cm4"))
    reporter.job_started(_job("a@linux/riscv64"), "ssh:board-a")  # restarted elsewhere
    reporter.job_finished(_record("a@linux/riscv64", "failed"))
    reporter.stop()
    lines = out.getvalue().splitlines()
    assert lines[0].strip() == "start a@linux/riscv64"
    assert lines[1].strip() == "start b@linux/arm64 on ssh:cm4"
    assert lines[2].split() == ["cached", "c@linux/arm64", "[1/4]"]  # not "on" a node: it ran nowhere
    assert lines[3].split() == ["built", "b@linux/arm64", "on", "ssh:cm4", "(1.2s)", "[2/4]"]
    assert lines[4].strip() == "start a@linux/riscv64 on ssh:board-a (attempt 2)"
    # the record names no node (the executor failed first): the one the scheduler named
    assert lines[5].split() == ["failed", "a@linux/riscv64", "on", "ssh:board-a", "(1.2s)", "[3/4]"]
    assert "\x1b[" not in out.getvalue()  # no control codes in a CI log
    seen = reporter.observed()
    assert [a.node for a in seen.jobs["a@linux/riscv64"].attempts] == ["", "ssh:board-a"]
    assert seen.jobs["c@linux/arm64"].attempts == () and seen.jobs["c@linux/arm64"].finished is not None
    assert seen.started is not None and seen.finished is not None and seen.finished >= seen.started


def test_quiet_keeps_failures_and_builds_only() -> None:
    out = io.StringIO()
    reporter = LiveReporter(out, quiet=True)
    reporter.start(2)
    reporter.job_started(_job("b@linux/arm64"), "ssh:cm4")
    reporter.job_finished(_record("c@linux/arm64", "cached"))
    reporter.job_finished(_record("b@linux/arm64", "built", node="ssh:cm4"))
    reporter.stop()
    assert [line.split()[:2] for line in out.getvalue().splitlines()] == [["built", "b@linux/arm64"]]


def test_live_view_one_row_per_node_with_running_jobs_and_counts() -> None:
    reporter = LiveReporter(io.StringIO(), refresh_per_second=20)
    reporter.start(5)
    reporter.job_started(_job("go@linux/riscv64"), "ssh:board-a")
    reporter.job_started(_job("c@linux/riscv64"), "ssh:board-a")
    reporter.job_started(_job("lib@linux/arm64"), "ssh:cm4")
    reporter.job_started(_job("old@linux/arm64"))
    reporter.job_finished(_record("lib@linux/arm64", "built", node="ssh:cm4"))
    reporter.job_started(_job("app@linux/arm64"), "ssh:cm4")
    reporter.job_finished(_record("app@linux/arm64", "failed"))
    rows = {line.split()[0]: line for line in _screen(reporter).splitlines() if line.strip()}
    assert "go@linux/riscv64" in rows["ssh:board-a"]
    assert rows["ssh:board-a"].split()[-2:] == ["0", "0"]
    assert "idle" in rows["ssh:cm4"] and rows["ssh:cm4"].split()[-2:] == ["1", "1"]
    screen = _screen(reporter)
    assert "c@linux/riscv64" in screen  # the second slot of board-a, on its own line
    assert UNPLACED in screen and "old@linux/arm64" in screen
    assert "2/5 · 1 built · 0 cached · 1 failed · 0 skipped · 3 running" in screen
    reporter.stop()


def test_live_view_on_a_terminal_prints_finished_jobs_above_it() -> None:
    out = io.StringIO()
    reporter = LiveReporter(out, terminal=True, refresh_per_second=20)
    reporter.start(1)
    reporter.job_started(_job("go@linux/riscv64"), "ssh:board-a")
    reporter.job_finished(_record("go@linux/riscv64", "built", node="ssh:board-a"))
    reporter.stop()
    text = out.getvalue()
    assert "ssh:board-a" in text and "built" in text
    assert "start go@linux/riscv64" not in text  # the live view shows starts; no line each


def test_a_running_jobs_step_shows_beside_it_and_goes_with_it() -> None:
    """What a BuildKit job does now (its executor's `progress`) is in the running-now column;
    off a terminal nothing is printed for it (the job's log has every step)."""
    out = io.StringIO()
    reporter = LiveReporter(out)
    reporter.start(2)
    reporter.job_started(_job("web@linux/riscv64"), "buildkit:unix:///run/bk.sock")
    reporter.job_progress("web@linux/riscv64", '[2/2] RUN ["/usr/local/bin/hello-go"] started')
    reporter.job_progress("gone@linux/arm64", "a job that is not running is not shown")
    screen = _screen(reporter)
    assert 'web@linux/riscv64 [2/2] RUN ["/usr/local/bin/hello-go"] started' in screen
    assert "not running" not in screen
    reporter.job_finished(_record("web@linux/riscv64", "built", node="buildkit:unix:///run/bk.sock"))
    assert "RUN" not in _screen(reporter)
    reporter.stop()
    assert "RUN" not in out.getvalue()
