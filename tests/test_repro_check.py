"""`crossyard repro check` and `crossyard lock verify`, for real: real cross compilers, make,
tar and Go build the fixtures under tests/fixtures/repro/ (each not reproducible in one way on
purpose, and one that is) and the example catalog, under the variations; the HTML matrix is read
by headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, binfmt_registered, build_summary, require, require_tool, run_cli
from crossyard.executors.local import LocalExecutor
from crossyard.jobspec import JobSpec, Step, ToolchainRequirement, Variation
from crossyard.platforms import RISCV64
from crossyard.toolchains import roots_dir
from helpers.jobs import TreeInputs

FIXTURES = Path(__file__).parent / "fixtures" / "repro"
LOCAL_VARIATIONS = ("path", "time", "umask", "locale", "user", "order")


def fixture_ws(tmp_path: Path) -> Path:
    require_tool("riscv64-linux-gnu-gcc", "apt-get install gcc-riscv64-linux-gnu")
    require_tool("make", "apt-get install make")
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES, ws)
    return ws


def check(ws: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """`repro check --json ARGS`: exit status, summary, stderr."""
    result = run_cli("-C", str(ws), "repro", "check", "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def cells(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["id"], cell["variation"]): cell for row in summary["rows"] for cell in row["cells"]}


def causes(cell: dict[str, Any]) -> set[str]:
    return {cause["name"] for e in cell["explanations"] for cause in e["causes"]}


# -- the variations reach the job ----------------------------------------------------------------


def test_the_local_executor_applies_a_variation(tmp_path: Path) -> None:
    """What a step sees under a variation: its directory, umask, zone, locale, user, and the
    source's directory order (on a tmpfs, which lists entries in the order they were made)."""
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    for name in "abcdefgh":
        (tree / "d" / name).write_text(name)
    script = ('{ pwd; umask; echo "$TZ $LC_ALL"; id -u; id -g; ls -f d | grep -v "^\\.*$" | tr -d "\\n"; '
              'echo; } > {out}/seen')
    spec = JobSpec(id="seen@linux/riscv64", input_key="sha256:" + "0" * 64, platform=RISCV64,
                   source=TreeInputs(tree).resolved.digest, inputs=(), source_date_epoch=0,
                   toolchain=ToolchainRequirement(name="sh", identity="sh", strategy="cross"),
                   steps=(Step(argv=("/bin/sh", "-c", script), cwd="{src}"),), outputs={"seen": "{out}/seen"})
    executor = LocalExecutor(cache_root=tmp_path / "cache", temp_root=tmp_path)
    shm = Path("/dev/shm")
    require(shm.is_dir() and os.access(shm, os.W_OK), "no writable tmpfs at /dev/shm")
    require(os.geteuid() == 0, "building as another uid needs root")

    def seen(variation: Variation) -> list[str]:
        with executor.run(spec, TreeInputs(tree), tmp_path / f"{variation.name}.log",
                          variation=variation) as outputs:
            return outputs.files["seen"].read_text().splitlines()

    base = Path(str(shm / f"crossyard-test-{os.getpid()}"))
    try:
        plain = seen(Variation(name="control", job_dir=str(base / "job")))
        assert plain[:5] == [f"{base}/job/src", "0022", "UTC C.UTF-8", str(os.geteuid()), str(os.getegid())]
        varied = seen(Variation(name="all", job_dir=str(base / "other"), umask=0o002, tz="Etc/GMT-14",
                                locale="fr_CH.UTF-8", uid=65534, gid=65534, reverse_order=True,
                                cache_dir=str(base / "cache")))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert varied[:5] == [f"{base}/other/src", "0002", "Etc/GMT-14 fr_CH.UTF-8", "65534", "65534"]
    assert sorted(plain[5]) == sorted(varied[5]) == list("abcdefgh")
    assert plain[5] != varied[5]  # copied in reverse: listed in another order


# -- each non-reproducible fixture is caught and its cause named ---------------------------------


@pytest.mark.parametrize(("recipe", "variation", "cause"), [
    ("stamp-time", "time", "timestamp"),
    ("stamp-path", "path", "build-path"),
    ("umask-mode", "umask", "umask"),
    ("dir-order", "order", "file-order"),
    ("layer-mtime", "time", "mtime"),
    ("go-buildid", "path", "build-id"),
])
def test_a_non_reproducible_fixture_is_caught_and_its_cause_named(
        tmp_path: Path, recipe: str, variation: str, cause: str) -> None:
    if recipe == "go-buildid":
        require_tool("go", "apt-get install golang-go")
    ws = fixture_ws(tmp_path)
    code, summary, stderr = check(ws, recipe, "--vary", variation)
    assert code == 1, stderr
    (row,) = summary["rows"]
    assert row["id"] == f"{recipe}@linux/riscv64" and row["control"]["status"] == "built"
    (cell,) = row["cells"]
    assert cell["state"] == "differs", cell
    assert cause in causes(cell), cell["explanations"]
    (name,) = cell["digests"]
    assert cell["digests"][name]["expected"] != cell["digests"][name]["got"]
    assert f"{recipe}@linux/riscv64 {variation}:" in stderr  # the table's footnote names it
    # the explanation is on disk beside the report, and the report links to it
    directory = Path(summary["directory"])
    written = json.loads((directory / "explain" / recipe / "linux-riscv64" / f"{variation}.json").read_text())
    assert cause in causes(written)
    assert f'href="#x-{recipe}-linux-riscv64-{variation}"' in (directory / "report.html").read_text()


def test_a_reproducible_recipe_is_identical_under_every_variation(tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    for mode in ((), ("--separately",)):
        code, summary, stderr = check(ws, "steady", "-p", "linux/riscv64", *mode)
        assert code == 0, stderr
        (row,) = summary["rows"]
        states = {c["variation"]: c["state"] for c in row["cells"]}
        assert states == {**dict.fromkeys(LOCAL_VARIATIONS, "identical"), "node": "not rebuilt",
                          "emulated": "not rebuilt"}
        logs = {p.stem for p in (Path(summary["directory"]) / "logs" / "steady" / "linux-riscv64").iterdir()}
        # at once: the control and one build with every local variation; separately: one each
        assert logs == ({"control", "all"} if not mode else {"control", *LOCAL_VARIATIONS})
    # nothing went into the store: the rebuilds are kept apart
    assert not (ws / ".crossyard" / "store" / "index.json").exists()


def test_a_mismatch_with_every_variation_at_once_is_pinned_on_the_one_that_causes_it(tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    code, summary, stderr = check(ws, "stamp-path")
    assert code == 1, stderr
    (row,) = summary["rows"]
    states = {c["variation"]: c["state"] for c in row["cells"]}
    assert states == {**dict.fromkeys(LOCAL_VARIATIONS, "identical"), "path": "differs",
                      "node": "not rebuilt", "emulated": "not rebuilt"}


# -- against the lock; lock verify ---------------------------------------------------------------


def _locked_digest(ws: Path, recipe: str, platform: str) -> str:
    text = (ws / "crossyard.lock").read_text()
    block = text.split(f'recipe = "{recipe}"\nplatform = "{platform}"')[1].split("[[artifact]]")[0]
    found = re.search(r'outputs = \{ "[^"]+" = "(sha256:[0-9a-f]{64})" \}', block)
    assert found is not None, block
    return found.group(1)


def test_a_lock_entry_edited_by_hand_is_reported_with_both_digests(tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    build_summary(ws, "steady", "-p", "linux/riscv64")
    real = _locked_digest(ws, "steady", "linux/riscv64")
    edited = "sha256:" + "0" * 64
    lock = ws / "crossyard.lock"
    lock.write_text(lock.read_text().replace(real, edited))

    code, summary, stderr = check(ws, "steady", "-p", "linux/riscv64", "--vary", "umask", "--against-lock")
    assert code == 1
    got = cells(summary)[("steady@linux/riscv64", "lock")]
    assert got["state"] == "differs"
    assert got["digests"] == {"steady": {"expected": edited, "got": real}}
    assert "edited" in got["reason"]
    assert cells(summary)[("steady@linux/riscv64", "umask")]["state"] == "identical"
    assert "steady@linux/riscv64 lock:" in stderr and edited in stderr and real in stderr

    lock.write_text(lock.read_text().replace(edited, real))  # put back: the same check passes
    code, summary, stderr = check(ws, "steady", "-p", "linux/riscv64", "--vary", "umask", "--against-lock")
    assert code == 0, stderr
    assert cells(summary)[("steady@linux/riscv64", "lock")]["state"] == "identical"


def test_lock_verify_names_an_entry_whose_inputs_changed_without_a_rebuild(tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    build_summary(ws, "steady")
    fresh = run_cli("-C", str(ws), "lock", "verify", "steady")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "2 lock entries checked, 0 stale" in fresh.stdout
    locked = {p: re.search(rf'recipe = "steady"\nplatform = "{p}"\ninput_key = "([^"]+)"',
                           (ws / "crossyard.lock").read_text()) for p in ("linux/riscv64", "linux/arm64")}

    main = ws / "src" / "steady" / "main.c"
    main.write_text(main.read_text().replace("the same bytes", "other bytes"))
    planned = json.loads(run_cli("-C", str(ws), "plan", "--json", "steady").stdout)["jobs"]
    current = {j["platform"]: j["input_key"] for j in planned}
    stale = run_cli("-C", str(ws), "lock", "verify", "steady")
    assert stale.returncode == 1
    for platform, found in locked.items():
        assert found is not None
        assert f"steady@{platform}: inputs changed without a rebuild" in stale.stdout
        assert found.group(1) in stale.stdout and current[platform] in stale.stdout
        assert found.group(1) != current[platform]
    as_json = json.loads(run_cli("-C", str(ws), "lock", "verify", "--json").stdout)
    assert not as_json["ok"]
    assert {(s["recipe"], s["platform"], s["locked_key"], s["current_key"]) for s in as_json["stale"]
            if s["recipe"] == "steady"} == {("steady", p, locked[p].group(1), current[p])  # type: ignore[union-attr]
                                            for p in locked}


# -- images: re-assembled from each variation's rebuilds ------------------------------------------


def add_image(ws: Path, artifact: str, base: str = "crossyard/static") -> str:
    """An image recipe `<artifact>-image` placing `artifact`'s one output on `base`."""
    name = f"{artifact}-image"
    (ws / "recipes" / f"{name}.toml").write_text(
        f'name = "{name}"\nkind = "image"\nversion = "1.0.0"\n\n[image]\nname = "{artifact}"\n'
        f'base = "{base}"\nentrypoint = ["/usr/local/bin/{artifact}"]\n\n[[image.files]]\n'
        f'artifact = "{artifact}"\ndest = "/usr/local/bin/{artifact}"\nmode = "0755"\n')
    return name


def test_an_image_over_a_reproducible_artifact_is_identical_under_the_variations_and_equals_the_lock(
        tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    image = add_image(ws, "steady")
    build_summary(ws, image, "-p", "linux/riscv64")
    store_index = (ws / ".crossyard" / "store" / "index.json").read_bytes()
    # the artifact named: the image wrapping it comes along
    code, summary, stderr = check(ws, "steady", "-p", "linux/riscv64", "--against-lock")
    assert code == 0, stderr
    rows = {row["id"]: row for row in summary["rows"]}
    assert set(rows) == {"steady@linux/riscv64", f"{image}@linux/riscv64", f"{image}@index"}
    for row_id in (f"{image}@linux/riscv64", f"{image}@index"):
        row = rows[row_id]
        assert row["kind"] == "image" and row["control"]["status"] == "built"
        states = {c["variation"]: c["state"] for c in row["cells"]}
        assert states == {**dict.fromkeys(LOCAL_VARIATIONS, "identical"), "lock": "identical",
                          "node": "not rebuilt", "emulated": "not rebuilt"}, row["cells"]
        for cell in row["cells"]:
            if cell["state"] == "not rebuilt":  # because the artifact was not, and it says why
                assert "steady@linux/riscv64 was not rebuilt" in cell["reason"], cell
    locked = (ws / "crossyard.lock").read_text()
    assert rows[f"{image}@index"]["control"]["outputs"]["index"] in locked
    assert rows[f"{image}@linux/riscv64"]["control"]["outputs"]["manifest"] in locked
    # outside the store, which is untouched: the control's assembly, and one for the local
    # variations (their rebuilds were one build, identical to the control); none for node/emulated
    directory = Path(summary["directory"])
    assert {p.name for p in (directory / "images").iterdir()} == {"control", "path"}
    assert (ws / ".crossyard" / "store" / "index.json").read_bytes() == store_index
    html = (directory / "report.html").read_text()
    assert f'data-job="{image}@linux/riscv64"' in html and f'data-job="{image}@index"' in html


@pytest.mark.parametrize(("artifact", "variation", "cause"), [
    ("stamp-path", "path", "build-path"),
    ("umask-mode", "umask", "umask"),
])
def test_an_image_over_a_non_reproducible_artifact_differs_and_its_layer_names_the_cause(
        tmp_path: Path, artifact: str, variation: str, cause: str) -> None:
    ws = fixture_ws(tmp_path)
    image = add_image(ws, artifact)
    code, summary, stderr = check(ws, image, "--vary", variation)
    assert code == 1, stderr
    got = cells(summary)
    assert got[(f"{artifact}@linux/riscv64", variation)]["state"] == "differs"
    for row_id, output in ((f"{image}@linux/riscv64", "manifest"), (f"{image}@index", "index")):
        cell = got[(row_id, variation)]
        assert cell["state"] == "differs", cell
        assert cell["digests"][output]["expected"] != cell["digests"][output]["got"]
        first = cell["explanations"][0]  # the layer holding the artifact, before the documents naming it
        assert first["name"] == "linux/riscv64 layer 1" and cause in {c["name"] for c in first["causes"]}
        assert cell["reason"].startswith("linux/riscv64 layer 1: ")
        assert f"{row_id} {variation}:" in stderr
    written = json.loads((Path(summary["directory"]) / "explain" / image / "linux-riscv64"
                          / f"{variation}.json").read_text())
    assert cause in causes(written)


def test_a_hand_edited_image_digest_in_the_lock_is_reported_with_both_digests(tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    image = add_image(ws, "steady")
    build_summary(ws, image, "-p", "linux/riscv64")
    lock = ws / "crossyard.lock"
    text = lock.read_text()
    found = re.search(r'\nindex = "(sha256:[0-9a-f]{64})"', text)
    assert found is not None, text
    real, edited = found.group(1), "sha256:" + "1" * 64
    lock.write_text(text.replace(real, edited))

    code, summary, stderr = check(ws, image, "-p", "linux/riscv64", "--vary", "umask", "--against-lock")
    assert code == 1, stderr
    cell = cells(summary)[(f"{image}@index", "lock")]
    assert cell["state"] == "differs"
    assert cell["digests"] == {"index": {"expected": edited, "got": real}}
    assert "edited" in cell["reason"]
    assert f"{image}@index lock:" in stderr and edited in stderr and real in stderr
    assert cells(summary)[(f"{image}@linux/riscv64", "lock")]["state"] == "identical"  # not edited
    assert cells(summary)[(f"{image}@index", "umask")]["state"] == "identical"


def test_an_image_on_a_registry_base_is_not_rebuilt_and_says_why(tmp_path: Path) -> None:
    ws = fixture_ws(tmp_path)
    image = add_image(ws, "steady", base="registry.invalid/base@sha256:" + "2" * 64)
    code, summary, stderr = check(ws, image, "-p", "linux/riscv64", "--vary", "umask")
    assert code == 0, stderr
    cell = cells(summary)[(f"{image}@linux/riscv64", "umask")]
    assert cell["state"] == "not rebuilt" and "registry image" in cell["reason"], cell
    table = run_cli("-C", str(ws), "repro", "check", image, "-p", "linux/riscv64", "--vary", "umask")
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if image in line]  # a row per platform, and the index
    assert len(lines) == 2 and "linux/riscv64" in lines[0] and "index" in lines[1], table.stdout
    assert all("not rebuilt" in line for line in lines)


def test_an_image_only_wrapping_a_named_recipe_is_left_out_where_it_is_not_built(tmp_path: Path) -> None:
    """`repro check steady -p linux/riscv64` brings the image wrapping steady along, but that image
    is built for arm64 only: no image rows, and no error the user did not ask for."""
    ws = fixture_ws(tmp_path)
    image = add_image(ws, "steady")
    recipe = ws / "recipes" / f"{image}.toml"
    recipe.write_text(recipe.read_text().replace('version = "1.0.0"\n', 'version = "1.0.0"\nplatforms = ["linux/arm64"]\n'))
    code, summary, stderr = check(ws, "steady", "-p", "linux/riscv64", "--vary", "umask")
    assert code == 0, stderr
    assert [row["id"] for row in summary["rows"]] == ["steady@linux/riscv64"]
    named = run_cli("-C", str(ws), "repro", "check", image, "-p", "linux/riscv64")  # named: an error
    assert named.returncode == 2 and "is not built for linux/riscv64" in named.stderr, named.stderr


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "named"), [
    (("--vary", "umask,timezone"), "--vary timezone: unknown variation"),
    (("no-such-recipe",), "no-such-recipe"),
    (("-p", "linux/mips"), "linux/mips"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], named: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES, ws)
    result = run_cli("-C", str(ws), "repro", "check", *args)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (ws / ".crossyard" / "repro").exists()


# -- the HTML matrix in a browser ----------------------------------------------------------------


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.cells: dict[tuple[str, str], dict[str, str]] = {}
        self.sections: set[str] = set()
        self.causes: dict[str, set[str]] = {}
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = set(values.get("class", "").split())
        if tag == "tr" and "row" in classes:
            self.rows.append(values["data-job"])
        if tag == "td" and "cell" in classes:
            self.cells[(values["data-job"], values["data-variation"])] = values
        if tag == "a" and self.cells and "href" in values and values["href"].startswith("#"):
            last = list(self.cells.values())[-1]
            last.setdefault("link", values["href"])
        if tag == "section":
            self._section = values.get("id", "")
            self.sections.add(self._section)
        if tag == "li" and "cause" in classes:
            self.causes.setdefault(self._section, set()).add(values["data-cause"])


def test_the_html_matrix_in_chromium_has_a_row_per_job_and_the_right_cells(tmp_path: Path) -> None:
    chromium = require_tool("chromium", "apt-get install chromium (.ci/install.d/00-apt.sh)")
    ws = fixture_ws(tmp_path)
    code, summary, _ = check(ws, "steady", "stamp-path", "--vary", "path,umask,node")
    assert code == 1
    done = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", Path(summary["report"]).as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Cells()
    dom.feed(done.stdout)
    assert sorted(dom.rows) == ["stamp-path@linux/riscv64", "steady@linux/arm64", "steady@linux/riscv64"]
    expected = {}
    for job in ("steady@linux/riscv64", "steady@linux/arm64"):
        expected |= {(job, "path"): "identical", (job, "umask"): "identical", (job, "node"): "not rebuilt"}
    expected |= {("stamp-path@linux/riscv64", "path"): "differs", ("stamp-path@linux/riscv64", "umask"): "identical",
                 ("stamp-path@linux/riscv64", "node"): "not rebuilt"}
    assert {k: v["data-state"] for k, v in dom.cells.items()} == expected
    differs = dom.cells[("stamp-path@linux/riscv64", "path")]
    assert "not-rebuilt" in dom.cells[("steady@linux/arm64", "node")]["class"]
    assert "[[nodes]]" in dom.cells[("steady@linux/arm64", "node")]["title"]
    anchor = differs["link"].removeprefix("#")
    assert anchor in dom.sections and "build-path" in dom.causes[anchor]


# -- the catalog; cross versus emulated-native -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def main_job_recipes() -> list[str]:
    """noxfile.default_set(), the one definition of what the main job builds."""
    spec = importlib.util.spec_from_file_location("noxfile", REPO / "noxfile.py")
    assert spec is not None and spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    names: list[str] = noxfile.default_set(REPO)
    return names


def test_the_example_catalog_is_identical_under_every_variation(tmp_path: Path) -> None:
    for tool in ("riscv64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "go"):
        require_tool(tool)
    require((roots_dir() / "rust-trixie" / "usr").is_dir(), "run .ci/install.d/60-rust-root.sh")
    ws = tmp_path / "catalog"
    ws.mkdir()
    for part in ("recipes", "toolchains", "services"):
        shutil.copytree(REPO / part, ws / part, ignore=shutil.ignore_patterns("target", ".crossyard"))
    shutil.copy(REPO / "crossyard.toml", ws)
    # The main job's default set: Kubernetes, BuildKit and the registry (Debian's big sources,
    # tens of minutes per build) are rebuilt by `build_all`, not under six variations in CI.
    code, summary, stderr = check(ws, *main_job_recipes())
    print(f"catalog: {len(summary['rows'])} jobs, {summary['counts']} in {summary['seconds']:.0f}s")
    assert code == 0, stderr
    jobs = {row["id"] for row in summary["rows"]}
    assert {"hello-c@linux/riscv64", "libgreet@linux/arm64", "hello-go@linux/riscv64",
            "hello-rs@linux/arm64", "workload@linux/amd64", "hello-go-image@linux/riscv64",
            "hello-go-image@index"} <= jobs
    # rust-trixie's rustc is also in the riscv64 and arm64 roots (where prepared): the Rust
    # services are rebuilt emulated there
    rust = {t["name"] for t in (tomllib.loads(p.read_text()) for p in (ws / "recipes").rglob("*.toml"))
            if t.get("kind") == "rust"}
    emulated = {row["id"] for row in summary["rows"] if row["recipe"] in rust
                and (roots_dir() / f"rust-trixie-{row['platform'].removeprefix('linux/')}" / "usr").is_dir()}
    for (job, variation), cell in cells(summary).items():
        if variation in LOCAL_VARIATIONS or (variation == "emulated" and job in emulated):
            assert cell["state"] == "identical", (job, variation, cell)
        else:  # no [[nodes]] here; no other toolchain of the same identity reaches these
            assert cell["state"] == "not rebuilt" and cell["reason"], (job, variation)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("arch", ["riscv64", "arm64"])
def test_cross_and_emulated_native_go_are_identical(tmp_path: Path, arch: str) -> None:
    """test_portable_key builds the two ways in two workspaces; here `repro check --vary emulated`
    rebuilds the cross build's job with the same Go release of a Debian root of the target's
    architecture, under qemu-user."""
    from test_portable_key import workspace

    for name in ("go-trixie-amd64", f"go-trixie-{arch}"):
        require((roots_dir() / name / "usr").is_dir(), f"the {name} root is missing: run .ci/install.d/61-go-roots.sh")
    require_tool("bwrap", "apt-get install bubblewrap")
    qemu_arch = {"riscv64": "riscv64", "arm64": "aarch64"}[arch]
    require_tool(f"qemu-{qemu_arch}-static", "apt-get install qemu-user-static")
    require(binfmt_registered(qemu_arch), f"binfmt has no qemu-{qemu_arch} entry: run .ci/install.d/10-binfmt.sh")
    ws = workspace(tmp_path / "ws", "cross")
    recipe = ws / "recipes" / "tiny.toml"
    recipe.write_text(recipe.read_text().replace('strategies = ["cross"]', 'strategies = ["cross", "emulated"]')
                      .replace("linux/riscv64", f"linux/{arch}"))
    code, summary, stderr = check(ws, "--vary", "emulated")
    assert code == 0, stderr
    (row,) = summary["rows"]
    assert (row["platform"], row["control"]["strategy"]) == (f"linux/{arch}", "cross")
    (cell,) = row["cells"]
    assert cell["state"] == "identical", cell
    out = Path(summary["directory"]) / "out"
    control, emulated = (out / v / "tiny" / f"linux-{arch}" / "tiny" for v in ("control", "emulated"))
    assert control.read_bytes() == emulated.read_bytes()
    print(f"{arch}: cross and emulated {row['control']['outputs']['tiny']} in {summary['seconds']:.0f}s")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("arch", ["riscv64", "arm64"])
def test_cross_and_emulated_native_rust_are_identical(tmp_path: Path, arch: str) -> None:
    """The catalog's hello-rs, cross-compiled by rust-trixie, rebuilt by `--vary emulated` with
    the same rustc in a Debian root of the target's architecture under qemu-user: the same bytes
    (it links the cross glibc package's start files too, as toolchains/rust.toml says why)."""
    for name in ("rust-trixie", f"rust-trixie-{arch}"):
        require((roots_dir() / name / "usr").is_dir(), f"the {name} root is missing: run .ci/install.d/60-rust-root.sh")
    require_tool("bwrap", "apt-get install bubblewrap")
    qemu_arch = {"riscv64": "riscv64", "arm64": "aarch64"}[arch]
    require_tool(f"qemu-{qemu_arch}-static", "apt-get install qemu-user-static")
    require(binfmt_registered(qemu_arch), f"binfmt has no qemu-{qemu_arch} entry: run .ci/install.d/10-binfmt.sh")
    ws = tmp_path / "ws"
    (ws / "recipes" / "services").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "services" / "hello-rs.toml", ws / "recipes" / "services")
    shutil.copytree(REPO / "services" / "hello-rs", ws / "services" / "hello-rs",
                    ignore=shutil.ignore_patterns("target"))
    code, summary, stderr = check(ws, "--vary", "emulated", "--platform", f"linux/{arch}", "hello-rs")
    assert code == 0, stderr
    (row,) = summary["rows"]
    assert (row["platform"], row["control"]["strategy"]) == (f"linux/{arch}", "cross")
    (cell,) = row["cells"]
    assert cell["state"] == "identical", cell
    out = Path(summary["directory"]) / "out"
    control, emulated = (out / v / "hello-rs" / f"linux-{arch}" / "hello-rs" for v in ("control", "emulated"))
    assert control.read_bytes() == emulated.read_bytes()
    print(f"{arch}: cross and emulated {row['control']['outputs']['hello-rs']} in {summary['seconds']:.0f}s")


@pytest.mark.slow
@pytest.mark.integration
def test_a_rust_build_script_makes_cross_and_emulated_differ_in_symbol_hashes_only(tmp_path: Path) -> None:
    """cargo hashes the build host into a build script's -C metadata and so into the crate's
    symbols (cargo#8140): the check names it, and a stripped symbol table is identical."""
    for name in ("rust-trixie", "rust-trixie-riscv64"):
        require((roots_dir() / name / "usr").is_dir(), f"the {name} root is missing: run .ci/install.d/60-rust-root.sh")
    require_tool("bwrap", "apt-get install bubblewrap")
    require(binfmt_registered("riscv64"), "binfmt has no qemu-riscv64 entry: run .ci/install.d/10-binfmt.sh")
    ws = tmp_path / "ws"
    (ws / "src" / "src").mkdir(parents=True)
    (ws / "src" / "Cargo.toml").write_text(
        '[package]\nname = "generated"\nversion = "0.1.0"\nedition = "2021"\n\n'
        "[profile.release]\ncodegen-units = 1\n")
    (ws / "src" / "Cargo.lock").write_text(
        'version = 3\n\n[[package]]\nname = "generated"\nversion = "0.1.0"\n')
    (ws / "src" / "build.rs").write_text(
        'fn main() {\n    let out = std::env::var("OUT_DIR").unwrap();\n'
        '    std::fs::write(format!("{out}/word.rs"), "const WORD: &str = \\"generated\\";").unwrap();\n}\n')
    (ws / "src" / "src" / "main.rs").write_text(
        'include!(concat!(env!("OUT_DIR"), "/word.rs"));\n'
        'fn main() { println!("{WORD} on {}", std::env::consts::ARCH); }\n')
    (ws / "recipes").mkdir()
    (ws / "recipes" / "generated.toml").write_text(
        'name = "generated"\nkind = "rust"\nplatforms = ["linux/riscv64"]\nstrategies = ["cross", "emulated"]\n'
        'source_date_epoch = 1767225600\n[source]\npath = "../src"\n'
        '[test]\nrun = ["generated"]\nexpect = "generated on riscv64"\n')

    code, summary, _ = check(ws, "--vary", "emulated")
    assert code == 1
    (cell,) = summary["rows"][0]["cells"]
    assert cell["state"] == "differs" and causes(cell) == {"rust-metadata"}, cell

    toml = ws / "src" / "Cargo.toml"
    toml.write_text(toml.read_text() + 'strip = "symbols"\n')
    code, summary, stderr = check(ws, "--vary", "emulated")
    assert code == 0, stderr
    assert summary["rows"][0]["cells"][0]["state"] == "identical"


# -- another node ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_the_node_variation_rebuilds_on_a_configured_ssh_node(tmp_path: Path) -> None:
    from helpers.sshcluster import NodeSpec, ssh_cluster
    from test_cluster import LOCAL, ssh_table
    from test_ssh_executor import require_cluster

    require_cluster()
    ws = fixture_ws(tmp_path)
    with ssh_cluster(tmp_path / "cluster", [NodeSpec(name="amd-a")]) as cluster:
        config = ws / "crossyard.toml"
        config.write_text(config.read_text() + "\n" + LOCAL + ssh_table(cluster, "amd-a"))
        code, summary, stderr = check(ws, "steady", "stamp-path", "-p", "linux/riscv64", "--vary", "node")
    assert code == 1, stderr
    got = cells(summary)
    steady, stamped = got[("steady@linux/riscv64", "node")], got[("stamp-path@linux/riscv64", "node")]
    assert (steady["state"], steady["node"]) == ("identical", "ssh:amd-a"), steady
    # the node's job directory is not this machine's: the embedded build path gives it away
    assert (stamped["state"], stamped["node"]) == ("differs", "ssh:amd-a"), stamped
    assert "build-path" in causes(stamped)
