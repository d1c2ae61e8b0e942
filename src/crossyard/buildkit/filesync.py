"""BuildKit's filesync, crossyard's side: sending a local directory to buildkitd (FileSync
DiffCopy, fsutil's protocol) and receiving an exporter's file (FileSend DiffCopy).

DiffCopy, as fsutil's sender speaks it (vendor/github.com/tonistiigi/fsutil/send.go): one STAT
packet per entry in walk order (depth first, names sorted bytewise, each directory before what
it holds), numbered from 0 in that order; an empty STAT ends the walk. The receiver asks for the
regular files it lacks by number (REQ); each is sent as DATA packets with that number, then an
empty DATA. FIN from the receiver is answered with FIN, and the call ends. Modes travel as Go's
os.FileMode (type bits high, not the st_mode layout), times in nanoseconds; a hard link's second
name carries the first name as its link name. The directory is filtered by the patterns the
daemon sends in the call's metadata (include-patterns, exclude-patterns, followpaths), as
fsutil's FilterFS does: parents of an included entry are sent before it even when they are not
included themselves.
"""

from __future__ import annotations

import os
import posixpath
import queue
import stat
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from .patterns import Pattern, compile_patterns, matches

CHUNK: Final = 32 * 1024  # what fsutil's sender reads and sends at a time

# Go's os.FileMode type and permission-extension bits
GO_DIR: Final = 1 << 31
GO_SYMLINK: Final = 1 << 27
GO_DEVICE: Final = 1 << 26
GO_NAMED_PIPE: Final = 1 << 25
GO_SETUID: Final = 1 << 23
GO_SETGID: Final = 1 << 22
GO_CHAR_DEVICE: Final = 1 << 21
GO_STICKY: Final = 1 << 20

PACKET_STAT, PACKET_REQ, PACKET_DATA, PACKET_FIN, PACKET_ERR = range(5)


def go_mode(st_mode: int) -> int:
    """os.FileMode of an lstat result, as Go's os.Lstat makes it."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFIFO: GO_NAMED_PIPE,
             stat.S_IFBLK: GO_DEVICE, stat.S_IFCHR: GO_DEVICE | GO_CHAR_DEVICE}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One entry of the walk, as its STAT packet says it."""

    path: str  # relative, slash-separated
    source: Path
    mode: int  # Go os.FileMode
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str
    devmajor: int
    devminor: int
    xattrs: tuple[tuple[str, bytes], ...]
    inode: tuple[int, int] | None = None  # (device, inode) of a regular file with other names

    @property
    def has_data(self) -> bool:
        """A regular file (not a hard link's second name): the receiver may ask for its bytes."""
        return self.mode & (GO_DIR | GO_SYMLINK | GO_DEVICE | GO_NAMED_PIPE) == 0


@dataclass(frozen=True, kw_only=True)
class Filter:
    includes: tuple[Pattern, ...] = ()
    excludes: tuple[Pattern, ...] = ()
    follow: tuple[str, ...] = ()


def _xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    values = []
    for name in sorted(names):
        try:
            values.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(values)


def _entry(root: Path, relative: str) -> Entry | None:
    source = root / relative
    info = os.lstat(source)
    if stat.S_ISSOCK(info.st_mode):
        return None  # nothing a build can copy
    linkname, size, devmajor, devminor, inode = "", 0, 0, 0, None
    mode = go_mode(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        linkname, size = os.readlink(source), info.st_size
    elif not stat.S_ISDIR(info.st_mode):
        size = info.st_size
        if stat.S_ISBLK(info.st_mode) or stat.S_ISCHR(info.st_mode):
            devmajor, devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            inode = (info.st_dev, info.st_ino)
    return Entry(path=relative, source=source, mode=mode, uid=info.st_uid, gid=info.st_gid, size=size,
                 mtime_ns=info.st_mtime_ns, linkname=linkname, devmajor=devmajor, devminor=devminor,
                 xattrs=_xattrs(source), inode=inode)


def walk(root: Path, rules: Filter = Filter()) -> Iterator[Entry]:
    """The entries of `root` fsutil's FilterFS would send, in its order."""
    includes = rules.includes + _followed(root, rules.follow)
    has_exceptions = any(p.exclusion for p in rules.excludes)
    seen: dict[tuple[int, int], str] = {}

    def visit(directory: str, pending: list[Entry]) -> Iterator[Entry]:
        names = sorted(os.listdir(root / directory if directory else root),
                       key=lambda n: n.encode("utf-8", "surrogateescape"))
        for name in names:
            relative = posixpath.join(directory, name) if directory else name
            entry = _entry(root, relative)
            if entry is None:
                continue
            is_dir = bool(entry.mode & GO_DIR)
            excluded = bool(rules.excludes) and matches(rules.excludes, relative)
            if is_dir and excluded and not has_exceptions:
                continue  # nothing under it can come back
            if (not includes or matches(includes, relative)) and not excluded:
                yield from pending
                pending = []
                if entry.inode is not None:
                    # a second name of a file sent before travels as a link to the first; only
                    # names actually sent count (fsutil's hard-link reset)
                    first = seen.setdefault(entry.inode, relative)
                    if first != relative:
                        entry = replace(entry, linkname=first, size=0)
                yield entry
                if is_dir:
                    yield from visit(relative, [])
            elif is_dir:
                yield from visit(relative, [*pending, entry])
    yield from visit("", [])


def _followed(root: Path, follow: tuple[str, ...]) -> tuple[Pattern, ...]:
    """Include patterns for the targets of the symlinks named in followpaths (a Dockerfile that
    is a symlink), kept inside `root`."""
    extra = []
    for name in follow:
        path = root / name.lstrip("/")
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if target.is_relative_to(root.resolve()):
                extra.append(target.relative_to(root.resolve()).as_posix())
    return compile_patterns(extra, "followpaths") if extra else ()


def decode_metadata(pairs: Sequence[tuple[str, str | bytes]]) -> dict[str, list[str]]:
    """gRPC metadata as filesync sends it: repeated keys, values URL-encoded where `KEY-encoded`
    says so (filesync's encodeOpts)."""
    raw: dict[str, list[str]] = {}
    for key, value in pairs:
        raw.setdefault(key, []).append(value.decode() if isinstance(value, bytes) else value)
    out = {}
    for key, values in raw.items():
        if raw.get(f"{key}-encoded", ["0"])[0].lower() in ("1", "true"):
            values = [urllib.parse.unquote_plus(v) for v in values]
        out[key] = values
    return out


def filter_of(options: Mapping[str, list[str]]) -> Filter:
    return Filter(includes=compile_patterns(options.get("include-patterns", []), "include-patterns"),
                  excludes=compile_patterns(options.get("exclude-patterns", []), "exclude-patterns"),
                  follow=tuple(options.get("followpaths", [])))


def send(requests: Iterator[Any], root: Path, rules: Filter, packet: Callable[..., Any],
         stat_message: Callable[..., Any]) -> Iterator[Any]:
    """The sender side of one DiffCopy call: packets to yield, answering `requests` (the
    receiver's packets). `packet`/`stat_message` make fsutil.types.Packet and Stat."""
    incoming: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for request in requests:
                incoming.put(request)
        except Exception as error:  # the call ended under us: stop the sender
            incoming.put(error)
        incoming.put(None)

    threading.Thread(target=read, daemon=True, name="filesync-recv").start()
    files: dict[int, Entry] = {}
    for number, entry in enumerate(walk(root, rules)):
        if entry.has_data and not entry.linkname:
            files[number] = entry
        yield packet(type=PACKET_STAT, stat=stat_message(
            path=entry.path, mode=entry.mode, uid=entry.uid, gid=entry.gid, size=entry.size,
            modTime=entry.mtime_ns, linkname=entry.linkname, devmajor=entry.devmajor,
            devminor=entry.devminor, xattrs=dict(entry.xattrs)))
    yield packet(type=PACKET_STAT)
    while True:
        request = incoming.get()
        if request is None or isinstance(request, Exception):
            return
        if request.type == PACKET_REQ:
            wanted = files.pop(request.ID, None)
            if wanted is None:
                yield packet(type=PACKET_ERR, data=f"invalid file id {request.ID}".encode())
                return
            yield from _file_data(wanted, request.ID, packet)
        elif request.type == PACKET_FIN:
            yield packet(type=PACKET_FIN)
            return
        elif request.type == PACKET_ERR:
            return


def _file_data(entry: Entry, number: int, packet: Callable[..., Any]) -> Iterator[Any]:
    try:
        handle = entry.source.open("rb")
    except OSError:
        pass  # as fsutil: a file gone since the walk is sent empty
    else:
        with handle:
            while chunk := handle.read(CHUNK):
                yield packet(type=PACKET_DATA, ID=number, data=chunk)
    yield packet(type=PACKET_DATA, ID=number)
