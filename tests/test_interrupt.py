"""Ctrl-C and SIGTERM (a cancelled CI job) stop a build cleanly: the running steps and all they
started are stopped, queued jobs never start, job directories are removed, nothing is recorded,
and the exit status says which signal it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_tool

pytestmark = [pytest.mark.integration]


def slow_recipe(ws: Path, name: str, pidfile: Path) -> None:
    (ws / "src" / name).mkdir(parents=True)
    # The step records the pid of its long-running grandchild (make -> sh -> sleep).
    (ws / "src" / name / "Makefile").write_text(
        f"{name}:\n\tsh -c 'echo $$$$ > $(PIDFILE); exec sleep 120'\n"
    )
    (ws / "recipes" / f"{name}.toml").write_text(
        f'name = "{name}"\nkind = "c"\nplatforms = ["linux/amd64"]\n[source]\npath = "../src/{name}"\n'
        f'[c]\nbuild = "make"\nmake_args = ["PIDFILE={pidfile}"]\noutputs = ["{name}"]\n'
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's reaping is left


@pytest.mark.parametrize(("signum", "status", "word"), [
    pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
    pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM"),
])
def test_signal_stops_the_build_and_leaves_nothing_behind(
    tmp_path: Path, signum: int, status: int, word: str
) -> None:
    require_tool("make", "apt-get install make")
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    first, queued = tmp_path / "first.pid", tmp_path / "queued.pid"
    slow_recipe(ws, "a-first", first)
    slow_recipe(ws, "b-queued", queued)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    build = subprocess.Popen(
        [sys.executable, "-m", "crossyard.cli", "-C", str(ws), "build", "-j", "1"],
        env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A runner started in the background (`nohup … &`) passes SIGINT on ignored, and Python
        # then never raises KeyboardInterrupt: give the build the disposition a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not (first.exists() and first.read_text().strip()):
            assert build.poll() is None, build.communicate()
            assert time.monotonic() < deadline, "the first job never started"
            time.sleep(0.1)
        grandchild = int(first.read_text())
        assert alive(grandchild)
        assert [p.name for p in tmp.iterdir() if p.name.startswith("crossyard-job-")]  # it is running

        build.send_signal(signum)
        _, stderr = build.communicate(timeout=30)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == status, stderr
    assert stderr.strip().splitlines()[-1] == f"crossyard: {word}"
    assert not alive(grandchild)  # the whole step was stopped, not just crossyard
    assert not queued.exists()  # the queued job never started
    assert [p.name for p in tmp.iterdir() if p.name.startswith("crossyard-job-")] == []
    assert not (ws / "crossyard.lock").exists()
    index = ws / ".crossyard" / "store" / "index.json"
    assert not index.exists() or '"dev.crossyard.recipe"' not in index.read_text()
