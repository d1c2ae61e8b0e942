"""A run's report as one self-contained HTML page: one lane per node, one bar per job.

Bars are placed with CSS percentages of the run's length; the hover text is the `title`
attribute, so the page needs no script, no font and no network, and reads the same in a CI
artifact viewer as in a browser. Classes name the states a test (or a stylesheet) can find:
`lane node` per node, `lane store` for jobs that ran nowhere (cache hits, skips), `bar` per job
with its status (`built cached failed skipped`) and `retried` when it had to start again;
`lost` marks the part of a retried job that ran on a node that went away.
"""

from __future__ import annotations

from html import escape

from .timeline import JobRun, LostAttempt, Timeline

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d232a;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em}
.summary{margin:0 0 1em;color:#444}
.legend{display:flex;gap:1.2em;flex-wrap:wrap;margin:0 0 1em;padding:0;list-style:none}
.legend li{display:flex;align-items:center;gap:.4em}
.legend .swatch{position:static;display:inline-block;width:1.6em;height:1em;border-radius:3px;box-sizing:border-box}
.timeline{border:1px solid #d0d7de;border-radius:6px;padding:.5em 1em}
.axis,.lane{display:grid;grid-template-columns:14em 1fr;align-items:center}
.axis .track{height:1.4em;border-bottom:1px solid #d0d7de}
.tick{position:absolute;bottom:0;transform:translateX(-50%);font-size:11px;color:#57606a}
.lane{border-bottom:1px dashed #eaeef2}
.lane-name{font-size:13px;font-weight:600;margin:0;padding:.4em .6em .4em 0;overflow-wrap:anywhere}
.lane.store .lane-name{font-weight:400;font-style:italic;color:#57606a}
.track{position:relative;min-height:2.2em}
.bar,.lost{position:absolute;top:.35em;height:1.5em;min-width:5px;box-sizing:border-box;
  border-radius:3px;font-size:11px;line-height:1.5em;white-space:nowrap;overflow:hidden;
  padding:0 .3em;color:#fff}
.built{background:#2da44e}
.cached{background:#8c959f}
.failed{background:#cf222e}
.skipped{background:#fff;border:1px dashed #bf8700;color:#7d4e00}
.retried{outline:3px solid #bf8700;outline-offset:-3px}
.lost{background:repeating-linear-gradient(45deg,#ffd8b5,#ffd8b5 4px,#fff 4px,#fff 8px);
  border:1px solid #bc4c00;color:#953800}
.bar:hover{z-index:2;overflow:visible;box-shadow:0 0 0 2px #0969da}
table{border-collapse:collapse;margin-top:1.5em;font-size:13px}
th,td{border-bottom:1px solid #eaeef2;padding:.25em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}
"""

LEGEND = (
    ("built", "built in this run"),
    ("cached", "cache hit (found in the store by input key)"),
    ("failed", "failed"),
    ("skipped", "skipped (a dependency failed)"),
    ("built retried", "ran again after its node was lost"),
    ("lost", "attempt on a node that was lost"),
)


def render(timeline: Timeline, *, title: str, summary: str) -> str:
    """The page for `timeline`; `summary` is the one-line account printed under the title."""
    length = timeline.length or 1.0
    lanes = [_lane(node, "node", list(timeline.on(node)),
                   [(r, a) for r in timeline.runs for a in r.lost if a.node == node], length)
             for node in timeline.nodes]
    elsewhere = [r for r in timeline.runs if not r.node]
    if elsewhere:
        lanes.append(_lane("no node: cache hits, skipped", "store", elsewhere, [], length))
    legend = "".join(f'<li><span class="swatch {cls}"></span>{escape(text)}</li>' for cls, text in LEGEND)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        f"<h1>{escape(title)}</h1>\n<p class=\"summary\">{escape(summary)}</p>\n"
        f"<ul class=\"legend\">{legend}</ul>\n"
        f"<div class=\"timeline\">\n{_axis(length)}\n" + "\n".join(lanes) + "\n</div>\n"
        + _table(timeline) + "\n</body></html>\n"
    )


def _pct(value: float, length: float) -> str:
    return f"{max(0.0, min(100.0, 100.0 * value / length)):.3f}%"


def _axis(length: float) -> str:
    step = _tick_step(length)
    ticks = []
    t = 0.0
    while t <= length + 1e-9:
        ticks.append(f'<span class="tick" style="left:{_pct(t, length)}">{duration(t)}</span>')
        t += step
    return f'<div class="axis"><span></span><div class="track">{"".join(ticks)}</div></div>'


def _tick_step(length: float) -> float:
    """A round step giving at most about eight ticks."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if length / step <= 8:
            return float(step)
    return length / 8


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _lane(name: str, kind: str, runs: list[JobRun], lost: list[tuple[JobRun, LostAttempt]],
          length: float) -> str:
    parts = []
    for run, attempt in lost:
        start, end = attempt.start, attempt.end
        hover = f"{run.record.id}: attempt on {name}, node lost after {end - start:.1f}s; ran again"
        parts.append(f'<div class="lost" data-job="{escape(run.record.id)}" title="{escape(hover)}" '
                     f'style="left:{_pct(start, length)};width:{_pct(end - start, length)}"></div>')
    for run in runs:
        parts.append(_bar(run, length))
    return (f'<section class="lane {kind}" data-node="{escape(name)}"><h2 class="lane-name">{escape(name)}</h2>'
            f'<div class="track">{"".join(parts)}</div></section>')


def _bar(run: JobRun, length: float) -> str:
    record = run.record
    classes = ["bar", record.status] + (["retried"] if run.retries else [])
    return (f'<div class="{" ".join(classes)}" data-job="{escape(record.id)}" title="{escape(hover_text(run))}" '
            f'style="left:{_pct(run.start, length)};width:{_pct(run.end - run.start, length)}">'
            f"{escape(record.recipe)}</div>")


def hover_text(run: JobRun) -> str:
    record = run.record
    lines = [
        f"{record.recipe} for {record.platform.oci}: {record.status}",
        f"strategy: {record.strategy or '-'}",
        f"toolchain: {record.toolchain or '-'}",
        f"input key: {record.input_key or '-'}",
        f"seconds: {run.seconds:.2f}",
    ]
    if run.node:
        lines.append(f"node: {run.node}")
    elif record.status == "cached" and record.node:
        took = f" in {record.seconds:.2f}s" if record.seconds else ""
        lines.append(f"built earlier on {record.node}{took}")
    if run.retries:
        lines.append(f"attempts: {run.attempts} (node lost {run.retries}x)")
    if record.error:
        lines.append(f"error: {record.error}")
    if record.log is not None:
        lines.append(f"log: {record.log}")
    return "\n".join(lines)


def _table(timeline: Timeline) -> str:
    rows = []
    for run in timeline.runs:
        record = run.record
        rows.append(
            f"<tr class=\"{escape(record.status)}-row\"><td>{escape(record.id)}</td><td>{escape(record.status)}</td>"
            f"<td>{escape(run.node or '-')}</td><td>{escape(record.strategy or '-')}</td>"
            f"<td class=\"num\">{run.start:.1f}</td><td class=\"num\">{run.seconds:.2f}</td>"
            f"<td class=\"num\">{run.attempts}</td><td><code>{escape(record.input_key[:19] or '-')}</code></td>"
            f"<td>{escape((record.error or '').splitlines()[0] if record.error else '')}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("job", "status", "node", "strategy", "start (s)", "seconds",
                                               "attempts", "input key", "error"))
    return f"<table class=\"jobs\"><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
