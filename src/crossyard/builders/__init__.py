"""Builders: one per recipe kind. Each turns a job into commands and an environment; none
does I/O. Builders name the job's directories by placeholder (`{src}`, `{out}`, `{deps}`…,
`jobspec.JobPaths`): the executor decides where they are (a host temp dir, `/tmp/build` inside
a toolchain root, a directory on another node) and fills them in.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..build_options import BuildOptions
from ..jobspec import PLACEHOLDERS, JobPaths, Step
from ..platforms import Platform
from ..recipes import FILE_NAME_RE, GenerateStep
from ..templates import expand, recipe_values
from ..toolchains import ToolchainTarget


@dataclass(frozen=True, kw_only=True)
class BuildInput:
    """Everything a builder may look at: no recipe file, no store, no processes."""

    name: str
    version: str
    platform: Platform
    options: BuildOptions  # the recipe kind's, the platform's overrides merged in
    toolchain: ToolchainTarget
    paths: JobPaths = PLACEHOLDERS
    source_date_epoch: int
    deps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # recipe → its file names
    commit: str | None = None  # the source's commit (`Recipe.commit`), for `{commit}`
    generate: tuple[GenerateStep, ...] = ()  # the recipe's [[generate]] steps


@dataclass(frozen=True, kw_only=True)
class BuildScript:
    steps: tuple[Step, ...]
    outputs: Mapping[str, str]  # artifact file name → path (as the commands see it)
    env: Mapping[str, str] = field(default_factory=dict)
    # Steps that lay the job directory out (GOPATH mode places the source), before [[generate]].
    setup: tuple[Step, ...] = ()


def output_inside(name: str, path: str, root: str) -> bool:
    """Whether a script's output is a plain file name (see recipes.FILE_NAME_RE) at a path inside
    the job directory `root`, lexically. Planner and executors hold every builder to this."""
    normal = posixpath.normpath(path)
    return bool(FILE_NAME_RE.match(name)) and "\0" not in path and normal.startswith(root.rstrip("/") + "/")


class Builder(Protocol):
    def script(self, job: BuildInput) -> BuildScript: ...


def template_values(job: BuildInput) -> dict[str, str]:
    """What `{…}` in the job's options stands for (`templates.RECIPE_PLACEHOLDERS`)."""
    values = recipe_values(name=job.name, version=job.version, commit=job.commit, platform=job.platform,
                           source_date_epoch=job.source_date_epoch)
    return {**values, "deps": job.paths.deps, "out": job.paths.out}


def script_for(kind: str, job: BuildInput) -> BuildScript:
    """The kind's script with the recipe's [[generate]] steps before its build: each runs where
    the build's first step does (or in its `dir` below that), with that step's environment and its
    own `env` over it (`GOOS = ""` builds a Go tool for the machine the job runs on)."""
    script = builder_for(kind).script(job)
    if not job.generate:
        return replace(script, steps=(*script.setup, *script.steps), setup=()) if script.setup else script
    first = script.steps[0]
    values = {**template_values(job), "root": job.paths.root, "src": job.paths.src, "home": job.paths.home,
              "toolchain": job.toolchain.command}
    generate = tuple(
        Step(argv=tuple(expand(a, values) for a in step.run),
             cwd=posixpath.join(first.cwd, step.dir) if step.dir else first.cwd,
             env={**first.env, **{k: expand(v, values) for k, v in step.env}})
        for step in job.generate
    )
    return replace(script, steps=(*script.setup, *generate, *script.steps), setup=())


@functools.cache
def builder_for(kind: str) -> Builder:
    from . import c, go, rust

    table: dict[str, Builder] = {"go": go.GoBuilder(), "c": c.CBuilder(), "rust": rust.RustBuilder()}
    return table[kind]
