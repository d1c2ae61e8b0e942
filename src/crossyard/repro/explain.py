"""Why two builds of the same output differ, in words a person can act on.

crossyard's own explanations, pure Python and always available (diffoscope, when installed,
adds a full HTML diff: diffoscope.py). Given the two files and what is known about the two
builds (`Variant`: where they ran, when, under which umask, user, TZ and locale), `explain`
names the likely causes, each with concrete evidence and a concrete fix:

- ELF: which sections differ; a build path of one build found in one binary and not in the
  other; a GNU build-id note or a Go build id that differs; a timestamp (a build's clock as a
  decimal, `__DATE__`/`__TIME__` or ISO strings) embedded.
- tar archives and image layers (plain or gzip): entries that differ by name, order, mode,
  owner, mtime or content; a differing entry's content is explained in turn.
- JSON (image configs, manifests, provenance): the dotted keys that differ.
- anything else: build paths and timestamps found in one and not the other.

Files are streamed: sections are hashed and scanned chunk by chunk, tar archives read as
streams, and only small things (JSON, text) are loaded whole, below a size bound.
"""

from __future__ import annotations

import contextlib
import difflib
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Final, cast

import zstandard

from .. import elf

CAUSES: Final = (
    "build-path",
    "timestamp",
    "build-id",
    "umask",
    "file-order",
    "mtime",
    "owner",
    "locale",
    "content",
)
KINDS: Final = ("elf", "tar", "gzip+tar", "zstd+tar", "json", "text", "bytes", "missing")

CHUNK: Final = 1 << 20
MAX_DETAILS: Final = 40  # lines of details an explanation keeps
MAX_EVIDENCE: Final = 3  # pieces of evidence a cause quotes before "… and N more"
MAX_JSON_BYTES: Final = 32 << 20
MAX_TEXT_BYTES: Final = 4 << 20
MAX_DIFF_LINES: Final = 20_000
MAX_NESTED: Final = 3  # differing tar entries whose content is explained in turn
MAX_STAMPS: Final = 10_000  # timestamp-looking strings remembered per scanned region
# A build's clock is read when the job starts; what it embeds is read later, while it runs.
CLOCK_BEFORE: Final = 300
CLOCK_AFTER: Final = 4 * 3600

LABELS: Final = {
    "build-path": "a build path is embedded",
    "timestamp": "the build time is embedded",
    "build-id": "the build id differs",
    "umask": "file modes follow the build's umask",
    "file-order": "entries are in a different order",
    "mtime": "file mtimes differ",
    "owner": "file owners differ",
    "locale": "the output depends on the locale",
    "content": "the content differs for no known reason",
}


@dataclass(frozen=True, kw_only=True)
class Cause:
    name: str  # one of CAUSES
    evidence: str  # what was seen: section, offset, string, tar entry …
    fix: str  # what to change

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "evidence": self.evidence, "fix": self.fix}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cause:
        return cls(name=str(data["name"]), evidence=str(data["evidence"]), fix=str(data["fix"]))


@dataclass(frozen=True, kw_only=True)
class Variant:
    """Facts about one build, so differences can be attributed to what differed between them."""

    label: str  # e.g. "lock", "build-path", "umask"
    build_dirs: tuple[str, ...] = ()  # absolute paths the job ran in (src, out, root …)
    epoch: int | None = None  # wall-clock time (s) the build ran at
    source_date_epoch: int | None = None
    umask: int | None = None
    uid: int | None = None
    gid: int | None = None
    tz: str | None = None
    locale: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "build_dirs": list(self.build_dirs),
            "epoch": self.epoch,
            "source_date_epoch": self.source_date_epoch,
            "umask": self.umask,
            "uid": self.uid,
            "gid": self.gid,
            "tz": self.tz,
            "locale": self.locale,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        return cls(
            label=str(data["label"]),
            build_dirs=tuple(str(d) for d in data.get("build_dirs", ())),
            epoch=data.get("epoch"),
            source_date_epoch=data.get("source_date_epoch"),
            umask=data.get("umask"),
            uid=data.get("uid"),
            gid=data.get("gid"),
            tz=data.get("tz"),
            locale=data.get("locale"),
        )


@dataclass(frozen=True, kw_only=True)
class Explanation:
    name: str  # output file name
    kind: str  # one of KINDS
    summary: str  # one line a person can act on
    causes: tuple[Cause, ...]
    details: tuple[str, ...]  # differing sections / entries / keys, bounded in length

    @property
    def identical(self) -> bool:
        return not self.causes

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "causes": [cause.to_json() for cause in self.causes],
            "details": list(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explanation:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            summary=str(data["summary"]),
            causes=tuple(Cause.from_json(c) for c in data.get("causes", ())),
            details=tuple(str(d) for d in data.get("details", ())),
        )


# ---------------------------------------------------------------------------------------------
# entry points


def explain(a: Path, b: Path, *, name: str, left: Variant, right: Variant) -> Explanation:
    """Why `a` (built as `left`) and `b` (built as `right`) differ. Identical files give an
    explanation without causes."""
    kind_a, kind_b = kind_of(a), kind_of(b)
    if "missing" in (kind_a, kind_b):
        return _missing(name, kind_a, kind_b, left, right)
    if _same_bytes(a, b):
        return Explanation(
            name=name, kind=kind_a, summary=f"{name}: identical", causes=(), details=()
        )
    ctx = _Context(left=left, right=right)
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
            missing.append(_missing(rel, kind_a, kind_b, left, right))
            continue
        pa, pb = a / rel, b / rel
        if files_a[rel] != files_b[rel]:
            ctx = _Context(left=left, right=right)
            ctx.detail(f"{left.label}: {files_a[rel]}, {right.label}: {files_b[rel]}")
            ctx.cause("content", f"{rel} is a {files_a[rel]} in {left.label}'s output and a "
                      f"{files_b[rel]} in {right.label}'s", _fix_content())
            differing.append(ctx.explanation(rel, "bytes"))
        elif files_a[rel] == "dir":
            mode_a, mode_b = stat.S_IMODE(pa.lstat().st_mode), stat.S_IMODE(pb.lstat().st_mode)
            if mode_a != mode_b:
                ctx = _Context(left=left, right=right)
                ctx.mode(rel, mode_a, mode_b)
                differing.append(ctx.explanation(rel, "bytes"))
        elif files_a[rel] == "symlink":
            ta, tb = os.readlink(pa), os.readlink(pb)
            if ta != tb:
                ctx = _Context(left=left, right=right)
                ctx.detail(f"symlink target {ta!r} vs {tb!r}")
                _scan_whole(ta.encode(), tb.encode(), "the symlink target", ctx)
                if not ctx.causes:
                    ctx.cause("content", f"symlink target {ta!r} vs {tb!r}", _fix_content())
                differing.append(ctx.explanation(rel, "text"))
        elif files_a[rel] == "file":
            mode_a, mode_b = stat.S_IMODE(pa.lstat().st_mode), stat.S_IMODE(pb.lstat().st_mode)
            same = _same_bytes(pa, pb)
            if same and mode_a == mode_b:
                continue
            if same:
                ctx = _Context(left=left, right=right)
                ctx.mode(rel, mode_a, mode_b)
                differing.append(ctx.explanation(rel, kind_of(pa)))
                continue
            explanation = explain(pa, pb, name=rel, left=left, right=right)
            if mode_a != mode_b:
                ctx = _Context(left=left, right=right)
                ctx.mode(rel, mode_a, mode_b)
                explanation = _merge(explanation, ctx)
            differing.append(explanation)
    return (*missing, *differing)


def _is_layout(root: Path) -> bool:
    return (root / "oci-layout").is_file() and (root / "index.json").is_file()


def _explain_layouts(a: Path, b: Path, left: Variant, right: Variant) -> tuple[Explanation, ...]:
    out = []
    for label, pa, pb in _layout_pairs(a, b):
        if pa is None or pb is None:
            out.append(_missing(label, "missing" if pa is None else "blob",
                                "missing" if pb is None else "blob", left, right))
        elif not _same_bytes(pa, pb):
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
    return digest if isinstance(digest, str) and _DIGEST_RE.fullmatch(digest) else None


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
    compression = _compression(head)
    if compression:
        try:
            with _open_uncompressed(path) as handle:
                inner = handle.read(512)
        except _UNREADABLE:
            return "bytes"
        return f"{compression}+tar" if _is_tar(inner) else "bytes"
    if _is_tar(head):
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


# ---------------------------------------------------------------------------------------------
# collecting causes


@dataclass
class _Context:
    """Causes and details being gathered for one pair of files."""

    left: Variant
    right: Variant
    causes: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    more_details: int = 0

    def cause(self, name: str, evidence: str, fix: str) -> None:
        assert name in CAUSES, name
        pieces, _ = self.causes.setdefault(name, ([], fix))
        if evidence not in pieces:
            pieces.append(evidence)

    def detail(self, line: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(line)
        else:
            self.more_details += 1

    def has(self, *names: str) -> bool:
        return any(n in self.causes for n in names)

    def mode(self, rel: str, mode_a: int, mode_b: int) -> None:
        self.detail(f"{rel}: mode {mode_a:04o} vs {mode_b:04o}")
        if (mode_a ^ mode_b) & ~0o077 == 0:
            self.cause("umask", f"{rel}: mode {mode_a:04o} vs {mode_b:04o}{self._umasks()}",
                       _fix_umask())
        else:
            self.cause("content", f"{rel}: mode {mode_a:04o} vs {mode_b:04o}", _fix_content())

    def _umasks(self) -> str:
        if self.left.umask is None or self.right.umask is None:
            return ""
        return f" (umask {self.left.umask:03o} vs {self.right.umask:03o})"

    def explanation(self, name: str, kind: str) -> Explanation:
        causes = []
        for cause_name in CAUSES:  # a fixed order: the most actionable first
            if cause_name not in self.causes:
                continue
            pieces, fix = self.causes[cause_name]
            evidence = "; ".join(pieces[:MAX_EVIDENCE])
            if len(pieces) > MAX_EVIDENCE:
                evidence += f"; … and {len(pieces) - MAX_EVIDENCE} more"
            causes.append(Cause(name=cause_name, evidence=evidence, fix=fix))
        details = list(self.details)
        if self.more_details:
            details.append(f"… and {self.more_details} more")
        if not causes:
            summary = f"{name}: identical"
        else:
            first = causes[0]
            also = f" (also: {', '.join(c.name for c in causes[1:])})" if len(causes) > 1 else ""
            summary = f"{name}: {LABELS[first.name]}{also}: {first.fix}"
        return Explanation(
            name=name, kind=kind, summary=summary, causes=tuple(causes), details=tuple(details)
        )


def _merge(explanation: Explanation, ctx: _Context) -> Explanation:
    for cause in explanation.causes:
        ctx.cause(cause.name, cause.evidence, cause.fix)
    for line in explanation.details:
        ctx.detail(line)
    return ctx.explanation(explanation.name, explanation.kind)


def _missing(name: str, kind_a: str, kind_b: str, left: Variant, right: Variant) -> Explanation:
    if kind_a == "missing" and kind_b == "missing":
        return Explanation(name=name, kind="missing", summary=f"{name}: identical (absent from "
                           "both)", causes=(), details=())
    present, absent = (left, right) if kind_b == "missing" else (right, left)
    evidence = f"{name} is in {present.label}'s output and not in {absent.label}'s"
    cause = Cause(
        name="content",
        evidence=evidence,
        fix="make the recipe's outputs the same in every build (an output written only under "
        "some condition: a glob, a directory listing, a tool found or not)",
    )
    return Explanation(
        name=name, kind="missing", summary=f"{name}: {evidence}", causes=(cause,), details=()
    )


# ---------------------------------------------------------------------------------------------
# fixes


def _fix_build_path(dirs: Iterable[str], lang: str, where: str = "") -> str:
    listed = sorted(set(dirs)) or ["<build dir>"]
    go = ("build with -trimpath (crossyard's [go] builds do: look for the path passed in by the "
          "recipe, in [go] ldflags -X or env)")
    rust = ("add " + " ".join(f"--remap-path-prefix={d}=." for d in listed)
            + " to RUSTFLAGS (crossyard maps its own job directories; this one is not)")
    c = ("add " + " ".join(f"-ffile-prefix-map={d}=." for d in listed) + " to [c] cflags (for "
         "build = \"make\"/\"cmake\", pass it as CFLAGS in make_args/cmake_args: a Makefile "
         "that sets its own CFLAGS drops crossyard's)")
    if lang == "c" and not where.startswith("section .debug"):
        # in the program's data, not its debug info: -ffile-prefix-map maps __FILE__, but not a
        # path the build passes in itself, so that one has to go
        c = ("the path is a string in the program (" + where.removeprefix("section ") + "): "
             "if it is __FILE__, " + c + "; if the build passes it in itself (-D…=\"$(CURDIR)\","
             " $(pwd), a generated header), drop it or make it relative: no flag maps that")
    if lang in ("go", "rust", "c"):
        return {"go": go, "rust": rust, "c": c}[lang]
    return f"C: {c}; Go: {go}; Rust: {rust}"


def _fix_timestamp(lang: str) -> str:
    if lang == "json":
        return ("write this time (an image config's \"created\", a history entry) from "
                "SOURCE_DATE_EPOCH, not from the build's clock")
    clock = ("take the time from SOURCE_DATE_EPOCH (set in every crossyard job; templates have "
             "{build_date} and {source_date_epoch}) instead of the clock")
    if lang == "go":
        return f"{clock}: e.g. -X main.date={{build_date}} in [go] ldflags, not $(date)"
    if lang == "c":
        return (f"{clock}: drop `date` from the build, or let __DATE__/__TIME__ follow it (gcc "
                "honours SOURCE_DATE_EPOCH; keep it in the build's environment)")
    return f"{clock}: no `date`, time() or __DATE__ from a tool that ignores SOURCE_DATE_EPOCH"


def _fix_build_id(lang: str) -> str:
    if lang == "go":
        return ("remove the per-build -buildid=… from [go] ldflags: crossyard passes "
                "-ldflags=-buildid= (empty) and a later -buildid wins")
    return ("link with a content-derived build id (-Wl,--build-id=sha1, the default) or none "
            "(-Wl,--build-id=none) in [c] ldflags, never a random one (--build-id=uuid)")


def _fix_umask() -> str:
    return ("normalise modes when writing the archive/layer (0644 files, 0755 executables and "
            "directories) or run the build under a fixed umask 022")


def _fix_order() -> str:
    return ("sort entries by name when writing the archive (tar --sort=name; in Python, "
            "sorted(os.listdir())) instead of following the directory's on-disk order")


def _fix_mtime() -> str:
    return ("clamp mtimes to SOURCE_DATE_EPOCH when writing the archive (tar --mtime="
            "@$SOURCE_DATE_EPOCH --clamp-mtime; tarfile: set TarInfo.mtime)")


def _fix_owner() -> str:
    return ("write entries as uid/gid 0 with empty or fixed names (tar --owner=0 --group=0 "
            "--numeric-owner; tarfile: set uid/gid/uname/gname)")


def _fix_locale() -> str:
    return ("set LC_ALL=C.UTF-8 in the build environment (sort order, collation and messages "
            "follow the locale)")


def _fix_content() -> str:
    return ("no known cause found: read the diffoscope HTML diff and look for an input that "
            "differs between the builds (a network fetch, a random seed, a parallel race)")


# ---------------------------------------------------------------------------------------------
# generic scanning: build paths and timestamps


_MONTHS: Final = b"Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_STAMP_RE: Final = re.compile(
    rb"(?:" + _MONTHS + rb") [ 0-3]\d \d{4}"  # __DATE__
    rb"|(?<!\d)\d{4}-[01]\d-[0-3]\d(?:[T ][0-2]\d:[0-5]\d:[0-6]\d)?"  # ISO 8601
    rb"|(?<![\d:])[0-2]\d:[0-5]\d:[0-6]\d(?![\d:])"  # __TIME__
    rb"|(?<![\d.])\d{9,10}(?![\d.])"  # seconds since the epoch
)
_STAMP_MAX_LEN: Final = 32
# every stamp above has one of these shapes once digits are "0" (__DATE__: "0 0000")
_SHAPES: Final = bytes(ord("0") if chr(c).isdigit() else c if chr(c) in ":- " else ord("x")
                       for c in range(256))
_PROBES: Final = (b"0 0000", b"0000-00-00", b"00:00:00", b"000000000")


@dataclass
class _Found:
    needles: set[bytes] = field(default_factory=set)
    stamps: set[bytes] = field(default_factory=set)


def _scan(path: Path, start: int, size: int, needles: Iterable[bytes]) -> _Found:
    """Build-path needles and timestamp-looking strings in `size` bytes of `path` at `start`,
    read chunk by chunk; a match across a chunk boundary is found through the carried tail."""
    wanted = [n for n in needles if n]
    overlap = max([len(n) for n in wanted] + [_STAMP_MAX_LEN])
    found = _Found()
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = size
        tail = b""
        while remaining > 0:
            data = handle.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            _scan_window(tail + data, wanted, found, last=remaining <= 0, keep=overlap)
            tail = (tail + data)[-overlap:]
    return found


def _scan_bytes(data: bytes, needles: Iterable[bytes]) -> _Found:
    found = _Found()
    _scan_window(data, [n for n in needles if n], found, last=True, keep=0)
    return found


def _scan_window(window: bytes, needles: list[bytes], found: _Found, *, last: bool,
                 keep: int) -> None:
    for needle in needles:
        if needle not in found.needles and needle in window:
            found.needles.add(needle)
    # a match ending in the carried tail may be cut short; the next window sees it whole
    limit = len(window) if last else len(window) - keep
    # The timestamp regex tried at every offset runs at ~4 MB/s; digits mapped to "0" and
    # searched with bytes.find (memchr speed) leave it only the few places a stamp can be.
    shape = window.translate(_SHAPES)
    for probe in _PROBES:
        at = shape.find(probe)
        while at >= 0:
            if len(found.stamps) >= MAX_STAMPS:
                return
            hi = min(at + _STAMP_MAX_LEN, len(window))
            for match in _STAMP_RE.finditer(window, max(at - 12, 0), hi):
                if match.end() <= limit:
                    found.stamps.add(match.group())
            at = shape.find(probe, hi)


def _needles(ctx: _Context) -> dict[bytes, str]:
    """Build directories of both builds (as given and resolved), each to the build it is from."""
    out: dict[bytes, str] = {}
    for variant in (ctx.left, ctx.right):
        for d in variant.build_dirs:
            for spelling in {d.rstrip("/"), os.path.realpath(d)}:
                if len(spelling) > 1:
                    out.setdefault(spelling.encode(), variant.label)
    return out


def _clock_candidates(ctx: _Context, first: Variant | None
                      ) -> list[tuple[int, int, int, str | None, str]]:
    """(earliest, latest, exact time, tz, label) windows a build may have embedded times from,
    `first`'s (the build the time was found in) first."""
    out = []
    order = (ctx.left, ctx.right) if first is not ctx.right else (ctx.right, ctx.left)
    for variant in order:
        if variant.source_date_epoch is not None:
            t = variant.source_date_epoch
            out.append((t, t, t, variant.tz, f"{variant.label}'s SOURCE_DATE_EPOCH"))
        if variant.epoch is not None:
            t = variant.epoch
            out.append((t - CLOCK_BEFORE, t + CLOCK_AFTER, t, variant.tz,
                        f"{variant.label}'s build time"))
    return out


def _zone(tz: str | None) -> Any:
    if not tz:
        return UTC
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(tz)
    except Exception:  # an unknown or malformed TZ: fall back to UTC, the other candidate
        return UTC


def _stamp_source(stamp: bytes, ctx: _Context, found_in: Variant | None = None) -> str | None:
    """Which build's clock `stamp` (found in `found_in`'s output) comes from; "" when it is a
    valid date or time matching neither build; None when it is no timestamp (a number out of
    every window, an impossible date)."""
    text = stamp.decode("ascii")
    candidates = _clock_candidates(ctx, found_in)
    if text.isdigit():
        value = int(text)
        for lo, hi, _, _, label in candidates:
            if lo <= value <= hi:
                return label
        return None
    parsed = _parse_stamp(text)
    if parsed is None:
        return None
    what, value_date, seconds = parsed
    for lo, hi, _, tz, label in candidates:
        for zone in {UTC, _zone(tz)}:
            start = datetime.fromtimestamp(lo, zone)
            end = datetime.fromtimestamp(hi, zone)
            if what in ("date", "datetime") and value_date is not None and not (
                start.date() <= value_date <= end.date()
            ):
                continue
            if what in ("time", "datetime") and seconds is not None:
                if hi - lo >= 86400:
                    return label
                sod_lo = start.hour * 3600 + start.minute * 60 + start.second
                span = hi - lo
                if (seconds - sod_lo) % 86400 > span:
                    continue
            return label
    return ""


def _stamp_format(stamp: bytes) -> str:
    if stamp.isdigit():
        return "seconds since 1970"
    if stamp[:1].isalpha():
        return "a __DATE__ string"
    if b"-" in stamp:
        return "an ISO 8601 date"
    return "a __TIME__ string"


def _parse_stamp(text: str) -> tuple[str, date | None, int | None] | None:
    try:
        if text[:3].isalpha():
            return "date", datetime.strptime(text, "%b %d %Y").date(), None
        if ":" in text and "-" not in text:
            h, m, s = (int(x) for x in text.split(":"))
            if h > 23 or m > 59 or s > 60:
                return None
            return "time", None, h * 3600 + m * 60 + min(s, 59)
        if len(text) == 10:
            return "date", date.fromisoformat(text), None
        moment = datetime.fromisoformat(text.replace(" ", "T"))
        return "datetime", moment.date(), moment.hour * 3600 + moment.minute * 60 + moment.second
    except ValueError:
        return None


def _compare_found(fa: _Found, fb: _Found, where: str, ctx: _Context, lang: str) -> None:
    """Causes from what one side's scan found and the other's did not."""
    needles = _needles(ctx)
    paths = []
    for needle, owner in needles.items():
        in_a, in_b = needle in fa.needles, needle in fb.needles
        if in_a == in_b:
            continue
        has, lacks = (ctx.left, ctx.right) if in_a else (ctx.right, ctx.left)
        paths.append((needle, f"{needle.decode(errors='replace')} (a {owner} build dir) in "
                      f"{where} of {has.label}'s output, not in {lacks.label}'s"))
    # report /a/b/src, not also its parent /a/b
    for needle, evidence in paths:
        if any(o != needle and o.startswith(needle + b"/") for o, _ in paths):
            continue
        ctx.cause("build-path", evidence, _fix_build_path(
            (n.decode(errors="replace") for n, _ in paths), lang, where))
    only_a = sorted(fa.stamps - fb.stamps)
    only_b = sorted(fb.stamps - fa.stamps)
    for stamps, side in ((only_a, ctx.left), (only_b, ctx.right)):
        for stamp in stamps:
            source = _stamp_source(stamp, ctx, side)
            if source is None:
                continue
            note = f", = {source}" if source else ""
            ctx.cause("timestamp", f"{stamp.decode()!r} ({_stamp_format(stamp)}{note}) in "
                      f"{where} of {side.label}'s output only",
                      _fix_timestamp(lang))


def _scan_whole(a: bytes, b: bytes, where: str, ctx: _Context, lang: str = "") -> None:
    needles = list(_needles(ctx))
    _compare_found(_scan_bytes(a, needles), _scan_bytes(b, needles), where, ctx, lang)


# ---------------------------------------------------------------------------------------------
# per kind


def _explain_bytes(a: Path, b: Path, ctx: _Context) -> None:
    if _is_gzip(a) and _is_gzip(b) and _explain_gzip(a, b, ctx):
        return
    size_a, size_b = a.stat().st_size, b.stat().st_size
    offset = _first_difference(a, b)
    ctx.detail(f"sizes {size_a} vs {size_b} bytes; first difference at offset {offset}")
    needles = list(_needles(ctx))
    _compare_found(_scan(a, 0, size_a, needles), _scan(b, 0, size_b, needles), "the file",
                   ctx, "")
    if not ctx.causes:
        ctx.cause("content", f"first difference at byte {offset} (sizes {size_a} vs {size_b})",
                  _fix_content())


# ELF --------------------------------------------------------------------------------------------

_BUILD_ID_NOTES: Final = (".note.gnu.build-id", ".note.go.buildid")
_GO_SECTIONS: Final = (".go.buildinfo", ".note.go.buildid", ".gopclntab")
_GO_ID_MARK: Final = b'\xff Go build ID: "'


def _explain_elf(a: Path, b: Path, ctx: _Context) -> None:
    secs_a, secs_b = elf.read_sections(a), elf.read_sections(b)
    if secs_a is None or secs_b is None:
        ctx.detail("an ELF file whose section headers cannot be read: compared as bytes")
        _explain_bytes(a, b, ctx)
        return
    by_a, by_b = _by_name(secs_a), _by_name(secs_b)
    lang = _elf_language(a, by_a) or _elf_language(b, by_b)
    if _read_at(a, 0, 64) != _read_at(b, 0, 64):
        ctx.detail("ELF header differs (entry point or section layout moved)")
    differing: list[str] = []
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        sa, sb = by_a.get(name), by_b.get(name)
        if sa is None or sb is None:
            side = ctx.left.label if sb is None else ctx.right.label
            ctx.detail(f"section {name} only in {side}'s output")
            differing.append(name)
        elif sa.memsize != sb.memsize or _section_digest(a, sa) != _section_digest(b, sb):
            ctx.detail(f"section {name} differs ({sa.memsize} vs {sb.memsize} bytes)")
            differing.append(name)
    if not differing:
        ctx.detail("every section is identical: the headers or the padding between them differ")
    needles = list(_needles(ctx))
    for name in differing:
        if name in _BUILD_ID_NOTES:
            continue  # a path or time inside a build id is the build id's doing: see below
        sa, sb = by_a.get(name), by_b.get(name)
        fa = _scan(a, sa.offset, sa.size, needles) if sa else _Found()
        fb = _scan(b, sb.offset, sb.size, needles) if sb else _Found()
        _compare_found(fa, fb, f"section {name}", ctx, lang)
    _elf_build_ids(a, b, by_a, by_b, differing, ctx, lang)
    if not ctx.causes:
        listed = ", ".join(differing[:8]) or "the ELF headers"
        ctx.cause("content", f"{listed} differ, with no build path, build id or timestamp found",
                  _fix_content())


def _elf_build_ids(a: Path, b: Path, by_a: dict[str, elf.Section], by_b: dict[str, elf.Section],
                   differing: list[str], ctx: _Context, lang: str) -> None:
    """A build id that differs is the cause only when nothing else does: GNU build ids and
    Go's content ids are hashes of the rest, so they differ whenever anything else differs."""
    ids = []
    for label, get in (("GNU build id", _gnu_build_id), ("Go build id", _go_build_id)):
        ia, ib = get(a, by_a), get(b, by_b)
        if ia != ib:
            ids.append((label, ia, ib))
    if not ids:
        return
    for label, ia, ib in ids:
        ctx.detail(f"{label}: {_show(ia)} vs {_show(ib)}")
    if ctx.has("build-path", "timestamp"):
        ctx.detail("the build id follows from the differences above")
        return
    # the Go id is also written at the start of .text: that copy is part of the build id too
    go_a = _go_build_id(a, by_a) or b""
    go_b = _go_build_id(b, by_b) or b""
    others = [n for n in differing if n not in _BUILD_ID_NOTES]
    unexplained = [
        n for n in others
        if n not in by_a or n not in by_b
        or not _differs_only_by(a, by_a[n], go_a, b, by_b[n], go_b)
    ]
    if unexplained:
        ctx.detail(f"sections {', '.join(unexplained[:8])} differ beyond the build id, which "
                   "follows from them")
        return
    needles = _needles(ctx)
    for label, ia, ib in ids:
        where = ".note.go.buildid" if label.startswith("Go") else ".note.gnu.build-id"
        inside = sorted({d.decode(errors="replace") for d in needles
                         for value in (ia, ib) if value and d in value})
        note = f" (it contains the build dir {', '.join(inside)})" if inside else ""
        ctx.cause("build-id", f"{label} {_show(ia)} vs {_show(ib)} in {where}{note}; nothing "
                  "else differs", _fix_build_id("go" if label.startswith("Go") else lang))


def _show(value: bytes | None) -> str:
    if value is None:
        return "none"
    if value.isascii() and value.decode().isprintable():
        return repr(value.decode())
    return value.hex()


def _by_name(sections: Iterable[elf.Section]) -> dict[str, elf.Section]:
    out: dict[str, elf.Section] = {}
    for index, section in enumerate(sections):
        if index == 0 and not section.name:
            continue
        key = section.name if section.name not in out else f"{section.name}#{index}"
        out[key] = section
    return out


def _elf_language(path: Path, sections: Mapping[str, elf.Section]) -> str:
    if any(n in sections for n in _GO_SECTIONS):
        return "go"
    comment = sections.get(".comment")
    if comment is not None:
        text = _read_at(path, comment.offset, min(comment.size, 64 << 10))
        if b"rustc" in text:
            return "rust"
        if b"GCC:" in text or b"clang" in text:
            return "c"
    return ""


def _notes(data: bytes, little: bool) -> Iterator[tuple[bytes, int, bytes]]:
    """(name, type, descriptor) of each note in a SHT_NOTE section's bytes."""
    end = "<" if little else ">"
    at = 0
    while at + 12 <= len(data):
        namesz, descsz, note_type = struct.unpack(end + "III", data[at : at + 12])
        name_at = at + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        desc_end = desc_at + descsz
        if desc_end > len(data):
            return
        yield data[name_at : name_at + namesz].rstrip(b"\0"), note_type, data[desc_at:desc_end]
        at = desc_at + (descsz + 3) // 4 * 4


def _note_desc(path: Path, sections: Mapping[str, elf.Section], name: str) -> bytes | None:
    section = sections.get(name)
    if section is None or section.size > 4096:
        return None
    little = _read_at(path, 5, 1) == b"\x01"
    for _, _, desc in _notes(_read_at(path, section.offset, section.size), little):
        return desc
    return None


def _gnu_build_id(path: Path, sections: Mapping[str, elf.Section]) -> bytes | None:
    return _note_desc(path, sections, ".note.gnu.build-id")


def _go_build_id(path: Path, sections: Mapping[str, elf.Section]) -> bytes | None:
    note = _note_desc(path, sections, ".note.go.buildid")
    if note is not None:
        return note
    text = sections.get(".text")
    if text is None:
        return None
    head = _read_at(path, text.offset, min(text.size, 4096))
    at = head.find(_GO_ID_MARK)
    if at < 0:
        return None
    start = at + len(_GO_ID_MARK)
    end = head.find(b'"', start)
    return head[start:end] if end > 0 else None


def _section_digest(path: Path, section: elf.Section) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(path, section.offset, section.size):
        digest.update(chunk)
    return digest.hexdigest()


def _differs_only_by(a: Path, sa: elf.Section, id_a: bytes, b: Path, sb: elf.Section,
                     id_b: bytes) -> bool:
    """Whether two sections are equal once every copy of the build id is blanked out: same
    size, the ids at the same offsets, every other byte the same."""
    if sa.size != sb.size or not id_a or len(id_a) != len(id_b):
        return False
    at_a = _occurrences(a, sa, id_a)
    if at_a != _occurrences(b, sb, id_b):
        return False
    offset = 0
    blank = b"\0" * len(id_a)
    for ca, cb in zip(_chunks(a, sa.offset, sa.size), _chunks(b, sb.offset, sb.size),
                      strict=True):
        if ca != cb:
            ma, mb = bytearray(ca), bytearray(cb)
            for at in at_a:
                lo, hi = max(at - offset, 0), min(at + len(id_a) - offset, len(ca))
                if lo < hi:
                    ma[lo:hi] = blank[: hi - lo]
                    mb[lo:hi] = blank[: hi - lo]
            if ma != mb:
                return False
        offset += len(ca)
    return True


def _occurrences(path: Path, section: elf.Section, needle: bytes, limit: int = 64) -> list[int]:
    found: list[int] = []
    offset = 0
    tail = b""
    for chunk in _chunks(path, section.offset, section.size):
        window = tail + chunk
        base = offset - len(tail)
        at = window.find(needle)
        while at >= 0 and len(found) < limit:
            if base + at not in found:
                found.append(base + at)
            at = window.find(needle, at + 1)
        offset += len(chunk)
        tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
    return found


# tar -------------------------------------------------------------------------------------------

_PAX_IN_FIELDS: Final = {"path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname"}
_PAX_TIMES: Final = {"atime", "ctime", "LIBARCHIVE.creationtime"}


@dataclass(frozen=True, kw_only=True)
class _Entry:
    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    size: int
    linkname: str
    digest: str
    extra: tuple[tuple[str, str], ...]  # pax records not already in the fields above


def _read_tar(path: Path) -> list[_Entry]:
    """Every entry's metadata and content digest, read as a stream (plain or compressed)."""
    entries = []
    with _open_uncompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            digest = ""
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                h = hashlib.sha256()
                while chunk := handle.read(CHUNK):
                    h.update(chunk)
                digest = h.hexdigest()
            entries.append(_Entry(
                name=member.name, type=member.type, mode=member.mode, uid=member.uid,
                gid=member.gid, uname=member.uname, gname=member.gname, mtime=member.mtime,
                size=member.size, linkname=member.linkname, digest=digest,
                extra=tuple(sorted((k, v) for k, v in member.pax_headers.items()
                                   if k not in _PAX_IN_FIELDS)),
            ))
    return entries


def _explain_tar(a: Path, b: Path, ctx: _Context) -> None:
    try:
        entries_a, entries_b = _read_tar(a), _read_tar(b)
    except _UNREADABLE as error:
        ctx.detail(f"an archive that cannot be read to the end ({error}): compared as bytes")
        _explain_bytes(a, b, ctx)
        return
    map_a = {e.name: e for e in entries_a}
    map_b = {e.name: e for e in entries_b}
    for name in sorted(map_a.keys() - map_b.keys()):
        _entry_only(name, ctx.left.label, ctx.right.label, ctx)
    for name in sorted(map_b.keys() - map_a.keys()):
        _entry_only(name, ctx.right.label, ctx.left.label, ctx)
    order_a = [e.name for e in entries_a if e.name in map_b]
    order_b = [e.name for e in entries_b if e.name in map_a]
    if sorted(order_a) != sorted(order_b):  # a name written twice in one of them
        ctx.detail("an entry name appears more often in one archive than in the other")
        ctx.cause("content", "duplicate entries differ (a file added twice)", _fix_content())
    elif order_a != order_b:
        at = next(i for i, (x, y) in enumerate(zip(order_a, order_b, strict=True)) if x != y)
        ctx.detail(f"entry order differs from position {at}: {order_a[at:at + 3]} vs "
                   f"{order_b[at:at + 3]}")
        ctx.cause("file-order", f"the same entries in another order, from entry {at}: "
                  f"{order_a[at]!r} ({ctx.left.label}) vs {order_b[at]!r} ({ctx.right.label})",
                  _fix_order())
    content: list[str] = []
    for name in order_a:
        ea, eb = map_a[name], map_b[name]
        if ea == eb:
            continue
        _compare_entry(ea, eb, ctx)
        if ea.digest and eb.digest and ea.digest != eb.digest:
            content.append(name)
    for name in content[:MAX_NESTED]:
        _explain_entry_content(a, b, name, ctx)
    if len(content) > MAX_NESTED:
        ctx.detail(f"{len(content) - MAX_NESTED} more entries with differing content not "
                   "explained in turn")
    if not ctx.causes:
        _explain_framing(a, b, ctx)


def _entry_only(name: str, present: str, absent: str, ctx: _Context) -> None:
    ctx.detail(f"entry {name} only in {present}'s archive")
    ctx.cause("content", f"entry {name} is in {present}'s archive and not in {absent}'s",
              "make the recipe write the same files in every build (a glob or a tool found "
              "or not)")


def _compare_entry(ea: _Entry, eb: _Entry, ctx: _Context) -> None:
    name = ea.name
    if ea.type != eb.type or ea.linkname != eb.linkname:
        ctx.detail(f"entry {name}: type/link {ea.type!r} {ea.linkname!r} vs {eb.type!r} "
                   f"{eb.linkname!r}")
        ctx.cause("content", f"entry {name} is a different kind of file or link target",
                  _fix_content())
    if ea.mode != eb.mode:
        ctx.mode(f"entry {name}", ea.mode, eb.mode)
    owners = [
        f"{what} {x!r} vs {y!r}"
        for what, x, y in (("uid", ea.uid, eb.uid), ("gid", ea.gid, eb.gid),
                           ("uname", ea.uname, eb.uname), ("gname", ea.gname, eb.gname))
        if x != y
    ]
    if owners:
        ctx.detail(f"entry {name}: {', '.join(owners)}")
        note = ""
        if ctx.left.uid is not None and ctx.right.uid is not None:
            note = f" (the builds ran as uid {ctx.left.uid} vs {ctx.right.uid})"
        ctx.cause("owner", f"entry {name}: {', '.join(owners)}{note}", _fix_owner())
    if ea.mtime != eb.mtime:
        ctx.detail(f"entry {name}: mtime {_when(ea.mtime)} vs {_when(eb.mtime)}")
        sources = [s for s in (_stamp_source(str(int(t)).encode(), ctx, side)
                               for t, side in ((ea.mtime, ctx.left), (eb.mtime, ctx.right))) if s]
        note = f" (= {sources[0]})" if sources else ""
        ctx.cause("mtime", f"entry {name}: mtime {_when(ea.mtime)} vs {_when(eb.mtime)}{note}",
                  _fix_mtime())
    if ea.extra != eb.extra:
        xa, xb = dict(ea.extra), dict(eb.extra)
        for key in sorted(xa.keys() | xb.keys()):
            if xa.get(key) == xb.get(key):
                continue
            ctx.detail(f"entry {name}: pax {key} {xa.get(key)!r} vs {xb.get(key)!r}")
            if key in _PAX_TIMES:
                ctx.cause("mtime", f"entry {name}: pax {key} {xa.get(key)!r} vs "
                          f"{xb.get(key)!r}", _fix_mtime() + "; drop atime/ctime records")
            else:
                ctx.cause("content", f"entry {name}: pax record {key} differs", _fix_content())
    if ea.digest != eb.digest or ea.size != eb.size:
        ctx.detail(f"entry {name}: content differs ({ea.size} vs {eb.size} bytes)")


def _when(t: float) -> str:
    try:
        stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        stamp = "?"
    shown = str(int(t)) if t == int(t) else repr(t)
    return f"{shown} ({stamp})"


def _explain_entry_content(a: Path, b: Path, name: str, ctx: _Context) -> None:
    """Explain one differing entry's content in turn: both copies are extracted (to files named
    by the side, never by the entry's hostile name) and compared as files of their own."""
    with tempfile.TemporaryDirectory(prefix="crossyard-explain-") as tmp:
        pa, pb = Path(tmp) / "left", Path(tmp) / "right"
        if not (_extract_one(a, name, pa) and _extract_one(b, name, pb)):
            ctx.cause("content", f"entry {name}: content differs", _fix_content())
            return
        _explain_nested(pa, pb, f"entry {name}", ctx)


def _explain_nested(a: Path, b: Path, what: str, ctx: _Context) -> None:
    inner = explain(a, b, name=what, left=ctx.left, right=ctx.right)
    for cause in inner.causes:
        ctx.cause(cause.name, f"{what}: {cause.evidence}", cause.fix)
    for line in inner.details[:8]:
        ctx.detail(f"  {what}: {line}")


def _explain_gzip(a: Path, b: Path, ctx: _Context) -> bool:
    """Two gzip files (not tar: a man page, a compressed data file): the header, then the
    uncompressed content in turn. False when one of them does not decompress."""
    with tempfile.TemporaryDirectory(prefix="crossyard-explain-") as tmp:
        pa, pb = Path(tmp) / "left", Path(tmp) / "right"
        try:
            for source, target in ((a, pa), (b, pb)):
                with gzip.open(source, "rb") as handle, target.open("wb") as out:
                    shutil.copyfileobj(handle, out, CHUNK)
        except (OSError, EOFError, zlib.error):
            return False
        same = _same_bytes(pa, pb)
        ctx.detail(f"gzip: the uncompressed contents are {'the same' if same else 'different'}")
        _explain_gzip_header(a, b, ctx, header_only=not same)
        if not same:
            _explain_nested(pa, pb, "uncompressed", ctx)
    return True


def _extract_one(archive: Path, name: str, into: Path) -> bool:
    found = False
    with _open_uncompressed(archive) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if member.name == name and member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                with into.open("wb") as out:
                    shutil.copyfileobj(handle, out, CHUNK)
                found = True  # a later entry of the same name wins, as on extraction
    return found


def _explain_framing(a: Path, b: Path, ctx: _Context) -> None:
    """The entries are all the same: what differs is the compression or the tar framing."""
    compression = _compression(_read_at(a, 0, 4))
    if compression and compression == _compression(_read_at(b, 0, 4)):
        if _uncompressed_digest(a) == _uncompressed_digest(b):
            if compression == "gzip":
                _explain_gzip_header(a, b, ctx)
            else:
                ctx.cause("content", f"the same archive, {compression}-compressed differently "
                          "(level, frame parameters or compressor version)",
                          "pin the compressor and its level (crossyard's layer writer does)")
            return
        ctx.detail("the uncompressed archives differ although every entry is the same")
    ctx.cause("content", "every entry is the same; the tar framing differs (format: ustar, "
              "GNU or pax headers, padding or the end-of-archive blocks)",
              "write archives with one tar implementation and format in every build (the "
              "layer writer, not the host's tar)")


def _explain_gzip_header(a: Path, b: Path, ctx: _Context, *, header_only: bool = False) -> None:
    ha, hb = _read_at(a, 0, 10), _read_at(b, 0, 10)
    mtime_a, mtime_b = struct.unpack("<I", ha[4:8])[0], struct.unpack("<I", hb[4:8])[0]
    if mtime_a != mtime_b:
        source = _stamp_source(str(mtime_a).encode(), ctx, ctx.left) or _stamp_source(
            str(mtime_b).encode(), ctx, ctx.right)
        note = f" (= {source})" if source else ""
        ctx.cause("timestamp", f"gzip header mtime {mtime_a} vs {mtime_b}{note}",
                  "compress without a time in the header: gzip -n, or GzipFile(mtime=0)")
    if ha[3] != hb[3] or _gzip_name(a) != _gzip_name(b):
        ctx.cause("content", f"gzip header flags/name differ: {_gzip_name(a)!r} vs "
                  f"{_gzip_name(b)!r}", "compress without a name in the header: gzip -n")
    if not ctx.causes and not header_only:
        ctx.cause("content", "the same uncompressed data compressed differently (gzip level "
                  f"byte {ha[8]} vs {hb[8]}, or another compressor version)",
                  "pin the compressor and its level (crossyard's layer writer does)")


def _is_gzip(path: Path) -> bool:
    return _read_at(path, 0, 2) == b"\x1f\x8b"


def _uncompressed_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with _open_uncompressed(path) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
# what reading a damaged or truncated archive raises, whichever compression it has
_UNREADABLE: Final = (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError)


def _compression(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == _ZSTD_MAGIC:
        return "zstd"
    return ""


@contextlib.contextmanager
def _open_uncompressed(path: Path) -> Iterator[IO[bytes]]:
    """`path`'s bytes, decompressed as a stream when gzip or zstd (layers come in both)."""
    with path.open("rb") as raw:
        compression = _compression(raw.read(4))
        raw.seek(0)
        if compression == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield cast(IO[bytes], unzipped)
        elif compression == "zstd":
            with zstandard.ZstdDecompressor().stream_reader(raw, closefd=False) as unzstd:
                yield cast(IO[bytes], unzstd)
        else:
            yield raw


def _gzip_name(path: Path) -> bytes:
    head = _read_at(path, 0, 4096)
    if len(head) < 10 or not head[3] & 0x08:
        return b""
    at = 10
    if head[3] & 0x04:  # FEXTRA comes first
        at += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", at)
    return head[at:end] if end >= 0 else b""


# JSON ------------------------------------------------------------------------------------------

_TIME_KEYS: Final = {
    "created", "timestamp", "date", "time", "modified", "buildstartedon", "buildfinishedon",
    "startedon", "finishedon", "org.opencontainers.image.created",
}
_ISO_RE: Final = re.compile(r"\d{4}-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d")
_DIGEST_RE: Final = re.compile(r"sha(256|512):[0-9a-f]{64,128}")
_ABSENT: Final = object()
MAX_JSON_DIFFS: Final = 200


def _explain_json(a: Path, b: Path, ctx: _Context) -> None:
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
            ctx.cause("timestamp", f"{dotted}: {_brief(x)} vs {_brief(y)}", _fix_timestamp("json"))
            continue
        if (*path[:-1], "digest") in digests and key == "size":
            continue  # the size of a differing blob: part of that difference
        if tuple(path) in digests:
            referenced.append(f"{dotted}: the referenced blob differs ({_brief(x)} vs "
                              f"{_brief(y)})")
            continue
        before = len(ctx.causes)
        if isinstance(x, str) and isinstance(y, str):
            _scan_whole(x.encode(), y.encode(), f"key {dotted}", ctx)
        if len(ctx.causes) == before:
            ctx.cause("content", f"{dotted}: {_brief(x)} vs {_brief(y)}", _fix_content())
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
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


# text ------------------------------------------------------------------------------------------


def _explain_text(a: Path, b: Path, ctx: _Context) -> None:
    size_a, size_b = a.stat().st_size, b.stat().st_size
    if size_a > MAX_TEXT_BYTES or size_b > MAX_TEXT_BYTES:
        _explain_bytes(a, b, ctx)
        return
    lines_a = a.read_bytes().decode(errors="replace").splitlines()
    lines_b = b.read_bytes().decode(errors="replace").splitlines()
    # difflib is quadratic in the worst case: only texts of a readable length get a line diff
    if len(lines_a) + len(lines_b) <= MAX_DIFF_LINES:
        for line in difflib.unified_diff(lines_a, lines_b, ctx.left.label, ctx.right.label,
                                         n=0, lineterm=""):
            if not line.startswith(("---", "+++")):
                ctx.detail(line if len(line) <= 160 else line[:157] + "…")
    needles = list(_needles(ctx))
    _compare_found(_scan(a, 0, size_a, needles), _scan(b, 0, size_b, needles), "the text",
                   ctx, "")
    if not ctx.causes and sorted(lines_a) == sorted(lines_b):
        moved = next(i for i, (x, y) in enumerate(zip(lines_a, lines_b, strict=True)) if x != y)
        evidence = (f"the same lines in another order from line {moved + 1}: "
                    f"{lines_a[moved]!r} vs {lines_b[moved]!r}")
        if ctx.left.locale != ctx.right.locale and None not in (ctx.left.locale,
                                                                ctx.right.locale):
            ctx.cause("locale", f"{evidence} (locale {ctx.left.locale} vs "
                      f"{ctx.right.locale})", _fix_locale())
        else:
            ctx.cause("file-order", evidence, "sort what is listed (a directory listing or a "
                      "glob follows the on-disk order): sorted(…), or ls/find | LC_ALL=C sort")
    if not ctx.causes:
        ctx.cause("content", "the text differs (see details) with no build path or timestamp "
                  "found", _fix_content())


_EXPLAINERS: dict[str, Any] = {
    "elf": _explain_elf,
    "tar": _explain_tar,
    "gzip+tar": _explain_tar,
    "zstd+tar": _explain_tar,
    "json": _explain_json,
    "text": _explain_text,
    "bytes": _explain_bytes,
}


# ---------------------------------------------------------------------------------------------
# helpers


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def _chunks(path: Path, offset: int, size: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _is_tar(block: bytes) -> bool:
    return len(block) >= 262 and block[257:262] == b"ustar"


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _first_difference(a: Path, b: Path) -> int:
    offset = 0
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca != cb:
                for i, (x, y) in enumerate(zip(ca, cb, strict=False)):
                    if x != y:
                        return offset + i
                return offset + min(len(ca), len(cb))
            if not ca:
                return offset
            offset += len(ca)


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
