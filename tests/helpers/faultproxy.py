"""A TLS-terminating HTTP/1.1 proxy in front of a REAL registry, to inject faults it cannot produce.

The proxy presents a certificate from the registry's own CA (so clients verify it exactly as they
verify the registry), forwards every request to the registry, rewrites `Location` headers so
clients keep talking through it, and keeps a request log with byte counts. Faults:

- `Fault(method, status=503, times=2)`: answer 503 instead of forwarding, `times` times;
- `Fault("PATCH", cut_after=N, skip=1)`: on the 2nd PATCH, read N body bytes from the client,
  send the registry the request with those N bytes and then drop that connection (what the
  registry sees when a client dies mid-upload), and drop the client's connection unanswered;
  with `forward_partial=False` the registry sees nothing of that request (lost on the way).

Stable API: `fault_proxy(registry_handle, tmp_path, faults=[...])` → `FaultProxy` (`url`, `host`,
`log`, `faults`).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from crossyard import certs
from helpers.registry import RegistryHandle

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}


@dataclass
class Fault:
    method: str
    path_contains: str = ""
    skip: int = 0  # let this many matching requests through first
    times: int = 1  # then fault this many (-1: forever)
    status: int | None = None
    cut_after: int | None = None
    forward_partial: bool = True  # with cut_after: does the registry get those bytes?
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if method != self.method or self.path_contains not in path:
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times >= 0 and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass(frozen=True, kw_only=True)
class Record:
    method: str
    path: str
    content_range: str | None
    received: int  # body bytes the proxy read from the client
    forwarded: int  # body bytes the registry got
    status: int | None  # what the client was answered (None: connection dropped)
    fault: str = ""
    query: str = ""
    range: str | None = None  # the registry's `Range` answer header


@dataclass
class FaultProxy:
    url: str
    host: str
    faults: list[Fault]
    log: list[Record] = field(default_factory=list)

    def records(self, method: str, path_contains: str = "") -> list[Record]:
        return [r for r in self.log if r.method == method and path_contains in r.path]


def _read_body(handler: BaseHTTPRequestHandler, limit: int | None) -> tuple[bytes, bool]:
    """The request body (Content-Length or chunked); with `limit`, stop after that many bytes."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                break
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        body = b"".join(parts)
        return (body[:limit], True) if limit is not None and len(body) > limit else (body, False)
    length = int(handler.headers.get("Content-Length") or 0)
    if limit is not None and limit < length:
        return handler.rfile.read(limit), True
    return handler.rfile.read(length), False


class _Abort(Exception):
    pass


@contextmanager
def fault_proxy(
    registry: RegistryHandle, tmp_path: Path, faults: list[Fault] | None = None
) -> Iterator[FaultProxy]:
    ca = certs.CertPaths(cert=registry.ca_path, key=registry.ca_path.with_suffix(".key"))
    leaf = certs.issue_leaf(ca, tmp_path / "proxy-tls", names=("127.0.0.1",), stem="proxy")
    upstream_context = ssl.create_default_context(cafile=str(registry.ca_path))
    upstream = httpx.Client(verify=upstream_context, timeout=60.0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    proxy = FaultProxy(url=f"https://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                       faults=list(faults or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            path, _, query = self.path.partition("?")
            with lock:
                fault = next((f for f in proxy.faults if f.matches(self.command, path)), None)
            content_range = self.headers.get("Content-Range")
            if fault is not None and fault.cut_after is not None:
                body, _ = _read_body(self, fault.cut_after)
                if fault.forward_partial:
                    self._forward_truncated(body)
                with lock:
                    proxy.log.append(Record(
                        method=self.command, path=path, query=query, content_range=content_range,
                        received=len(body), forwarded=len(body) if fault.forward_partial else 0,
                        status=None, fault="cut",
                    ))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            body, _ = _read_body(self, None)
            if fault is not None and fault.status is not None:
                self._answer(fault.status, {}, b"injected fault\n")
                status, forwarded, note = fault.status, 0, f"status {fault.status}"
                answered_range = None
            else:
                response = self._forward(body, {})
                headers = {k: v for k, v in response.headers.items()
                           if k.lower() not in _HOP and k.lower() != "location"}
                if "location" in response.headers:
                    headers["Location"] = response.headers["location"].replace(
                        registry.url, proxy.url
                    )
                self._answer(response.status_code, headers, response.content,
                             length=response.headers.get("content-length"))
                status, forwarded, note = response.status_code, len(body), ""
                answered_range = response.headers.get("range")
            with lock:
                proxy.log.append(Record(
                    method=self.command, path=path, query=query, content_range=content_range,
                    received=len(body), forwarded=forwarded, status=status, fault=note,
                    range=answered_range,
                ))

        def _forward(self, body: bytes, extra: dict[str, str]) -> httpx.Response:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers.update(extra)
            return upstream.request(self.command, registry.url + self.path, content=body,
                                    headers=headers)

        def _forward_truncated(self, body: bytes) -> None:
            """Send the registry the request with its full Content-Length but only `body`, then
            drop the connection: what the registry sees when a client dies mid-upload."""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = self.headers.get("Content-Length", str(len(body)))

            def stream() -> Iterator[bytes]:
                yield body
                raise _Abort

            with httpx.Client(verify=upstream_context, timeout=10.0) as once, \
                    contextlib.suppress(_Abort, httpx.HTTPError):
                once.request(self.command, registry.url + self.path, content=stream(),
                             headers=headers)

        def _answer(self, status: int, headers: dict[str, str], body: bytes,
                    length: str | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            head = self.command == "HEAD"
            self.send_header("Content-Length", length if head and length else str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server.RequestHandlerClass = Handler
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert, leaf.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()
