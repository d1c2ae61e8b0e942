"""crossyard's own BuildKit client: gRPC to buildkitd's Control service, over its unix socket or
over TCP with mutual TLS (buildkitd --tlscacert/--tlscert/--tlskey; a client certificate from
crossyard's CA, `crossyard certs`). Plain TCP is refused: buildkitd runs builds as root.

Message classes are made at run time from the API compiled from BuildKit's .proto files
(`crossyard.buildkit.api`) in a private descriptor pool, so they never clash with another
library's protobuf registrations; each call is a plain unary gRPC call named by the service's
descriptor (`/moby.buildkit.v1.Control/ListWorkers`), checked to exist there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ..errors import ConfigurationError, CrossyardError

SERVICE: Final = "moby.buildkit.v1.Control"
DEFAULT_TIMEOUT_S: Final = 30.0
SOLVE_TIMEOUT_S: Final = 600.0


class BuildKitError(CrossyardError):
    """buildkitd could not be reached or refused a call (a build-side failure: exit 1)."""


@dataclass(frozen=True, kw_only=True)
class Worker:
    id: str
    platforms: tuple[str, ...]  # "linux/amd64", "linux/arm/v7": the worker's order, its native first
    labels: tuple[tuple[str, str], ...]  # sorted by name


@dataclass(frozen=True, kw_only=True)
class DaemonInfo:
    package: str
    version: str
    revision: str


class Api:
    """BuildKit's messages and Control methods, from a compiled FileDescriptorSet."""

    def __init__(self, descriptor_set: bytes) -> None:
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
        self._pool = descriptor_pool.DescriptorPool()
        for proto in files.file:  # protoc writes them dependencies first
            self._pool.Add(proto)
        self.service = self._pool.FindServiceByName(SERVICE)

    @classmethod
    def load(cls, path: Path) -> Api:
        return cls(path.read_bytes())

    def message(self, full_name: str) -> Any:
        """The class of message `full_name` (e.g. "pb.Definition")."""
        return message_factory.GetMessageClass(self._pool.FindMessageTypeByName(full_name))

    def method(self, name: str) -> tuple[str, Any, Any]:
        """Control's method `name`: its gRPC path and its request and response classes."""
        method = self.service.methods_by_name[name]
        return (f"/{SERVICE}/{name}", message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type))


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """PEM files for mutual TLS: the CA that issued buildkitd's certificate, and ours."""

    ca: Path
    cert: Path
    key: Path


class Client:
    """One connection to a buildkitd: `unix:///path/to/buildkitd.sock`, or `tcp://HOST:PORT`
    with `tls`."""

    def __init__(self, address: str, api: Api, *, tls: TlsFiles | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.address = address
        self.api = api
        self.timeout = timeout
        if address.startswith("unix:///"):
            self._channel = grpc.insecure_channel(address)
        elif address.startswith("tcp://") and tls is not None:
            self._channel = grpc.secure_channel(address.removeprefix("tcp://"), grpc.ssl_channel_credentials(
                root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert)))
        elif address.startswith("tcp://"):
            raise ConfigurationError(
                f"BuildKit address {address}: over TCP crossyard speaks to buildkitd only with mutual "
                "TLS; give the CA, client certificate and key (buildkitd needs --tlscacert, --tlscert, "
                "--tlskey), or use its unix socket"
            )
        else:
            raise ConfigurationError(
                f"BuildKit address {address!r}: give unix:///ABSOLUTE/PATH (buildkitd --addr) or "
                "tcp://HOST:PORT with TLS files"
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, name: str, request: Any = None, *, timeout: float | None = None, **fields: Any) -> Any:
        """Control's unary method `name` with `request` (or one made of `fields`): its response."""
        path, request_class, response_class = self.api.method(name)
        stub: Callable[..., Any] = self._channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        try:
            return stub(request if request is not None else request_class(**fields),
                        timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise BuildKitError(
                f"buildkitd at {self.address}: {name} failed: {error.code().name}: {error.details()}"
            ) from None

    def stream(self, name: str) -> Callable[..., Any]:
        """Control's bidirectional streaming method `name` (Session), to call with an iterator."""
        path, _request_class, response_class = self.api.method(name)
        stream: Callable[..., Any] = self._channel.stream_stream(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString)
        return stream

    def _unary_stream(self, name: str) -> tuple[Callable[..., Iterator[Any]], Any]:
        """Control's server-streaming method `name`, and its request message class."""
        path, request_class, response_class = self.api.method(name)
        call: Callable[..., Iterator[Any]] = self._channel.unary_stream(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString)
        return call, request_class

    def status(self, ref: str, *, timeout: float = SOLVE_TIMEOUT_S) -> Iterator[Any]:
        """The StatusResponse messages of the solve named `ref` (vertexes, their progress and
        logs), until it ends; asked before the solve starts, buildkitd waits for it."""
        call, request_class = self._unary_stream("Status")
        try:
            yield from call(request_class(Ref=ref), timeout=timeout)
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise BuildKitError(f"buildkitd at {self.address}: Status of {ref} failed: "
                                    f"{error.code().name}: {error.details()}") from None

    def history(self, ref: str = "") -> list[Any]:
        """buildkitd's build history records (BuildHistoryRecord: ref, frontend attrs, exporter
        response…), of the solve named `ref` or of every one it keeps."""
        call, request_class = self._unary_stream("ListenBuildHistory")
        try:
            return [event.record for event in call(request_class(Ref=ref, EarlyExit=True), timeout=self.timeout)]
        except grpc.RpcError as error:
            raise BuildKitError(f"buildkitd at {self.address}: ListenBuildHistory failed: "
                                f"{error.code().name}: {error.details()}") from None

    def list_workers(self) -> tuple[Worker, ...]:
        response = self.call("ListWorkers")
        return tuple(
            Worker(id=record.ID, platforms=tuple(_platform(p) for p in record.platforms),
                   labels=tuple(sorted(record.Labels.items())))
            for record in response.record
        )

    def solve(self, definition: Any = None, *, exporter: str, attrs: Mapping[str, str],
              frontend: str = "", frontend_attrs: Mapping[str, str] | None = None,
              frontend_inputs: Mapping[str, Any] | None = None, session: str = "", ref: str = "",
              timeout: float = SOLVE_TIMEOUT_S) -> dict[str, str]:
        """Solve a pb.Definition, or run `frontend` (e.g. "dockerfile.v0") with its inputs given
        as definitions or read through `session` (a `crossyard.buildkit.session.Session`'s id:
        local directories, an exporter's file), and export the result with `exporter`. Without
        a session only inputs given inline and an exporter that needs nothing from the client
        work, e.g. `image` with push=true to a registry that asks no credentials. `ref` names
        the solve for `status`. What the exporter answered (its digests)."""
        request = self.api.message("moby.buildkit.v1.SolveRequest")(
            Ref=ref or uuid.uuid4().hex, Session=session, Definition=definition, Frontend=frontend,
            FrontendAttrs=dict(frontend_attrs or {}), FrontendInputs=dict(frontend_inputs or {}),
            Exporters=[self.api.message("moby.buildkit.v1.Exporter")(Type=exporter, Attrs=dict(attrs))],
        )
        return dict(self.call("Solve", request, timeout=timeout).ExporterResponse)

    def info(self) -> DaemonInfo:
        version = self.call("Info").buildkitVersion
        return DaemonInfo(package=version.package, version=version.version, revision=version.revision)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read this TLS file for buildkitd: {error.strerror}") from None


def _platform(platform: Any) -> str:
    """pb.Platform as OCI writes it: os/architecture[/variant]."""
    parts = [platform.OS, platform.Architecture, *([platform.Variant] if platform.Variant else [])]
    return "/".join(parts)
