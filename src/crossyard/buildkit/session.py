"""A BuildKit session: the gRPC server buildkitd calls back during a solve, for the files it
needs from the client (the build context and Dockerfile: FileSync) and to hand the client what an
exporter writes (an OCI tarball: FileSend).

How BuildKit opens one (session/grpchijack): the client calls Control.Session, a stream of
BytesMessage both ways, with headers naming the session (id, name, shared key) and every method
it serves; the stream is then a byte pipe on which buildkitd is the HTTP/2 *client* and the
client the gRPC *server*. grpcio cannot serve on a pipe, so crossyard serves on a private unix
socket and splices that socket's bytes to the stream and back: to grpcio it is an ordinary
connection, to buildkitd an ordinary session. buildkitd checks the session's health every few
seconds (grpc.health.v1 Check), answered here too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import grpc

from ..errors import ConfigurationError
from . import filesync
from .client import BuildKitError, Client

HEALTH: Final = "grpc.health.v1.Health"
SERVING: Final = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}
FILE_SYNC: Final = "moby.filesync.v1.FileSync"
FILE_SEND: Final = "moby.filesync.v1.FileSend"
EXPORTER_ID: Final = "buildkit-attachable-exporter-id"
PIPE_CHUNK: Final = 64 * 1024


class Session:
    """One session on `client`'s daemon: `dirs` are what it may read by name (dockerfile.v0
    asks for "context" and "dockerfile"); `outputs` where exporter N's file is written (N is
    the exporter's position in the solve request). Use as a context manager; pass `.id` to
    `Client.solve(session=…)`."""

    def __init__(self, client: Client, *, dirs: Mapping[str, Path] | None = None,
                 outputs: Mapping[int, Path] | None = None, name: str = "crossyard",
                 shared_key: str = "") -> None:
        self.client = client
        self.id = uuid.uuid4().hex
        self.dirs = {key: Path(path) for key, path in (dirs or {}).items()}
        for key, path in self.dirs.items():
            if not path.is_dir():
                raise ConfigurationError(f"BuildKit session: {key} = {path} is not a directory: give an existing one")
        self.outputs = dict(outputs or {})
        self.name = name
        self.shared_key = shared_key or self.id
        self.errors: list[str] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="crossyard-bk-session-")
        self._server: grpc.Server | None = None
        self._call: Any = None
        self._sock: socket.socket | None = None

    # -- what buildkitd calls ---------------------------------------------------------------
    def _services(self) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        """service → method → handler: what this session serves."""
        api = self.client.api
        services = {
            HEALTH: {"Check": grpc.unary_unary_rpc_method_handler(
                lambda request, context: SERVING, request_deserializer=bytes, response_serializer=bytes)},
            FILE_SEND: {"DiffCopy": grpc.stream_stream_rpc_method_handler(
                self._receive, request_deserializer=api.message("moby.filesync.v1.BytesMessage").FromString,
                response_serializer=lambda m: m.SerializeToString())},
        }
        if self.dirs:
            services[FILE_SYNC] = {"DiffCopy": grpc.stream_stream_rpc_method_handler(
                self._send, request_deserializer=api.message("fsutil.types.Packet").FromString,
                response_serializer=lambda m: m.SerializeToString())}
        return services

    def _send(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        options = filesync.decode_metadata(context.invocation_metadata())
        name = (options.get("dir-name") or [""])[0]
        root = self.dirs.get(name)
        if root is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no access allowed to dir {name!r}")
            return
        api = self.client.api
        try:
            yield from filesync.send(requests, root, filesync.filter_of(options),
                                     api.message("fsutil.types.Packet"), api.message("fsutil.types.Stat"))
        except (OSError, ConfigurationError) as error:
            self.errors.append(f"sending {name} ({root}): {error}")
            context.abort(grpc.StatusCode.INTERNAL, str(error))

    def _receive(self, chunks: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        options = filesync.decode_metadata(context.invocation_metadata())
        exporter = int((options.get(EXPORTER_ID) or ["0"])[0])
        target = self.outputs.get(exporter)
        if target is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"exporter {exporter} not found")
            return iter(())
        with target.open("wb") as out:
            for chunk in chunks:
                out.write(chunk.data)
        return iter(())

    # -- the pipe -------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        address = os.path.join(self._tmp.name, "session.sock")
        services = self._services()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=16, thread_name_prefix="bk-session"),
            handlers=[grpc.method_handlers_generic_handler(name, methods) for name, methods in services.items()])
        self._server.add_insecure_port(f"unix:{address}")
        self._server.start()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(address)
        bytes_message = self.client.api.message("moby.buildkit.v1.BytesMessage")
        metadata = [("x-docker-expose-session-uuid", self.id),
                    ("x-docker-expose-session-name", self.name),
                    ("x-docker-expose-session-sharedkey", self.shared_key)]
        metadata += [("x-docker-expose-session-grpc-method", f"/{name}/{method}")
                     for name, methods in sorted(services.items()) for method in sorted(methods)]
        stream = self.client.stream("Session")
        self._call = stream(self._upstream(bytes_message), metadata=metadata)
        threading.Thread(target=self._downstream, daemon=True, name="bk-session-down").start()
        return self

    def _upstream(self, bytes_message: Callable[..., Any]) -> Iterator[Any]:
        """What the local server writes, to buildkitd."""
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(PIPE_CHUNK)
            except OSError:
                return
            if not data:
                return
            yield bytes_message(data=data)

    def _downstream(self) -> None:
        """What buildkitd writes, to the local server."""
        assert self._sock is not None
        try:
            for message in self._call:
                self._sock.sendall(message.data)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.errors.append(f"session stream: {error.code().name}: {error.details()}")
        except OSError as error:
            self.errors.append(f"session pipe: {error}")
        finally:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._server is not None:
            self._server.stop(grace=None)
        self._tmp.cleanup()


__all__ = ["BuildKitError", "Session"]
