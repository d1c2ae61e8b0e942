"""`crossyard image ls | export`: the images `crossyard build` assembled into the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..images.export import FORMATS, export_image, platform_manifests
from ..platforms import Platform, platform_label
from ..report.tables import table_console
from ..store import Store
from ..workspace import Workspace
from . import add_json_options, emit_json


def _store(args: argparse.Namespace) -> Store:
    return Store(Workspace.find(explicit=args.workspace).store_dir)


def cmd_ls(args: argparse.Namespace) -> int:
    store = _store(args)
    rows: list[dict[str, Any]] = []
    for image in store.images():
        manifests = platform_manifests(store.layout, image)
        rows.append({
            "ref": image.ref, "name": image.name, "version": image.version, "recipe": image.recipe,
            "digest": image.index.digest, "key": image.key or None, "reproducible": image.reproducible,
            "platforms": {
                platform_label(d.platform): d.digest
                for d in manifests
            },
        })
    if emit_json(args, {"store": str(store.root), "images": rows}):
        return 0
    table = Table(title=f"images in {store.root}", title_justify="left")
    for column in ("image", "digest", "platforms", "recipe"):
        table.add_column(column)
    for row in rows:
        note = "" if row["reproducible"] else " (not reproducible)"
        table.add_row(row["ref"], row["digest"], ", ".join(row["platforms"]), row["recipe"] + note)
    table_console(200).print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    platform = Platform.parse(args.platform) if args.platform else None
    exported = export_image(store, args.image, Path(args.output), format=args.format, platform=platform)
    Console(file=sys.stderr, highlight=False).print(
        f"exported {exported.ref} ({', '.join(exported.platforms)}) as {exported.format} to {exported.path}"
        f" [dim]{exported.digest}[/]"
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = subparsers.add_parser("image", help="images in the store: list, export")
    sub = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="list the images `crossyard build` assembled")
    add_json_options(ls)
    ls.set_defaults(func=cmd_ls)
    export = sub.add_parser(
        "export", help="write an image as an OCI layout (or oci-archive .tar) or a docker-archive",
    )
    export.add_argument("image", metavar="IMAGE", help="name:version (or name, when only one version exists)")
    export.add_argument("--format", choices=FORMATS, default="oci",
                        help="oci: layout dir, or oci-archive if PATH ends .tar; docker-archive: `docker load` tar")
    export.add_argument("-o", "--output", required=True, metavar="PATH")
    export.add_argument("-p", "--platform", default=None, help="one platform, e.g. linux/riscv64 (docker-archive needs it "
                        "when the image has several)")
    export.set_defaults(func=cmd_export)
