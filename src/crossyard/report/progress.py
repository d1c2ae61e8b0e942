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
from ..records import BuildRecord

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

    def job_finished(self, record: BuildRecord) -> None:
        with self._lock:
            if self.progress is not None:
                self.progress.advance(self.task)  # type: ignore[arg-type]
            if self.quiet and record.status == "cached":
                return
            style = STYLE.get(record.status, "")
            took = f" ({record.seconds:.1f}s)" if record.status == "built" else ""
            self.console.print(f"[{style}]{record.status:>7}[/] {record.id}{took}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
