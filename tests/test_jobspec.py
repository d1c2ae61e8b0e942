"""A job is plain data: its spec goes through JSON, names nothing of this machine, and the
executor that runs it — given the spec and where to find inputs by digest — builds the same bytes
the scheduler's build stored. Real cross gcc, real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, require_tool
from crossyard.errors import BuildError
from crossyard.executors.docker import EngineExecutor
from crossyard.executors.local import LocalExecutor
from crossyard.jobspec import JobSpec
from crossyard.project import Project, load_settings
from crossyard.scheduler import Scheduler, StoreInputs
from crossyard.workspace import Workspace


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    shutil.copytree(REPO / "services" / "libgreet", ws / "src" / "libgreet")
    shutil.copytree(REPO / "services" / "hello-c", ws / "src" / "hello-c")
    for name in ("libgreet", "hello-c"):
        text = (REPO / "recipes" / "services" / f"{name}.toml").read_text()
        (ws / "recipes" / f"{name}.toml").write_text(text.replace("../../services/", "../src/"))
    (ws / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64"]\n')
    return ws


def test_a_spec_is_plain_data_and_runs_from_json_alone(tmp_path: Path) -> None:
    require_tool("riscv64-linux-gnu-gcc", "apt-get install gcc-riscv64-linux-gnu")
    ws = _workspace(tmp_path)
    workspace = Workspace.find(explicit=ws)
    project = Project(workspace, load_settings(workspace, environ={}))
    graph = project.graph()
    executor = LocalExecutor(cache_root=tmp_path / "cache")
    report = Scheduler(store=project.store, resolver=project.resolver, executors=[executor],
                       logs_dir=tmp_path / "logs", jobs=1).run(graph)
    assert report.ok, [r.error for r in report.records]
    records = {r.id: r for r in report.records}
    lib, app = records["libgreet@linux/riscv64"], records["hello-c@linux/riscv64"]

    job = graph.jobs["hello-c@linux/riscv64"]
    spec = job.spec(app.input_key, [lib])
    text = spec.to_bytes().decode()
    # Nothing of this machine: no workspace, store or temp path; the job's directories are
    # placeholders and the dependency's files are named by digest.
    for local in (str(tmp_path), str(ws), str(project.store.root)):
        assert local not in text
    data = json.loads(text)
    assert {(i["recipe"], i["name"], i["digest"]) for i in data["inputs"]} == {
        ("libgreet", f.name, f.digest) for f in lib.outputs}
    assert any("{deps}" in a for step in data["steps"] for a in step["argv"])
    assert data["outputs"] == {"hello-c": "{out}/hello-c"}
    assert data["toolchain"]["identity"] == app.toolchain and "strategy" in data["toolchain"]

    # The round-tripped spec is the same value, and built again from it alone it gives the bytes
    # the scheduler stored.
    again = JobSpec.from_json(json.loads(text))
    assert again == spec
    inputs = StoreInputs(project.store, {spec.source: project.resolver.resolve(job.recipe)})
    with LocalExecutor(cache_root=tmp_path / "cache2").run(again, inputs, tmp_path / "again.log") as outputs:
        assert dict(outputs.digests) == app.digests
        assert outputs.node.startswith("local:")


def test_each_executor_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    workspace = Workspace.find(explicit=ws)
    project = Project(workspace, load_settings(workspace, environ={}))
    graph = project.graph(["libgreet"])
    spec = graph.jobs["libgreet@linux/riscv64"].spec("sha256:" + "0" * 64, [])
    local = LocalExecutor(cache_root=tmp_path / "cache", roots=tmp_path / "no-roots")
    engine = EngineExecutor()
    assert local.refuses(spec) is None
    assert engine.refuses(spec) == "runs only Dockerfile builds"
    with pytest.raises(BuildError, match="not a Dockerfile build"), \
            engine.run(spec, StoreInputs(project.store, {}), tmp_path / "x.log"):
        pass

    # A toolchain in a Debian root the node has not prepared: refused with the fix, not run.
    rooted = JobSpec.from_json({**spec.to_json(), "toolchain": {
        **spec.to_json()["toolchain"], "name": "rust-trixie", "root": "rust-trixie"}})
    reason = local.refuses(rooted)
    assert reason is not None and "crossyard toolchains prepare rust-trixie" in reason
    # and the scheduler reports every executor's reason on the failed job
    scheduler = Scheduler(store=project.store, resolver=project.resolver, executors=[local, engine],
                          logs_dir=tmp_path / "logs", jobs=1)
    with pytest.raises(BuildError, match=r"no executor can run it .*toolchains prepare.*Dockerfile builds"):
        scheduler._executor(rooted)


def test_a_dependency_named_dot_dot_is_not_placed() -> None:
    """`{deps}/../x` would leave the job's directory: both remote executors refuse such a spec."""
    from crossyard.jobspec import InputFile, ToolchainRequirement, unplain_input
    from crossyard.platforms import RISCV64

    def spec(recipe: str, name: str) -> JobSpec:
        return JobSpec(id="a@linux/riscv64", input_key="sha256:" + "0" * 64, platform=RISCV64,
                       source="sha256:" + "1" * 64, source_date_epoch=0,
                       inputs=(InputFile(recipe=recipe, name=name, digest="sha256:" + "2" * 64),),
                       toolchain=ToolchainRequirement(name="gcc", identity="gcc 12.2.0", strategy="cross"))

    assert unplain_input(spec("lib", "lib.a")) is None
    for recipe, name in (("..", "x"), ("lib", ".."), ("lib", "a/b"), (".", "x")):
        assert unplain_input(spec(recipe, name)) == f"dependency file {recipe}/{name} is not a plain name"
