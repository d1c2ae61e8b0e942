"""Deterministic, streaming OCI layers.

Entries are sorted by path, parent directories are emitted, mtimes are clamped to
SOURCE_DATE_EPOCH, owners are numeric with empty names, and the tar is GNU format (no pax
atime/ctime records). The uncompressed tar is hashed (diff_id) and the compressed stream is
written straight into the layout (blob digest) in one pass; no layer is held in memory.
Compressors: `gzip` (zlib, one stream, in a second thread; the default, so existing images keep
their digests), `pgzip` (gzip deflated in blocks on every core: pgzip.py) and `zstd`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import queue
import tarfile
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..hashing import CHUNK
from . import media, pgzip
from .layout import Descriptor, OciLayout


@dataclass(frozen=True, kw_only=True)
class LayerEntry:
    """One file, directory (source=None, no symlink) or symlink in a layer."""

    path: str
    source: Path | bytes | None = None
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    symlink: str | None = None


@dataclass(frozen=True, kw_only=True)
class Layer:
    descriptor: Descriptor
    diff_id: str
    compression: str
    level: int


class _Threaded:
    """Runs a single-threaded compressor (write/close) in a second thread, so tar and hashing
    in the caller's thread overlap with compression."""

    def __init__(self, compressor: Any) -> None:
        self.compressor = compressor
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                self.compressor.write(chunk)
        except BaseException as exc:  # handed to the writer thread in close()
            self._error = exc
            while self._queue.get() is not None:
                pass

    def write(self, data: bytes) -> int:
        self._queue.put(bytes(data))
        return len(data)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.compressor.close()

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()


class _TarSink:
    """File object tarfile writes to: hashes the tar (diff_id) and hands it on to compression.
    It can tell its offset, so tarfile writes to it directly instead of through its stream
    buffer (which re-copies the whole buffer on every 16 KiB write)."""

    def __init__(self, compressor: _Threaded | pgzip.ParallelGzipWriter) -> None:
        self.tar_hash = hashlib.sha256()
        self.compressor = compressor
        self._offset = 0

    def write(self, data: bytes) -> int:
        self.tar_hash.update(data)
        self.compressor.write(data)
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset


def _normalize(path: str) -> str:
    parts = [p for p in PurePosixPath(path.lstrip("/")).parts if p not in ("/", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"invalid path in image: {path!r}")
    return "/".join(parts)


def add_entry(tar: tarfile.TarFile, entry: LayerEntry, *, mtime: int) -> None:
    """Append `entry` with nothing of the host in its header: the given mtime, numeric owners
    without names, its own mode (0777 for a symlink)."""
    info = tarfile.TarInfo(_normalize(entry.path))
    info.mtime = mtime
    info.uid, info.gid, info.uname, info.gname = entry.uid, entry.gid, "", ""
    info.mode = entry.mode & 0o7777
    if entry.symlink is not None:
        info.type, info.linkname = tarfile.SYMTYPE, entry.symlink
        info.mode = 0o777
        tar.addfile(info)
    elif entry.source is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif isinstance(entry.source, bytes):
        info.size = len(entry.source)
        tar.addfile(info, io.BytesIO(entry.source))
    else:
        info.size = entry.source.stat().st_size
        with entry.source.open("rb") as handle:
            tar.addfile(info, handle)


def _with_parents(entries: Sequence[LayerEntry]) -> list[LayerEntry]:
    by_path: dict[str, LayerEntry] = {}
    for entry in entries:
        by_path[_normalize(entry.path)] = entry
    for path in list(by_path):
        parent = PurePosixPath(path).parent
        while str(parent) not in (".", "/"):
            by_path.setdefault(str(parent), LayerEntry(path=str(parent), mode=0o755))
            parent = parent.parent
    return [by_path[p] for p in sorted(by_path)]


COMPRESSIONS = ("gzip", "pgzip", "zstd")


def compressor_identity(compression: str, level: int = 6) -> str:
    """What made a layer's compressed bytes: the lock records it (compressors differ byte for byte)."""
    if compression == "gzip":
        return f"python-zlib {zlib.ZLIB_RUNTIME_VERSION} level {level}"
    if compression == "pgzip":
        return pgzip.identity(level)
    import zstandard

    return f"python-zstandard {zstandard.__version__} (zstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}) level {level}"


def write_layer(
    layout: OciLayout,
    entries: Sequence[LayerEntry],
    *,
    source_date_epoch: int,
    compression: str = "gzip",
    level: int = 6,
    workers: int | None = None,
) -> Layer:
    """Write one deterministic layer into `layout`; return its descriptor and diff_id.

    `pgzip` is gzip compressed on `workers` threads (default: every core this process may use);
    its bytes differ from `gzip`'s but not with the number of workers."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r} (use {', '.join(COMPRESSIONS)})")
    with layout.blob_writer() as blob:
        compressor: _Threaded | pgzip.ParallelGzipWriter
        if compression == "pgzip":
            compressor = pgzip.ParallelGzipWriter(blob, level=level, workers=workers)
        elif compression == "gzip":
            compressor = _Threaded(gzip.GzipFile(
                filename="", mode="wb", fileobj=blob, compresslevel=level, mtime=0
            ))  # type: ignore[call-overload]
        else:
            import zstandard

            compressor = _Threaded(zstandard.ZstdCompressor(level=level).stream_writer(blob, closefd=False))  # type: ignore[arg-type]
        sink = _TarSink(compressor)
        try:
            with tarfile.TarFile(
                fileobj=sink,  # type: ignore[arg-type]  # writes and tells: all mode "w" uses
                mode="w", format=tarfile.GNU_FORMAT, copybufsize=CHUNK,
            ) as tar:
                for entry in _with_parents(entries):
                    add_entry(tar, entry, mtime=source_date_epoch)
        except BaseException:
            compressor.abort()
            raise
        compressor.close()
    media_type = media.LAYER_ZSTD if compression == "zstd" else media.LAYER_GZIP
    return Layer(
        descriptor=Descriptor(media_type=media_type, digest=blob.digest, size=blob.size),
        diff_id="sha256:" + sink.tar_hash.hexdigest(),
        compression=compression,
        level=level,
    )
