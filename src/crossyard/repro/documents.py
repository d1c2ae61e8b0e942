"""JSON (image configs, manifests, provenance) by dotted key, and text by line."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Final

from .evidence import (
    Findings,
    compare_found,
    explain_raw,
    fix_content,
    fix_locale,
    fix_timestamp,
    needle_dirs,
    scan,
    scan_whole,
)

MAX_TEXT_BYTES: Final = 4 << 20
MAX_DIFF_LINES: Final = 20_000
_TIME_KEYS: Final = {
    "created", "timestamp", "date", "time", "modified", "buildstartedon", "buildfinishedon",
    "startedon", "finishedon", "org.opencontainers.image.created",
}


_ISO_RE: Final = re.compile(r"\d{4}-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d")
DIGEST_RE: Final = re.compile(r"sha(256|512):[0-9a-f]{64,128}")
_ABSENT: Final = object()
MAX_JSON_DIFFS: Final = 200


def explain_json(a: Path, b: Path, ctx: Findings) -> None:
    va, vb = json.loads(a.read_bytes()), json.loads(b.read_bytes())
    diffs: list[tuple[list[str | int], Any, Any]] = []
    _json_diff(va, vb, [], diffs)
    if not diffs:
        ctx.detail("the same JSON value, written differently (key order, spacing, escapes)")
        ctx.cause("content", "the same values serialised differently",
                  "write JSON canonically (sorted keys, fixed separators)")
        return
    digests = {tuple(p) for p, x, y in diffs if _is_digest(x) or _is_digest(y)}
    referenced: list[str] = []  # digests of other blobs: they differ because those blobs do
    for path, x, y in diffs:
        dotted = _dotted(path)
        ctx.detail(f"{dotted}: {_brief(x)} vs {_brief(y)}")
        key = str(path[-1]).lower() if path else ""
        if key in _TIME_KEYS or _is_iso(x) or _is_iso(y):
            ctx.cause("timestamp", f"{dotted}: {_brief(x)} vs {_brief(y)}", fix_timestamp("json"))
            continue
        if (*path[:-1], "digest") in digests and key == "size":
            continue  # the size of a differing blob: part of that difference
        if tuple(path) in digests:
            referenced.append(f"{dotted}: the referenced blob differs ({_brief(x)} vs "
                              f"{_brief(y)})")
            continue
        before = len(ctx.causes)
        if isinstance(x, str) and isinstance(y, str):
            scan_whole(x.encode(), y.encode(), f"key {dotted}", ctx)
        if len(ctx.causes) == before:
            ctx.cause("content", f"{dotted}: {_brief(x)} vs {_brief(y)}", fix_content())
    if not ctx.causes:
        for evidence in referenced:
            ctx.cause("content", evidence, "see that blob's own explanation: fixing it fixes "
                      "this document")
    if len(diffs) >= MAX_JSON_DIFFS:
        ctx.detail(f"(stopped after {MAX_JSON_DIFFS} differing keys)")


def _json_diff(x: Any, y: Any, path: list[str | int], out: list[tuple[list[str | int], Any, Any]]
               ) -> None:
    if len(out) >= MAX_JSON_DIFFS:
        return
    if isinstance(x, dict) and isinstance(y, dict):
        for key in [*x, *(k for k in y if k not in x)]:
            _json_diff(x.get(key, _ABSENT), y.get(key, _ABSENT), [*path, key], out)
    elif isinstance(x, list) and isinstance(y, list):
        for i in range(max(len(x), len(y))):
            _json_diff(x[i] if i < len(x) else _ABSENT, y[i] if i < len(y) else _ABSENT,
                       [*path, i], out)
    elif x != y or type(x) is not type(y):
        out.append((path, x, y))


def _dotted(path: list[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(the whole document)"


def _brief(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "…"


def _is_iso(value: Any) -> bool:
    return isinstance(value, str) and _ISO_RE.match(value) is not None


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and DIGEST_RE.fullmatch(value) is not None


def explain_text(a: Path, b: Path, ctx: Findings) -> None:
    size_a, size_b = a.stat().st_size, b.stat().st_size
    if size_a > MAX_TEXT_BYTES or size_b > MAX_TEXT_BYTES:
        explain_raw(a, b, ctx)
        return
    lines_a = a.read_bytes().decode(errors="replace").splitlines()
    lines_b = b.read_bytes().decode(errors="replace").splitlines()
    # difflib is quadratic in the worst case: only texts of a readable length get a line diff
    if len(lines_a) + len(lines_b) <= MAX_DIFF_LINES:
        for line in difflib.unified_diff(lines_a, lines_b, ctx.left.label, ctx.right.label,
                                         n=0, lineterm=""):
            if not line.startswith(("---", "+++")):
                ctx.detail(line if len(line) <= 160 else line[:157] + "…")
    needles = list(needle_dirs(ctx))
    compare_found(scan(a, 0, size_a, needles), scan(b, 0, size_b, needles), "the text",
                   ctx, "")
    if not ctx.causes and sorted(lines_a) == sorted(lines_b):
        moved = next(i for i, (x, y) in enumerate(zip(lines_a, lines_b, strict=True)) if x != y)
        evidence = (f"the same lines in another order from line {moved + 1}: "
                    f"{lines_a[moved]!r} vs {lines_b[moved]!r}")
        if ctx.left.locale != ctx.right.locale and None not in (ctx.left.locale,
                                                                ctx.right.locale):
            ctx.cause("locale", f"{evidence} (locale {ctx.left.locale} vs "
                      f"{ctx.right.locale})", fix_locale())
        else:
            ctx.cause("file-order", evidence, "sort what is listed (a directory listing or a "
                      "glob follows the on-disk order): sorted(…), or ls/find | LC_ALL=C sort")
    if not ctx.causes:
        ctx.cause("content", "the text differs (see details) with no build path or timestamp "
                  "found", fix_content())

