"""A run's files: the HTML report read by a real browser (headless Chromium), the metrics read by
prometheus-client's own parser, the summary; from records made here (3 nodes, a cache hit, builds,
a failure, a retry after a lost node, a skip), and from one real `crossyard build`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, require_tool, run_cli
from crossyard.lock import Lock
from crossyard.oci.image import rfc3339
from crossyard.pipeline import BuildResult
from crossyard.platforms import ARM64, RISCV64
from crossyard.recipes import Recipe
from crossyard.records import BuildRecord, OutputFile
from crossyard.report import html, metrics
from crossyard.report.runs import LATEST, METRICS, REPORT, SUMMARY, write_run
from crossyard.report.timeline import Attempt, Observation, Observed, timeline

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def _record(recipe: str, platform: str, status: str, **fields: object) -> BuildRecord:
    plat = RISCV64 if platform == "riscv64" else ARM64
    key = "sha256:" + hashlib.sha256(f"{recipe}@{platform}".encode()).hexdigest()
    outputs = (OutputFile(name=recipe, digest="sha256:" + "ab" * 32, size=10),) if status in ("built", "cached") else ()
    return BuildRecord(recipe=recipe, platform=plat, status=status, input_key="" if status == "skipped" else key,
                       toolchain="gcc 12.2.0 riscv64-linux-gnu", strategy="cross", outputs=outputs,
                       **fields)  # type: ignore[arg-type]


RECORDS = [
    _record("libgreet", "riscv64", "cached", node="ssh:yesterday", started="2025-12-31T10:00:00Z",
            finished="2025-12-31T10:00:03Z", seconds=3.0),
    _record("libgreet", "arm64", "built", node="ssh:cm4", started=rfc3339(int(T0)), seconds=4.0),
    _record("hello-go", "riscv64", "built", node="ssh:board-a", started=rfc3339(int(T0)), seconds=2.0),
    _record("hello-c", "riscv64", "built", node="ssh:board-a", started=rfc3339(int(T0 + 3)), seconds=6.0),
    # a compiler error: the record names neither node nor times (the executor failed first)
    _record("hello-c", "arm64", "failed", seconds=0.5, error="gcc: error: hello.c: No such file"),
    _record("hello-img", "arm64", "skipped", error="dependency hello-c@linux/arm64 failed"),
]
OBSERVED = Observed(
    started=T0,
    finished=T0 + 9.1,
    jobs={
        "libgreet@linux/riscv64": Observation(finished=T0 + 0.1),
        "libgreet@linux/arm64": Observation(attempts=(Attempt(node="ssh:cm4", started=T0 + 0.2),),
                                            finished=T0 + 4.2),
        "hello-go@linux/riscv64": Observation(attempts=(Attempt(node="ssh:board-a", started=T0 + 0.3),),
                                              finished=T0 + 2.3),
        # board-b went away under it; it ran again on board-a
        "hello-c@linux/riscv64": Observation(attempts=(Attempt(node="ssh:board-b", started=T0 + 0.2),
                                                       Attempt(node="ssh:board-a", started=T0 + 3.0)),
                                             finished=T0 + 9.0),
        "hello-c@linux/arm64": Observation(attempts=(Attempt(node="ssh:cm4", started=T0 + 5.0),),
                                           finished=T0 + 5.5),
        "hello-img@linux/arm64": Observation(finished=T0 + 5.5),
    },
)
DEPENDS = {"hello-c": ("libgreet",), "hello-img": ("hello-c",)}
NODES = {"ssh:board-a", "ssh:board-b", "ssh:cm4"}


def _result(records: list[BuildRecord] = RECORDS) -> BuildResult:
    recipes = {name: Recipe(name=name, kind="c", file=Path(f"/r/{name}.toml"), depends=DEPENDS.get(name, ()))
               for name in {r.recipe for r in records}}
    return BuildResult(records=tuple(records), images=(), lock=Lock(), store=Path("/nonexistent"),
                       recipes=recipes, seconds=9.1)


class _Elements(HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.lane: str | None = None
        self.lane_of: dict[int, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.lane = values.get("data-node")
        self.lane_of[len(self.elements)] = self.lane
        self.elements.append((tag, values))

    def with_class(self, *names: str) -> list[tuple[int, dict[str, str]]]:
        return [(i, a) for i, (_, a) in enumerate(self.elements) if set(names) <= set(a.get("class", "").split())]


def _dump_dom(page: Path, tmp_path: Path) -> _Elements:
    chromium = require_tool("chromium", "apt-get install chromium (.ci/install.d/00-apt.sh)")
    done = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1400,900", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "</html>" in done.stdout
    parsed = _Elements()
    parsed.feed(done.stdout)
    return parsed


# Appended to a copy of the report only: the report itself has no script. It writes each
# element's rendered box into the DOM, so the dump shows where the browser put the bars.
MEASURE = """<script>
for (const el of document.querySelectorAll('section.lane, .bar, .lost')) {
  const r = el.getBoundingClientRect();
  el.setAttribute('data-box', [r.left, r.top, r.width, r.height].join(','));
}
</script>"""


@pytest.mark.integration
def test_report_in_chromium_one_lane_per_node_one_bar_per_job(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", _result(), observed=OBSERVED, run_id="20260101T000000Z-abcdef")
    page = tmp_path / "measured.html"
    page.write_text(run.report.read_text().replace("</body>", MEASURE + "</body>"))
    dom = _dump_dom(page, tmp_path)

    lanes = dom.with_class("lane", "node")
    assert sorted(a["data-node"] for _, a in lanes) == sorted(NODES)
    bars = dom.with_class("bar")
    assert sorted(a["data-job"] for _, a in bars) == sorted(r.id for r in RECORDS)
    by_job = {a["data-job"]: (i, a) for i, a in bars}
    for record in RECORDS:
        index, attrs = by_job[record.id]
        classes = set(attrs["class"].split())
        assert record.status in classes, (record.id, classes)
        assert ("retried" in classes) == (record.id == "hello-c@linux/riscv64"), record.id
        assert "input key: " + (record.input_key or "-") in attrs["title"]
        assert f"strategy: {record.strategy}" in attrs["title"]
    # each bar sits in its node's lane; cache hits and skips in the lane for no node
    expected_lane = {"libgreet@linux/arm64": "ssh:cm4", "hello-go@linux/riscv64": "ssh:board-a",
                     "hello-c@linux/riscv64": "ssh:board-a", "hello-c@linux/arm64": "ssh:cm4"}
    for job, (index, _) in by_job.items():
        lane = dom.lane_of[index]
        if job in expected_lane:
            assert lane == expected_lane[job], job
        else:
            assert lane not in NODES, job
    assert "gcc: error: hello.c" in by_job["hello-c@linux/arm64"][1]["title"]
    hover = by_job["hello-c@linux/riscv64"][1]["title"]
    assert hover.startswith("hello-c for linux/riscv64: built") and "seconds: 6.00" in hover
    assert "attempts: 2" in hover
    legend = {" ".join(a["class"].split()[1:]) for _, a in dom.with_class("swatch")}
    assert {"built", "cached", "failed", "skipped", "built retried", "lost"} <= legend
    lost = dom.with_class("lost")
    lost_in_lanes = [dom.lane_of[i] for i, a in lost if "data-job" in a]
    assert lost_in_lanes == ["ssh:board-b"]

    # where the browser drew them: inside their lane, in the order they started, not collapsed
    boxes = {a["data-node"]: [float(x) for x in a["data-box"].split(",")] for _, a in lanes}
    line = timeline(RECORDS, deps={"hello-c@linux/riscv64": ("libgreet@linux/riscv64",),
                                   "hello-c@linux/arm64": ("libgreet@linux/arm64",),
                                   "hello-img@linux/arm64": ("hello-c@linux/arm64",)}, observed=OBSERVED)
    starts = {r.record.id: r.start for r in line.runs}
    placed = []
    for job, lane in expected_lane.items():
        left, top, width, height = (float(x) for x in by_job[job][1]["data-box"].split(","))
        lane_left, lane_top, lane_width, lane_height = boxes[lane]
        assert lane_top <= top and top + height <= lane_top + lane_height, job
        assert lane_left <= left and left + width <= lane_left + lane_width + 1, job
        assert width > 3, job
        placed.append((starts[job], left))
    placed.sort()
    assert [left for _, left in placed] == sorted(left for _, left in placed)
    assert placed[0][1] < placed[-1][1]


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    found: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        found[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return found


def test_metrics_parse_and_match_the_records(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", _result(), observed=OBSERVED)
    text = run.metrics.read_text()
    assert all(f"# HELP {name}" in text and f"# TYPE {name}" in text
               for name in ("crossyard_run_jobs", "crossyard_run_job_seconds", "crossyard_run_cache_hit_ratio"))
    families = _families(text)

    jobs = {labels["status"]: value for _, labels, value in families["crossyard_run_jobs"]}
    for status in ("built", "cached", "failed", "skipped"):
        assert jobs[status] == sum(1 for r in RECORDS if r.status == status)
    looked_up = sum(1 for r in RECORDS if r.status != "skipped")
    assert families["crossyard_run_cache_hit_ratio"][0][2] == pytest.approx(
        sum(1 for r in RECORDS if r.status == "cached") / looked_up)

    # the histogram: count and sum per (node, arch) are the records' own, node from the run
    where = {"hello-c@linux/arm64": "ssh:cm4"}  # the failed record does not say; the run saw it
    expected: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in RECORDS:
        if r.status in ("built", "failed"):
            expected[(r.node or where[r.id], r.platform.goarch)].append(r.seconds)
    samples = families["crossyard_run_job_seconds"]
    for (node, arch), values in expected.items():
        labels = {"node": node, "arch": arch}
        count = next(v for n, lab, v in samples if n.endswith("_count") and lab == labels)
        total = next(v for n, lab, v in samples if n.endswith("_sum") and lab == labels)
        inf = next(v for n, lab, v in samples if n.endswith("_bucket") and lab == {**labels, "le": "+Inf"})
        five = next(v for n, lab, v in samples if n.endswith("_bucket") and lab == {**labels, "le": "5.0"})
        assert (count, inf, total) == (len(values), len(values), pytest.approx(sum(values)))
        assert five == sum(1 for v in values if v <= 5.0)
    assert {(lab["node"], lab["arch"]) for n, lab, _ in samples if n.endswith("_count")} == set(expected)

    assert families["crossyard_run_retries"] == [("crossyard_run_retries", {"arch": "arm64"}, 0.0),
                                                 ("crossyard_run_retries", {"arch": "riscv64"}, 1.0)]
    assert families["crossyard_run_failures"] == [("crossyard_run_failures", {"arch": "arm64"}, 1.0),
                                                  ("crossyard_run_failures", {"arch": "riscv64"}, 0.0)]
    # Waiting (dependencies done, not started): libgreet/arm64 and hello-go from 0 and hello-c/riscv64
    # from 0.1 (its dependency was a cache hit) until 0.2-0.3: three at once; hello-c/arm64 waited
    # alone from 4.2 (libgreet/arm64 done) to 5.0.
    assert families["crossyard_run_queue_depth_max"][0][2] == 3
    assert families["crossyard_run_queue_depth"][0][2] == 0
    waits = {n: v for n, _, v in families["crossyard_run_queue_wait_seconds"]}
    assert waits["crossyard_run_queue_wait_seconds_count"] == 4
    assert waits["crossyard_run_queue_wait_seconds_sum"] == pytest.approx(0.2 + 0.3 + 0.1 + 0.8)


def test_label_values_are_escaped() -> None:
    odd = _record("x", "arm64", "built", node='ssh:we"ird\\node\nname', started=rfc3339(int(T0)), seconds=1.5)
    text = metrics.render(timeline([odd]), finished=T0)
    samples = _families(text)["crossyard_run_job_seconds"]
    assert {lab["node"] for _, lab, _ in samples} == {'ssh:we"ird\\node\nname'}


def test_summary_has_node_start_end_of_every_job_and_links_the_report(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", _result(), observed=OBSERVED)
    on_disk = json.loads((run.directory / SUMMARY).read_text())
    assert on_disk == run.summary
    assert on_disk["report"] == str(run.report) and run.report.is_file()
    jobs = {j["id"]: j for j in on_disk["jobs"]}
    failed = jobs["hello-c@linux/arm64"]
    assert (failed["node"], failed["started"], failed["finished"]) == ("ssh:cm4", rfc3339(int(T0 + 5)),
                                                                       rfc3339(int(T0 + 5.5)))
    assert jobs["hello-c@linux/riscv64"]["attempts"] == 2
    for job in on_disk["jobs"]:
        if job["status"] in ("built", "failed"):
            assert job["node"] and job["started"] and job["finished"], job
    assert (tmp_path / "runs" / LATEST).resolve() == run.directory.resolve()
    assert os.readlink(tmp_path / "runs" / LATEST) == run.id  # relative: the workspace may move
    second = write_run(tmp_path / "runs", _result(), observed=OBSERVED)
    assert second.id != run.id and (tmp_path / "runs" / LATEST).resolve() == second.directory.resolve()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([LATEST, run.id, second.id])


def test_records_alone_place_jobs_by_their_own_times() -> None:
    """Without what a reporter saw (a result from elsewhere): start from the record, length from
    its seconds; a failure that names no node goes to the lane for no node, not to a made-up one."""
    line = timeline(RECORDS)
    runs = {r.record.id: r for r in line.runs}
    assert runs["hello-c@linux/riscv64"].start == pytest.approx(3.0)
    assert runs["hello-c@linux/riscv64"].end == pytest.approx(9.0)
    assert runs["hello-c@linux/arm64"].node == "" and not runs["hello-c@linux/arm64"].timed
    assert set(line.nodes) == {"ssh:board-a", "ssh:cm4"}
    page = html.render(line, title="t", summary="s")
    parsed = _Elements()
    parsed.feed(page)
    assert len(parsed.with_class("bar")) == len(RECORDS)
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


@pytest.mark.integration
def test_a_real_build_writes_its_run(tmp_path: Path) -> None:
    require_tool("riscv64-linux-gnu-gcc", "run .ci/install.d/00-apt.sh")
    require_tool("qemu-riscv64-static", "run .ci/install.d/00-apt.sh")
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    shutil.copytree(REPO / "services" / "libgreet", ws / "src" / "libgreet")
    text = (REPO / "recipes" / "services" / "libgreet.toml").read_text()
    (ws / "recipes" / "libgreet.toml").write_text(text.replace("../../services/", "../src/"))
    (ws / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64"]\n')

    done = run_cli("-C", str(ws), "build", "--json-file", str(tmp_path / "summary.json"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    # off a terminal: one plain line per event, the node named where the job ran
    assert "start libgreet@linux/riscv64" in done.stderr
    assert f"built libgreet@linux/riscv64 on {summary['jobs'][0]['node']}" in done.stderr
    latest = ws / ".crossyard" / "runs" / LATEST
    assert latest.is_symlink()
    directory = latest.resolve()
    assert sorted(p.name for p in directory.iterdir()) == sorted([SUMMARY, REPORT, METRICS])
    assert summary == json.loads((directory / SUMMARY).read_text())
    assert summary["report"] == str(ws.resolve() / ".crossyard" / "runs" / directory.name / REPORT)
    assert f"report: {summary['report']}" in done.stderr.replace("\n", "")
    (job,) = summary["jobs"]
    assert job["status"] == "built" and job["node"] and job["started"] and job["finished"]
    families = _families((directory / METRICS).read_text())
    count = next(v for n, lab, v in families["crossyard_run_job_seconds"] if n.endswith("_count"))
    assert count == 1
    assert {lab["node"] for _, lab, _ in families["crossyard_run_job_seconds"]} == {job["node"]}
    page = (directory / REPORT).read_text()
    assert page.count('class="bar built"') == 1 and job["node"] in page

    again = run_cli("-C", str(ws), "build", "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["jobs"][0]["status"] == "cached" and second["report"] != summary["report"]
    families = _families(Path(second["run"]["metrics"]).read_text())
    assert families["crossyard_run_cache_hit_ratio"][0][2] == 1.0
