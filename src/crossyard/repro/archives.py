"""tar archives and image layers (plain, gzip or zstd), static libraries (ar), and other
compressed files.

Archives are read as streams: each entry's metadata and content digest, then the content of a
few differing entries explained in turn."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import shutil
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final, cast

import zstandard

from .evidence import (
    CHUNK,
    Findings,
    chunks,
    explain_raw,
    fix_content,
    fix_mtime,
    fix_order,
    fix_owner,
    read_at,
    same_bytes,
    scan_whole,
    stamp_source,
)

MAX_NESTED: Final = 3  # differing tar entries whose content is explained in turn
_PAX_IN_FIELDS: Final = {"path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname"}
_PAX_TIMES: Final = {"atime", "ctime", "LIBARCHIVE.creationtime"}
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
# what reading a damaged or truncated archive raises, whichever compression it has
UNREADABLE: Final = (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError)


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
    with open_uncompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
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


def explain_tar(a: Path, b: Path, ctx: Findings) -> None:
    try:
        entries_a, entries_b = _read_tar(a), _read_tar(b)
    except UNREADABLE as error:
        ctx.detail(f"an archive that cannot be read to the end ({error}): compared as bytes")
        explain_raw(a, b, ctx)
        return
    _compare_entries(a, b, entries_a, entries_b, _extract_one, ctx)
    if not ctx.causes:
        _explain_framing(a, b, ctx)


def explain_ar(a: Path, b: Path, ctx: Findings) -> None:
    """A static library (`ar`): its members as a tar's entries. The symbol table is left out:
    it lists the members' symbols, so it differs exactly when they do."""
    try:
        entries_a, entries_b = _read_ar(a), _read_ar(b)
    except (_ArError, OSError) as error:
        ctx.detail(f"an ar archive that cannot be read ({error}): compared as bytes")
        explain_raw(a, b, ctx)
        return
    _compare_entries(a, b, entries_a, entries_b, _extract_ar_member, ctx)
    if not ctx.causes:
        ctx.cause("content", "every member is the same; the symbol table or the archive's "
                  "headers differ", "create the archive with one ar, deterministically (ar D, "
                  "the Debian default)")


def _compare_entries(a: Path, b: Path, entries_a: list[_Entry], entries_b: list[_Entry],
                     extract: Callable[[Path, str, Path], bool], ctx: Findings) -> None:
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
        ctx.cause("content", "duplicate entries differ (a file added twice)", fix_content())
    elif order_a != order_b:
        at = next(i for i, (x, y) in enumerate(zip(order_a, order_b, strict=True)) if x != y)
        ctx.detail(f"entry order differs from position {at}: {order_a[at:at + 3]} vs "
                   f"{order_b[at:at + 3]}")
        ctx.cause("file-order", f"the same entries in another order, from entry {at}: "
                  f"{order_a[at]!r} ({ctx.left.label}) vs {order_b[at]!r} ({ctx.right.label})",
                  fix_order())
    content: list[str] = []
    for name in dict.fromkeys(order_a):
        ea, eb = map_a[name], map_b[name]
        if ea == eb:
            continue
        _compare_entry(ea, eb, ctx)
        if ea.digest and eb.digest and ea.digest != eb.digest:
            content.append(name)
    for name in content[:MAX_NESTED]:
        _explain_entry_content(a, b, name, extract, ctx)
    if len(content) > MAX_NESTED:
        ctx.detail(f"{len(content) - MAX_NESTED} more entries with differing content not "
                   "explained in turn")


def _entry_only(name: str, present: str, absent: str, ctx: Findings) -> None:
    ctx.detail(f"entry {name} only in {present}'s archive")
    ctx.cause("content", f"entry {name} is in {present}'s archive and not in {absent}'s",
              "make the recipe write the same files in every build (a glob or a tool found "
              "or not)")


def _compare_entry(ea: _Entry, eb: _Entry, ctx: Findings) -> None:
    name = ea.name
    if ea.type != eb.type or ea.linkname != eb.linkname:
        ctx.detail(f"entry {name}: type/link {ea.type!r} {ea.linkname!r} vs {eb.type!r} "
                   f"{eb.linkname!r}")
        before = len(ctx.causes)
        if ea.type == eb.type:  # a link to where the build ran, or to a dated name
            scan_whole(ea.linkname.encode(), eb.linkname.encode(), f"entry {name}'s link "
                        "target", ctx)
        if len(ctx.causes) == before:
            ctx.cause("content", f"entry {name} is a different kind of file or link target",
                      fix_content())
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
        ctx.cause("owner", f"entry {name}: {', '.join(owners)}{note}", fix_owner())
    if ea.mtime != eb.mtime:
        ctx.detail(f"entry {name}: mtime {_when(ea.mtime)} vs {_when(eb.mtime)}")
        sources = [s for s in (stamp_source(str(int(t)).encode(), ctx, side)
                               for t, side in ((ea.mtime, ctx.left), (eb.mtime, ctx.right))) if s]
        note = f" (= {sources[0]})" if sources else ""
        ctx.cause("mtime", f"entry {name}: mtime {_when(ea.mtime)} vs {_when(eb.mtime)}{note}",
                  fix_mtime())
    if ea.extra != eb.extra:
        xa, xb = dict(ea.extra), dict(eb.extra)
        for key in sorted(xa.keys() | xb.keys()):
            if xa.get(key) == xb.get(key):
                continue
            ctx.detail(f"entry {name}: pax {key} {xa.get(key)!r} vs {xb.get(key)!r}")
            if key in _PAX_TIMES:
                ctx.cause("mtime", f"entry {name}: pax {key} {xa.get(key)!r} vs "
                          f"{xb.get(key)!r}", fix_mtime() + "; drop atime/ctime records")
            else:
                ctx.cause("content", f"entry {name}: pax record {key} differs", fix_content())
    if ea.digest != eb.digest or ea.size != eb.size:
        ctx.detail(f"entry {name}: content differs ({ea.size} vs {eb.size} bytes)")


def _when(t: float) -> str:
    try:
        stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        stamp = "?"
    shown = str(int(t)) if t == int(t) else repr(t)
    return f"{shown} ({stamp})"


def _explain_entry_content(a: Path, b: Path, name: str,
                           extract: Callable[[Path, str, Path], bool], ctx: Findings) -> None:
    """Explain one differing entry's content in turn: both copies are extracted (to files named
    by the side, never by the entry's hostile name) and compared as files of their own."""
    with tempfile.TemporaryDirectory(prefix="crossyard-explain-") as tmp:
        pa, pb = Path(tmp) / "left", Path(tmp) / "right"
        if not (extract(a, name, pa) and extract(b, name, pb)):
            ctx.cause("content", f"entry {name}: content differs", fix_content())
            return
        _explain_nested(pa, pb, f"entry {name}", ctx)


def _explain_nested(a: Path, b: Path, what: str, ctx: Findings) -> None:
    inner = ctx.recurse(a, b, name=what, left=ctx.left, right=ctx.right)
    for cause in inner.causes:
        ctx.cause(cause.name, f"{what}: {cause.evidence}", cause.fix)
    for line in inner.details[:8]:
        ctx.detail(f"  {what}: {line}")


def _explain_compressed(a: Path, b: Path, compression: str, ctx: Findings) -> bool:
    """Two gzip or zstd files that are not tar (a man page, a compressed data file): a gzip
    header, then the uncompressed content in turn. False when one does not decompress."""
    with tempfile.TemporaryDirectory(prefix="crossyard-explain-") as tmp:
        pa, pb = Path(tmp) / "left", Path(tmp) / "right"
        try:
            for source, target in ((a, pa), (b, pb)):
                with open_uncompressed(source) as handle, target.open("wb") as out:
                    shutil.copyfileobj(handle, out, CHUNK)
        except UNREADABLE:
            return False
        same = same_bytes(pa, pb)
        ctx.detail(f"{compression}: the uncompressed contents are "
                   f"{'the same' if same else 'different'}")
        if compression == "gzip":
            _explain_gzip_header(a, b, ctx, header_only=not same)
        elif same:
            ctx.cause("content", "the same data, zstd-compressed differently (level, frame "
                      "parameters or compressor version)", "pin the compressor and its level")
        if not same:
            _explain_nested(pa, pb, "uncompressed", ctx)
    return True


def _extract_one(archive: Path, name: str, into: Path) -> bool:
    found = False
    with open_uncompressed(archive) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if member.name == name and member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                with into.open("wb") as out:
                    shutil.copyfileobj(handle, out, CHUNK)
                found = True  # a later entry of the same name wins, as on extraction
    return found


def _explain_framing(a: Path, b: Path, ctx: Findings) -> None:
    """The entries are all the same: what differs is the compression or the tar framing."""
    compression = compression_of(read_at(a, 0, 4))
    if compression and compression == compression_of(read_at(b, 0, 4)):
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


def _explain_gzip_header(a: Path, b: Path, ctx: Findings, *, header_only: bool = False) -> None:
    ha, hb = read_at(a, 0, 10), read_at(b, 0, 10)
    mtime_a, mtime_b = struct.unpack("<I", ha[4:8])[0], struct.unpack("<I", hb[4:8])[0]
    if mtime_a != mtime_b:
        source = stamp_source(str(mtime_a).encode(), ctx, ctx.left) or stamp_source(
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


def _uncompressed_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open_uncompressed(path) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def compression_of(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == _ZSTD_MAGIC:
        return "zstd"
    return ""


@contextlib.contextmanager
def open_uncompressed(path: Path) -> Iterator[IO[bytes]]:
    """`path`'s bytes, decompressed as a stream when gzip or zstd (layers come in both)."""
    with path.open("rb") as raw:
        compression = compression_of(raw.read(4))
        raw.seek(0)
        if compression == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield cast(IO[bytes], unzipped)
        elif compression == "zstd":
            with zstandard.ZstdDecompressor().stream_reader(raw, closefd=False) as unzstd:
                yield cast(IO[bytes], unzstd)
        else:
            yield raw


AR_MAGIC: Final = b"!<arch>\n"
_AR_HEADER: Final = 60
_AR_SYMBOL_TABLES: Final = ("/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED")


class _ArError(ValueError):
    """A malformed ar archive."""


def _ar_members(path: Path) -> Iterator[tuple[str, bytes, int, int]]:
    """(name, 60-byte header, data offset, data size) of each member, the GNU long-name table
    resolved; the data is not read."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if handle.read(8) != AR_MAGIC:
            raise _ArError("no !<arch> magic")
        at, long_names = 8, b""
        while at + _AR_HEADER <= size:
            handle.seek(at)
            header = handle.read(_AR_HEADER)
            if header[58:60] != b"`\n":
                raise _ArError(f"bad member header at offset {at}")
            try:
                length = int(header[48:58])
            except ValueError as error:
                raise _ArError(f"bad member size at offset {at}") from error
            raw = header[:16].rstrip(b" ")
            data_at = at + _AR_HEADER
            if raw == b"//":  # GNU: the table of names longer than 15 bytes
                long_names = handle.read(min(length, 1 << 20))
            elif raw.startswith(b"#1/") and raw[3:].isdigit():  # BSD: the name precedes the data
                name_len = int(raw[3:])
                raw = handle.read(name_len).rstrip(b"\0")
                data_at, length = data_at + name_len, length - name_len
            elif raw[:1] == b"/" and raw[1:].isdigit():
                start = int(raw[1:])
                end = long_names.find(b"/\n", start)
                raw = long_names[start:end if end >= 0 else len(long_names)]
            elif raw not in (b"/", b"/SYM64/"):
                raw = raw.removesuffix(b"/")
            if length < 0 or data_at + length > size:
                raise _ArError(f"member at offset {at} runs past the end of the file")
            if raw != b"//":
                yield raw.decode(errors="replace"), header, data_at, length
            at = data_at + length + (length & 1)  # members are 2-byte aligned


def _read_ar(path: Path) -> list[_Entry]:
    entries = []
    for name, header, offset, length in _ar_members(path):
        if name in _AR_SYMBOL_TABLES:
            continue
        digest = hashlib.sha256()
        for chunk in chunks(path, offset, length):
            digest.update(chunk)

        def number(field: bytes, base: int) -> int:
            return int(field.strip() or b"0", base)

        try:
            entries.append(_Entry(
                name=name, type=tarfile.REGTYPE, mode=number(header[40:48], 8) & 0o7777,
                uid=number(header[28:34], 10), gid=number(header[34:40], 10), uname="",
                gname="", mtime=number(header[16:28], 10), size=length, linkname="",
                digest=digest.hexdigest(), extra=(),
            ))
        except ValueError as error:
            raise _ArError(f"bad header of member {name}") from error
    return entries


def _extract_ar_member(archive: Path, name: str, into: Path) -> bool:
    found = None
    for member, _, offset, length in _ar_members(archive):
        if member == name:
            found = (offset, length)  # the last of a name, as for tar
    if found is None:
        return False
    with into.open("wb") as out:
        for chunk in chunks(archive, *found):
            out.write(chunk)
    return True


def _gzip_name(path: Path) -> bytes:
    head = read_at(path, 0, 4096)
    if len(head) < 10 or not head[3] & 0x08:
        return b""
    at = 10
    if head[3] & 0x04:  # FEXTRA comes first
        at += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", at)
    return head[at:end] if end >= 0 else b""



def explain_bytes(a: Path, b: Path, ctx: Findings) -> None:
    """Files of no kind of their own: a gzip or zstd file is decompressed and explained in
    turn; anything else is compared as bytes."""
    compression = compression_of(read_at(a, 0, 4))
    if (compression and compression == compression_of(read_at(b, 0, 4))
            and _explain_compressed(a, b, compression, ctx)):
        return
    explain_raw(a, b, ctx)

