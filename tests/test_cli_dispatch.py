"""The CLI imports only the command module it runs (planning a big catalog cannot pay for
cryptography, httpx and the docker SDK), yet help and errors still list every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool, run_cli
from crossyard.commands import COMMANDS, command_word

# imported by publish/certs/registry, never needed to plan or build
HEAVY = ("crossyard.registry.client", "crossyard.commands.publish", "crossyard.commands.certs", "cryptography")


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["plan"], "plan"),
        (["-C", "plan", "build"], "build"),  # `plan` is -C's value here, not the command
        (["--workspace", "ws", "-v", "registry", "up"], "registry"),
        (["--workspace=ws", "image", "ls"], "image"),
        (["-Cws", "store", "ls"], "store"),
        (["-v"], None),
        (["--", "plan"], None),
    ],
)
def test_command_word(argv: list[str], word: str | None) -> None:
    assert command_word(argv, frozenset({"-C", "--workspace"})) == word


def test_plan_imports_only_its_module(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void){return 0;}\n")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "app.toml").write_text(
        'name = "app"\nkind = "c"\nplatforms = ["linux/amd64"]\n[source]\npath = "../src"\n[c]\nsources = ["main.c"]\n'
    )
    probe = (
        "import json, sys\n"
        "from crossyard.cli import main\n"
        f"code = main(['-C', {str(tmp_path)!r}, 'plan', '--json'])\n"
        f"print(json.dumps({{'code': code, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}, result.stderr
    assert json.loads(result.stdout)["jobs"]  # it did plan


def test_image_ls_does_not_load_the_build_command(tmp_path: Path) -> None:
    """Modules that share a helper get it from report/, not from each other's command module."""
    (tmp_path / "recipes").mkdir()
    probe = (
        "import json, sys\n"
        "from crossyard.cli import main\n"
        f"code = main(['-C', {str(tmp_path)!r}, 'image', 'ls', '--json'])\n"
        "loaded = [m for m in ('crossyard.commands.build', 'crossyard.scheduler') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'loaded': loaded}), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {"code": 0, "loaded": []}, result.stderr


def test_help_and_unknown_command_list_every_command() -> None:
    helped = run_cli("--help")
    assert helped.returncode == 0
    for command in COMMANDS:
        assert command in helped.stdout
    unknown = run_cli("pubilsh")
    assert unknown.returncode == 2
    assert "invalid choice: 'pubilsh'" in unknown.stderr
    assert all(command in unknown.stderr for command in COMMANDS)


def test_each_command_has_its_own_help() -> None:
    for command in COMMANDS:
        result = run_cli(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert f"crossyard {command}" in result.stdout


def test_json_is_a_flag_so_a_word_after_it_stays_a_recipe(tmp_path: Path) -> None:
    """`build --json app` builds app alone and prints the summary; it used to take `app` as the
    summary's file name (and build everything)."""
    require_tool("gcc", "run .ci/install.d/00-apt.sh")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void){return 0;}\n")
    (tmp_path / "recipes").mkdir()
    for name in ("app", "other"):
        (tmp_path / "recipes" / f"{name}.toml").write_text(
            f'name = "{name}"\nkind = "c"\nplatforms = ["linux/amd64"]\n[source]\npath = "../src"\n'
            '[c]\nsources = ["main.c"]\n'
        )
    planned = run_cli("-C", str(tmp_path), "plan", "--json", "app")
    assert planned.returncode == 0, planned.stderr
    assert [job["id"] for job in json.loads(planned.stdout)["jobs"]] == ["app@linux/amd64"]

    built = run_cli("-C", str(tmp_path), "build", "--json", "app")
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert {job["id"]: job["status"] for job in summary["jobs"]} == {"app@linux/amd64": "built"}
    assert not (tmp_path / "app").exists()

    out = tmp_path / "summaries" / "out.json"
    out.parent.mkdir()
    again = run_cli("-C", str(tmp_path), "build", "--json-file", str(out), "other")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""  # the summary went to the file only
    written = json.loads(out.read_text())
    assert {job["id"]: job["status"] for job in written["jobs"]} == {"other@linux/amd64": "built"}
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # atomic: no temporary left
