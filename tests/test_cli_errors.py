"""Every user mistake ends in one clear message naming the file or key, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli

GOOD = 'name = "{name}"\nkind = "c"\n{extra}[source]\npath = "../src"\n[c]\nsources = ["main.c"]\n'


def workspace(tmp_path: Path, recipes: dict[str, str], toolchains: dict[str, str] | None = None) -> Path:
    (tmp_path / "src").mkdir(parents=True)
    (tmp_path / "src" / "main.c").write_text("int main(void){return 0;}\n")
    (tmp_path / "recipes").mkdir()
    for name, text in recipes.items():
        (tmp_path / "recipes" / f"{name}.toml").write_text(text)
    for name, text in (toolchains or {}).items():
        (tmp_path / "toolchains").mkdir(exist_ok=True)
        (tmp_path / "toolchains" / f"{name}.toml").write_text(text)
    return tmp_path


def fails(ws: Path, *args: str) -> str:
    for command in (["plan", *args], ["build", *args]):
        result = run_cli("-C", str(ws), *command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("crossyard: error: ")
    assert not (ws / ".crossyard" / "store" / "index.json").exists()  # nothing half-written
    assert not (ws / "crossyard.lock").exists()
    return result.stderr


def test_malformed_toml(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": 'name = "app"\nkind = "c"\nplatforms = ["riscv64"\n'})
    error = fails(ws)
    assert "app.toml" in error and "line 3" in error


def test_unknown_key_suggests(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra='platfroms = ["riscv64"]\n')})
    error = fails(ws)
    assert "app.toml" in error and "unknown key `platfroms`" in error and "did you mean `platforms`" in error


def test_unknown_kind(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra="").replace('kind = "c"', 'kind = "cpp"')})
    assert "unknown kind `cpp`" in fails(ws)


def test_unknown_platform_in_recipe_and_flag(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra='platforms = ["sparc64"]\n')})
    assert "unknown platform `sparc64`" in fails(ws)
    ws2 = workspace(tmp_path / "b", {"app": GOOD.format(name="app", extra="")})
    error = fails(ws2, "--platform", "mips")
    assert "unknown platform `mips`" in error and "linux/riscv64" in error


def test_platform_no_recipe_builds(tmp_path: Path) -> None:
    """Asking for a platform no recipe lists is an error, not a green "0 built"."""
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra='platforms = ["riscv64", "arm64"]\n')})
    error = fails(ws, "--platform", "amd64")
    assert "no recipe is built for linux/amd64 (app: linux/riscv64, linux/arm64)" in error
    assert "app.toml" in fails(ws, "app", "--platform", "amd64")  # named: the recipe's file


def test_options_the_builder_refuses_fail_before_building(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra="").replace('sources = ["main.c"]', "cflags = []")})
    assert "app.toml: [c]: a C recipe without `build` needs `sources`" in fails(ws)


def test_smoke_test_of_a_file_the_build_does_not_make(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra="") + '[test]\nrun = ["ap"]\n'})
    assert "app.toml: [test] run names `ap`, but `app` outputs `app`" in fails(ws)


def test_missing_source_path(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra="").replace("../src", "../nowhere")})
    error = fails(ws)
    assert "app.toml" in error and "`../nowhere` does not exist" in error


def test_dependency_cycle(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {
        "a": GOOD.format(name="a", extra='depends = ["b"]\n'),
        "b": GOOD.format(name="b", extra='depends = ["a"]\n'),
    })
    assert "dependency cycle: a -> b -> a" in fails(ws)


def test_missing_dependency(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"a": GOOD.format(name="a", extra='depends = ["lib"]\n')})
    assert "`depends` names `lib`, which is not a recipe" in fails(ws)


def test_unknown_recipe_on_command_line(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra="")})
    assert "no recipe named `ap`" in fails(ws, "ap")


@pytest.mark.integration
def test_toolchain_missing_for_requested_platform(tmp_path: Path) -> None:
    """The workspace's toolchains/ overrides the built-in C toolchains (gcc, and zig where it is
    installed) with ones that are not."""
    ws = workspace(
        tmp_path,
        {"app": GOOD.format(name="app", extra='platforms = ["linux/riscv64"]\n')},
        {"gcc": '[gcc]\nkind = "c"\ncommand = "{gnu_triplet}-gcc-99"\nnative_command = "gcc-99"\n'
                'install = "apt-get install -y gcc-99-{gnu_triplet}"\n'
                '[zig]\nkind = "c"\ncommand = "zig-99"\ninstall = "get zig-99"\n'},
    )
    error = fails(ws, "--platform", "linux/riscv64")
    assert "no toolchain can build `app` (c) for linux/riscv64" in error
    assert "riscv64-linux-gnu-gcc-99" in error and "fix: apt-get install -y gcc-99-riscv64-linux-gnu" in error


def test_bad_config_key(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"app": GOOD.format(name="app", extra="")})
    (ws / "crossyard.toml").write_text("[build]\njbos = 3\n")
    assert "did you mean `jobs`" in fails(ws)
