"""A layer-4 TCP proxy whose target can be switched while it runs.

TLS passes through untouched, so each new connection sees the certificate of whichever backend is
current when it is accepted; connections already open stay on the backend they started with. To
retire an old backend the supervisor waits for its connections to end, closing those that sit
idle between requests (the last bytes went to the client and nothing has moved since): that is
the moment an HTTP server's own idle timeout would close them, and a client notices before it
reuses the connection. A connection waiting for a response is never cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

PIPE_CHUNK: Final = 1024 * 1024
Target = tuple[str, int]


@dataclass(eq=False, kw_only=True)
class _Conn:
    client: asyncio.StreamWriter
    backend: asyncio.StreamWriter | None = None
    last_activity: float = field(default_factory=time.monotonic)
    awaiting_response: bool = False  # the client spoke last
    writing: int = 0  # pipes blocked handing bytes on (a slow reader is not an idle one)

    def idle_for(self, now: float) -> float | None:
        """Seconds idle between requests, or None while a request is in flight."""
        if self.awaiting_response or self.writing:
            return None
        return now - self.last_activity

    def close(self) -> None:
        for writer in (self.client, self.backend):
            if writer is not None:
                writer.close()


class Proxy:
    def __init__(self, target: Target) -> None:
        self._target = target
        self._conns: dict[Target, set[_Conn]] = {}
        self._drained: dict[Target, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def target(self) -> Target:
        return self._target

    def switch(self, target: Target) -> None:
        """Send new connections to `target`; open ones stay where they are."""
        self._target = target

    def open_connections(self, target: Target) -> int:
        return len(self._conns.get(target, ()))

    def close_idle(self, target: Target, idle_s: float) -> int:
        """Close `target`'s connections idle between requests for `idle_s`; how many."""
        now = time.monotonic()
        closed = 0
        for conn in list(self._conns.get(target, ())):
            idle = conn.idle_for(now)
            if idle is not None and idle >= idle_s:
                conn.close()
                closed += 1
        return closed

    async def drained(self, target: Target, timeout: float) -> bool:
        """Wait until no connection uses `target` (True) or `timeout` passes (False)."""
        if not self.open_connections(target):
            return True
        event = self._drained.setdefault(target, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(
            self._handle, sock=sock, backlog=512, limit=PIPE_CHUNK
        )

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self.stop_accepting()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        target = self._target
        conn = _Conn(client=client_w)
        self._conns.setdefault(target, set()).add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                backend_r, backend_w = await asyncio.open_connection(*target, limit=PIPE_CHUNK)
            except OSError as exc:
                log.warning("backend %s:%d refused a connection: %s", *target, exc)
                client_w.transport.abort()
                return
            conn.backend = backend_w
            _nodelay(client_w)
            _nodelay(backend_w)
            try:
                async with asyncio.TaskGroup() as pipes:
                    pipes.create_task(_pipe(client_r, backend_w, conn, from_client=True))
                    pipes.create_task(_pipe(backend_r, client_w, conn, from_client=False))
            except* OSError:
                # One side reset: reset the other too, as a direct connection would see.
                backend_w.transport.abort()
                client_w.transport.abort()
            finally:
                conn.close()
        finally:
            if task is not None:
                self._tasks.discard(task)
            conns = self._conns.get(target, set())
            conns.discard(conn)
            if not conns:
                self._conns.pop(target, None)
                event = self._drained.pop(target, None)
                if event is not None:
                    event.set()


async def _pipe(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Conn, *, from_client: bool
) -> None:
    while True:
        data = await src.read(PIPE_CHUNK)
        if not data:
            # Half-close: pass the FIN on and keep the other direction flowing.
            if dst.can_write_eof() and not dst.is_closing():
                with contextlib.suppress(OSError):
                    dst.write_eof()
            return
        conn.awaiting_response = from_client
        conn.writing += 1
        try:
            dst.write(data)
            await dst.drain()
        finally:
            conn.writing -= 1
            conn.last_activity = time.monotonic()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
