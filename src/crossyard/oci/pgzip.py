"""Parallel, deterministic gzip: one gzip member every reader takes, compressed on all cores.

As pigz does it: the input is cut into fixed-size blocks; each block is raw-deflated on its own,
primed with the last 32 KiB of input before it as the preset dictionary (so matches still reach
back across the cut), and ended with a sync flush (byte-aligned, not final), the last block with
a finish. The blocks' outputs concatenate into one valid deflate stream inside a single gzip
header/trailer. Which thread compressed which block, and when, cannot change a byte: the output
is a function of the input, the block size, the level and zlib's version only (`identity` names
all four). zlib releases the GIL while it deflates, so a thread pool uses every core; a bounded
window of blocks is in flight (WINDOW_BYTES), so memory does not grow with the input.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Final, Protocol

BLOCK_SIZE: Final = 128 * 1024
DICT_SIZE: Final = 32 * 1024  # deflate's window: a match reaches no further back
# Input in flight (queued or being deflated), whatever the number of workers: enough queued work
# that the workers keep going while the writing thread waits for a CPU on a busy machine, little
# enough for memory (in, out and dictionaries: about twice this).
WINDOW_BYTES: Final = 4 * 1024 * 1024
# Bumped when the scheme (not zlib) changes what bytes come out, so the identity tells.
FORMAT_VERSION: Final = 1


class _Out(Protocol):
    def write(self, data: bytes, /) -> int: ...


def identity(level: int, block_size: int = BLOCK_SIZE) -> str:
    """What made the bytes, for the lock: everything the output depends on, nothing it doesn't
    (the number of workers is not in it)."""
    return (f"crossyard-pgzip {FORMAT_VERSION} block={block_size} level={level} "
            f"zlib={zlib.ZLIB_RUNTIME_VERSION}")


def default_workers() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _header(level: int) -> bytes:
    # No name, mtime 0, OS 255 (unknown): nothing of the host. XFL as Python's gzip sets it.
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    return b"\x1f\x8b\x08\x00" + b"\0\0\0\0" + bytes((xfl, 255))


def _deflate(block: bytes, zdict: bytes, level: int, last: bool) -> bytes:
    if zdict:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=zdict)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(block) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class ParallelGzipWriter:
    """Write-only file object: gzip of everything written goes to `out` (in order, from the
    caller's thread); `close` writes the last block and the trailer. `out` is not closed."""

    def __init__(self, out: _Out, *, level: int = 6, workers: int | None = None,
                 block_size: int = BLOCK_SIZE) -> None:
        if not 0 <= level <= 9:
            raise ValueError(f"gzip level {level} is not 0..9")
        if block_size < DICT_SIZE:
            # every block but the last must hold a whole dictionary for the next one
            raise ValueError(f"block size {block_size} is smaller than deflate's window ({DICT_SIZE})")
        workers = workers or default_workers()
        self._out = out
        self._level = level
        self._block_size = block_size
        self._window = max(2 * workers + 2, WINDOW_BYTES // block_size)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgzip")
        self._inflight: deque[Future[bytes]] = deque()
        self._pending = bytearray()
        self._dict = b""
        self._crc = 0
        self._size = 0
        self._closed = False
        out.write(_header(level))

    def write(self, data: bytes) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending += data
        # Strictly more than a block: the block that ends the input is only known at close,
        # and it must be the one compressed with a finish.
        while len(self._pending) > self._block_size:
            with memoryview(self._pending) as view:  # one copy, not a slice and then a copy
                block = bytes(view[:self._block_size])
            del self._pending[:self._block_size]  # bytearray drops its head without a copy
            self._submit(block, last=False)
        return len(data)

    def _submit(self, block: bytes, *, last: bool) -> None:
        if len(self._inflight) >= self._window:
            self._out.write(self._inflight.popleft().result())
        self._inflight.append(self._pool.submit(_deflate, block, self._dict, self._level, last))
        self._dict = block[-DICT_SIZE:]

    def close(self) -> None:
        """Finish the stream: the last block (possibly empty), everything in flight, the trailer."""
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(bytes(self._pending), last=True)
            self._pending.clear()
            while self._inflight:
                self._out.write(self._inflight.popleft().result())
            self._out.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop without finishing (the output is then incomplete): drop queued blocks, join the
        workers."""
        self._closed = True
        self._inflight.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelGzipWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
