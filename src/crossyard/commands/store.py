"""`crossyard store ls | verify | gc`: look into the local OCI store, check it, trim it."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.table import Table

from ..annotations import ANNOTATION_INPUT_KEY, ANNOTATION_PLATFORM, ANNOTATION_RECIPE
from ..errors import ConfigurationError
from ..lock import read_lock
from ..oci import media
from ..platforms import platform_label
from ..report.tables import table_console
from ..store import GcPlan, Store, entry_label
from ..workspace import Workspace
from . import add_json_options, emit_json

DEFAULT_KEEP_DAYS = 7


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = subparsers.add_parser("store", help="the local OCI store: list, verify, gc")
    store_sub = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    ls = store_sub.add_parser("ls", help="list artifacts and images")
    add_json_options(ls)
    ls.set_defaults(func=cmd_ls)

    verify = store_sub.add_parser(
        "verify", help="re-hash every blob and follow every reference (exit 1 on damage)")
    add_json_options(verify)
    verify.set_defaults(func=cmd_verify)

    gc = store_sub.add_parser(
        "gc", help="drop what neither crossyard.lock nor a recent build uses (dry run unless --apply)")
    gc.add_argument("--keep-days", type=_days, default=DEFAULT_KEEP_DAYS, metavar="DAYS",
                    help="also keep what was built in the last DAYS days (default 7; 0: only the lock)")
    gc.add_argument("--apply", "--yes", action="store_true", dest="apply",
                    help="delete (default: only list what would go)")
    add_json_options(gc)
    gc.set_defaults(func=cmd_gc)


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number of days (0 or more)")
    return value


def _store(args: argparse.Namespace) -> tuple[Workspace, Store]:
    workspace = Workspace.find(explicit=args.workspace)
    return workspace, Store(workspace.store_dir)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


# -- ls ------------------------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace) -> int:
    _, store = _store(args)
    rows: list[dict[str, Any]] = []
    for descriptor in store.layout.manifests():
        notes = descriptor.annotations or {}
        entry: dict[str, Any] = {
            "ref": notes.get(media.ANNOTATION_REF_NAME),
            "type": "artifact" if descriptor.artifact_type == media.ARTIFACT_TYPE else "image",
            "media_type": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
            "platform": notes.get(ANNOTATION_PLATFORM),
            "recipe": notes.get(ANNOTATION_RECIPE),
            "input_key": notes.get(ANNOTATION_INPUT_KEY),
        }
        if entry["type"] == "artifact":
            artifact = store.artifact(descriptor)
            entry["files"] = {f.name: {"digest": f.digest, "size": f.size} for f in artifact.outputs}
        elif descriptor.media_type == media.INDEX:
            entry["platforms"] = {
                platform_label(m.get("platform")): m["digest"]
                for m in store.layout.read_json(descriptor.digest).get("manifests", [])
            }
        rows.append(entry)
    if emit_json(args, {"store": str(store.root), "entries": rows}):
        return 0
    table = Table(title=f"{store.root}", title_justify="left")
    for column in ("ref", "type", "platform", "digest", "files"):
        table.add_column(column)
    for row in rows:
        files = ", ".join(f"{n} ({v['size']} B)" for n, v in row.get("files", {}).items())
        platform = row["platform"] or ", ".join(row.get("platforms", {}))
        table.add_row(row["ref"] or "(older build)", row["type"], platform, row["digest"][7:19], files)
    table_console(160).print(table)
    return 0


# -- verify --------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    _, store = _store(args)
    report = store.verify()
    on_stdout = emit_json(args, {
        "store": str(store.root), "ok": report.ok, "blobs": report.blobs, "bytes": report.size,
        "index_problem": report.index_problem,
        "problems": [{"digest": p.digest, "problem": p.problem, "used_by": list(p.used_by)}
                     for p in report.problems],
    })
    out = sys.stderr if on_stdout else sys.stdout
    if report.ok:
        out.write(f"{store.root}: {report.blobs} blobs ({_size(report.size)}) intact, "
                  "every reference resolves\n")
        return 0
    if report.index_problem:
        out.write(f"{store.layout.index_path} {report.index_problem}\n")
    for problem in report.problems:
        users = ", ".join(problem.used_by) or "nothing (garbage)"
        out.write(f"blob {problem.digest} {problem.problem}; used by {users}\n")
    if report.index_problem:
        out.write(f"fix: {store.layout.index_recovery}\n")
    else:
        out.write(
            f"fix: `crossyard build` rebuilds every artifact and image whose blobs are damaged "
            "(writing them again replaces the bad copies); what no recipe builds any more goes "
            f"with `crossyard store gc --keep-days 0 --apply`; or remove {store.root} to start over\n"
        )
    return 1


# -- gc ------------------------------------------------------------------------------------------


def cmd_gc(args: argparse.Namespace) -> int:
    workspace, store = _store(args)
    if not workspace.lock_path.exists():
        # Without a lock, everything not built lately would look unused.
        raise ConfigurationError(
            f"{workspace.lock_path} does not exist, and `store gc` keeps what it records: run "
            "`crossyard build` first (it writes the lock), then `crossyard store gc`"
        )
    lock = read_lock(workspace.lock_path)
    plan = store.gc(
        keep_keys={entry.input_key for entry in lock.entries.values()},
        keep_digests={image.index for image in lock.images.values()},
        recent_since=time.time() - args.keep_days * 86400,
        apply=args.apply,
    )
    if emit_json(args, _gc_json(store, plan, applied=args.apply)):
        return 0
    _gc_render(store, plan, args)
    return 0


def _gc_json(store: Store, plan: GcPlan, *, applied: bool) -> dict[str, Any]:
    return {
        "store": str(store.root), "applied": applied,
        "drop": [{"entry": entry_label(d), "digest": d.digest} for d in plan.drop],
        "kept": len(plan.keep), "kept_recent": [entry_label(d) for d in plan.recent],
        "blobs": [{"file": f"blobs/sha256/{name}", "size": size} for name, size in plan.blobs],
        "bytes": plan.size, "in_flight": plan.in_flight,
    }


def _gc_render(store: Store, plan: GcPlan, args: argparse.Namespace) -> None:
    out = sys.stdout
    verb = "removed" if args.apply else "would remove"
    for descriptor in plan.drop:
        out.write(f"{verb} {entry_label(descriptor)} {descriptor.digest}\n")
    recent = (f", and {len(plan.recent)} built in the last {args.keep_days} days (--keep-days 0 "
              "drops those too)") if plan.recent else ""
    out.write(f"{store.root}: {verb} {len(plan.drop)} index entries and {len(plan.blobs)} blobs, "
              f"{_size(plan.size)}; kept {len(plan.keep)} entries: what crossyard.lock names, what "
              f"refers to it{recent}\n")
    if plan.in_flight:
        out.write(f"left {plan.in_flight} unreferenced blobs younger than an hour alone "
                  "(a build may be writing them)\n")
    if not args.apply and (plan.drop or plan.blobs):
        days = f" --keep-days {args.keep_days}" if args.keep_days != DEFAULT_KEEP_DAYS else ""
        out.write(f"dry run: `crossyard store gc{days} --apply` deletes them\n")
