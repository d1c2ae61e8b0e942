"""Images through the real CLI: the example catalog's hello-go (real Go, cross) for riscv64 and
arm64, wrapped by recipes/images/hello-go.toml, built in two workspaces at different times and
paths; exported and read back by skopeo; bad inputs end in exit 2 with the store index untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, build_summary, require_tool, run_cli
from helpers.oci_schema import validate

pytestmark = [pytest.mark.integration]

REF = "hello-go:0.1.0"


def small_workspace(root: Path) -> Path:
    """hello-go and its image recipe, copied from the example catalog."""
    (root / "recipes" / "services").mkdir(parents=True)
    (root / "recipes" / "images").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "services" / "hello-go.toml", root / "recipes" / "services")
    shutil.copy(REPO / "recipes" / "images" / "hello-go.toml", root / "recipes" / "images")
    shutil.copytree(REPO / "services" / "hello-go", root / "services" / "hello-go")
    shutil.copy(REPO / "crossyard.toml", root)
    return root


@pytest.fixture(scope="module")
def tools() -> None:
    for tool in ("go", "qemu-riscv64-static", "qemu-aarch64-static"):
        require_tool(tool, "run .ci/install.d/00-apt.sh")


@pytest.fixture(scope="module")
def built(tools: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    ws = small_workspace(tmp_path_factory.mktemp("first") / "a")
    return ws, build_summary(ws)


def image_of(summary: dict[str, Any]) -> dict[str, Any]:
    [image] = [i for i in summary["images"] if i["ref"] == REF]
    return image


def test_same_index_digest_from_two_workspaces(built: tuple[Path, dict[str, Any]],
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    ws, first = built
    assert first["ok"] and image_of(first)["status"] == "assembled"
    assert set(image_of(first)["manifests"]) == {"linux/riscv64", "linux/arm64"}
    time.sleep(1.1)
    other = small_workspace(tmp_path_factory.mktemp("second-at-another-path") / "deeper" / "b")
    second = build_summary(other, env={"TZ": "Pacific/Kiritimati", "LC_ALL": "C"})
    assert image_of(second)["status"] == "assembled"
    assert image_of(second)["digest"] == image_of(first)["digest"]
    assert image_of(second)["manifests"] == image_of(first)["manifests"]
    # the lock records the image; a rebuild is cached and --locked agrees
    lock = (ws / "crossyard.lock").read_text()
    assert f'index = "{image_of(first)["digest"]}"' in lock and "python-zlib" in lock
    again = build_summary(ws, "--locked")
    assert image_of(again)["status"] == "cached"


def test_locked_names_a_drifted_image(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    ws, first = built
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy, symlinks=True)
    lock = copy / "crossyard.lock"
    lock.write_text(lock.read_text().replace(image_of(first)["digest"], "sha256:" + "0" * 64))
    result = run_cli("-C", str(copy), "build", "--locked")
    assert result.returncode == 1, result.stderr
    assert REF in result.stderr and "differ" in result.stderr


def test_export_read_by_skopeo(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    skopeo = require_tool("skopeo", "apt install skopeo")
    ws, first = built
    layout = tmp_path / "layout"
    result = run_cli("-C", str(ws), "image", "export", REF, "--format", "oci", "-o", str(layout))
    assert result.returncode == 0, result.stderr
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{layout}:{REF}"], check=True, capture_output=True).stdout
    index = json.loads(raw)
    validate(index, "image-index-schema.json")
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"riscv64", "arm64"}
    for entry in index["manifests"]:
        manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_bytes())
        validate(manifest, "image-manifest-schema.json")
        config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
        validate(config, "config-schema.json")
        assert config["config"]["Entrypoint"] == ["/usr/local/bin/hello-go", "serve", ":8080"]
        assert config["config"]["User"] == "nonroot"
    subprocess.run([skopeo, "copy", "--all", f"oci:{layout}:{REF}", f"dir:{tmp_path / 'dir'}"],
                   check=True, capture_output=True)
    assert (tmp_path / "dir" / "manifest.json").exists()
    archive = tmp_path / "hello-go-riscv64.tar"
    result = run_cli("-C", str(ws), "image", "export", REF, "--format", "docker-archive",
                     "--platform", "linux/riscv64", "-o", str(archive))
    assert result.returncode == 0, result.stderr
    info = json.loads(subprocess.run([skopeo, "inspect", f"docker-archive:{archive}"],
                                     check=True, capture_output=True).stdout)
    assert info["Architecture"] == "riscv64"
    listed = json.loads(run_cli("-C", str(ws), "image", "ls", "--json").stdout)
    assert [i["ref"] for i in listed["images"]] == [REF]
    assert listed["images"][0]["digest"] == image_of(first)["digest"]


BAD = {
    "outside": ('[[image.files]]\nsrc = "../../etc/passwd"\ndest = "/etc/x"\n', "leaves the workspace"),
    "symlink": ('[[image.files]]\nsrc = "escape"\ndest = "/etc/x"\n', "outside the workspace"),
    "unknown-recipe": ('[[image.files]]\nartifact = "hello-goo"\n', "did you mean `hello-go`"),
    "wrong-platform": ('[[image.files]]\nartifact = "hello-go"\n', "which it is not built for"),
    "unknown-base": ("", "not a known base"),
    "missing-layout": ("", "is not an OCI image layout"),
    "missing-file": ('[[image.files]]\nartifact = "hello-go"\nfile = "nope"\n', "is not in artifact `hello-go`"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_image_input_exit_2_store_unchanged(built: tuple[Path, dict[str, Any]], tmp_path: Path, case: str) -> None:
    ws, _ = built
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy, symlinks=True)
    (copy / "escape").symlink_to("/etc/passwd")
    files, message = BAD[case]
    base = {"unknown-base": "debian:12", "missing-layout": "oci-layout:no/such/dir"}.get(case, "crossyard/static")
    platforms = 'platforms = ["linux/amd64"]\n' if case == "wrong-platform" else ""
    (copy / "recipes" / "images" / "bad.toml").write_text(
        f'name = "bad"\nkind = "image"\n{platforms}[image]\nbase = "{base}"\n{files}'
    )
    index = copy / ".crossyard" / "store" / "index.json"
    before = index.read_bytes()
    result = run_cli("-C", str(copy), "build", "bad")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "bad.toml" in result.stderr and "Traceback" not in result.stderr
    assert index.read_bytes() == before
