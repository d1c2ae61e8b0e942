"""A Docker engine reached through the docker SDK: who it is, build on it, save what it built.

Where the engine is comes from the environment exactly as the docker CLI reads it: `DOCKER_HOST`
(a local `unix://` socket, `tcp://` with `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` client
certificates, or `ssh://` through the OpenSSH client), unset meaning the local socket. Builds use
the engine's classic builder with `platform=` (no BuildKit): a foreign platform's `RUN` steps
run under the qemu-user binfmt handlers registered on the engine's host.

The engine's identity (version, API version, os/arch) goes into a `dockerfile` job's input key,
so moving to another engine version rebuilds. Its address does not: the same engine version
behind another name builds the same thing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import BuildError, ConfigurationError
from .executors.local import tail
from .fsutil import atomic_writer
from .hashing import CHUNK
from .platforms import Platform

LOG_TAIL_LINES = 20
BUILD_TIMEOUT = 3600  # seconds without a byte from the engine; RUN steps under qemu are slow
DEFAULT_HOST = "unix:///var/run/docker.sock"
SCRATCH_PLATFORM_HINT = (
    "the classic builder gives a FROM scratch stage the engine's platform when the first step after "
    "FROM only changes the config (ARG, ENV, LABEL…); make it a COPY or ADD (moby#46294)"
)
PROBE_API_VERSION = "1.24"  # only for the unversioned /version call that picks the real one


@dataclass(frozen=True, kw_only=True)
class EngineInfo:
    """What was probed of an engine."""

    host: str  # DOCKER_HOST as configured, for messages
    version: str
    api_version: str
    platform: Platform
    local: bool  # a unix socket: the engine shares this machine's kernel (and binfmt handlers)

    @property
    def identity(self) -> dict[str, str]:
        """What the input key and the lock record of the engine."""
        return {"engine": "docker", "version": self.version, "api": self.api_version,
                "platform": self.platform.oci, "builder": "classic"}

    @property
    def identity_text(self) -> str:
        return f"docker {self.version} ({self.platform.oci})"


def docker_host(env: Mapping[str, str] | None = None) -> str:
    return (env if env is not None else os.environ).get("DOCKER_HOST") or DEFAULT_HOST


class EngineUnreachable(ConfigurationError):
    """Nothing answered at the engine's address (refused, timed out, the ssh transport failed).
    A user's mistake when it is the only engine; a lost node when it is one of several."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def unreachable(host: str, error: object) -> EngineUnreachable:
    return EngineUnreachable(
        f"cannot reach the Docker engine at {host} (DOCKER_HOST): {error}; start dockerd there or "
        "point DOCKER_HOST at a running engine (unix:///path/docker.sock, tcp://HOST:2376 with "
        "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or ssh://USER@HOST)",
        reason=str(error),
    )


def tls_refused(host: str, cert_path: str | None, error: object) -> ConfigurationError:
    """The TLS handshake with a `tcp://` engine failed: which side distrusts which, and the fix."""
    where = cert_path or "~/.docker"
    if "CERTIFICATE_VERIFY_FAILED" in str(error):
        why = (f"presented a server certificate that {where}/ca.pem does not vouch for (another CA, "
               "or no name for this address)")
        fix = (f"put the CA that signed the engine's certificate in {where}/ca.pem, or give dockerd a "
               "certificate from crossyard's CA (`crossyard certs issue NAME --san ADDRESS`, dockerd "
               "--tlscacert .crossyard/pki/ca/bundle.crt --tlscert/--tlskey the issued pair)")
    else:
        why = (f"refused the client certificate {where}/cert.pem: it was not issued by a CA the engine "
               "trusts (dockerd --tlscacert)")
        fix = ("write a client certificate from that CA into DOCKER_CERT_PATH; with crossyard's CA: "
               "`crossyard certs client NAME -o DIR`")
    return ConfigurationError(f"the Docker engine at {host} {why} ({error}); {fix}")


class DockerEngine:
    """One connection to an engine; close it (or use it as a context manager) when done."""

    def __init__(self, client: Any, host: str) -> None:
        self.client = client
        self.host = host
        self._info: EngineInfo | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, timeout: float = BUILD_TIMEOUT) -> DockerEngine:
        import docker
        import docker.errors

        environment = dict(env if env is not None else os.environ)
        host = docker_host(environment)
        try:
            # A fixed version first: the SDK's own negotiation would talk to the engine before
            # the session below is fixed up.
            client = docker.from_env(
                environment=environment, timeout=timeout, use_ssh_client=host.startswith("ssh://"),
                version=PROBE_API_VERSION,
            )
        except docker.errors.DockerException as error:
            raise unreachable(host, error) from None
        if isinstance(client.api.verify, str):
            # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace a session's CA, so a
            # machine-wide bundle would silently win over DOCKER_CERT_PATH/ca.pem.
            client.api.trust_env = False
        try:
            # What docker.from_env(version="auto") does: speak the engine's API version.
            client.api._version = str(client.api.version(api_version=False)["ApiVersion"])
        except (docker.errors.DockerException, OSError, KeyError) as error:
            client.close()
            if _tls_failure(error):
                raise tls_refused(host, environment.get("DOCKER_CERT_PATH"), error) from None
            raise unreachable(host, error) from None
        return cls(client, host)

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def info(self) -> EngineInfo:
        if self._info is None:
            import docker.errors

            try:
                version = self.client.version()
            except (docker.errors.DockerException, OSError) as error:
                raise unreachable(self.host, error) from None
            try:
                platform = Platform.parse(f"{version.get('Os', 'linux')}/{version['Arch']}")
            except ConfigurationError:
                raise ConfigurationError(
                    f"the Docker engine at {self.host} runs on {version.get('Os')}/{version.get('Arch')}, "
                    "which crossyard does not know; use an engine on linux/amd64, linux/arm64 or linux/riscv64"
                ) from None
            self._info = EngineInfo(
                host=self.host, version=str(version["Version"]), api_version=str(version["ApiVersion"]),
                platform=platform, local=self.host.startswith("unix://"),
            )
        return self._info

    def build(
        self,
        *,
        label: str,
        context: IO[bytes],
        dockerfile: str,
        platform: Platform,
        build_args: Mapping[str, str],
        target: str | None,
        log: Path,
    ) -> str:
        """Build the tar `context` for `platform`; return the image ID (its config digest).

        The engine's output goes to `log`; a failed step raises `BuildError` with the log's tail.
        """
        import docker.errors

        log.parent.mkdir(parents=True, exist_ok=True)
        image_id: str | None = None
        error: str | None = None
        with log.open("w") as out:
            out.write(f"# docker build on {self.host} for {platform.oci} (classic builder)\n")
            try:
                for chunk in self.client.api.build(
                    fileobj=context, custom_context=True, dockerfile=dockerfile, platform=platform.oci,
                    buildargs=dict(build_args), target=target or None, rm=True, forcerm=True,
                    pull=False, decode=True,
                ):
                    if "stream" in chunk:
                        out.write(str(chunk["stream"]))
                    elif "status" in chunk:
                        out.write(f"{chunk['status']} {chunk.get('progress', '')}".rstrip() + "\n")
                    if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                        image_id = str(chunk["aux"]["ID"])
                    if "error" in chunk:
                        error = str(chunk["error"]).strip()
                        out.write(f"ERROR: {error}\n")
                    out.flush()
            except docker.errors.APIError as exc:
                error = f"the engine refused the build: {exc.explanation or exc}"
                out.write(f"ERROR: {error}\n")
            except (docker.errors.DockerException, OSError) as exc:
                error = f"lost the engine during the build: {exc}"
                out.write(f"ERROR: {error}\n")
        if error is not None or image_id is None:
            message = f"{label}: docker build failed: {error or 'the engine reported no image ID'}"
            if error and "does not match the specified platform" in error:
                message += f"\n  hint: {SCRATCH_PLATFORM_HINT}"
            raise BuildError(message, log=log, tail=tail(log, LOG_TAIL_LINES))
        return image_id

    def save(self, image_id: str, destination: Path) -> None:
        """`docker save` the image into `destination` (atomically)."""
        import docker.errors

        try:
            stream = self.client.api.get_image(image_id, chunk_size=CHUNK)
            with atomic_writer(destination) as out:
                for chunk in stream:
                    out.write(chunk)
        except (docker.errors.DockerException, OSError) as error:
            raise BuildError(f"cannot save image {image_id} from the Docker engine at {self.host}: {error}") from None

    def remove(self, image_id: str) -> None:
        """Drop the built image from the engine (the store has it now); in use is fine."""
        import docker.errors

        with contextlib.suppress(docker.errors.DockerException):
            self.client.api.remove_image(image_id, force=False, noprune=False)


def _tls_failure(error: BaseException) -> bool:
    """A failed handshake, not a missing engine. requests wraps it (SSLError); an engine that
    drops a client certificate it does not trust after a TLS 1.3 handshake shows up as a reset
    or an alert on the first read, so the chain of causes is searched too."""
    import ssl

    import requests

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, requests.exceptions.SSLError | ssl.SSLError):
            return True
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = seen.__cause__ or seen.__context__ or nested or getattr(seen, "reason", None)
    return False


@contextlib.contextmanager
def connect(env: Mapping[str, str] | None = None) -> Iterator[DockerEngine]:
    engine = DockerEngine.from_env(env)
    try:
        yield engine
    finally:
        engine.close()


def probe(env: Mapping[str, str] | None = None) -> EngineInfo:
    """Connect, read the engine's identity, disconnect."""
    with connect(env) as engine:
        return engine.info()
