"""What a person sees while a build runs: a live table with one row per node (the jobs it runs
now and for how long, what it finished and what failed there) above the overall progress, on a
terminal; one plain line per event otherwise (a CI log keeps every line, and a redrawn table
would only fill it with copies).

`LiveReporter` implements `scheduler.Reporter`. It also records what it saw (`observed()`): the
run's files (`report.runs`) take times and nodes from there where a record lacks them.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..plan import Job
from ..records import BuildRecord
from .html import duration
from .timeline import Observed, Recorder

STYLE = {"built": "green", "cached": "dim", "failed": "bold red", "skipped": "yellow"}
UNPLACED = "(node not known yet)"  # a job started by a scheduler that did not say where


@dataclass
class _Node:
    done: int = 0
    failed: int = 0


class LiveReporter:
    """`scheduler.Reporter` on stderr. `quiet` (a `--json` summary goes to stdout): no live view
    and no start lines, finished jobs only, cache hits left out."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False,
                 refresh_per_second: float = 4, terminal: bool | None = None) -> None:
        # terminal: None asks the stream (isatty); tests force the live view on a StringIO
        self.console = Console(file=stream or sys.stderr, highlight=False, force_terminal=terminal)
        self.quiet = quiet
        self.refresh_per_second = refresh_per_second
        self.recorder = Recorder()
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._total = 0
        self._began = time.monotonic()
        self._running: dict[str, tuple[str, float]] = {}  # job id → (node, monotonic start)
        self._steps: dict[str, str] = {}  # job id → what it does now, as its executor said
        self._attempts: dict[str, int] = {}
        self._nodes: dict[str, _Node] = {}
        self._counts: dict[str, int] = dict.fromkeys(STYLE, 0)

    # -- scheduler.Reporter ------------------------------------------------------------------

    def start(self, total: int) -> None:
        self.recorder.start()
        with self._lock:
            self._total = total
            self._began = time.monotonic()
        if self.console.is_terminal and not self.quiet:
            self._live = Live(get_renderable=self.render, console=self.console, transient=True,
                              refresh_per_second=self.refresh_per_second,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def job_started(self, job: Job, node: str = "") -> None:
        """`node`: where the scheduler placed the job (the executor's node; "" when unknown)."""
        self.recorder.job_started(job.id, node)
        with self._lock:
            self._running[job.id] = (node or UNPLACED, time.monotonic())
            attempt = self._attempts[job.id] = self._attempts.get(job.id, 0) + 1
            if node:
                self._nodes.setdefault(node, _Node())
        if self._live is not None:
            self._live.refresh()  # now, not at the next tick: the line printed above it must agree
        elif not self.quiet:
            where = f" on {node}" if node else ""
            again = f" (attempt {attempt})" if attempt > 1 else ""
            self.console.print(f"  [cyan]start[/] {escape(job.id)}{escape(where)}{again}")

    def job_finished(self, record: BuildRecord) -> None:
        self.recorder.job_finished(record.id)
        with self._lock:
            started_on, _ = self._running.pop(record.id, ("", 0.0))
            self._steps.pop(record.id, None)
            self._counts[record.status] = self._counts.get(record.status, 0) + 1
            node = record.node or (started_on if started_on != UNPLACED else "")
            if record.status in ("built", "failed") and node:
                tally = self._nodes.setdefault(node, _Node())
                tally.done += record.status == "built"
                tally.failed += record.status == "failed"
            finished = sum(self._counts.values())
        if self._live is not None:
            self._live.refresh()
        if self.quiet and record.status == "cached":
            return
        style = STYLE.get(record.status, "")
        where = f" on {node}" if node and record.status in ("built", "failed") else ""
        took = f" ({record.seconds:.1f}s)" if record.status in ("built", "failed") else ""
        self.console.print(f"[{style}]{record.status:>7}[/] {escape(record.id)}{escape(where)}{took} "
                           f"[dim][{finished}/{self._total}][/]")

    def job_progress(self, job_id: str, text: str) -> None:
        """What a running job does now (a BuildKit step), under its id in the live view; not
        printed without one (a CI log would fill with steps: the job's log has them)."""
        with self._lock:
            if job_id in self._running:
                self._steps[job_id] = text

    def stop(self) -> None:
        self.recorder.stop()
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- views -------------------------------------------------------------------------------

    def observed(self) -> Observed:
        return self.recorder.observed()

    def render(self) -> RenderableType:
        """The live view: one row per node, then the overall progress."""
        now = time.monotonic()
        with self._lock:
            running = dict(self._running)
            steps = dict(self._steps)
            nodes = {name: _Node(done=n.done, failed=n.failed) for name, n in self._nodes.items()}
            counts = dict(self._counts)
            total = self._total
            elapsed = now - self._began
        by_node: dict[str, list[tuple[str, float]]] = {}
        for job_id, (node, began) in running.items():
            by_node.setdefault(node, []).append((job_id, now - began))
            nodes.setdefault(node, _Node())
        table = Table(box=None, pad_edge=False, expand=False, show_edge=False)
        for column, justify in (("node", "left"), ("running now", "left"), ("for", "right"),
                                ("done", "right"), ("failed", "right")):
            table.add_column(column, justify=justify, header_style="bold")  # type: ignore[arg-type]
        for name in sorted(nodes, key=lambda n: (n == UNPLACED, n)):
            jobs = sorted(by_node.get(name, []), key=lambda item: -item[1])
            tally = nodes[name]
            table.add_row(
                escape(name),
                "\n".join(escape(job_id) + (f" [dim]{escape(_short(steps[job_id]))}[/]" if job_id in steps else "")
                          for job_id, _ in jobs) or "[dim]idle[/]",
                "\n".join(duration(round(seconds)) for _, seconds in jobs),
                str(tally.done),
                f"[red]{tally.failed}[/]" if tally.failed else "0",
            )
        finished = sum(counts.values())
        line = Text.assemble(
            (f"{finished}/{total} ", "bold"),
            f"· {counts.get('built', 0)} built · {counts.get('cached', 0)} cached · ",
            (f"{counts.get('failed', 0)} failed", "red" if counts.get("failed") else ""),
            f" · {counts.get('skipped', 0)} skipped · {len(running)} running · {duration(round(elapsed))}",
        )
        return Group(table, ProgressBar(total=max(total, 1), completed=finished, width=60), line)


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
