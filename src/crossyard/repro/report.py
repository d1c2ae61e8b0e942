"""`.crossyard/repro/<id>/report.html` and `summary.json`: the matrix recipe x platform x
variation, each cell identical / differs / not rebuilt / failed, a mismatch linking to its
explanation below the matrix (and to diffoscope's HTML when it was written). No script: the page
reads the same in a browser, a CI artifact viewer or a text dump."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from ..fsutil import atomic_write_text
from .check import DIFFERS, FAILED, LOCK, VARIATIONS, Cell, ReproReport, Row

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table.matrix { border-collapse: collapse; }
.matrix th, .matrix td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
td.identical { background: #d7f5dd; } td.differs { background: #f8d0cc; }
td.failed { background: #f3b27a; } td.not-rebuilt { background: #eee; color: #666; }
section.explanation { border-top: 1px solid #ccc; margin-top: 1.5em; }
code { font-size: 12px; word-break: break-all; }
"""


def anchor(row: Row, variation: str) -> str:
    return f"x-{row.recipe}-{row.platform.replace('/', '-')}-{variation}"


def _cell(row: Row, cell: Cell, base: Path) -> str:
    state = cell.state.replace(" ", "-")
    title = escape(cell.reason or cell.state, quote=True)
    text = escape(cell.state)
    if cell.state in (DIFFERS, FAILED):
        text = f'<a href="#{anchor(row, cell.variation)}">{text}</a>'
    diffs = "".join(f' <a class="diffoscope" href="{escape(str(p.relative_to(base)), quote=True)}">diff</a>'
                    for _, p in sorted(cell.diffs.items()))
    return (f'<td class="cell {state}" data-job="{escape(row.id, quote=True)}" '
            f'data-variation="{escape(cell.variation, quote=True)}" data-state="{escape(cell.state)}" '
            f'title="{title}">{text}{diffs}</td>')


def _details(row: Row, cell: Cell, base: Path) -> str:
    parts = [f'<section class="explanation" id="{anchor(row, cell.variation)}">',
             f"<h3>{escape(row.id)}: {escape(cell.variation)} {escape(cell.state)}</h3>"]
    if not cell.explanations or cell.variation == LOCK:  # else each explanation's heading says it
        parts.append(f"<p>{escape(cell.reason)}</p>")
    if cell.digests:
        parts.append("<ul>" + "".join(
            f"<li>{escape(name)}: <code>{escape(a)}</code> &rarr; <code>{escape(b)}</code></li>"
            for name, (a, b) in sorted(cell.digests.items())) + "</ul>")
    for explanation in cell.explanations:
        parts.append(f"<h4>{escape(explanation.name)} ({escape(explanation.kind)}): "
                     f"{escape(explanation.summary)}</h4><ul>")
        for cause in explanation.causes:
            parts.append(f'<li class="cause" data-cause="{escape(cause.name, quote=True)}">'
                         f"<b>{escape(cause.name)}</b>: {escape(cause.evidence)}"
                         f"<br>fix: {escape(cause.fix)}</li>")
        parts.append("</ul>")
        if explanation.details:
            parts.append("<pre>" + escape("\n".join(explanation.details)) + "</pre>")
    for name, path in sorted(cell.diffs.items()):
        parts.append(f'<p><a href="{escape(str(path.relative_to(base)), quote=True)}">diffoscope: '
                     f"{escape(name)}</a></p>")
    parts.append("</section>")
    return "".join(parts)


def render(report: ReproReport) -> str:
    base = report.directory
    head = "".join(f'<th title="{escape(VARIATIONS.get(v, "the control build held against crossyard.lock"), quote=True)}">'
                   f"{escape(v)}</th>" for v in report.variations)
    rows = []
    details = []
    for row in report.rows:
        cells = "".join(_cell(row, c, base) for c in row.cells)
        rows.append(f'<tr class="row" data-job="{escape(row.id, quote=True)}"><th>{escape(row.recipe)}</th>'
                    f"<th>{escape(row.platform)}</th>{cells}</tr>")
        details += [_details(row, c, base) for c in row.cells if c.state in (DIFFERS, FAILED)]
    verdict = "all identical" if report.ok else "mismatches found"
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>crossyard repro check {escape(report.id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>repro check {escape(report.id)}: {verdict}</h1>"
        f'<table class="matrix"><thead><tr><th>recipe</th><th>platform</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<p>{'; '.join(escape(f'{v}: {VARIATIONS[v]}') for v in report.variations if v != LOCK)}</p>"
        f"{''.join(details)}</body></html>\n"
    )


def write_report(report: ReproReport) -> None:
    atomic_write_text(report.report, render(report))
    atomic_write_text(report.directory / "summary.json",
                      json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
