"""What explanations of every kind share: the findings gathered for one pair of files, the
fixes each cause comes with, and how a build path or a build's clock is recognised in bytes.

Files are streamed: a region is read chunk by chunk, a chunk boundary covered by a carried tail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import CAUSES, LABELS, Cause, Explanation, Variant

CHUNK: Final = 1 << 20
MAX_DETAILS: Final = 40  # lines of details an explanation keeps
MAX_EVIDENCE: Final = 3  # pieces of evidence a cause quotes before "… and N more"
MAX_JSON_BYTES: Final = 32 << 20
MAX_STAMPS: Final = 10_000  # timestamp-looking strings remembered per scanned region
# A build's clock is read when the job starts; what it embeds is read later, while it runs.
CLOCK_BEFORE: Final = 300
CLOCK_AFTER: Final = 4 * 3600


# ---------------------------------------------------------------------------------------------
# findings


@dataclass
class Findings:
    """Causes and details being gathered for one pair of files. `recurse` is `explain` itself,
    for what holds files of its own (a tar entry, a gzip file's content)."""

    left: Variant
    right: Variant
    recurse: Callable[..., Explanation]
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
        """Permission bits that differ: the umask's doing when only group/other bits do."""
        self.detail(f"{rel}: mode {mode_a:04o} vs {mode_b:04o}")
        if (mode_a ^ mode_b) & ~0o077 == 0:
            self.cause("umask", f"{rel}: mode {mode_a:04o} vs {mode_b:04o}{self._umasks()}",
                       fix_umask())
        else:
            self.cause("content", f"{rel}: mode {mode_a:04o} vs {mode_b:04o}", fix_content())

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


def merge_into(explanation: Explanation, ctx: Findings) -> Explanation:
    """`explanation` with what `ctx` found besides (a file whose mode differs as well)."""
    for cause in explanation.causes:
        ctx.cause(cause.name, cause.evidence, cause.fix)
    for line in explanation.details:
        ctx.detail(line)
    return ctx.explanation(explanation.name, explanation.kind)


def one_sided(name: str, kind_a: str, kind_b: str, left: Variant, right: Variant) -> Explanation:
    """A file in one build's output only (`kind_*` "missing" on the side that lacks it)."""
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
# fixes: concrete, naming crossyard's recipe keys where one applies


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


def fix_timestamp(lang: str) -> str:
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


def fix_build_id(lang: str) -> str:
    if lang == "go":
        return ("remove the per-build -buildid=… from [go] ldflags: crossyard passes "
                "-ldflags=-buildid= (empty) and a later -buildid wins")
    return ("link with a content-derived build id (-Wl,--build-id=sha1, the default) or none "
            "(-Wl,--build-id=none) in [c] ldflags, never a random one (--build-id=uuid)")


def fix_umask() -> str:
    return ("normalise modes when writing the archive/layer (0644 files, 0755 executables and "
            "directories) or run the build under a fixed umask 022")


def fix_order() -> str:
    return ("sort entries by name when writing the archive (tar --sort=name; in Python, "
            "sorted(os.listdir())) instead of following the directory's on-disk order")


def fix_mtime() -> str:
    return ("clamp mtimes to SOURCE_DATE_EPOCH when writing the archive (tar --mtime="
            "@$SOURCE_DATE_EPOCH --clamp-mtime; tarfile: set TarInfo.mtime)")


def fix_owner() -> str:
    return ("write entries as uid/gid 0 with empty or fixed names (tar --owner=0 --group=0 "
            "--numeric-owner; tarfile: set uid/gid/uname/gname)")


def fix_locale() -> str:
    return ("set LC_ALL=C.UTF-8 in the build environment (sort order, collation and messages "
            "follow the locale)")


def fix_c_runtime() -> str:
    return ("link both builds against the same C runtime: an object the linker took from a "
            "package (a start file such as Scrt1.o) carries the note on one side only. Debian's "
            "cross glibc (libc6-dev-ARCH-cross, built by cross-toolchain-base) has one, the "
            "native libc6-dev none: install the cross package where the native or emulated build "
            "links too (its gcc takes /usr/<triplet>/lib first), as the rust-emulated-* roots do")


def fix_rust_metadata() -> str:
    return ("cargo hashes the build host (the `host:` line of rustc -vV) into the -C metadata of "
            "build scripts and proc-macros, and a crate's metadata, which its symbols' hashes "
            "come from, takes in its dependencies' (cargo#8140): a cross and a native or emulated "
            "build of a crate with either differ in symbol names only. Build it one way, or "
            "leave the symbol table out ([profile.release] strip = \"symbols\" in Cargo.toml)")


def fix_content() -> str:
    return ("no known cause found: read the diffoscope HTML diff and look for an input that "
            "differs between the builds (a network fetch, a random seed, a parallel race)")


# ---------------------------------------------------------------------------------------------
# build paths and a build's clock, found in bytes


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
class Found:
    needles: set[bytes] = field(default_factory=set)
    stamps: set[bytes] = field(default_factory=set)


def scan(path: Path, start: int, size: int, needles: Iterable[bytes]) -> Found:
    """Build-path needles and timestamp-looking strings in `size` bytes of `path` at `start`,
    read chunk by chunk; a match across a chunk boundary is found through the carried tail."""
    wanted = [n for n in needles if n]
    overlap = max([len(n) for n in wanted] + [_STAMP_MAX_LEN])
    found = Found()
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


def _scan_bytes(data: bytes, needles: Iterable[bytes]) -> Found:
    found = Found()
    _scan_window(data, [n for n in needles if n], found, last=True, keep=0)
    return found


def _scan_window(window: bytes, needles: list[bytes], found: Found, *, last: bool,
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


def needle_dirs(ctx: Findings) -> dict[bytes, str]:
    """Build directories of both builds (as given and resolved), each to the build it is from."""
    out: dict[bytes, str] = {}
    for variant in (ctx.left, ctx.right):
        for d in variant.build_dirs:
            for spelling in {d.rstrip("/"), os.path.realpath(d)}:
                if len(spelling) > 1:
                    out.setdefault(spelling.encode(), variant.label)
    return out


def _clock_candidates(ctx: Findings, first: Variant | None
                      ) -> list[tuple[int, int, tzinfo, str]]:
    """(earliest, latest, zone, label): the windows a build may have taken an embedded time
    from, `first`'s (the build the time was found in) first. A clock read while the job runs
    is a little after the build's start; SOURCE_DATE_EPOCH is exact."""
    out = []
    order = (ctx.left, ctx.right) if first is not ctx.right else (ctx.right, ctx.left)
    for variant in order:
        if variant.source_date_epoch is not None:
            t = variant.source_date_epoch
            out.append((t, t, _zone(variant.tz), f"{variant.label}'s SOURCE_DATE_EPOCH"))
        if variant.epoch is not None:
            t = variant.epoch
            out.append((t - CLOCK_BEFORE, t + CLOCK_AFTER, _zone(variant.tz),
                        f"{variant.label}'s build time"))
    return out


def _zone(tz: str | None) -> tzinfo:
    if not tz:
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):  # unknown or malformed: UTC is tried anyway
        return UTC


def stamp_source(stamp: bytes, ctx: Findings, found_in: Variant | None = None) -> str | None:
    """Which build's clock `stamp` (found in `found_in`'s output) comes from; "" when it is a
    valid date or time matching neither build; None when it is no timestamp (a number out of
    every window, an impossible date)."""
    text = stamp.decode("ascii")
    candidates = _clock_candidates(ctx, found_in)
    if text.isdigit():
        value = int(text)
        for lo, hi, _, label in candidates:
            if lo <= value <= hi:
                return label
        return None
    parsed = _parse_stamp(text)
    if parsed is None:
        return None
    what, value_date, seconds = parsed
    for lo, hi, own_zone, label in candidates:
        for zone in (own_zone, UTC):
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


def compare_found(fa: Found, fb: Found, where: str, ctx: Findings, lang: str) -> None:
    """Causes from what one side's scan found and the other's did not."""
    needles = needle_dirs(ctx)
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
            source = stamp_source(stamp, ctx, side)
            if source is None:
                continue
            note = f", = {source}" if source else ""
            ctx.cause("timestamp", f"{stamp.decode()!r} ({_stamp_format(stamp)}{note}) in "
                      f"{where} of {side.label}'s output only",
                      fix_timestamp(lang))


def scan_whole(a: bytes, b: bytes, where: str, ctx: Findings, lang: str = "") -> None:
    needles = list(needle_dirs(ctx))
    compare_found(_scan_bytes(a, needles), _scan_bytes(b, needles), where, ctx, lang)


# ---------------------------------------------------------------------------------------------
# files


def explain_raw(a: Path, b: Path, ctx: Findings) -> None:
    """Any two files: where they first differ, and the build paths and times in one only."""
    size_a, size_b = a.stat().st_size, b.stat().st_size
    offset = _first_difference(a, b)
    ctx.detail(f"sizes {size_a} vs {size_b} bytes; first difference at offset {offset}")
    needles = list(needle_dirs(ctx))
    compare_found(scan(a, 0, size_a, needles), scan(b, 0, size_b, needles), "the file",
                   ctx, "")
    if not ctx.causes:
        ctx.cause("content", f"first difference at byte {offset} (sizes {size_a} vs {size_b})",
                  fix_content())


def read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def chunks(path: Path, offset: int, size: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def is_tar(block: bytes) -> bool:
    return len(block) >= 262 and block[257:262] == b"ustar"


def same_bytes(a: Path, b: Path) -> bool:
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

