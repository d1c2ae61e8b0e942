"""A one-recipe workspace for store and publish tests: a static C program for linux/riscv64
(real cross gcc; its smoke test under qemu-user) wrapped in a scratch image, its version in the
binary, so each version has blobs of its own. Plus the CLI calls and blob surgery they share."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from conftest import require_tool, run_cli
from crossyard.oci.layout import OciLayout

APP_C = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    printf("app %s says %s\n", VERSION, argc > 1 ? argv[1] : "hi");
    return 0;
}
"""

RECIPE = """name = "app"
kind = "c"
version = "{version}"
platforms = ["linux/riscv64"]
source_date_epoch = 1767225600

[source]
path = "../src"

[c]
sources = ["app.c"]
cflags = ["-O2", "-DVERSION=\\"{{version}}\\""]
static = true

[test]
run = ["app", "yard"]
expect = "app {version} says yard"

[image]
name = "app"
base = "scratch"
entrypoint = ["/app"]

[[image.files]]
artifact = "app"
dest = "/app"
"""


def riscv64_c_workspace(tmp_path: Path, sources: dict[str, str]) -> Path:
    """tmp_path/ws with src/<name> for each of `sources` and an empty recipes/, once the cross
    compiler and qemu-user that a linux/riscv64 C recipe with a smoke test needs are there."""
    require_tool("riscv64-linux-gnu-gcc", "run .ci/install.d/00-apt.sh")
    require_tool("qemu-riscv64-static", "run .ci/install.d/00-apt.sh")
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "recipes").mkdir()
    for name, text in sources.items():
        (root / "src" / name).write_text(text)
    return root


def app_workspace(tmp_path: Path) -> Path:
    root = riscv64_c_workspace(tmp_path, {"app.c": APP_C})
    set_version(root, "0.1.0")
    return root


def set_version(ws: Path, version: str) -> None:
    (ws / "recipes" / "app.toml").write_text(RECIPE.format(version=version))


def cli(ws: Path, *args: str, code: int = 0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = run_cli("-C", str(ws), *args, env=env)
    assert result.returncode == code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def build(ws: Path, *args: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(cli(ws, "build", "--json", *args).stdout)
    return summary


def store(ws: Path) -> OciLayout:
    return OciLayout(ws / ".crossyard" / "store")


def blob(ws: Path, digest: str) -> Path:
    return store(ws).blob_path(digest)


def flip(path: Path) -> None:
    """Flip one bit in the middle of a file: same size, other bytes."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def intact(path: Path) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def lock(ws: Path) -> dict[str, Any]:
    with (ws / "crossyard.lock").open("rb") as handle:
        return tomllib.load(handle)


def image_layer(ws: Path, version: str) -> str:
    (image,) = [i for i in lock(ws)["image"] if i["version"] == version]
    return str(image["platform"][0]["layers"][-1]["blob"])
