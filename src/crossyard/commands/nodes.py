"""`crossyard nodes [probe]`: the cluster's nodes, as declared and as last probed."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from .. import nodes
from ..buildkit.endpoints import load_api
from ..errors import ConfigurationError, NodeUnreachable, suggest
from ..project import Project, load_settings
from ..report.tables import table_console
from ..workspace import Workspace
from . import add_json_options, emit_json, k8s_jobs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("nodes", help="the cluster's nodes and their state (from the last probe)")
    add_json_options(parser)
    parser.set_defaults(func=cmd_nodes)
    sub = parser.add_subparsers(dest="nodes_command", metavar="ACTION")
    probe = sub.add_parser("probe", help="connect to the nodes and read arch, cores, memory, toolchains, Docker")
    probe.add_argument("names", nargs="*", metavar="NODE", help="nodes to probe (default: all)")
    add_json_options(probe)
    probe.set_defaults(func=cmd_probe)
    k8s_jobs.add_parser(sub)  # `crossyard nodes k8s-jobs`: the jobs for a cluster without SSH


def _project(args: argparse.Namespace) -> Project:
    workspace = Workspace.find(explicit=args.workspace)
    return Project(workspace, load_settings(workspace))


def _row(node: nodes.Node, state: nodes.NodeState | None) -> dict[str, Any]:
    return {
        "name": node.name, "transport": node.transport, "address": node.where, "arch": node.arch.oci,
        "max_jobs": node.max_jobs, "labels": list(node.labels), "implicit": node.implicit,
        "state": state.to_json() if state else None,
    }


def cmd_nodes(args: argparse.Namespace) -> int:
    project = _project(args)
    states = nodes.read_states(nodes.state_path(project.workspace))
    rows = [_row(node, states.get(node.name)) for node in project.settings.nodes]
    if emit_json(args, {"nodes": rows}):
        return 0
    _render(project, [(node, states.get(node.name)) for node in project.settings.nodes])
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    project = _project(args)
    declared = {node.name: node for node in project.settings.nodes}
    for name in args.names:
        if name not in declared:
            raise ConfigurationError(
                f"{project.workspace.config_path}: no node named `{name}`{suggest(name, declared)}; "
                f"nodes: {', '.join(declared)}"
            )
    chosen = [declared[n] for n in dict.fromkeys(args.names)] or list(declared.values())
    states = nodes.probe_nodes(chosen, nodes.probers(project.prober, lambda: load_api(project.workspace)))
    nodes.write_states(nodes.state_path(project.workspace), states)
    by_name = {s.node: s for s in states}
    if not emit_json(args, {"nodes": [_row(node, by_name[node.name]) for node in chosen]}):
        _render(project, [(node, by_name[node.name]) for node in chosen])
    nodes.refuse_mismatched(states, file=project.workspace.config_path)
    unreachable = [s.error for s in states if s.status == "unreachable"]
    if unreachable:
        raise NodeUnreachable("\n".join(unreachable))
    return 0


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _render(project: Project, items: list[tuple[nodes.Node, nodes.NodeState | None]]) -> None:
    table = Table(title=f"nodes of {project.workspace.root}", title_justify="left", show_lines=True)
    for column in ("node", "transport", "address", "arch", "slots", "state", "probed"):
        table.add_column(column, overflow="fold")
    for node, state in items:
        slots = str(node.max_jobs) if node.max_jobs else "cores"
        name = node.name + (" [dim](implicit)[/]" if node.implicit else "")
        if node.labels:
            name += f"\n[dim]{escape(', '.join(node.labels))}[/]"
        if state is None:
            status, seen = "[dim]never probed[/]", "run `crossyard nodes probe`"
        elif state.facts is not None and state.status == "ok":
            facts = state.facts
            tools = sorted({f"{t.identity} ({t.platform.architecture}, {t.strategy})" for t in facts.toolchains
                            if t.kind != "qemu"})
            status = "[green]ok[/]"
            if facts.buildkit is not None:  # buildkitd alone: its identity and workers' platforms
                seen = f"{facts.buildkit}\nplatforms: " + ", ".join(
                    f"{p.oci} ({'native' if i == 0 else 'emulated'})" for i, p in enumerate(facts.buildkit_platforms))
            else:
                seen = (f"{facts.uname_m}, {facts.cores} cores, {_gib(facts.memory)}, "
                        f"docker: {facts.docker or 'none'}\n" + "\n".join(tools))
        else:
            colour = "red" if state.status == "refused" else "yellow"
            status, seen = f"[{colour}]{state.status}[/]", state.error
        table.add_row(name, node.transport, escape(node.where), node.arch.oci, slots, status,
                      f"[dim]{state.probed}[/]\n{escape(seen)}" if state else seen)
    table_console(160).print(table)
