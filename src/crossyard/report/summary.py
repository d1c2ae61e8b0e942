"""The machine-readable summary `--json` writes."""

from __future__ import annotations

from typing import Any

from ..scheduler import BuildReport


def build_summary(report: BuildReport, *, drift: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "ok": report.ok and not drift,
        "seconds": round(report.seconds, 3),
        "counts": {s: report.count(s) for s in ("built", "cached", "failed", "skipped")},
        "jobs": [
            {
                "id": r.job_id,
                "recipe": r.recipe,
                "platform": r.platform,
                "status": r.status,
                "input_key": r.input_key,
                "outputs": dict(r.outputs),
                "toolchain": r.toolchain,
                "strategy": r.strategy,
                "seconds": round(r.seconds, 3),
                "log": str(r.log) if r.log else None,
                "error": r.error,
            }
            for r in report.results
        ],
        "drift": drift or [],
    }
