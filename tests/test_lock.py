from __future__ import annotations

from pathlib import Path

import pytest

from conftest import build_summary, require_tool
from crossyard.lock import Lock, compare, compare_entries, read_lock, write_lock
from crossyard.platforms import Platform
from crossyard.records import BuildRecord, outputs_from


def entry(**changes: object) -> BuildRecord:
    values: dict[str, object] = {
        "recipe": "hello", "platform": "linux/riscv64", "input_key": "sha256:" + "1" * 64,
        "toolchain": "go1.19", "strategy": "cross", "outputs": {"hello": "sha256:" + "a" * 64},
    }
    values.update(changes)
    values["platform"] = Platform.parse(str(values["platform"]))
    values["outputs"] = outputs_from(values["outputs"])  # type: ignore[arg-type]
    return BuildRecord(status="locked", **values)  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    lock = Lock().merged([entry(), entry(platform="linux/arm64", outputs={"a b": 'sha256:"q"'})])
    write_lock(tmp_path / "crossyard.lock", lock)
    assert read_lock(tmp_path / "crossyard.lock") == lock


def test_compare_names_the_reason() -> None:
    lock = Lock().merged([entry()])
    assert compare(lock, [entry()]) == []
    same_inputs = compare(lock, [entry(outputs={"hello": "sha256:" + "b" * 64})])
    assert len(same_inputs) == 1 and "not reproducible" in same_inputs[0].reason
    changed = compare(lock, [entry(input_key="sha256:" + "2" * 64, outputs={"hello": "sha256:" + "b" * 64})])
    assert "inputs changed" in changed[0].reason and changed[0].id == "hello@linux/riscv64"
    assert "not in crossyard.lock" in compare(lock, [entry(recipe="other")])[0].reason


def test_unreproducible_entries_only_warn() -> None:
    docker = entry(recipe="web", reproducible=False)
    lock = Lock().merged([entry(), docker])
    rebuilt = [entry(outputs={"hello": "sha256:" + "b" * 64}),
               entry(recipe="web", reproducible=False, outputs={"hello": "sha256:" + "c" * 64})]
    drifts, warnings = compare_entries(lock, rebuilt)
    assert [d.id for d in drifts] == ["hello@linux/riscv64"]
    assert [w.id for w in warnings] == ["web@linux/riscv64"]


def test_images_round_trip_and_drift(tmp_path: Path) -> None:
    from crossyard.lock import ImageLockEntry, LockedLayer, LockedPlatform, compare_images

    layer = LockedLayer(diff_id="sha256:" + "1" * 64, blob="sha256:" + "2" * 64, compressor="python-zlib 1.3 level 6")
    image = ImageLockEntry(
        name="team/x", version="1.0", recipe="x", key="sha256:" + "3" * 64, index="sha256:" + "4" * 64,
        base="crossyard/static", ca_bundle="sha256:" + "5" * 64,
        platforms=(LockedPlatform(platform="linux/riscv64", manifest="sha256:" + "6" * 64, layers=(layer,)),),
    )
    docker = ImageLockEntry(name="d", version="2", recipe="d", key="", index="sha256:" + "7" * 64, reproducible=False)
    lock = Lock().merged([entry()], [image, docker])
    write_lock(tmp_path / "crossyard.lock", lock)
    assert read_lock(tmp_path / "crossyard.lock") == lock
    assert "reproducible = false" in (tmp_path / "crossyard.lock").read_text()
    content = LockedLayer(diff_id="sha256:" + "8" * 64, blob="sha256:" + "9" * 64, compressor=layer.compressor)
    drifted = ImageLockEntry(**{**image.__dict__, "index": "sha256:" + "a" * 64, "platforms": (
        LockedPlatform(platform="linux/riscv64", manifest="sha256:" + "b" * 64, layers=(content,)),)})
    drifts, warnings = compare_images(lock, [drifted, ImageLockEntry(**{**docker.__dict__, "index": "sha256:" + "c" * 64})])
    assert [d.id for d in drifts] == ["team/x:1.0"] and "contents differ" in drifts[0].reason
    assert [w.id for w in warnings] == ["d:2"]


def test_pruned_keeps_only_what_the_catalog_produces() -> None:
    lock = Lock().merged([entry(), entry(platform="linux/arm64"), entry(recipe="gone")])
    kept = lock.pruned(artifacts={"hello@linux/riscv64", "hello@linux/arm64", "new@linux/arm64"}, images=set())
    assert sorted(kept.entries) == ["hello@linux/arm64", "hello@linux/riscv64"]


@pytest.mark.integration
def test_build_drops_entries_of_deleted_recipes_and_platforms(tmp_path: Path) -> None:
    """Through the CLI with the host's gcc: a partial build keeps the rest of the lock, but a
    deleted recipe or a dropped platform leaves no stale entry."""
    for tool in ("gcc", "aarch64-linux-gnu-gcc", "qemu-aarch64-static"):
        require_tool(tool, "run .ci/install.d/00-apt.sh")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void){return 0;}\n")
    (tmp_path / "recipes").mkdir()

    def recipe(name: str, platforms: str) -> None:
        (tmp_path / "recipes" / f"{name}.toml").write_text(
            f'name = "{name}"\nkind = "c"\nplatforms = [{platforms}]\n'
            '[source]\npath = "../src"\n[c]\nsources = ["main.c"]\n'
        )

    def locked() -> list[str]:
        return sorted(read_lock(tmp_path / "crossyard.lock").entries)

    recipe("a", '"linux/amd64", "linux/arm64"')
    recipe("b", '"linux/amd64"')
    build_summary(tmp_path)
    assert locked() == ["a@linux/amd64", "a@linux/arm64", "b@linux/amd64"]
    build_summary(tmp_path, "b")  # a partial build: a's entries stay
    assert locked() == ["a@linux/amd64", "a@linux/arm64", "b@linux/amd64"]
    (tmp_path / "recipes" / "b.toml").unlink()
    recipe("a", '"linux/amd64"')
    build_summary(tmp_path)
    assert locked() == ["a@linux/amd64"]
