"""A run's build metrics in the Prometheus text exposition format (version 0.0.4), for the
cluster's Grafana: node_exporter's textfile collector (or any file scraper) reads the file.

Every value describes one run, so every metric is a gauge or a histogram of that run; none is a
counter (a counter would have to survive from run to run). The `run` label is absent on
purpose: the file is replaced by the next run, and a label per run would grow series forever.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from ..records import JOB_STATUSES
from .timeline import Timeline

# Job durations span a 1-second cached C file to an hour-long native riscv64 Kubernetes build.
BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def render(timeline: Timeline, *, finished: float) -> str:
    """The metrics of the run `timeline` shows; `finished` is its end (epoch seconds)."""
    runs = timeline.runs
    out: list[str] = []
    count = {s: sum(1 for r in runs if r.record.status == s) for s in JOB_STATUSES}
    _gauge(out, "crossyard_run_jobs", "Jobs of the run, by outcome.",
           [({"status": s}, count[s]) for s in JOB_STATUSES])
    looked_up = count["built"] + count["cached"] + count["failed"]
    _gauge(out, "crossyard_run_cache_hit_ratio",
           "Cache hits over jobs whose input key was looked up (built, cached, failed); 0 with none.",
           [({}, count["cached"] / looked_up if looked_up else 0.0)])
    arches = sorted({r.record.platform.goarch for r in runs})  # each gets a sample, 0 included
    _gauge(out, "crossyard_run_failures", "Jobs that failed in the run, by target arch.",
           _by_arch(arches, ((r.record.platform.goarch, 1.0) for r in runs if r.record.status == "failed")))
    _gauge(out, "crossyard_run_retries",
           "Restarts of jobs whose node was lost mid-job (attempts beyond the first), by target arch.",
           _by_arch(arches, ((r.record.platform.goarch, float(r.retries)) for r in runs)))
    most, left = timeline.queue()
    _gauge(out, "crossyard_run_queue_depth_max",
           "Most jobs waiting at once (dependencies done, not started).", [({}, most)])
    _gauge(out, "crossyard_run_queue_depth",
           "Jobs ready but never started when the run ended (0 when every job ran or was skipped).", [({}, left)])
    _summary(out, "crossyard_run_queue_wait_seconds",
             "Seconds jobs waited between dependencies done and start.", timeline.waits())
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        if run.ran:
            samples[(run.node or "unknown", run.record.platform.goarch)].append(run.seconds)
    _histogram(out, "crossyard_run_job_seconds",
               "Seconds per job that ran (built or failed), by node and target arch.", samples)
    _gauge(out, "crossyard_run_seconds", "Wall-clock seconds of the run's jobs.", [({}, timeline.length)])
    _gauge(out, "crossyard_run_finished_timestamp_seconds", "When the run ended (Unix time).",
           [({}, finished)])
    return "\n".join(out) + "\n"


def _by_arch(arches: Sequence[str], values: Iterable[tuple[str, float]]) -> list[tuple[dict[str, str], float]]:
    sums: dict[str, float] = dict.fromkeys(arches, 0.0)
    for arch, value in values:
        sums[arch] += value
    return [({"arch": arch}, sums[arch]) for arch in arches]


def _gauge(out: list[str], name: str, text: str, samples: Sequence[tuple[dict[str, str], float]]) -> None:
    out += [f"# HELP {name} {_help(text)}", f"# TYPE {name} gauge"]
    out += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]


def _summary(out: list[str], name: str, text: str, values: Sequence[float]) -> None:
    out += [f"# HELP {name} {_help(text)}", f"# TYPE {name} summary",
            f"{name}_sum {_number(sum(values))}", f"{name}_count {len(values)}"]


def _histogram(out: list[str], name: str, text: str, samples: dict[tuple[str, str], list[float]]) -> None:
    out += [f"# HELP {name} {_help(text)}", f"# TYPE {name} histogram"]
    for (node, arch), values in sorted(samples.items()):
        labels = {"node": node, "arch": arch}
        for bound in BUCKETS:
            below = sum(1 for v in values if v <= bound)
            out.append(f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {below}")
        out.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {len(values)}")
        out.append(f"{name}_sum{_labels(labels)} {_number(sum(values))}")
        out.append(f"{name}_count{_labels(labels)} {len(values)}")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _escape(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value))  # Go's ParseFloat (Prometheus) reads Python's float repr
