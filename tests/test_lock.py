from __future__ import annotations

from pathlib import Path

from crossyard.lock import Lock, LockEntry, compare, read_lock, write_lock


def entry(**changes: object) -> LockEntry:
    values: dict[str, object] = {
        "recipe": "hello", "platform": "linux/riscv64", "input_key": "sha256:" + "1" * 64,
        "toolchain": "go 1.19", "strategy": "cross", "outputs": {"hello": "sha256:" + "a" * 64},
    }
    values.update(changes)
    return LockEntry(**values)  # type: ignore[arg-type]


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
