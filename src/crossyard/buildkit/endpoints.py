"""Where crossyard finds buildkitd, and what one is: the `BUILDKIT_HOST` environment variable
(buildctl's own convention, as DOCKER_HOST is the engine's) and `[[nodes]] transport = "buildkit"`
entries, each probed with Info (its identity: what a `dockerfile` job's input key holds) and
ListWorkers (its platforms: the first is the daemon's own, the others run under binfmt).

A `dockerfile` job goes to BuildKit when an endpoint builds its platform, else to the Docker
engine's legacy builder; `toolchains = ["docker"]` or `["buildkit"]` in the recipe decides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import ConfigurationError
from ..platforms import Platform

if TYPE_CHECKING:  # grpc loads only when a daemon is called: planning without one stays light
    from ..workspace import Workspace
    from .client import Api, TlsFiles

HOST_ENV: Final = "BUILDKIT_HOST"
TOOLCHAIN: Final = "buildkit"  # the name a recipe's `toolchains` and a job's requirement use
PROBE_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """How to reach one buildkitd, and what `where` calls it in messages."""

    address: str  # unix:///… or tcp://HOST:PORT
    tls: TlsFiles | None = None
    where: str  # "node `rv-bk`" or "BUILDKIT_HOST"


@dataclass(frozen=True, kw_only=True)
class BuildKitInfo:
    """What a probe read of one buildkitd."""

    address: str
    version: str
    revision: str
    platforms: tuple[Platform, ...]  # the workers' platforms crossyard knows; the native one first

    @property
    def identity_text(self) -> str:
        """What input keys and records hold: the daemon's build, never its address or arch (a
        native riscv64 buildkitd and an emulating amd64 one of one build share a key)."""
        return " ".join(part for part in ("buildkit", self.version, self.revision) if part)

    @property
    def identity(self) -> dict[str, str]:
        return {"engine": TOOLCHAIN, "version": self.version, "revision": self.revision}

    @property
    def native(self) -> Platform | None:
        return self.platforms[0] if self.platforms else None

    def strategy(self, platform: Platform) -> str | None:
        """How this daemon builds `platform`: native, emulated (binfmt), or None (it cannot)."""
        if platform not in self.platforms:
            return None
        return "native" if platform == self.native else "emulated"


def check_address(address: str, *, where: str, tls: bool) -> None:
    """An address the client takes (`ConfigurationError` naming `where` otherwise)."""
    if address.startswith("unix:///") and "\0" not in address:
        return
    if address.startswith("tcp://"):
        if not tls:
            raise ConfigurationError(
                f"{where}: {address}: crossyard speaks to buildkitd over TCP only with mutual TLS; "
                "declare it as a [[nodes]] entry with transport = \"buildkit\" and ca, cert, key "
                "(a client certificate from `crossyard certs`), or use its unix socket"
            )
        return
    raise ConfigurationError(
        f"{where}: {address!r} is not a buildkitd address: give unix:///ABSOLUTE/PATH/buildkitd.sock "
        "or tcp://HOST:PORT (with TLS files)"
    )


def from_environment(environ: Mapping[str, str]) -> Endpoint | None:
    """The endpoint BUILDKIT_HOST names (None: unset or empty)."""
    address = environ.get(HOST_ENV, "").strip()
    if not address:
        return None
    check_address(address, where=f"{HOST_ENV}={address}", tls=False)
    return Endpoint(address=address, where=HOST_ENV)


def load_api(workspace: Workspace) -> Api:
    """BuildKit's API for `workspace` (compiled once from its .proto files, then cached)."""
    from .. import debian
    from .api import descriptor_set
    from .client import Api

    return Api.load(descriptor_set(workspace.cache_dir, lambda: debian.workspace_mirror(workspace)))


def probe(endpoint: Endpoint, api: Api, *, timeout: float = PROBE_TIMEOUT_S) -> BuildKitInfo:
    """Info and ListWorkers of `endpoint`; `BuildKitError` when it does not answer."""
    from .client import Client
    with Client(endpoint.address, api, tls=endpoint.tls, timeout=timeout) as client:
        info = client.info()
        platforms: list[Platform] = []
        for worker in client.list_workers():
            for text in worker.platforms:
                try:
                    platform = Platform.parse(text)
                except ConfigurationError:
                    continue  # linux/386, linux/arm/v7…: crossyard builds none of them
                if platform not in platforms:
                    platforms.append(platform)
    return BuildKitInfo(address=endpoint.address, version=info.version, revision=info.revision,
                        platforms=tuple(platforms))


def probe_for_plan(endpoint: Endpoint, api: Api) -> BuildKitInfo:
    """`probe`, a daemon that does not answer being the user's to fix (exit 2, one line)."""
    from .client import BuildKitError
    try:
        return probe(endpoint, api)
    except BuildKitError as error:
        reason = str(error).partition(": ")[2] or str(error)
        fix = ("start buildkitd there or point BUILDKIT_HOST at a running one (or unset it)"
               if endpoint.where == HOST_ENV else
               "start buildkitd there, or fix its `address` (or leave it out with CROSSYARD_NODES)")
        raise ConfigurationError(f"{endpoint.where}: buildkitd at {endpoint.address} does not answer "
                                 f"({reason.splitlines()[0] if reason else 'no answer'}); {fix}") from None


