"""`crossyard repro check` (rebuild under variations, compare, explain) and `crossyard lock
verify` (is the lock still what the recipes and toolchains make)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..project import Project, load_settings
from ..report.tables import table_console
from ..workspace import Workspace
from . import add_json_options, emit_json

COLOURS = {"identical": "green", "differs": "red", "failed": "red", "not rebuilt": "dim"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..repro.check import VARIATIONS

    repro = subparsers.add_parser("repro", help="reproducibility: rebuild under variations and compare")
    repro_sub = repro.add_subparsers(dest="repro_command", metavar="ACTION", required=True)
    check = repro_sub.add_parser(
        "check", help="rebuild each recipe x platform under variations (cache bypassed, store untouched), "
                      "compare every output and explain each mismatch",
        epilog="variations: " + "; ".join(f"{k}: {v}" for k, v in VARIATIONS.items()))
    check.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipes to check (default: all)")
    check.add_argument("-p", "--platform", action="append", default=[],
                       help="platform(s) to check, e.g. linux/riscv64 (repeat or comma-separate)")
    check.add_argument("--vary", action="append", default=[], metavar="VARIATION",
                       help=f"variations to apply (repeat or comma-separate; default all: {', '.join(VARIATIONS)})")
    check.add_argument("--against-lock", action="store_true",
                       help="also hold each control rebuild against crossyard.lock")
    check.add_argument("--separately", action="store_true",
                       help="build each variation on its own (default: all local ones at once first, "
                            "each on its own only when that differs)")
    add_json_options(check)
    check.set_defaults(func=cmd_repro_check)

    lock = subparsers.add_parser("lock", help="crossyard.lock checks")
    lock_sub = lock.add_subparsers(dest="lock_command", metavar="ACTION", required=True)
    verify = lock_sub.add_parser("verify", help="fail when a lock entry's inputs changed without a rebuild")
    verify.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipes to verify (default: all)")
    verify.add_argument("-p", "--platform", action="append", default=[], help="platform(s) to verify")
    add_json_options(verify)
    verify.set_defaults(func=cmd_lock_verify)


def _console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def _project(args: argparse.Namespace) -> Project:
    workspace = Workspace.find(explicit=args.workspace)
    return Project(workspace, load_settings(workspace, platforms=args.platform))


def cmd_repro_check(args: argparse.Namespace) -> int:
    from ..repro.check import check, parse_variations

    variations = parse_variations(args.vary)  # before anything is opened: a typo costs nothing
    project = _project(args)
    report = check(project, names=args.recipes, variations=variations, against_lock=args.against_lock,
                   separately=args.separately)
    if not emit_json(args, report.to_json()):
        table = Table(title=f"repro check {report.id}")
        table.add_column("recipe")
        table.add_column("platform")
        for variation in report.variations:
            table.add_column(variation)
        for row in report.rows:
            table.add_row(row.recipe, row.platform, *(
                f"[{COLOURS[c.state]}]{escape(c.state)}[/]" for c in row.cells))
        table_console(160).print(table)
    console = _console()
    for row in report.rows:
        if row.control.status == "failed":
            console.print(f"[red]{escape(row.id)}[/]: the control build failed: {escape(row.control.reason)}",
                          soft_wrap=True)
        for cell in row.cells:
            if cell.state in ("differs", "failed"):
                console.print(f"[red]{escape(row.id)}[/] {escape(cell.variation)}: {escape(cell.reason)}",
                              soft_wrap=True)
                for name, (expected, got) in sorted(cell.digests.items()):
                    console.print(f"  {escape(name)}: {expected} -> {got}", soft_wrap=True)
    console.print(f"report: {escape(str(report.report))}", soft_wrap=True)
    return 0 if report.ok else 1


def cmd_lock_verify(args: argparse.Namespace) -> int:
    from ..repro.verify import verify_lock

    result = verify_lock(_project(args), args.recipes)
    if not emit_json(args, result.to_json()):
        for stale in result.stale:
            print(f"{stale.recipe}@{stale.platform}: {stale.reason}\n"
                  f"  locked key:  {stale.locked_key or '-'}\n  current key: {stale.current_key or '-'}")
        print(f"{result.checked} lock entries checked, {len(result.stale)} stale")
    return 0 if result.ok else 1
