"""A build's record on disk: `.crossyard/runs/<run id>/` with `summary.json` (what `build
--json` prints), `report.html` (the timeline) and `metrics.prom` (Prometheus text format), and
`.crossyard/runs/latest` pointing at the newest.

The run id sorts by time and does not collide: UTC time to the second and 6 random hex digits.
The directory is written under a temporary name and renamed whole, so a reader (or the `latest`
link) never sees a run with some of its files missing.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..oci.image import rfc3339
from . import html, metrics
from .timeline import Observed, Timeline, dependencies, timeline

if TYPE_CHECKING:
    from ..pipeline import BuildResult

SUMMARY = "summary.json"
REPORT = "report.html"
METRICS = "metrics.prom"
LATEST = "latest"


@dataclass(frozen=True, kw_only=True)
class Run:
    """A run written to disk, and the summary it holds."""

    id: str
    directory: Path
    summary: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.directory / REPORT

    @property
    def metrics(self) -> Path:
        return self.directory / METRICS


def new_run_id(now: float | None = None) -> str:
    stamp = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)
    return f"{stamp:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def result_timeline(result: BuildResult, observed: Observed | None = None) -> Timeline:
    depends = {name: recipe.depends for name, recipe in result.recipes.items()}
    return timeline(result.records, deps=dependencies(result.records, depends), observed=observed)


def write_run(runs_dir: Path, result: BuildResult, *, observed: Observed | None = None,
              run_id: str | None = None) -> Run:
    """Write the run's three files into `runs_dir/<run id>/` and point `latest` at it."""
    run_id = run_id or new_run_id()
    directory = runs_dir / run_id
    line = result_timeline(result, observed)
    summary = _summary(result, line, run_id, directory)
    title = f"crossyard run {run_id}"
    nodes = len(line.nodes)
    text = (f"{result.count('built')} built, {result.count('cached')} cached, {result.count('failed')} failed, "
            f"{result.count('skipped')} skipped in {result.seconds:.1f}s on {nodes} node{'s' * (nodes != 1)}")
    finished = observed.finished if observed is not None and observed.finished is not None else time.time()
    staging = runs_dir / f".{run_id}.tmp"
    try:
        # One line: json's C encoder (indent= takes the pure-Python one, ~10 ms for 200 jobs,
        # paid by every build); `python -m json.tool` or jq shows it indented.
        staging.mkdir(parents=True)
        # The staging directory is renamed whole: each file needs no rename of its own, only to
        # be on disk before the directory's name says it is there.
        _write(staging / SUMMARY, json.dumps(summary, sort_keys=True, separators=(",", ":")) + "\n")
        _write(staging / REPORT, html.render(line, title=title, summary=text))
        _write(staging / METRICS, metrics.render(line, finished=finished))
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _point_latest(runs_dir, run_id)
    return Run(id=run_id, directory=directory, summary=summary)


def _write(path: Path, text: str) -> None:
    with path.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _summary(result: BuildResult, line: Timeline, run_id: str, directory: Path) -> dict[str, Any]:
    """`result.to_json()` with every job's node, start and end (from what the run observed where
    its record lacks them: a failed job's record may name neither) and where the run's files are."""
    summary = result.to_json()
    jobs = []
    for entry, run in zip(summary["jobs"], line.runs, strict=True):
        entry = dict(entry)
        entry["attempts"] = max(int(entry.get("attempts") or 0), run.attempts)
        if run.ran and run.timed:
            if not entry.get("node") and run.node:
                entry["node"] = run.node
            if not entry.get("started"):
                entry["started"] = rfc3339(int(line.origin + run.start))
            if not entry.get("finished"):
                entry["finished"] = rfc3339(int(line.origin + run.end))
        jobs.append(entry)
    summary["jobs"] = jobs
    summary["run"] = {"id": run_id, "directory": str(directory), "summary": str(directory / SUMMARY),
                      "report": str(directory / REPORT), "metrics": str(directory / METRICS)}
    summary["report"] = str(directory / REPORT)
    return summary


def _point_latest(runs_dir: Path, run_id: str) -> None:
    """`latest` → `run_id`, replaced in one rename (relative, so the workspace can move)."""
    temporary = runs_dir / f".{LATEST}.{secrets.token_hex(4)}"
    os.symlink(run_id, temporary)
    try:
        os.replace(temporary, runs_dir / LATEST)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
