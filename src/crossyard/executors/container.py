"""Run a job's steps in a toolchain container on a Docker engine: this machine's (`unix://`), a
remote one over `tcp://` with client certificates from crossyard's CA, or one behind `ssh://`.

The container's image is the job's toolchain root (go-trixie-amd64, rust-trixie, …), imported
into the engine once as a one-layer image `crossyard-root/<root>:<first 12 hex of its digest>`:
the root's deterministic tar (`shipping.write_root`), streamed into `docker import`, never held
in memory or written to disk. The engine's diff_id of that layer is its own sha256 of the bytes
it received, and it must be the root's digest; an engine that already holds the image is sent
nothing. A root that is not prepared here can still be used when the engine holds exactly one
image of it (labelled with its name and digest).

Each job gets a throwaway container whose only process is `sleep infinity`, laid out as a local
job's bubblewrap sandbox: the root read-only as `/`, a tmpfs on /tmp, the job directory (an
anonymous volume) at /tmp/build and the toolchain's cache (a named volume per toolchain,
`crossyard-cache-<toolchain>`, kept between jobs like a node's cache directory) at /tmp/cache;
no network. Then:

- the inputs go in as one tar through put_archive: src/ (as `copy_tree` lays it out), deps/
  <recipe>/<file>, and the empty out, home and tmp;
- each step is an exec of `env -i <the clean environment> ARGV` in the step's directory, so it
  sees exactly what a local job sees (not the engine's PATH or the container's HOSTNAME); its
  output streams into the local log;
- the container is killed (nothing the build started runs on), each output is resolved inside
  the job directory (a symlink may point within it, never out of it), fetched with get_archive
  (a tar of exactly one regular file) and hashed here: the digest is this machine's;
- the container and its job volume are removed, also when the build failed.

A step that fails is a `BuildError` with the log's tail. An engine that stops answering, or a
container that stops under a job, is `NodeLost`. `cancel` kills the running containers.

A host toolchain (no root) is refused: the container would need this machine's compiler and
everything it loads, which crossyard cannot carry; such a toolchain is prepared in a root
(`crossyard toolchains prepare NAME`) to run on an engine.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from .. import certs
from ..engine import DockerEngine, EngineInfo, EngineUnreachable
from ..errors import BuildError, ConfigurationError, IntegrityError, NodeLost
from ..hashing import CHUNK
from ..jobspec import Inputs, JobPaths, JobSpec, plain_name, unplain_input
from ..oci.layer import LayerEntry, add_entry
from ..toolchains import roots_dir
from . import Outputs
from .local import SANDBOX_CACHE, SANDBOX_JOB, Command, commands, job_view, output_path, tail
from .shipping import RootArchive, TarStream, add_source, root_archive

ROOT_REPOSITORY: Final = "crossyard-root"
LABEL_ROOT: Final = "org.crossyard.root"  # the root's name, on its image
LABEL_DIGEST: Final = "org.crossyard.root.digest"  # the root's digest, on its image
LABEL_JOB: Final = "org.crossyard.job"  # the job's id, on its container
CACHE_VOLUME: Final = "crossyard-cache-{}"
# Facts a container job adds to its outputs (as text, as every fact is).
FACT_ROOT_IMAGE: Final = "docker.root-image"
FACT_ROOT_SENT: Final = "docker.root-bytes-sent"  # "0": the engine had the root already
FACT_ROOT_SECONDS: Final = "docker.root-seconds"  # finding (and importing) the root image
FACT_BUILD_SECONDS: Final = "docker.build-seconds"
EXIT_WAIT_S: Final = 10.0  # for an exec's exit code once its output has ended
REQUEST_TIMEOUT_S: Final = 120.0
KEEPALIVE_S: Final = 10  # TCP keepalive idle time and interval on a step's output stream
KEEPALIVE_COUNT: Final = 3  # unanswered keepalives before the engine counts as lost
# Go's fs.FileMode bits in the engine's path stat (X-Docker-Container-Path-Stat).
_GO_SYMLINK: Final = 1 << 27
_GO_TYPE: Final = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
MAX_LINKS: Final = 40  # as the kernel's limit on symlinks followed in one lookup
_IMAGE_NAME_RE: Final = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_VOLUME_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True)
class DockerNode:
    """A Docker engine that runs jobs, as the inventory declares it."""

    name: str
    host: str  # unix:///run/docker.sock, tcp://HOST:2376, ssh://USER@HOST
    cert_path: Path | None = None  # tcp://: ca.pem, cert.pem, key.pem (`crossyard certs client`)

    def __post_init__(self) -> None:
        scheme = self.host.partition("://")[0]
        if scheme not in ("unix", "tcp", "ssh") or "://" not in self.host:
            raise ConfigurationError(
                f"docker node `{self.name}`: host {self.host!r} is not unix:///PATH, tcp://HOST:PORT "
                "or ssh://USER@HOST")
        if scheme == "tcp" and self.cert_path is None:
            raise ConfigurationError(
                f"docker node `{self.name}` ({self.host}): crossyard reaches a tcp:// engine only with "
                "TLS client certificates; set `cert_path` to a directory written by `crossyard certs "
                "client NAME -o DIR`, and run the engine with --tlsverify")
        if scheme != "tcp" and self.cert_path is not None:
            raise ConfigurationError(
                f"docker node `{self.name}` ({self.host}): `cert_path` is for tcp:// engines only")

    def environment(self) -> dict[str, str]:
        """The engine as the docker SDK reads it (nothing else of this process's environment)."""
        if self.cert_path is None:
            return {"DOCKER_HOST": self.host}
        return {"DOCKER_HOST": self.host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.cert_path)}

    def check_certificates(self) -> None:
        """The client certificate files exist, and the key is not readable by others."""
        if self.cert_path is None:
            return
        fix = f"write them with `crossyard certs client NAME -o {self.cert_path}`"
        for name in ("ca.pem", "cert.pem", "key.pem"):
            if not (self.cert_path / name).is_file():
                raise ConfigurationError(
                    f"docker node `{self.name}` ({self.host}): {self.cert_path / name} is missing; {fix}")
        certs.load_private_key(self.cert_path / "key.pem", fix=fix)


def job_archive(spec: JobSpec, inputs: Inputs, out: IO[bytes]) -> None:
    """The job directory's starting content as a tar: src/, deps/<recipe>/<file>, out, home, tmp."""
    now = int(time.time())  # the files are new in the job directory, as `copy_tree` makes them
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in ("deps", "home", "out", "src", "tmp", *sorted({f"deps/{i.recipe}" for i in spec.inputs})):
            add_entry(tar, LayerEntry(path=directory, mode=0o755), mtime=now)
        add_source(tar, inputs.source(spec.source), prefix="src/", mtime=now)
        for item in spec.inputs:
            add_entry(tar, LayerEntry(path=f"deps/{item.recipe}/{item.name}", source=inputs.file(item.digest),
                                      mode=0o755 if item.mode & 0o111 else 0o644), mtime=now)


def _inside_job(path: str) -> bool:
    return path.startswith(SANDBOX_JOB + "/")


class ContainerExecutor:
    """Runs jobs in toolchain containers on one Docker engine. `close()` (or `with`) ends the
    connection it keeps for questions about the engine; each job has a connection of its own."""

    name = "docker"

    def __init__(self, remote: DockerNode, *, roots: Path | None = None, temp_root: Path | None = None,
                 connect: Callable[[], DockerEngine] | None = None) -> None:
        self.remote = remote
        self.node = f"docker:{remote.name}"
        self.roots = roots or roots_dir()  # the prepared roots on this machine, to ship
        self.temp_root = temp_root
        self._connector = connect or (lambda: DockerEngine.from_env(remote.environment()))
        self.imported: list[str] = []  # digests of the roots this executor imported, in order
        self._lock = threading.Lock()
        self._control_lock = threading.Lock()  # the engine connection for questions
        self._control: DockerEngine | None = None
        self._info: EngineInfo | None = None
        self._importing: dict[str, threading.Lock] = {}
        self._containers: set[str] = set()
        self._cancelled = False

    # -- the Executor face ------------------------------------------------------------------

    def __enter__(self) -> ContainerExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._control_lock:
            if self._control is not None:
                self._control.close()
                self._control = None

    def refuses(self, spec: JobSpec) -> str | None:
        tool = spec.toolchain
        if spec.docker is not None:
            return "a Dockerfile build runs on an engine's builder, not in a toolchain container"
        if tool.root is None:
            return (f"`{tool.name}` is a toolchain of this machine's host, which a container on docker "
                    f"node `{self.remote.name}` cannot carry (its compiler and every library it loads); "
                    "choose a toolchain that lives in a root (go-trixie, rust-trixie: `crossyard "
                    "toolchains prepare NAME`)")
        if not _IMAGE_NAME_RE.match(tool.root):
            return f"toolchain root `{tool.root}` cannot name a Docker image (lowercase letters, digits, . _ -)"
        try:
            info = self.engine_info()
            if tool.strategy == "native" and spec.platform != info.platform:
                return (f"a native build for {spec.platform} needs a {spec.platform} engine; docker node "
                        f"`{self.remote.name}` is {info.platform}")
            # A root of another architecture runs only under the engine host's qemu binfmt: fine
            # when the plan chose emulation, not as a surprise (about 5x slower).
            if tool.root_platform and tool.root_platform != info.platform.oci and tool.strategy != "emulated":
                return (f"toolchain root {tool.root} is {tool.root_platform}; docker node `{self.remote.name}` "
                        f"is {info.platform} and would run it under emulation")
            if not (self.roots / tool.root / "usr").is_dir() and self._engine_root(tool.root) is None:
                return (f"toolchain root {self.roots / tool.root} is not prepared here (`crossyard "
                        f"toolchains prepare {tool.name}`), so it cannot be shipped to docker node "
                        f"`{self.remote.name}`, which has no {ROOT_REPOSITORY}/{tool.root} image either")
        except (ConfigurationError, NodeLost) as error:
            return str(error)
        return None

    def engine_info(self) -> EngineInfo:
        """The engine's version and platform (asked once; a TLS problem is a ConfigurationError)."""
        if self._info is None:
            self._info = self._question(lambda engine: engine.info())
        return self._info

    def cancel(self) -> None:
        """Kill the containers of the jobs running now and refuse new jobs; each job then fails
        and removes its container. Called from another thread than the jobs'."""
        with self._lock:
            self._cancelled = True
            running = sorted(self._containers)
        if not running:
            return
        with contextlib.suppress(Exception), self._connect() as engine:  # its own connection
            for container in running:
                with contextlib.suppress(Exception):
                    engine.client.api.kill(container)

    @contextlib.contextmanager
    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> Iterator[Outputs]:
        """Import the root if needed, build in a container, fetch; yield the outputs (local files
        until the block ends)."""
        if self._cancelled:
            raise BuildError(f"{spec.id}: cancelled", log=log)
        self.engine_info()  # a certificate the engine refuses stops here, as a ConfigurationError
        refused = self.refuses(spec)
        if refused is not None:
            raise BuildError(f"{spec.id}: {refused}")
        unplain = unplain_input(spec)
        if unplain is not None:
            raise BuildError(f"{spec.id}: {unplain}")
        for name in spec.outputs:
            if not plain_name(name):
                raise BuildError(f"{spec.id}: output name {name!r} is not a plain name")
        if not _VOLUME_NAME_RE.match(spec.toolchain.name):
            raise BuildError(f"{spec.id}: toolchain name {spec.toolchain.name!r} cannot name a cache volume")
        fetched = Path(tempfile.mkdtemp(prefix="crossyard-docker-", dir=self.temp_root))
        try:
            yield self._job(spec, inputs, log, fetched)
        finally:
            shutil.rmtree(fetched, ignore_errors=True)

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> DockerEngine:
        self.remote.check_certificates()
        try:
            return self._connector()
        except EngineUnreachable as error:
            raise NodeLost(f"cannot reach docker node `{self.remote.name}` ({self.remote.host}): "
                           f"{error.reason}") from None
        except ConfigurationError as error:
            raise ConfigurationError(f"docker node `{self.remote.name}`: {error}") from None

    def _question(self, ask: Callable[[DockerEngine], Any]) -> Any:
        """`ask` on the connection kept for questions, made again after a failure."""
        with self._control_lock:
            if self._control is None:
                self._control = self._connect()
            try:
                return ask(self._control)
            except ConfigurationError:
                raise
            except Exception as error:
                self._control.close()
                self._control = None
                raise NodeLost(f"lost docker node `{self.remote.name}` ({self.remote.host}): {error}") from None

    def _engine_root(self, root: str) -> str | None:
        """The engine's image of `root` when it holds exactly one (by digest), else None."""
        images = self._question(lambda e: e.client.api.images(filters={"label": f"{LABEL_ROOT}={root}"}))
        digests = {str((image.get("Labels") or {}).get(LABEL_DIGEST)): str(image["Id"]) for image in images}
        return next(iter(digests.values())) if len(digests) == 1 else None

    # -- one job ----------------------------------------------------------------------------

    def _job(self, spec: JobSpec, inputs: Inputs, log_path: Path, fetched: Path) -> Outputs:
        import docker.errors
        import urllib3.exceptions

        log_path.parent.mkdir(parents=True, exist_ok=True)
        engine = self._connect()
        api = engine.client.api
        container: str | None = None
        try:
            with log_path.open("wb") as log:
                started = time.monotonic()
                image, sent = self._root_image(engine, spec, log)
                root_seconds = time.monotonic() - started
                container = self._container(api, spec, image)
                with TarStream(lambda out: job_archive(spec, inputs, out)) as stream:
                    api.put_archive(container, SANDBOX_JOB, iter(stream))
                seen, _ = job_view(SANDBOX_JOB, SANDBOX_CACHE, rooted=True)
                # The container's / is the root: the steps' environment is a rooted job's; argv
                # and directory are taken as the steps see them (no bubblewrap around them).
                steps = commands(spec, seen, Path("/"), [])
                started = time.monotonic()
                self._steps(api, container, spec, steps, log, log_path)
                build_seconds = time.monotonic() - started
            api.kill(container)  # whatever the build left running stops before outputs are read
            api.wait(container, timeout=REQUEST_TIMEOUT_S)
            files, digests = self._fetch(api, container, spec, seen, log_path, fetched)
        except (OSError, urllib3.exceptions.HTTPError) as error:
            raise NodeLost(f"{spec.id}: lost docker node `{self.remote.name}` ({self.remote.host}): {error}",
                           log=log_path, tail=tail(log_path)) from None
        except docker.errors.APIError as error:
            if not _answers(api):
                raise NodeLost(f"{spec.id}: lost docker node `{self.remote.name}` ({self.remote.host}): "
                               f"{error.explanation or error}", log=log_path, tail=tail(log_path)) from None
            raise BuildError(f"{spec.id}: docker node `{self.remote.name}` ({self.remote.host}) refused: "
                             f"{error.explanation or error}", log=log_path, tail=tail(log_path)) from None
        finally:
            if container is not None:
                with self._lock:
                    self._containers.discard(container)
                with contextlib.suppress(Exception):
                    api.remove_container(container, v=True, force=True)
            engine.close()
        facts = {FACT_ROOT_IMAGE: image, FACT_ROOT_SENT: str(sent), FACT_ROOT_SECONDS: f"{root_seconds:.3f}",
                 FACT_BUILD_SECONDS: f"{build_seconds:.3f}"}
        return Outputs(files=files, digests=digests, node=self.node, facts=facts)

    def _root_image(self, engine: DockerEngine, spec: JobSpec, log: BinaryIO) -> tuple[str, int]:
        """The image of the spec's root on the engine, imported now if it lacks it; and the
        bytes sent for it (0: it was there)."""
        assert spec.toolchain.root is not None
        local = self.roots / spec.toolchain.root
        if not (local / "usr").is_dir():
            found = self._engine_root(spec.toolchain.root)
            if found is None:
                raise BuildError(f"{spec.id}: toolchain root {spec.toolchain.root} is neither prepared here "
                                 f"nor on docker node `{self.remote.name}`")
            log.write(f"# toolchain root {spec.toolchain.root}: the engine's image {found}\n".encode())
            return found, 0
        archive = root_archive(local)
        reference = f"{ROOT_REPOSITORY}/{archive.name}:{archive.hex[:12]}"
        with self._lock:
            importing = self._importing.setdefault(archive.digest, threading.Lock())
        with importing:  # two jobs of one root: one imports, the other finds it
            if self._holds(engine, reference, archive.digest):
                log.write(f"# toolchain root {archive.name} ({archive.digest}): {reference} is on the engine\n".encode())
                return reference, 0
            started = time.monotonic()
            self._import(engine, spec, archive, reference)
            log.write(f"# toolchain root {archive.name} ({archive.digest}, {archive.size} bytes) imported as "
                      f"{reference} in {time.monotonic() - started:.1f}s\n".encode())
            log.flush()
            return reference, archive.size

    @staticmethod
    def _holds(engine: DockerEngine, reference: str, digest: str) -> bool:
        import docker.errors

        try:
            image = engine.client.api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return False
        return bool(image.get("RootFS", {}).get("Layers") == [digest])

    def _import(self, engine: DockerEngine, spec: JobSpec, archive: RootArchive, reference: str) -> None:
        """`docker import` of the root's tar, streamed; the engine's layer must be the digest."""
        api = engine.client.api
        repository, tag = reference.rsplit(":", 1)
        params: dict[str, Any] = {
            "fromSrc": "-", "repo": repository, "tag": tag, "message": f"crossyard toolchain root {archive.name}",
            "changes": [f'LABEL {LABEL_ROOT}="{archive.name}" {LABEL_DIGEST}="{archive.digest}"'],
        }
        if spec.toolchain.root_platform is not None:
            params["platform"] = spec.toolchain.root_platform
        with archive.stream() as stream:
            response = api._post(api._url("/images/create"), params=params, data=iter(stream),
                                 headers={"Content-Type": "application/tar"})
            answer = api._result(response)
        for line in str(answer).splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict) and item.get("error"):
                    raise BuildError(f"{spec.id}: docker node `{self.remote.name}` could not import toolchain "
                                     f"root {archive.name}: {item['error']}")
        layers = engine.client.api.inspect_image(reference).get("RootFS", {}).get("Layers")
        if stream.digest != archive.digest or layers != [archive.digest]:
            with contextlib.suppress(Exception):
                api.remove_image(reference, force=True)
            if stream.digest != archive.digest:
                raise IntegrityError(
                    f"toolchain root {archive.path} changed while it was sent to docker node "
                    f"`{self.remote.name}` (its tar was {archive.digest}, now {stream.digest}); run again")
            raise IntegrityError(
                f"docker node `{self.remote.name}` holds toolchain root {archive.name} as layer {layers}, "
                f"but {archive.digest} was sent")
        self.imported.append(archive.digest)

    def _container(self, api: Any, spec: JobSpec, image: str) -> str:
        host_config = api.create_host_config(
            network_mode="none", read_only=True,
            tmpfs={"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
            binds={CACHE_VOLUME.format(spec.toolchain.name): {"bind": SANDBOX_CACHE, "mode": "rw"}},
        )
        created = api.create_container(
            image, command=["sleep", "infinity"], volumes=[SANDBOX_JOB], host_config=host_config,
            hostname="crossyard", user="0:0", working_dir="/", labels={LABEL_JOB: spec.id},
        )
        container = str(created["Id"])
        with self._lock:  # so `cancel` either sees this container or the job never starts it
            self._containers.add(container)
            cancelled = self._cancelled
        if cancelled:
            raise BuildError(f"{spec.id}: cancelled")
        api.start(container)
        return container

    def _steps(self, api: Any, container: str, spec: JobSpec, steps: list[Command], log: BinaryIO,
               log_path: Path) -> None:
        for step in steps:
            log.write(f"$ {' '.join(step.shown)}\n".encode())
            log.flush()
            started = time.monotonic()
            status = self._step(api, container, spec, step, log, log_path)
            log.write(f"# exit {status} after {time.monotonic() - started:.1f}s\n".encode())
            log.flush()
            if status != 0:
                log.close()
                if self._cancelled:
                    raise BuildError(f"{spec.id}: cancelled", log=log_path)
                if not api.inspect_container(container)["State"]["Running"]:
                    raise NodeLost(f"{spec.id}: the container stopped under the job on docker node "
                                   f"`{self.remote.name}` (exit status {status})", log=log_path, tail=tail(log_path))
                raise BuildError(
                    f"{spec.id}: `{' '.join(step.shown[:3])} …` exited with status {status} on docker node "
                    f"`{self.remote.name}`", log=log_path, tail=tail(log_path))

    def _step(self, api: Any, container: str, spec: JobSpec, step: Command, log: BinaryIO,
              log_path: Path) -> int:
        if self._cancelled:
            raise BuildError(f"{spec.id}: cancelled", log=log_path)
        argv = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in step.env.items()), *step.shown]
        execution = str(api.exec_create(container, argv, stdout=True, stderr=True, workdir=step.workdir)["Id"])
        sock = api.exec_start(execution, socket=True)
        try:
            _watch(api, sock)
            for chunk in _frames(sock):
                log.write(chunk)
                log.flush()
        finally:
            for closing in (sock, getattr(sock, "_response", sock)):  # the socket, its HTTP response
                with contextlib.suppress(Exception):
                    closing.close()
        deadline = time.monotonic() + EXIT_WAIT_S
        while True:  # the output can end a moment before the engine records the exit code
            state = api.exec_inspect(execution)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            if time.monotonic() > deadline:
                raise NodeLost(f"{spec.id}: docker node `{self.remote.name}` reported no exit status for "
                               f"`{step.shown[0]}`", log=log_path, tail=tail(log_path))
            time.sleep(0.05)

    # -- outputs ----------------------------------------------------------------------------

    def _fetch(self, api: Any, container: str, spec: JobSpec, seen: JobPaths, log: Path,
               fetched: Path) -> tuple[dict[str, Path], dict[str, str]]:
        files: dict[str, Path] = {}
        digests: dict[str, str] = {}
        for name in spec.outputs:
            seen_path, relative = output_path(spec, seen, name)
            path, size = self._resolve(api, container, spec, name, seen_path, relative, log)
            files[name] = fetched / name
            digests[name] = self._get_file(api, container, spec, name, path, size, files[name])
        return files, digests

    @staticmethod
    def _stat(api: Any, container: str, path: str) -> dict[str, Any] | None:
        response = api.head(api._url("/containers/{0}/archive", container), params={"path": path},
                            timeout=REQUEST_TIMEOUT_S)
        if response.status_code == 404:
            return None
        api._raise_for_status(response)
        found: dict[str, Any] = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))
        return found

    def _resolve(self, api: Any, container: str, spec: JobSpec, name: str, seen_path: str, relative: str,
                 log: Path) -> tuple[str, int]:
        """The output's path with every symlink followed, checked to stay in the job directory
        at each one (the engine resolves a link within the container, which is the root, not the
        job directory); and its size. The container is stopped: nothing changes meanwhile."""
        pending = relative.split("/")
        current, links = SANDBOX_JOB, 0
        while pending:
            candidate = f"{current}/{pending.pop(0)}"
            found = self._stat(api, container, candidate)
            if found is None:
                raise BuildError(f"{spec.id}: the build succeeded but did not produce `{name}` ({seen_path})",
                                 log=log, tail=tail(log))
            if not int(found["mode"]) & _GO_SYMLINK:
                current = candidate
                continue
            links += 1
            target = str(found.get("linkTarget") or "")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(candidate), target))
            if links > MAX_LINKS or not _inside_job(target):
                raise BuildError(
                    f"{spec.id}: output `{name}` ({seen_path}) is a symlink to {target}, outside the job "
                    "directory; outputs must be files the build made", log=log, tail=tail(log))
            pending = target[len(SANDBOX_JOB) + 1:].split("/") + pending
            current = SANDBOX_JOB
        final = self._stat(api, container, current)
        if final is None or int(final["mode"]) & _GO_TYPE:
            raise BuildError(f"{spec.id}: output `{name}` ({seen_path}) is not a regular file", log=log,
                             tail=tail(log))
        return current, int(final["size"])

    def _get_file(self, api: Any, container: str, spec: JobSpec, name: str, path: str, size: int,
                  local: Path) -> str:
        """The file at `path` into `local` through get_archive: a tar that must hold exactly
        that one regular file, of the size the engine stated. Its sha256, taken here."""
        # Uncompressed: the engine need not gzip a binary it is about to hand over once.
        response = api._get(api._url("/containers/{0}/archive", container), params={"path": path}, stream=True,
                            headers={"Accept-Encoding": "identity"})
        api._raise_for_status(response)
        response.raw.decode_content = True  # should it compress anyway
        where = f"{spec.id}: output `{name}` from docker node `{self.remote.name}`"
        digest = hashlib.sha256()
        with response, tarfile.open(fileobj=response.raw, mode="r|") as tar:
            member = tar.next()
            if member is None or not member.isreg() or member.name != posixpath.basename(path):
                raise IntegrityError(f"{where}: the engine's archive of {path} is not that one file "
                                     f"({member.name if member else 'empty'})")
            source = tar.extractfile(member)
            assert source is not None
            with local.open("wb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if tar.next() is not None:
                raise IntegrityError(f"{where}: the engine's archive of {path} holds more than that file")
        if member.size != size or local.stat().st_size != size:
            raise IntegrityError(f"{where}: {path} is {size} bytes on the engine, {local.stat().st_size} here")
        os.chmod(local, 0o755 if member.mode & 0o111 else 0o644)
        return "sha256:" + digest.hexdigest()


def _watch(api: Any, sock: Any) -> None:
    """A step may print nothing for an hour: no read timeout on its output. A TCP connection
    gets keepalives instead, so an engine behind a cut link is lost within half a minute."""
    api._disable_socket_timeout(sock)
    if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", KEEPALIVE_S), ("TCP_KEEPINTVL", KEEPALIVE_S),
                              ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _frames(sock: Any) -> Iterator[bytes]:
    """The payloads of an exec's multiplexed output (8-byte headers: stream, 0, 0, 0, length),
    as they arrive, read with plain blocking reads. (docker-py's reader polls the socket before
    each read; over TLS, the rest of a record already decrypted in OpenSSL's buffer never wakes
    that poll, and a step's output would wait for the step's end.)"""
    read = sock.recv if hasattr(sock, "recv") else sock.read

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count and (chunk := read(count - len(data))):
            data += chunk
        return data

    while len(header := exactly(8)) == 8:
        remaining = int.from_bytes(header[4:], "big")
        while remaining:
            chunk = read(min(remaining, CHUNK))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _answers(api: Any) -> bool:
    try:
        api.ping()
    except Exception:
        return False
    return True
