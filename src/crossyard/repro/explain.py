"""Why two builds of the same output differ, in words a person can act on.

crossyard's own explanations, pure Python and always available (diffoscope, when installed,
adds a full HTML diff: diffoscope.py). Given the two files and what is known about the two
builds (`Variant`: where they ran, when, under which umask, user, TZ and locale), `explain`
names the likely causes, each with concrete evidence and a concrete fix:

- ELF: which sections differ; a build path of one build found in one binary and not in the
  other; a GNU build-id note or a Go build id that differs; a timestamp (a build's clock as a
  decimal, `__DATE__`/`__TIME__` or ISO strings) embedded.
- tar archives and image layers (plain, gzip or zstd): entries that differ by name, order,
  mode, owner, mtime or content; a differing entry's content is explained in turn, and so is a
  gzip file's content after its header.
- static libraries (ar): members compared as a tar's entries, each object explained in turn.
- JSON (image configs, manifests, provenance): the dotted keys that differ.
- text: the differing lines; the same lines in another order (directory order or locale).
- anything else: build paths and timestamps found in one and not the other.
- output trees (`explain_trees`): files in one only, modes, and two OCI layouts image by image.

Files are streamed: sections are hashed and scanned chunk by chunk, tar archives read as
streams, and only small things (JSON, text) are loaded whole, below a size bound.

This module is the entry point: it tells kinds apart and walks trees and image layouts. Each
kind is explained in binaries.py (ELF), archives.py (tar, ar, gzip, zstd) or documents.py (JSON,
text), with what they share (findings, fixes, finding paths and times) in evidence.py; the
types live in model.py and are imported from here.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from .. import elf
from .archives import (
    AR_MAGIC,
    UNREADABLE,
    compression_of,
    explain_ar,
    explain_bytes,
    explain_tar,
    open_uncompressed,
)
from .binaries import explain_elf
from .documents import DIGEST_RE, explain_json, explain_text
from .evidence import (
    MAX_JSON_BYTES,
    Findings,
    fix_content,
    is_tar,
    merge_into,
    one_sided,
    same_bytes,
    scan_whole,
)
from .model import CAUSES, KINDS, Cause, Explanation, Variant


def explain(a: Path, b: Path, *, name: str, left: Variant, right: Variant) -> Explanation:
    """Why `a` (built as `left`) and `b` (built as `right`) differ. Identical files give an
    explanation without causes."""
    kind_a, kind_b = kind_of(a), kind_of(b)
    if "missing" in (kind_a, kind_b):
        return one_sided(name, kind_a, kind_b, left, right)
    if same_bytes(a, b):
        return Explanation(
            name=name, kind=kind_a, summary=f"{name}: identical", causes=(), details=()
        )
    ctx = Findings(left=left, right=right, recurse=explain)
    if kind_a != kind_b:
        ctx.detail(f"{left.label} wrote {kind_a}, {right.label} wrote {kind_b}")
        kind = "bytes"
    else:
        kind = kind_a
    _EXPLAINERS[kind](a, b, ctx)
    return ctx.explanation(name, kind)


def explain_trees(a: Path, b: Path, *, left: Variant, right: Variant) -> tuple[Explanation, ...]:
    """Two output directories: files only in one of them first, then each differing file (by
    content, symlink target or permission bits), in name order. Identical trees give ().

    Two OCI image layouts are compared image by image instead: their blobs are named by digest,
    so a changed layer is not "one blob missing, another extra" but the same layer, differing."""
    if _is_layout(a) and _is_layout(b):
        return _explain_layouts(a, b, left, right)
    files_a, files_b = dict(_walk(a)), dict(_walk(b))
    missing: list[Explanation] = []
    differing: list[Explanation] = []
    gone: list[str] = []  # directories in one tree only: what is under them is not listed again
    for rel in sorted(files_a.keys() | files_b.keys()):
        if any(rel.startswith(d) for d in gone):
            continue
        if rel not in files_b or rel not in files_a:
            if rel.endswith("/"):
                gone.append(rel)
            kind_a = files_a.get(rel, "missing")
            kind_b = files_b.get(rel, "missing")
            missing.append(one_sided(rel, kind_a, kind_b, left, right))
            continue
        pa, pb = a / rel, b / rel
        if files_a[rel] != files_b[rel]:
            ctx = Findings(left=left, right=right, recurse=explain)
            ctx.detail(f"{left.label}: {files_a[rel]}, {right.label}: {files_b[rel]}")
            ctx.cause("content", f"{rel} is a {files_a[rel]} in {left.label}'s output and a "
                      f"{files_b[rel]} in {right.label}'s", fix_content())
            differing.append(ctx.explanation(rel, "bytes"))
        elif files_a[rel] == "dir":
            mode_a, mode_b = stat.S_IMODE(pa.lstat().st_mode), stat.S_IMODE(pb.lstat().st_mode)
            if mode_a != mode_b:
                ctx = Findings(left=left, right=right, recurse=explain)
                ctx.mode(rel, mode_a, mode_b)
                differing.append(ctx.explanation(rel, "bytes"))
        elif files_a[rel] == "symlink":
            ta, tb = os.readlink(pa), os.readlink(pb)
            if ta != tb:
                ctx = Findings(left=left, right=right, recurse=explain)
                ctx.detail(f"symlink target {ta!r} vs {tb!r}")
                scan_whole(ta.encode(), tb.encode(), "the symlink target", ctx)
                if not ctx.causes:
                    ctx.cause("content", f"symlink target {ta!r} vs {tb!r}", fix_content())
                differing.append(ctx.explanation(rel, "text"))
        elif files_a[rel] == "file":
            mode_a, mode_b = stat.S_IMODE(pa.lstat().st_mode), stat.S_IMODE(pb.lstat().st_mode)
            same = same_bytes(pa, pb)
            if same and mode_a == mode_b:
                continue
            if same:
                ctx = Findings(left=left, right=right, recurse=explain)
                ctx.mode(rel, mode_a, mode_b)
                differing.append(ctx.explanation(rel, kind_of(pa)))
                continue
            explanation = explain(pa, pb, name=rel, left=left, right=right)
            if mode_a != mode_b:
                ctx = Findings(left=left, right=right, recurse=explain)
                ctx.mode(rel, mode_a, mode_b)
                explanation = merge_into(explanation, ctx)
            differing.append(explanation)
    return (*missing, *differing)


def _is_layout(root: Path) -> bool:
    return (root / "oci-layout").is_file() and (root / "index.json").is_file()


def _explain_layouts(a: Path, b: Path, left: Variant, right: Variant) -> tuple[Explanation, ...]:
    out = []
    for label, pa, pb in _layout_pairs(a, b):
        if pa is None or pb is None:
            out.append(one_sided(label, "missing" if pa is None else "blob",
                                "missing" if pb is None else "blob", left, right))
        elif not same_bytes(pa, pb):
            out.append(explain(pa, pb, name=label, left=left, right=right))
    return tuple(out)


def _layout_pairs(a: Path, b: Path) -> Iterator[tuple[str, Path | None, Path | None]]:
    """(label, blob in a, blob in b) for index.json and, paired by platform and position, each
    manifest, config and layer it reaches (None: the layout lacks that blob or that entry)."""
    yield "index.json", a / "index.json", b / "index.json"
    queue: list[tuple[str, Any, Any, int]] = [("", _json_or_none(a / "index.json"),
                                              _json_or_none(b / "index.json"), 0)]
    while queue:
        prefix, doc_a, doc_b, depth = queue.pop(0)
        if not isinstance(doc_a, dict) or not isinstance(doc_b, dict) or depth > 4:
            continue
        if "manifests" in doc_a or "manifests" in doc_b:
            children = _pair_descriptors(doc_a.get("manifests"), doc_b.get("manifests"))
        else:
            children = [("config", doc_a.get("config"), doc_b.get("config"))]
            children += [(f"layer {i}", x, y) for i, (_, x, y) in
                         enumerate(_pair_descriptors(doc_a.get("layers"), doc_b.get("layers"),
                                                     by_platform=False))]
        for name, da, db in children:
            label = f"{prefix}{name}"
            pa, pb = _blob(a, da), _blob(b, db)
            if pa is not None and pb is not None and _digest_of(da) == _digest_of(db):
                continue
            if pa is None and pb is None:
                continue
            yield label, pa, pb
            media = str((da or db).get("mediaType", "")) if isinstance(da or db, dict) else ""
            if "manifest" in media or "index" in media:
                queue.append((f"{label} ", _json_or_none(pa), _json_or_none(pb), depth + 1))


def _pair_descriptors(xs: Any, ys: Any, *, by_platform: bool = True
                      ) -> list[tuple[str, Any, Any]]:
    xs = xs if isinstance(xs, list) else []
    ys = ys if isinstance(ys, list) else []

    def key(d: Any, i: int) -> str:
        if not isinstance(d, dict) or not by_platform:
            return f"#{i}"
        platform, notes = d.get("platform"), d.get("annotations")
        if isinstance(platform, dict):
            parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
            return "/".join(str(p) for p in parts if p)
        if isinstance(notes, dict) and isinstance(notes.get(_REF_NAME), str):
            return str(notes[_REF_NAME])
        return f"#{i}"

    keyed_a = {key(d, i): d for i, d in enumerate(xs)}
    keyed_b = {key(d, i): d for i, d in enumerate(ys)}
    return [(k, keyed_a.get(k), keyed_b.get(k)) for k in [*keyed_a, *(k for k in keyed_b
                                                                     if k not in keyed_a)]]


_REF_NAME: Final = "org.opencontainers.image.ref.name"


def _digest_of(descriptor: Any) -> str | None:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    return digest if isinstance(digest, str) and DIGEST_RE.fullmatch(digest) else None


def _blob(root: Path, descriptor: Any) -> Path | None:
    """The blob a descriptor names, if it is a well-formed digest (never a path from the
    document) and the layout has it."""
    digest = _digest_of(descriptor)
    if digest is None:
        return None
    algorithm, _, hexpart = digest.partition(":")
    path = root / "blobs" / algorithm / hexpart
    return path if path.is_file() else None


def _json_or_none(path: Path | None) -> Any:
    if path is None or path.stat().st_size > MAX_JSON_BYTES:
        return None
    try:
        return json.loads(path.read_bytes())
    except ValueError:
        return None


def kind_of(path: Path) -> str:
    """What `path` holds, from its magic bytes: one of KINDS."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64 << 10)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return "missing"
    if head[:4] == elf.ELF_MAGIC:
        return "elf"
    if head[:8] == AR_MAGIC:
        return "ar"
    compression = compression_of(head)
    if compression:
        try:
            with open_uncompressed(path) as handle:
                inner = handle.read(512)
        except UNREADABLE:
            return "bytes"
        return f"{compression}+tar" if is_tar(inner) else "bytes"
    if is_tar(head):
        return "tar"
    if head.lstrip()[:1] in (b"{", b"[") and path.stat().st_size <= MAX_JSON_BYTES:
        try:
            json.loads(path.read_bytes())
        except ValueError:
            pass
        else:
            return "json"
    if b"\0" not in head:
        try:
            head.decode()
        except UnicodeDecodeError as error:
            # a multi-byte character cut by the 64 KiB read is still text
            if error.start < len(head) - 4:
                return "bytes"
        return "text"
    return "bytes"


# kind → what explains two files of that kind, adding to the findings
_EXPLAINERS: Final[dict[str, Callable[[Path, Path, Findings], None]]] = {
    "elf": explain_elf,
    "tar": explain_tar,
    "gzip+tar": explain_tar,
    "zstd+tar": explain_tar,
    "ar": explain_ar,
    "json": explain_json,
    "text": explain_text,
    "bytes": explain_bytes,
}


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    """(relative path, "file" | "symlink" | "dir" | "other") under `root`, not following links."""
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for d in list(dirnames):
            if (base / d).is_symlink():
                dirnames.remove(d)
                filenames.append(d)
            else:
                yield (base / d).relative_to(root).as_posix() + "/", "dir"
        for f in filenames:
            p = base / f
            mode = p.lstat().st_mode
            kind = "symlink" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "other"
            yield p.relative_to(root).as_posix(), kind


__all__ = [
    "CAUSES",
    "KINDS",
    "Cause",
    "Explanation",
    "Variant",
    "explain",
    "explain_trees",
    "kind_of",
]

