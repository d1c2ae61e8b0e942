"""A run as a timeline: where and when each job ran, drawn by the HTML report and counted by the
metrics. Pure: records (and what the reporter saw while the run went on) in, values out.

Two sources, one answer per job. A `BuildRecord` says what happened; its times have whole-second
resolution and a failed job's record may have neither node nor times (the executor failed before
it said where it ran). `Recorder` — fed by the live reporter — saw every start (with its node,
when the scheduler names one) and every finish with sub-second times, and every restart of a
job whose node was lost. Observed times win; the record fills in the rest.

A cache hit did not run on any node in this run: its record's node and times are those of the
build that put it in the store. It sits in no node's lane, at the moment it was looked up.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..records import BuildRecord

RAN: tuple[str, ...] = ("built", "failed")  # statuses of jobs that ran on a node in this run


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One start of a job, on `node` ("" when the scheduler did not say)."""

    node: str
    started: float  # epoch seconds


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What a reporter saw of one job."""

    attempts: tuple[Attempt, ...] = ()
    finished: float | None = None


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What a reporter saw of a whole run."""

    jobs: Mapping[str, Observation] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None


class Recorder:
    """Collects `Observed` from the scheduler's reporter calls (any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, list[Attempt]] = {}
        self._finished: dict[str, float] = {}
        self._started: float | None = None
        self._stopped: float | None = None

    def start(self) -> None:
        with self._lock:
            self._started = time.time()

    def job_started(self, job_id: str, node: str) -> None:
        with self._lock:
            self._attempts.setdefault(job_id, []).append(Attempt(node=node, started=time.time()))

    def job_finished(self, job_id: str) -> None:
        with self._lock:
            self._finished[job_id] = time.time()

    def stop(self) -> None:
        with self._lock:
            self._stopped = time.time()

    def observed(self) -> Observed:
        with self._lock:
            ids = set(self._attempts) | set(self._finished)
            return Observed(
                jobs={i: Observation(attempts=tuple(self._attempts.get(i, ())), finished=self._finished.get(i))
                      for i in ids},
                started=self._started, finished=self._stopped,
            )


@dataclass(frozen=True, kw_only=True)
class LostAttempt:
    """An earlier attempt of a job, on a node that was lost while it ran."""

    node: str
    start: float
    end: float


@dataclass(frozen=True, kw_only=True)
class JobRun:
    """One job placed on the timeline. Times are seconds since the run's start."""

    record: BuildRecord
    node: str  # where it ran in this run; "" for a cache hit, a skipped job, an unknown node
    start: float
    end: float
    ready: float  # when its dependencies were done (it could have started)
    attempts: int  # starts, this run (1 unless its node was lost and it ran again)
    timed: bool  # start and end are known, not placed at `ready` for want of times
    lost: tuple[LostAttempt, ...] = ()

    @property
    def ran(self) -> bool:
        return self.record.status in RAN

    @property
    def first_start(self) -> float:
        return self.lost[0].start if self.lost else self.start

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    @property
    def seconds(self) -> float:
        """How long it ran in this run (0 for a cache hit: its record holds the original build's)."""
        if not self.ran:
            return 0.0
        return self.record.seconds if self.record.seconds > 0 else max(self.end - self.start, 0.0)


@dataclass(frozen=True, kw_only=True)
class Timeline:
    runs: tuple[JobRun, ...]  # in the records' (dependency) order
    origin: float  # epoch seconds of t = 0
    length: float  # seconds from the run's start to its last event

    @property
    def nodes(self) -> tuple[str, ...]:
        """Nodes that ran a job (or lost one) in this run, sorted."""
        names = {r.node for r in self.runs if r.node} | {a.node for r in self.runs for a in r.lost if a.node}
        return tuple(sorted(names))

    def on(self, node: str) -> tuple[JobRun, ...]:
        return tuple(r for r in self.runs if r.node == node)

    def queue(self) -> tuple[int, int]:
        """(most jobs waiting at once, jobs still waiting at the end): waiting = dependencies
        done, not started (its first start: a job re-queued after its node was lost is not
        counted again). A job whose start is unknown never counts as waiting."""
        events: list[tuple[float, int]] = []
        for run in self.runs:
            if run.ran and run.timed:
                events += [(run.ready, 1), (max(run.first_start, run.ready), -1)]
        depth = most = 0
        for _, change in sorted(events):  # at equal times -1 sorts first: ready and started at once is no wait
            depth += change
            most = max(most, depth)
        return most, depth

    def waits(self) -> list[float]:
        """Seconds each job that ran waited between ready and its first start."""
        return [max(r.first_start - r.ready, 0.0) for r in self.runs if r.ran and r.timed]


def parse_time(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 time (`2026-01-01T00:00:00Z`), None for "" or a bad one."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def dependencies(records: Sequence[BuildRecord], depends: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Job id → the ids of this run's jobs it waited for (`depends`: recipe → recipes it
    depends on; a dependency is the same recipe's job for the same platform, as plan makes it)."""
    ids = {r.id for r in records}
    return {r.id: tuple(d for d in (f"{name}@{r.platform.oci}" for name in depends.get(r.recipe, ()))
                        if d in ids)
            for r in records}


def timeline(records: Sequence[BuildRecord], *, deps: Mapping[str, Sequence[str]] | None = None,
             observed: Observed | None = None) -> Timeline:
    """Place `records` (in dependency order) on one time axis."""
    seen = observed or Observed()
    deps = deps or {}
    spans: dict[str, tuple[float, float] | None] = {}
    for record in records:
        spans[record.id] = _span(record, seen.jobs.get(record.id))
    known = [t for span in spans.values() if span for t in span]
    known += [o.finished for o in seen.jobs.values() if o.finished is not None]
    origin = seen.started if seen.started is not None else min(known, default=0.0)
    runs: list[JobRun] = []
    ends: dict[str, float] = {}
    for record in records:
        seen_job = seen.jobs.get(record.id, Observation())
        ready = max((ends[d] for d in deps.get(record.id, ()) if d in ends), default=0.0)
        span = spans[record.id]
        if span is not None:
            start, end = span[0] - origin, span[1] - origin
        elif seen_job.finished is not None:  # a cache hit or a skip: at the moment it was decided
            start = end = seen_job.finished - origin
        else:
            start = end = ready
        ends[record.id] = end
        attempts = seen_job.attempts
        node = ""
        if record.status in RAN:
            node = record.node or (attempts[-1].node if attempts else "")
        lost = tuple(LostAttempt(node=a.node, start=a.started - origin, end=b.started - origin)
                     for a, b in itertools.pairwise(attempts))
        # `attempts` is on records from schedulers that retry; one start otherwise
        count = (max(getattr(record, "attempts", 1), len(attempts), 1) if record.status in RAN
                 else len(attempts))
        first = lost[0].start if lost else start
        runs.append(JobRun(record=record, node=node, start=start, end=end, ready=min(ready, first),
                           attempts=count, timed=span is not None, lost=lost))
    last = max((r.end for r in runs), default=0.0)
    if seen.finished is not None:
        last = max(last, seen.finished - origin)
    return Timeline(runs=tuple(runs), origin=origin, length=max(last, 0.0))


def _span(record: BuildRecord, seen: Observation | None) -> tuple[float, float] | None:
    """Epoch start and end of a job that ran in this run, if known."""
    if record.status not in RAN:
        return None
    start: float | None = None
    if seen is not None and seen.attempts:
        start = seen.attempts[-1].started
    if start is None:
        start = parse_time(record.started)
    if start is None:
        return None
    if seen is not None and seen.finished is not None:
        return start, max(seen.finished, start)
    return start, start + max(record.seconds, 0.0)
