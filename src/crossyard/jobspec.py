"""`JobSpec`: one job as plain, JSON-serializable data, the same wherever it runs.

Builders turn a recipe into a spec; executors (this machine, a Docker engine, an SSH node) run
one and hand back outputs by digest. A spec holds no closure and no path of this machine:

- steps are argv lists with env, naming the job's directories by placeholder: `{root}` (the job
  directory), `{src}` (a writable copy of the source), `{out}`, `{deps}` (`deps/<recipe>/<file>`
  for every dependency output), `{cache}` (a cache kept per toolchain on the node), `{home}`;
  the executor puts in the paths as its steps will see them;
- the source and every dependency file are named by digest; `Inputs` turns a digest into bytes
  on the executor's side (here: the source resolver and the store);
- the toolchain is named by its definition, its normalized identity (what the input key holds;
  an executor must not run the job with another) and, for one that lives in a Debian root, the
  root's name under the node's roots directory.

A `dockerfile` job is the same spec with a `docker` build instead of steps: it needs a builder
(toolchain `buildkit`: a buildkitd; `docker`: an engine's legacy builder), not a toolchain, and
its one output is the built image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from .platforms import Platform

if TYPE_CHECKING:
    from .sources import ResolvedSource

# The directories a step may name; `JobPaths` with these values is what builders see.
DIRECTORIES: Final = ("root", "src", "out", "deps", "cache", "home")
SPEC_VERSION: Final = 1


@dataclass(frozen=True, kw_only=True)
class JobPaths:
    """The job's directories as its commands see them (placeholders in a spec)."""

    root: str = "{root}"
    src: str = "{src}"
    out: str = "{out}"
    deps: str = "{deps}"
    cache: str = "{cache}"
    home: str = "{home}"

    def fill(self, text: str) -> str:
        """`text` with each `{dir}` placeholder replaced by this job's path."""
        for name in DIRECTORIES:
            text = text.replace("{" + name + "}", getattr(self, name))
        return text


PLACEHOLDERS: Final = JobPaths()
# A name a spec puts into a path on a node (a dependency's recipe or file, an output, a root):
# a spec is data that may come from elsewhere, so executors hold each name to this before use.
PLAIN_NAME_RE: Final = re.compile(r"^[A-Za-z0-9._+-]+$")


def plain_name(name: str) -> bool:
    """One path component, and not `.` or `..`."""
    return bool(PLAIN_NAME_RE.match(name)) and name not in (".", "..")


def unplain_input(spec: JobSpec) -> str | None:
    """Why a dependency file of `spec` could not be placed at `{deps}/<recipe>/<file>`, if so."""
    for item in spec.inputs:
        if not (plain_name(item.recipe) and plain_name(item.name)):
            return f"dependency file {item.recipe}/{item.name} is not a plain name"
    return None


@dataclass(frozen=True, kw_only=True)
class Step:
    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class InputFile:
    """A dependency's output file, placed at `{deps}/<recipe>/<name>`."""

    recipe: str
    name: str
    digest: str
    mode: int = 0o644


@dataclass(frozen=True, kw_only=True)
class ToolchainRequirement:
    name: str  # the definition (`gcc`, `rust-trixie`, `docker`)
    identity: str  # normalized: `go1.19.8`, `gcc 12.2.0 riscv64-linux-gnu`
    strategy: str  # cross | native | emulated
    root: str | None = None  # a Debian root's directory name under the node's roots directory
    root_platform: str | None = None  # the root's architecture, when it is not the node's
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Placement:
    """A dependency's file copied into a Docker build context."""

    recipe: str
    file: str
    dest: str  # relative to the context: artifacts/<recipe>/<file>


@dataclass(frozen=True, kw_only=True)
class DockerBuild:
    """One `docker build` for one platform."""

    context: str  # relative to the source tree ("." = its root)
    dockerfile: str  # relative to the context
    build_args: Mapping[str, str]
    target: str | None = None
    placements: tuple[Placement, ...] = ()
    # The BuildKit named context the placements make, one per platform (`dest` relative to it);
    # None: they go into the build context.
    named_context: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    id: str  # "hello-go@linux/riscv64", for messages and logs
    input_key: str
    platform: Platform
    source: str  # the source tree's digest
    inputs: tuple[InputFile, ...]
    toolchain: ToolchainRequirement
    source_date_epoch: int
    steps: tuple[Step, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # for every step, under each step's own
    outputs: Mapping[str, str] = field(default_factory=dict)  # file name → path (placeholders)
    docker: DockerBuild | None = None

    @property
    def produces(self) -> str:
        """`files` (outputs by name), `docker-image` (a `docker save` archive named `image`, the
        legacy builder's) or `oci-image` (an OCI archive named `image`, BuildKit's)."""
        if self.docker is None:
            return "files"
        return "oci-image" if self.toolchain.name == "buildkit" else "docker-image"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "id": self.id,
            "input_key": self.input_key,
            "platform": self.platform.oci,
            "source": self.source,
            "inputs": [{"recipe": i.recipe, "name": i.name, "digest": i.digest, "mode": i.mode}
                       for i in self.inputs],
            "toolchain": {"name": self.toolchain.name, "identity": self.toolchain.identity,
                          "strategy": self.toolchain.strategy, "root": self.toolchain.root,
                          "root_platform": self.toolchain.root_platform,
                          "env": dict(self.toolchain.env)},
            "source_date_epoch": self.source_date_epoch,
            "steps": [{"argv": list(s.argv), "cwd": s.cwd, "env": dict(s.env)} for s in self.steps],
            "env": dict(self.env),
            "outputs": dict(self.outputs),
            "docker": None if self.docker is None else {
                "context": self.docker.context, "dockerfile": self.docker.dockerfile,
                "build_args": dict(self.docker.build_args), "target": self.docker.target,
                "placements": [{"recipe": p.recipe, "file": p.file, "dest": p.dest}
                               for p in self.docker.placements],
                "named_context": self.docker.named_context,
            },
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"job spec version {data.get('version')!r} is not {SPEC_VERSION}")
        tool = data["toolchain"]
        docker = data.get("docker")
        return cls(
            id=data["id"], input_key=data["input_key"], platform=Platform.parse(data["platform"]),
            source=data["source"],
            inputs=tuple(InputFile(**i) for i in data["inputs"]),
            toolchain=ToolchainRequirement(
                name=tool["name"], identity=tool["identity"], strategy=tool["strategy"], root=tool["root"],
                root_platform=tool["root_platform"], env=dict(tool["env"])),
            source_date_epoch=int(data["source_date_epoch"]),
            steps=tuple(Step(argv=tuple(s["argv"]), cwd=s["cwd"], env=dict(s["env"])) for s in data["steps"]),
            env=dict(data["env"]),
            outputs=dict(data["outputs"]),
            docker=None if docker is None else DockerBuild(
                context=docker["context"], dockerfile=docker["dockerfile"],
                build_args=dict(docker["build_args"]), target=docker["target"],
                placements=tuple(Placement(**p) for p in docker["placements"]),
                named_context=docker.get("named_context")),
        )


@dataclass(frozen=True, kw_only=True)
class Variation:
    """How one run of a job differs from a plain run (`crossyard repro check`), in reprotest's
    spirit: plain data an executor applies, never a different build. The defaults are what every
    build gets (`clean_env`'s locale and zone, umask 022, this process's user)."""

    name: str = "control"
    job_dir: str | None = None  # the job directory on the machine (None: a fresh temp directory)
    sandbox_dir: str = "/tmp/build"  # where a job in a toolchain root sees its directory
    reverse_order: bool = False  # copy the source tree in reverse order (directory order on disk)
    umask: int = 0o022
    tz: str = "UTC"
    locale: str = "C.UTF-8"
    uid: int | None = None  # run the steps as this user and group (the caller must be root)
    gid: int | None = None
    cache_dir: str | None = None  # the toolchain cache's parent, instead of the executor's


CONTROL: Final = Variation()


class Inputs(Protocol):
    """Where an executor gets a spec's inputs by digest, on this machine."""

    def source(self, digest: str) -> ResolvedSource:
        """The source tree whose digest is `digest`, ready to copy (`sources.copy_tree`)."""
        ...

    def file(self, digest: str) -> Path:
        """A file whose sha256 is `digest` (a dependency's output in the store)."""
        ...
