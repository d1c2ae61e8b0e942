"""`crossyard init | plan | build | toolchains`: the foundation's commands."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import debian
from ..errors import BuildError, ConfigurationError
from ..images.assemble import plan_image_jobs
from ..platforms import PLATFORMS, Platform
from ..project import Project, load_settings
from ..report.tables import table_console
from ..templates import placeholders
from ..workspace import Workspace
from . import add_json_options, emit_json

if TYPE_CHECKING:
    from ..pipeline import BuildResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = subparsers.add_parser("init", help="scaffold a workspace with an example recipe")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."))
    init.set_defaults(func=cmd_init)

    for name, func, text in (("plan", cmd_plan, "show the jobs, their keys and what is cached"),
                             ("build", cmd_build, "build recipes (cached by input key)")):
        parser = subparsers.add_parser(name, help=text)
        parser.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipes to build (default: all)")
        parser.add_argument("-p", "--platform", action="append", default=[],
                            help="platform(s) to build, e.g. linux/riscv64 (repeat or comma-separate)")
        add_json_options(parser)
        if name == "build":
            parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel jobs (default: cores)")
            parser.add_argument("--locked", action="store_true",
                                help="fail (exit 1) when an output differs from crossyard.lock; do not update it")
        parser.set_defaults(func=func)

    tools = subparsers.add_parser("toolchains", help="what can be built here, how, and how to fix what cannot")
    add_json_options(tools)
    tools.set_defaults(func=cmd_toolchains)
    tool_sub = tools.add_subparsers(dest="toolchains_command", metavar="ACTION")
    prepare = tool_sub.add_parser("prepare", help="create a toolchain's root (mmdebstrap)")
    prepare.add_argument("name")
    prepare.set_defaults(func=cmd_prepare)
    mirror = tool_sub.add_parser("mirror", help="print the Debian mirror roots are prepared from")
    mirror.set_defaults(func=cmd_mirror)


def _workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.find(explicit=args.workspace)


def _console() -> Console:
    return Console(file=sys.stderr, highlight=False)


# -- init ----------------------------------------------------------------------------------------

EXAMPLE_MAIN = """package main

import (
\t"fmt"
\t"os"
\t"runtime"
)

var version = "dev"

func main() {
\tname := "world"
\tif len(os.Args) > 1 {
\t\tname = os.Args[1]
\t}
\tfmt.Printf("hello, %s, from %s/%s (version %s)\\n", name, runtime.GOOS, runtime.GOARCH, version)
}
"""

EXAMPLE_RECIPE = """# A Go program built for riscv64 and arm64; see `crossyard plan`.
name = "hello"
kind = "go"
version = "0.1.0"
platforms = ["linux/riscv64", "linux/arm64"]
strategies = ["cross", "native", "emulated"]

[source]
path = "../src/hello"

[go]
package = "."
ldflags = ["-X main.version={version}"]

[test]
run = ["hello", "crossyard"]
expect = "hello, crossyard"
"""


def _builtin_cert_profiles() -> list[Path]:
    from importlib import resources

    return sorted(Path(str(resources.files("crossyard") / "data" / "certs")).glob("*.toml"))


def cmd_init(args: argparse.Namespace) -> int:
    root = args.directory.resolve()
    files = {
        root / "crossyard.toml": '[build]\nplatforms = ["linux/riscv64", "linux/arm64"]\n',
        root / "recipes" / "hello.toml": EXAMPLE_RECIPE,
        root / "src" / "hello" / "main.go": EXAMPLE_MAIN,
        root / "src" / "hello" / "go.mod": "module example.com/hello\n\ngo 1.19\n",
        root / ".gitignore": ".crossyard/\n",
        # the PKI's profiles, so `crossyard registry up` works in the new workspace at once
        **{root / "certs" / f.name: f.read_text() for f in _builtin_cert_profiles()},
    }
    existing = [p for p in files if p.exists() and p.name != ".gitignore"]
    if existing:
        raise ConfigurationError(f"{existing[0]} already exists; `crossyard init` only scaffolds an empty workspace")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name == ".gitignore" and path.exists():
            if ".crossyard/" not in path.read_text().split():
                path.write_text(path.read_text().rstrip("\n") + "\n.crossyard/\n")
            continue
        path.write_text(text)
    _console().print(f"workspace ready in {root}: try `crossyard -C {root} plan` then `build`")
    return 0


# -- plan ----------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    project = Project(workspace, load_settings(workspace, platforms=args.platform))
    graph = project.graph(args.recipes)
    cached_keys = project.store.cached_keys()
    known: dict[str, dict[str, str]] = {}  # job id → outputs, for jobs known to be cached
    rows: list[dict[str, Any]] = []
    for job_id in graph.order:
        job = graph.jobs[job_id]
        key = None
        status = "build"
        if all(d in known for d in job.deps):
            key = job.input_key({d: known[d] for d in job.deps})
            artifact = project.store.find(key, index=cached_keys) if key in cached_keys else None
            if artifact is not None:
                status = "cached"
                known[job_id] = artifact.digests
        else:
            status = "build (after deps)"
        rows.append({
            "id": job_id, "recipe": job.recipe.name, "platform": job.platform.oci, "strategy": job.strategy,
            "toolchain": job.identity, "deps": list(job.deps), "input_key": key, "status": status,
        })
    images = [
        {"recipe": j.recipe.name, "ref": j.ref, "base": j.spec.base.text, "platforms": [p.oci for p in j.platforms],
         "after": list(j.after)}
        for j in plan_image_jobs(project, graph, args.recipes)
    ]
    if emit_json(args, {"jobs": rows, "images": images}):
        return 0
    table = Table(title=f"{len(rows)} jobs", title_justify="left")
    for column in ("job", "strategy", "toolchain", "after", "input key", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["strategy"], row["toolchain"], ", ".join(row["deps"]),
                      (row["input_key"] or "(after deps)")[7:19], row["status"])
    table_console(200).print(table)
    for image in images:
        table_console(200).print(
            f"image {image['ref']} ({image['recipe']}) on {image['base']} for {', '.join(image['platforms'])}"
        )
    return 0


# -- build ---------------------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    from ..report.live import LiveReporter
    from ..report.runs import write_run

    workspace = _workspace(args)
    settings = load_settings(workspace, platforms=args.platform, jobs=args.jobs)
    project = Project(workspace, settings)
    reporter = LiveReporter(quiet=args.json)
    from .. import pipeline  # the whole build machinery: not loaded for `plan`

    result = pipeline.build(project, names=args.recipes, locked=args.locked, reporter=reporter)
    run = write_run(workspace.runs_dir, result, observed=reporter.observed())
    emit_json(args, run.summary)
    render_build(result, _console(), report=run.report)
    result.raise_for_status()
    return 0


def render_build(result: BuildResult, console: Console, *, report: Path | None = None) -> None:
    for left_out in result.node_warnings:
        console.print(f"[yellow]warning[/]: {escape(left_out)}", soft_wrap=True)
    console.print(
        f"{result.count('built')} built, {result.count('cached')} cached, {result.count('failed')} failed, "
        f"{result.count('skipped')} skipped in {result.seconds:.1f}s"
    )
    for image in result.images:
        colour = {"assembled": "green", "cached": "cyan"}.get(image.status, "yellow")
        where = image.index.digest if image.index else image.error or ""
        console.print(f"image [bold]{escape(image.ref)}[/] [{colour}]{image.status}[/] {escape(where)} "
                      f"[dim]({', '.join(image.manifests) or 'no platforms'})[/]", soft_wrap=True)
    for warning in result.warnings:
        console.print(f"[yellow]warning[/]: {escape(warning.id)} differs from the lock (not reproducible): "
                      f"{escape(warning.reason)}")
    if report is not None:
        console.print(f"report: {escape(str(report))}", soft_wrap=True)


# -- toolchains ----------------------------------------------------------------------------------


def cmd_toolchains(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    project = Project(workspace, load_settings(workspace))
    prober = project.prober
    rows: list[dict[str, Any]] = []
    for kind in sorted({d.kind for d in prober.definitions}):
        for platform in PLATFORMS.values():
            candidates = prober.candidates(kind, platform)
            if not any(platform in d.targets for d in prober.definitions if d.kind == kind):
                continue
            best = next((c for c in candidates if c.available), None)
            rows.append({
                "kind": kind,
                "platform": platform.oci,
                "available": best is not None,
                "strategy": best.strategy if best else None,
                "toolchain": best.name if best else None,
                "version": best.version if best else None,
                "alternatives": [
                    {"toolchain": c.name, "strategy": c.strategy, "available": c.available,
                     "version": c.version or None, "reason": c.reason or None, "fix": c.fix or None}
                    for c in candidates
                    if platform in next(d for d in prober.definitions if d.name == c.name).targets
                ],
            })
    project.probe_cache.save()
    if emit_json(args, {"host": Platform.host().oci, "toolchains": rows}):
        return 0
    table = Table(title=f"toolchains on this machine ({Platform.host().oci})", title_justify="left",
                  show_lines=True)
    for column in ("kind", "platform", "", "how", "toolchain", "version / fix"):
        table.add_column(column, overflow="fold")
    for row in rows:
        missing = "\n".join(
            f"{a['toolchain']} ({a['strategy']}): {a['reason']}\n  fix: {a['fix']}"
            for a in row["alternatives"] if not a["available"]
        )
        also = "\n".join(
            f"also: {a['toolchain']} ({a['strategy']}): {a['version']}"
            for a in row["alternatives"] if a["available"] and a["toolchain"] != row["toolchain"]
        )
        if row["available"]:
            extra = "".join(f"\n[dim]{escape(text)}[/]" for text in (also, missing) if text)
            # qemu-user is not built with: it runs what the others built (smoke tests, emulated roots)
            how = "runs" if row["kind"] == "qemu" else row["strategy"]
            table.add_row(row["kind"], row["platform"], "[green]yes[/]", how, row["toolchain"],
                          escape(row["version"]) + extra)
        else:
            table.add_row(row["kind"], row["platform"], "[red]no[/]", "", "", escape(missing))
    table_console(160).print(table)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    project = Project(workspace, load_settings(workspace))
    definition = next((d for d in project.prober.definitions if d.name == args.name), None)
    if definition is None:
        raise ConfigurationError(
            f"no toolchain named `{args.name}`; those with a root: "
            + ", ".join(d.name for d in project.prober.definitions if d.root)
        )
    root = definition.root_path()
    if root is None or not definition.prepare:
        raise ConfigurationError(f"{definition.file}: toolchain `{args.name}` has no root to prepare")
    if (root / "usr").is_dir():
        _console().print(f"{root} is already prepared")
        return 0
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-"))
    staging.rmdir()  # mmdebstrap wants to create (or find empty) the target itself
    host = Platform.host()
    # The mirror only when asked for: a root from elsewhere must not need apt sources here.
    uses_mirror = any("mirror" in placeholders(a) for a in definition.prepare)
    url = debian.workspace_mirror(workspace) if uses_mirror else ""
    argv = [definition.render(a, host, mirror=url).replace(str(root), str(staging)) for a in definition.prepare]
    _console().print(f"preparing {root}: {' '.join(argv)}")
    try:
        result = subprocess.run(argv)
        if result.returncode != 0:
            raise BuildError(f"preparing toolchain root {root} failed (exit {result.returncode})")
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0


def cmd_mirror(args: argparse.Namespace) -> int:
    sys.stdout.write(debian.workspace_mirror(_workspace(args)) + "\n")
    return 0
