"""Progress of a build: a rich bar on a terminal, one line per finished job otherwise."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from ..plan import Job
from ..scheduler import JobResult

STYLE = {"built": "green", "cached": "dim", "failed": "bold red", "skipped": "yellow"}


class ConsoleReporter:
    """Implements scheduler.Reporter on stderr."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: object = None
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        if self.console.is_terminal and not self.quiet:
            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=self.console, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("building", total=total)

    def job_started(self, job: Job) -> None:
        with self._lock:
            if self.progress is not None:
                self.progress.update(self.task, description=f"building {job.id}")  # type: ignore[arg-type]

    def job_finished(self, result: JobResult) -> None:
        with self._lock:
            if self.progress is not None:
                self.progress.advance(self.task)  # type: ignore[arg-type]
            if self.quiet and result.status == "cached":
                return
            style = STYLE.get(result.status, "")
            took = f" ({result.seconds:.1f}s)" if result.status == "built" else ""
            self.console.print(f"[{style}]{result.status:>7}[/] {result.job_id}{took}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
