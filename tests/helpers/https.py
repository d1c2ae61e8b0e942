"""A small HTTPS server on 127.0.0.1 for tests that need a real TLS peer with a given
certificate (a source mirror, a registry that lies). Stable API: `serve_https`."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@contextmanager
def serve_https(handler: type[BaseHTTPRequestHandler], cert: Path, key: Path) -> Iterator[str]:
    """Serve `handler` over TLS with `cert`/`key`; yields `https://127.0.0.1:PORT`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
