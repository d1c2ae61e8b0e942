"""What executors send to a node, as tars that depend on content only: a job's source tree, and a
whole toolchain root (a Debian root under the roots directory) for a node or engine that lacks it.

A root is named by the sha256 of its tar, which is made the same way every time: depth first,
names sorted in each directory (a parent before its children), owners numeric (as in the root)
without names, modes as in the root (setuid bits included), mtime 0, hard links as links to the
first name in that order, devices and FIFOs kept, sockets dropped (they cannot be archived, and
nothing needs one), no extended attributes, GNU format (no pax time records). Roots are hundreds of MB to a few GB, so a
tar is never held in memory or written to disk here: `TarStream` runs the writer in a thread of
its own and hands the bytes over in chunks, a bounded number at a time. The digest of a root is
taken by streaming it once through sha256 and remembered (in this process, for every executor)
against a listing of every entry's metadata, so the next job re-reads only the listing; whoever
sends the root hashes the bytes again as they go, so a root changed behind that memo is caught.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from ..hashing import CHUNK
from ..oci.layer import LayerEntry, add_entry
from ..sources import ResolvedSource, iter_tree

QUEUE_DEPTH: Final = 8  # chunks of up to CHUNK bytes between a tar's writer and its reader


def add_source(tar: tarfile.TarFile, source: ResolvedSource, *, prefix: str = "", mtime: int = 0) -> None:
    """The files `copy_tree` would copy, sorted, modes 0755/0644 as it sets them, symlinks as
    they are, owner 0, under `prefix` (`src/`, or "" for the tree itself)."""
    for rel, path in iter_tree(source.tree, source.exclude):
        if path.is_symlink():
            entry = LayerEntry(path=prefix + rel, symlink=os.readlink(path))
        else:
            entry = LayerEntry(path=prefix + rel, source=path, mode=0o755 if os.access(path, os.X_OK) else 0o644)
        add_entry(tar, entry, mtime=mtime)


def source_archive(source: ResolvedSource, out: IO[bytes]) -> None:
    """The source tree as a tar that depends on its content only (mtime 0)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_source(tar, source)


# -- toolchain roots ------------------------------------------------------------------------------


def _walk(directory: Path, prefix: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under `directory`, depth first, names sorted: a
    directory, then its subtree, then its next sibling."""
    with os.scandir(directory) as scanned:
        entries = sorted(scanned, key=lambda e: e.name)
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        yield prefix + entry.name, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(Path(entry.path), f"{prefix}{entry.name}/")


def write_root(root: Path, out: IO[bytes]) -> None:
    """The deterministic tar of the root at `root` (see the module's docstring)."""
    first_name: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel, st in _walk(root):
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, st.st_uid, st.st_gid, "", ""
            info.mode = stat.S_IMODE(st.st_mode)
            mode = st.st_mode
            if stat.S_ISREG(mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in first_name:
                info.type, info.linkname = tarfile.LNKTYPE, first_name[(st.st_dev, st.st_ino)]
                tar.addfile(info)
            elif stat.S_ISREG(mode):
                if st.st_nlink > 1:
                    first_name[(st.st_dev, st.st_ino)] = rel
                info.size = st.st_size
                with (root / rel).open("rb") as handle:
                    tar.addfile(info, handle)
            elif stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(root / rel)
                tar.addfile(info)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)
            elif stat.S_ISFIFO(mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            # a socket: not archivable, and no toolchain needs one


def _listing(root: Path) -> str:
    """Every entry's metadata (what `write_root` reads besides file contents), hashed."""
    digest = hashlib.sha256()
    for rel, st in _walk(root):
        digest.update(f"{rel}\0{st.st_mode}:{st.st_uid}:{st.st_gid}:{st.st_size}:{st.st_mtime_ns}:"
                      f"{st.st_ino}:{st.st_nlink}:{st.st_rdev}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class RootArchive:
    """A prepared root on this machine and the digest and size of its deterministic tar."""

    name: str  # its directory name under the roots directory: go-trixie-amd64
    path: Path
    digest: str  # sha256:…
    size: int  # bytes of the tar

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def stream(self) -> TarStream:
        return TarStream(lambda out: write_root(self.path, out))


_known: dict[tuple[Path, str], RootArchive] = {}
_known_lock = threading.Lock()


def root_archive(path: Path) -> RootArchive:
    """The root at `path` named by its tar's digest: streamed once through sha256 per process
    and listing (a few hundred ms for a root of 20,000 entries, against seconds for the tar)."""
    path = path.resolve()
    key = (path, _listing(path))
    with _known_lock:
        found = _known.get(key)
    if found is not None:
        return found
    with TarStream(lambda out: write_root(path, out)) as stream:
        for _ in stream:
            pass
    made = RootArchive(name=path.name, path=path, digest=stream.digest, size=stream.size)
    with _known_lock:
        return _known.setdefault(key, made)


# -- streaming ------------------------------------------------------------------------------------


class _Closed(Exception):
    """The reader went away: the writer stops."""


class _QueueWriter:
    """A file tarfile writes to, handing CHUNK-sized pieces to the reader through a queue."""

    def __init__(self, chunks: queue.Queue[bytes | BaseException | None], stop: threading.Event) -> None:
        self.chunks = chunks
        self.stop = stop
        self.pending = bytearray()
        self.position = 0

    def tell(self) -> int:
        return self.position

    def write(self, data: bytes) -> int:
        self.pending += data
        self.position += len(data)
        while len(self.pending) >= CHUNK:
            self._put(bytes(self.pending[:CHUNK]))
            del self.pending[:CHUNK]
        return len(data)

    def flush_pending(self) -> None:
        if self.pending:
            self._put(bytes(self.pending))
            self.pending.clear()

    def _put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self.stop.is_set():
                raise _Closed
            try:
                self.chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


class TarStream:
    """Iterate over the bytes `write(out)` writes, made in a thread of its own, at most
    QUEUE_DEPTH chunks ahead of the reader. After the last chunk, `digest` and `size` are those
    of every byte read. An error in the writer is raised here; leaving early (`close`, or the
    `with` block) stops the writer."""

    def __init__(self, write: Callable[[IO[bytes]], None]) -> None:
        self._write = write
        self._chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False
        self._thread = threading.Thread(target=self._run, name="tar-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        writer = _QueueWriter(self._chunks, self._stop)
        try:
            self._write(writer)  # type: ignore[arg-type]  # write() is all tarfile needs
            writer.flush_pending()
            writer._put(None)
        except _Closed:
            return
        except BaseException as error:  # handed to the reader
            try:
                writer._put(error)
            except _Closed:
                return

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while not self._done:
            item = self._chunks.get()
            if item is None:
                self._done = True
                return
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._hash.update(item)
            self.size += len(item)
            yield item

    @property
    def digest(self) -> str:
        if not self._done:
            raise RuntimeError("the stream was not read to its end")
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
