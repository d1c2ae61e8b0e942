"""Running a hand-made job spec on an executor from a test: its inputs (one source tree), the
job in a thread of its own, and waiting for its log to say something (to kill or cancel it then).
Shared by the SSH and container executor tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossyard.executors import Executor
from crossyard.jobspec import JobSpec
from crossyard.sources import ResolvedSource, tree_digest


class TreeInputs:
    """Inputs of a hand-made spec: one source tree, no dependency files."""

    def __init__(self, tree: Path) -> None:
        self.resolved = ResolvedSource(tree=tree, digest=tree_digest(tree), epoch=None)

    def source(self, digest: str) -> ResolvedSource:
        assert digest == self.resolved.digest
        return self.resolved

    def file(self, digest: str) -> Path:
        raise KeyError(digest)


@dataclass(kw_only=True)
class Background:
    thread: threading.Thread
    outcome: dict[str, Any]


def in_background(executor: Executor, spec: JobSpec, inputs: Any, log: Path) -> Background:
    outcome: dict[str, Any] = {}

    def job() -> None:
        try:
            with executor.run(spec, inputs, log) as outputs:
                outcome["outputs"] = outputs
        except BaseException as error:  # handed to the test
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    return Background(thread=thread, outcome=outcome)


def wait_for_text(path: Path, text: str, background: Background, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and text in path.read_text(errors="replace")):
        assert background.thread.is_alive(), f"the job ended early: {background.outcome}"
        assert time.monotonic() < deadline, f"`{text}` never reached {path}"
        time.sleep(0.05)
