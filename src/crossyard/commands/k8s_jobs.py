"""`crossyard nodes k8s-jobs -o DIR`: the plan's jobs as Kubernetes Job manifests (see k8s_jobs.py).

commands/nodes.py offers it under `crossyard nodes` (`add_parser(sub)`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .. import k8s_jobs
from ..errors import ConfigurationError
from ..platforms import Platform
from ..project import Project, load_settings
from ..workspace import Workspace
from . import add_json_options, emit_json


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
               name: str = "k8s-jobs") -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help="render the plan's jobs as Kubernetes Jobs (nodes without SSH, e.g. Talos)",
        description="One YAML per job (ConfigMap with the job spec + batch/v1 Job pinned with "
                    "kubernetes.io/arch), inputs and outputs through the registry as OCI artifacts by "
                    "digest. Jobs whose dependencies are not in the store yet are listed as waiting.",
    )
    parser.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipes (default: all)")
    parser.add_argument("-p", "--platform", action="append", default=[],
                        help="platform(s), e.g. linux/riscv64 (repeat or comma-separate)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="directory for the manifests, inputs/ and push-inputs.sh")
    parser.add_argument("--registry", default=None, metavar="HOST[:PORT]",
                        help="the registry the cluster uses (default: CROSSYARD_REGISTRY, else the managed one)")
    parser.add_argument("--ca", default=None, metavar="BUNDLE", help="the registry's CA bundle, for push-inputs.sh")
    parser.add_argument("--image", action="append", default=[], metavar="NAME=REF",
                        help="image for toolchain NAME (or `oras`), pinned: sha256:<hex> "
                             "(REGISTRY/crossyard-root/NAME@…) or HOST/REPO@sha256:<hex>; repeat")
    parser.add_argument("--namespace", default="crossyard")
    parser.add_argument("--secret", default="crossyard-registry",
                        help="Secret with ca.crt and config.json for oras in the pods")
    parser.add_argument("--cross-arch", default=None, metavar="ARCH",
                        help="node arch for cross jobs (default: the toolchain's, i.e. this machine's)")
    add_json_options(parser)
    parser.set_defaults(func=cmd_k8s_jobs)
    return parser


def _images(values: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for value in values:
        name, eq, ref = value.partition("=")
        if not eq or not name or not ref:
            raise ConfigurationError(f"--image {value}: expected NAME=REF, e.g. gcc=sha256:<64 hex>")
        images[name] = ref
    return images


def cmd_k8s_jobs(args: argparse.Namespace) -> int:
    from ..registry.target import resolve_target

    workspace = Workspace.find(explicit=args.workspace)
    project = Project(workspace, load_settings(workspace, platforms=args.platform))
    target = resolve_target(workspace, registry=args.registry, ca=args.ca)
    options = k8s_jobs.K8sJobOptions(
        registry=target.host, images=_images(args.image), namespace=args.namespace, secret=args.secret,
        cross_arch=Platform.parse(args.cross_arch) if args.cross_arch else None,
        ca_file=str(target.ca_path) if target.ca_path else "",
    )
    plan = k8s_jobs.plan_jobs(project, args.recipes, options)
    written = k8s_jobs.write_jobs(project, plan, options, args.output)
    if emit_json(args, written.to_json()):
        return 0
    console = Console(file=sys.stderr, highlight=False)
    for job, path in zip(plan.jobs, written.files, strict=True):
        note = " [dim](already in the store)[/]" if job.cached else ""
        console.print(f"[green]job[/] {escape(job.id)} → {escape(str(path))} on linux/{job.arch.goarch}{note}",
                      soft_wrap=True)
    for waiting in plan.waiting:
        console.print(f"[yellow]waiting[/] {escape(waiting.id)}: {escape(waiting.reason)}", soft_wrap=True)
    if plan.jobs:
        console.print(f"next: sh {escape(str(written.push_script))}, "
                      f"then kubectl apply -f {escape(str(args.output))}; each file's header says more",
                      soft_wrap=True)
    return 0
