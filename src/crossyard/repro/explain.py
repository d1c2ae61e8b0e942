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

import gzip
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

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
KINDS: Final = ("elf", "tar", "gzip+tar", "json", "text", "bytes", "missing")

CHUNK: Final = 1 << 20
MAX_DETAILS: Final = 40  # lines of details an explanation keeps
MAX_EVIDENCE: Final = 3  # pieces of evidence a cause quotes before "… and N more"
MAX_JSON_BYTES: Final = 32 << 20
MAX_TEXT_BYTES: Final = 4 << 20
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
    content, symlink target or permission bits), in name order. Identical trees give ()."""
    files_a, files_b = dict(_walk(a)), dict(_walk(b))
    missing: list[Explanation] = []
    differing: list[Explanation] = []
    for rel in sorted(files_a.keys() | files_b.keys()):
        if rel not in files_b or rel not in files_a:
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


def kind_of(path: Path) -> str:
    """What `path` holds, from its magic bytes: one of KINDS."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64 << 10)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return "missing"
    if head[:4] == elf.ELF_MAGIC:
        return "elf"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                inner = handle.read(512)
        except (OSError, EOFError):
            return "bytes"
        return "gzip+tar" if _is_tar(inner) else "bytes"
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


def _fix_build_path(dirs: Iterable[str], lang: str) -> str:
    listed = sorted(set(dirs)) or ["<build dir>"]
    if lang == "go":
        return "build with -trimpath (go build -trimpath), so source paths are module-relative"
    if lang == "rust":
        return "add " + " ".join(f"--remap-path-prefix={d}=." for d in listed) + " to RUSTFLAGS"
    c = "add " + " ".join(f"-ffile-prefix-map={d}=." for d in listed) + " to the C recipe's cflags"
    if lang == "c":
        return c
    return f"C: {c}; Go: build with -trimpath; Rust: --remap-path-prefix={listed[0]}=. in RUSTFLAGS"


def _fix_timestamp(lang: str) -> str:
    if lang == "json":
        return ("take the time written here (e.g. an image config's \"created\") from "
                "SOURCE_DATE_EPOCH, not the build's clock")
    if lang == "go":
        return ("honour SOURCE_DATE_EPOCH: do not stamp the build time in with -ldflags=-X; "
                "take it from SOURCE_DATE_EPOCH")
    if lang == "c":
        return ("honour SOURCE_DATE_EPOCH: set it in the job's environment (gcc then uses it for "
                "__DATE__/__TIME__), or drop __DATE__/__TIME__ from the source")
    return ("honour SOURCE_DATE_EPOCH: set it in the job's environment and take any embedded "
            "time from it instead of the clock (gcc does for __DATE__/__TIME__)")


def _fix_build_id(lang: str) -> str:
    if lang == "go":
        return ("do not pass a per-build -ldflags=-buildid=…: leave it unset (Go derives it from "
                "the inputs) or set it empty (-ldflags=-buildid=)")
    return ("link with a content-derived build id (-Wl,--build-id=sha1, the default) or none "
            "(-Wl,--build-id=none), never a random one (--build-id=uuid)")


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
    for match in _STAMP_RE.finditer(window):
        if len(found.stamps) >= MAX_STAMPS:
            break
        if match.end() <= limit or last:
            found.stamps.add(match.group())


def _needles(ctx: _Context) -> dict[bytes, str]:
    """Build directories of both builds (as given and resolved), each to the build it is from."""
    out: dict[bytes, str] = {}
    for variant in (ctx.left, ctx.right):
        for d in variant.build_dirs:
            for spelling in {d.rstrip("/"), os.path.realpath(d)}:
                if len(spelling) > 1:
                    out.setdefault(spelling.encode(), variant.label)
    return out


def _clock_candidates(ctx: _Context) -> list[tuple[int, int, int, str | None, str]]:
    """(earliest, latest, exact time, tz, label) windows a build may have embedded times from."""
    out = []
    for variant in (ctx.left, ctx.right):
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


def _stamp_source(stamp: bytes, ctx: _Context) -> str | None:
    """Which build's clock `stamp` comes from; "" when it is a valid date or time matching
    neither build; None when it is no timestamp (a number out of every window, a bad date)."""
    text = stamp.decode("ascii")
    candidates = _clock_candidates(ctx)
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
        side = ctx.left.label if in_a else ctx.right.label
        other = ctx.right.label if in_a else ctx.left.label
        paths.append((needle, f"{needle.decode(errors='replace')} (a {owner} build dir) in "
                      f"{where} of {side}'s output, not in {other}'s"))
    # report /a/b/src, not also its parent /a/b
    for needle, evidence in paths:
        if any(o != needle and o.startswith(needle + b"/") for o, _ in paths):
            continue
        ctx.cause("build-path", evidence, _fix_build_path(
            (n.decode(errors="replace") for n, _ in paths), lang))
    only_a = sorted(fa.stamps - fb.stamps)
    only_b = sorted(fb.stamps - fa.stamps)
    for stamps, side in ((only_a, ctx.left.label), (only_b, ctx.right.label)):
        for stamp in stamps:
            source = _stamp_source(stamp, ctx)
            if source is None:
                continue
            note = f" (= {source})" if source else ""
            ctx.cause("timestamp", f"{stamp.decode()!r}{note} in {where} of {side}'s output only",
                      _fix_timestamp(lang))


def _scan_whole(a: bytes, b: bytes, where: str, ctx: _Context, lang: str = "") -> None:
    needles = list(_needles(ctx))
    _compare_found(_scan_bytes(a, needles), _scan_bytes(b, needles), where, ctx, lang)


# ---------------------------------------------------------------------------------------------
# per kind


def _explain_bytes(a: Path, b: Path, ctx: _Context) -> None:
    size_a, size_b = a.stat().st_size, b.stat().st_size
    offset = _first_difference(a, b)
    ctx.detail(f"sizes {size_a} vs {size_b} bytes; first difference at offset {offset}")
    needles = list(_needles(ctx))
    _compare_found(_scan(a, 0, size_a, needles), _scan(b, 0, size_b, needles), "the file",
                   ctx, "")
    if not ctx.causes:
        ctx.cause("content", f"first difference at byte {offset} (sizes {size_a} vs {size_b})",
                  _fix_content())


_EXPLAINERS: dict[str, Any] = {
    "elf": _explain_bytes,
    "tar": _explain_bytes,
    "gzip+tar": _explain_bytes,
    "json": _explain_bytes,
    "text": _explain_bytes,
    "bytes": _explain_bytes,
}


# ---------------------------------------------------------------------------------------------
# helpers


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
            elif not any((base / d).iterdir()):
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
