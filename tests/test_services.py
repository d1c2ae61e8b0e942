"""The cluster's Rust services (services/cluster): their cargo tests in the rust-trixie root
for each architecture, and the binaries `crossyard build` makes of them for riscv64, arm64 and
amd64 run under qemu-user against test sysfs trees, each other and Prometheus' own parser."""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, binfmt_registered, build_summary, require, require_tool
from crossyard.oci.layout import OciLayout
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.toolchains import in_root, roots_dir
from helpers.images import unpack_image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ("nvme-exporter", "fan-controller", "workload")
PLATFORMS = (RISCV64, ARM64, AMD64)
ARCH = {RISCV64: "riscv64", ARM64: "aarch64", AMD64: "x86_64"}  # std::env::consts::ARCH
PLATFORM_IDS = [p.architecture for p in PLATFORMS]


def require_emulation() -> None:
    for platform in (RISCV64, ARM64):
        require_tool(platform.qemu_binary, "apt-get install qemu-user-static")
    require(Platform.host() == AMD64, "these tests run riscv64 and arm64 under qemu on an amd64 host")


def trixie_root() -> Path:
    root = roots_dir() / "rust-trixie"
    require((root / "usr").is_dir(), "the rust-trixie root is missing: run `crossyard toolchains prepare rust-trixie`")
    require_tool("bwrap", "apt-get install bubblewrap")
    return root


# -- cargo test --------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS, ids=PLATFORM_IDS)
def test_cargo_test_passes_on_each_architecture(platform: Platform, tmp_path: Path) -> None:
    """`cargo test --offline --locked` of the workspace in the root that builds it, warnings as
    errors; riscv64 and arm64 test binaries (static) run through binfmt's qemu-user."""
    root = trixie_root()
    if platform != Platform.host():
        require(binfmt_registered(platform.qemu_arch),
                f"binfmt has no qemu-{platform.qemu_arch} entry: run .ci/install.d/10-binfmt.sh")
    src = tmp_path / "src"
    shutil.copytree(REPO / "services" / "cluster", src, ignore=shutil.ignore_patterns("target"))
    triple = platform.rust_triple
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/tmp", "CARGO_HOME": "/tmp/cargo", "CARGO_TARGET_DIR": "/tmp/src/target",
        "RUSTFLAGS": "-Dwarnings -Ctarget-feature=+crt-static",
        f"CARGO_TARGET_{triple.upper().replace('-', '_')}_LINKER": f"{platform.gnu_triplet}-gcc",
    }
    # Under /tmp: the root is read-only, /tmp a tmpfs where bwrap can make the mount point.
    argv = in_root(root, ["cargo", "test", "--offline", "--locked", "--workspace", "--target", triple],
                   binds=[(src, "/tmp/src")], workdir="/tmp/src")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    passed = [int(n) for n in re.findall(r"test result: ok\. (\d+) passed; 0 failed", output)]
    assert len(passed) >= 4 and sum(passed) >= 45, output[-3000:]  # svckit + three binaries
    assert "FAILED" not in output


# -- the crossyard build, shared by every test below ----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Built:
    ws: Path
    summary: dict[str, Any]
    bin_dir: Path

    def binary(self, recipe: str, platform: Platform) -> Path:
        """The artifact, out of the store, executable."""
        target = self.bin_dir / f"{recipe}-{platform.architecture}"
        if not target.exists():
            job = next(j for j in self.summary["jobs"] if j["id"] == f"{recipe}@{platform.oci}")
            digest = job["outputs"][recipe].split(":")[1]
            shutil.copyfile(self.ws / ".crossyard" / "store" / "blobs" / "sha256" / digest, target)
            target.chmod(0o755)
        return target

    def argv(self, recipe: str, platform: Platform, *args: str) -> list[str]:
        binary = str(self.binary(recipe, platform))
        if platform == Platform.host():
            return [binary, *args]
        return [platform.qemu_binary, binary, *args]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The three services and their images, built once by `crossyard build` for the three
    platforms, from a copy of the catalog's recipes and sources."""
    trixie_root()
    require_emulation()
    ws = tmp_path_factory.mktemp("services-ws")
    for kind in ("services", "images"):
        (ws / "recipes" / kind).mkdir(parents=True)
        for name in SERVICES:
            shutil.copy(REPO / "recipes" / kind / f"{name}.toml", ws / "recipes" / kind)
    shutil.copytree(REPO / "services" / "cluster", ws / "services" / "cluster",
                    ignore=shutil.ignore_patterns("target"))
    shutil.copy(REPO / "crossyard.toml", ws)
    summary = build_summary(ws)
    bin_dir = tmp_path_factory.mktemp("service-binaries")
    return Built(ws=ws, summary=summary, bin_dir=bin_dir)


def test_every_service_builds_for_three_platforms_with_one_rustc(built: Built) -> None:
    jobs = {j["id"]: j for j in built.summary["jobs"]}
    assert set(jobs) == {f"{s}@{p.oci}" for s in SERVICES for p in PLATFORMS}
    assert all(j["status"] == "built" for j in jobs.values())  # smoke tests included
    # One Rust for all three, whatever else this machine has (a host rustup must not make the
    # amd64 keys, and so the lock, depend on the machine that wrote it).
    assert len({j["toolchain"] for j in jobs.values()}) == 1
    assert {j["strategy"] for j in jobs.values() if j["platform"] == "linux/amd64"} == {"native"}
    images = {i["ref"]: i for i in built.summary["images"]}
    assert set(images) >= {f"{s}:0.1.0" for s in SERVICES}


@pytest.mark.parametrize("platform", PLATFORMS, ids=PLATFORM_IDS)
def test_binaries_are_static_for_their_platform(built: Built, platform: Platform) -> None:
    for recipe in SERVICES:
        described = subprocess.run(["file", "-b", str(built.binary(recipe, platform))],
                                   capture_output=True, text=True, check=True).stdout
        assert "statically linked" in described or "static-pie linked" in described, described
        assert {RISCV64: "RISC-V", ARM64: "ARM aarch64", AMD64: "x86-64"}[platform] in described


def test_a_second_build_rebuilds_nothing(built: Built) -> None:
    again = build_summary(built.ws)
    assert again["counts"] == {"built": 0, "cached": 9, "failed": 0, "skipped": 0}
    assert {j["id"]: j["outputs"] for j in again["jobs"]} == {j["id"]: j["outputs"] for j in built.summary["jobs"]}


# -- processes -----------------------------------------------------------------------------------


@contextlib.contextmanager
def started(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """A server in a session of its own, killed (with what it started) at the end."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def listening_address(process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """HOST:PORT from the server's `listening on` line (it was asked for port 0)."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            found = re.search(rb"listening on (?:http://)?(127\.0\.0\.1:\d+)", seen)
            if found:
                return found.group(1).decode()
    raise AssertionError(f"the server printed no `listening on` line: {seen!r}")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Prometheus' parser's view: family → type, (sample name, labels) → value."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)


# -- nvme-exporter -------------------------------------------------------------------------------

# block/<dev>/stat fields (Documentation/block/stat.rst): a 5.5+ kernel's 17, and an older
# kernel's 11 on a drive that has not been read yet.
STATS = {
    "nvme0n1": [181234, 12, 9876544, 40213, 90321, 33, 7654320, 120456, 4, 98765, 160700, 1200, 0, 2457600, 310,
                5021, 1777],
    "nvme10n1": [0, 0, 0, 0, 5, 0, 40, 12, 0, 12, 12],
}
# (name, stat field, scale) of each counter family.
COUNTERS = [
    ("nvme_reads_completed", 0, 1), ("nvme_reads_merged", 1, 1), ("nvme_read_bytes", 2, 512),
    ("nvme_read_time_seconds", 3, 0.001), ("nvme_writes_completed", 4, 1), ("nvme_writes_merged", 5, 1),
    ("nvme_written_bytes", 6, 512), ("nvme_write_time_seconds", 7, 0.001), ("nvme_io_time_seconds", 9, 0.001),
    ("nvme_io_time_weighted_seconds", 10, 0.001), ("nvme_discards_completed", 11, 1),
    ("nvme_discards_merged", 12, 1), ("nvme_discarded_bytes", 13, 512), ("nvme_discard_time_seconds", 14, 0.001),
    ("nvme_flushes_completed", 15, 1), ("nvme_flush_time_seconds", 16, 0.001),
]
SENSORS = [  # (file, millidegrees, label or None, max, crit)
    ("temp1", 38850, "Composite", 81850, 84850),
    ("temp2", 41850, 'Sensor 1 "die"\\', None, None),  # quotes and a backslash: escaped
    ("temp3", -2000, None, None, None),
]


def write_sysfs(root: Path) -> None:
    for device, fields in STATS.items():
        (root / "block" / device).mkdir(parents=True)
        (root / "block" / device / "stat").write_text(" ".join(f"{f:8d}" for f in fields) + "\n")
    (root / "block" / "sda").mkdir()
    (root / "block" / "sda" / "stat").write_text(" ".join(["7"] * 17) + "\n")
    other = root / "class" / "hwmon" / "hwmon0"
    other.mkdir(parents=True)
    (other / "name").write_text("acpitz\n")
    (other / "temp1_input").write_text("27800\n")
    nvme = root / "class" / "hwmon" / "hwmon1"
    nvme.mkdir()
    (nvme / "name").write_text("nvme\n")
    controller = root / "devices" / "pci0000:00" / "0000:00:01.0" / "nvme" / "nvme0"
    controller.mkdir(parents=True)
    (nvme / "device").symlink_to(os.path.relpath(controller, nvme))
    for sensor, milli, label, high, crit in SENSORS:
        (nvme / f"{sensor}_input").write_text(f"{milli}\n")
        for suffix, text in (("label", label), ("max", high), ("crit", crit)):
            if text is not None:
                (nvme / f"{sensor}_{suffix}").write_text(f"{text}\n")


def expected_block_samples() -> Samples:
    out: Samples = {}
    for device, f in STATS.items():
        labels = frozenset({("device", device)})
        for name, field, scale in COUNTERS:
            if field < len(f):
                out[(f"{name}_total", labels)] = f[field] * scale
        out[("nvme_queue_depth", labels)] = f[8]
        out[("nvme_queue_depth_average", labels)] = f[10] / f[9] if f[9] else math.nan
        out[("nvme_read_latency_average_seconds", labels)] = f[3] / f[0] / 1000 if f[0] else math.nan
        out[("nvme_write_latency_average_seconds", labels)] = f[7] / f[4] / 1000 if f[4] else math.nan
    return out


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_nvme_exporter_riscv64_serves_metrics_of_a_test_sysfs_tree(built: Built, tmp_path: Path) -> None:
    root = tmp_path / "sys"
    write_sysfs(root)
    argv = built.argv("nvme-exporter", RISCV64, "--listen", "127.0.0.1:0", "--sysfs-root", str(root))
    with started(argv) as server:
        address = listening_address(server)
        status, content_type, text = get(f"http://{address}/metrics")
        assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
        types, samples = parse(text)

        assert types["nvme_reads_completed"] == "counter" and types["nvme_io_time_weighted_seconds"] == "counter"
        assert types["nvme_queue_depth"] == "gauge" and types["nvme_temperature_celsius"] == "gauge"
        assert value(samples, "nvme_exporter_build_info", version="0.1.0", arch="riscv64") == 1
        assert value(samples, "nvme_exporter_scrape_errors") == 0
        expected = expected_block_samples()
        got = {k: v for k, v in samples.items() if k[0].startswith("nvme_") and ("device", "sda") not in k[1]
               and not k[0].startswith(("nvme_temperature", "nvme_exporter"))}
        assert set(got) == set(expected)  # sda is no NVMe drive; the 11-field drive has no discards
        assert [k for k in got if not same(got[k], expected[k])] == []
        for sensor, milli, label, high, crit in SENSORS:
            labels = {"device": "nvme0", "hwmon": "hwmon1", "sensor": sensor, "label": label or sensor}
            assert value(samples, "nvme_temperature_celsius", **labels) == milli / 1000
            if high is not None and crit is not None:
                assert value(samples, "nvme_temperature_max_celsius", device="nvme0", sensor=sensor) == high / 1000
                assert value(samples, "nvme_temperature_critical_celsius", device="nvme0", sensor=sensor) == crit / 1000
        assert not any(dict(labels).get("hwmon") == "hwmon0" for _, labels in samples)  # acpitz is not NVMe

        # Read at every scrape: new I/O shows in the next one.
        fields = STATS["nvme0n1"].copy()
        fields[0] += 1000
        fields[2] += 8 * 1000
        (root / "block" / "nvme0n1" / "stat").write_text(" ".join(map(str, fields)) + "\n")
        _, _, text = get(f"http://{address}/metrics")
        _, samples = parse(text)
        assert value(samples, "nvme_reads_completed_total", device="nvme0n1") == fields[0]
        assert value(samples, "nvme_read_bytes_total", device="nvme0n1") == fields[2] * 512

        assert get(f"http://{address}/")[0] == 404
        assert get(f"http://{address}/metrics/extra")[0] == 404


# -- fan-controller ------------------------------------------------------------------------------

FAN_CONFIG = """\
hwmon_name = "nct6798"
hysteresis = 5        # a step is left only 5 degrees below its threshold
idle_pwm = 40
failsafe_pwm = 250

[[step]]
temp = 40
pwm = 80

[[step]]
temp = 60
pwm = 160

[[step]]
temp = 75
pwm = 255
"""
# (°C, the PWM the curve says from the state before, the decision logged)
FAN_READINGS = [
    (30, 40, "start"),  # below the first step: idle
    (65, 160, "up"),    # past 60: up at once
    (57, 160, "hold"),  # a small dip below 60, not below 55: no change
    (54, 80, "down"),   # below 55: down to the 40 °C step
    (76, 255, "up"),
    (72, 255, "hold"),  # below 75, not below 70
    (30, 40, "down"),   # past every step's hysteresis: idle
]


def hwmon_tree(root: Path) -> Path:
    for index, name in enumerate(("acpitz", "nct6798")):
        (root / "class" / "hwmon" / f"hwmon{index}").mkdir(parents=True)
        (root / "class" / "hwmon" / f"hwmon{index}" / "name").write_text(f"{name}\n")
    device = root / "class" / "hwmon" / "hwmon1"
    (device / "pwm1").write_text("128\n")  # what the firmware left
    (device / "pwm1_enable").write_text("2\n")  # automatic
    return device


@pytest.mark.parametrize("platform", PLATFORMS, ids=PLATFORM_IDS)
def test_fan_controller_dry_run_writes_what_its_curve_says(built: Built, tmp_path: Path, platform: Platform) -> None:
    device = hwmon_tree(tmp_path / "sys")
    config = tmp_path / "fan.toml"
    config.write_text(FAN_CONFIG)
    shadow, metrics = tmp_path / "dry-run", tmp_path / "fan.prom"
    for celsius, pwm, action in FAN_READINGS:
        (device / "temp1_input").write_text(f"{celsius * 1000}\n")
        run = subprocess.run(built.argv("fan-controller", platform, "--config", str(config), "--sysfs-root",
                                        str(tmp_path / "sys"), "--dry-run", str(shadow), "--once",
                                        "--metrics-file", str(metrics)),
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert (shadow / "pwm1").read_text() == f"{pwm}\n", (celsius, run.stderr)
        assert f"temp={celsius} " in run.stderr and f" pwm={pwm} action={action}" in run.stderr, run.stderr
        assert "dry_run=1" in run.stderr
        types, samples = parse(metrics.read_text())
        assert value(samples, "fan_controller_pwm", pwm="pwm1") == pwm
        assert value(samples, "fan_controller_temperature_celsius", sensor=str(device / "temp1_input")) == celsius
        assert value(samples, "fan_controller_dry_run", pwm="pwm1") == 1
        assert value(samples, "fan_controller_build_info", version="0.1.0", arch=ARCH[platform]) == 1
        assert types["fan_controller_pwm_changes"] == "counter"
    # The dry run wrote only its own directory: the fan is where the firmware left it.
    assert (shadow / "pwm1_enable").read_text() == "1\n"
    assert (device / "pwm1").read_text() == "128\n" and (device / "pwm1_enable").read_text() == "2\n"

    # For real: manual mode, then the curve's value; an unreadable sensor runs the fan at failsafe.
    (device / "temp1_input").write_text("65000\n")
    argv = built.argv("fan-controller", platform, "--config", str(config), "--hwmon", str(device),
                      "--iterations", "2", "--interval", "0", "--metrics-file", str(metrics))
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (device / "pwm1_enable").read_text() == "1\n" and (device / "pwm1").read_text() == "160\n"
    assert run.stderr.count("action=") == 2 and "action=keep" in run.stderr and "dry_run=1" not in run.stderr
    (device / "temp1_input").unlink()
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (device / "pwm1").read_text() == "250\n" and "action=failsafe" in run.stderr
    _, samples = parse(metrics.read_text())
    assert value(samples, "fan_controller_sensor_errors_total", sensor=str(device / "temp1_input")) == 2
    assert math.isnan(value(samples, "fan_controller_temperature_celsius", sensor=str(device / "temp1_input")))


def test_fan_controller_serves_its_state_on_metrics(built: Built, tmp_path: Path) -> None:
    device = hwmon_tree(tmp_path / "sys")
    (device / "temp1_input").write_text("76000\n")
    config = tmp_path / "fan.toml"
    config.write_text(FAN_CONFIG)
    argv = built.argv("fan-controller", ARM64, "--config", str(config), "--hwmon", str(device),
                      "--interval", "0.2", "--listen", "127.0.0.1:0")
    with started(argv) as controller:
        address = listening_address(controller)
        deadline = time.monotonic() + 60
        while True:  # the server may answer before the first decision is made
            status, _, text = get(f"http://{address}/metrics")
            if "fan_controller_pwm{" in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
        _, samples = parse(text)
        assert value(samples, "fan_controller_pwm", pwm="pwm1") == 255
        assert (device / "pwm1").read_text() == "255\n"
        assert value(samples, "fan_controller_curve_step", pwm="pwm1") == 3
        assert value(samples, "fan_controller_step_down_below_celsius", pwm="pwm1") == 70
        assert get(f"http://{address}/")[0] == 404


def test_fan_controller_config_mistakes_exit_2_naming_file_and_line(built: Built, tmp_path: Path) -> None:
    config = tmp_path / "fan.toml"
    config.write_text(FAN_CONFIG.replace("hysteresis = 5", "hysterisis = 5"))
    run = subprocess.run(built.argv("fan-controller", AMD64, "--config", str(config), "--once"),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == (f"fan-controller: {config}:2: unknown key `hysterisis` in the top level; "
                                  "did you mean `hysteresis`?")
    run = subprocess.run(built.argv("fan-controller", AMD64, "--confg", str(config)), capture_output=True, text=True)
    assert run.returncode == 2 and "unknown argument `--confg`" in run.stderr


# -- workload ------------------------------------------------------------------------------------


def test_workload_riscv64_and_arm64_exchange_messages_over_tcp(built: Built) -> None:
    messages, size = 300, 200
    server_argv = built.argv("workload", RISCV64, "pingpong", "--listen", "127.0.0.1:0")
    with started(server_argv) as server:
        address = listening_address(server)
        client = subprocess.run(
            built.argv("workload", ARM64, "pingpong", "--connect", address, "--messages", str(messages),
                       "--message-size", str(size)),
            capture_output=True, text=True, timeout=300,
        )
        assert client.returncode == 0, client.stderr
        server_out, server_err = server.communicate(timeout=60)
        assert server.returncode == 0, server_err.decode()
    sent = messages * (4 + size)  # each message framed by its 4-byte length
    _, c = parse(client.stdout)
    assert value(c, "workload_info", workload="pingpong", version="0.1.0", arch="aarch64") == 1
    assert value(c, "workload_pingpong_peer_info", role="client", peer_arch="riscv64", peer_version="0.1.0") == 1
    assert value(c, "workload_messages_sent_total", role="client") == messages
    assert value(c, "workload_messages_received_total", role="client") == messages
    assert value(c, "workload_message_bytes_sent_total", role="client") == sent
    assert value(c, "workload_roundtrip_seconds_count", role="client") == messages
    assert 0 < value(c, "workload_roundtrip_seconds", role="client", quantile="0.5") \
        <= value(c, "workload_roundtrip_seconds", role="client", quantile="0.99")
    _, s = parse(server_out.decode())
    assert value(s, "workload_info", workload="pingpong", version="0.1.0", arch="riscv64") == 1
    assert value(s, "workload_pingpong_peer_info", role="server", peer_arch="aarch64", peer_version="0.1.0") == 1
    assert value(s, "workload_messages_received_total", role="server") == messages
    assert value(s, "workload_messages_sent_total", role="server") == messages
    assert value(s, "workload_message_bytes_received_total", role="server") == sent


def test_workload_cpu_checksum_is_the_same_on_every_architecture(built: Built) -> None:
    checksums = {}
    for platform in PLATFORMS:
        run = subprocess.run(built.argv("workload", platform, "cpu", "--iterations", "20000", "--threads", "3"),
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        _, samples = parse(run.stdout)
        assert value(samples, "workload_cpu_iterations_total") == 20000
        [(_, labels)] = [k for k in samples if k[0] == "workload_cpu_checksum_info"]
        checksums[platform.architecture] = dict(labels)["checksum"]
    assert len(set(checksums.values())) == 1, checksums


def test_workload_storage_reports_its_io(built: Built, tmp_path: Path) -> None:
    files, size, block = 5, 300_000, 65536
    run = subprocess.run(built.argv("workload", RISCV64, "storage", "--dir", str(tmp_path), "--files", str(files),
                                    "--file-size", str(size), "--block", str(block), "--metrics-file",
                                    str(tmp_path / "m.prom")),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m.prom").read_text() == run.stdout
    _, samples = parse(run.stdout)
    where = {"dir": str(tmp_path)}
    assert value(samples, "workload_storage_written_bytes_total", **where) == files * size
    assert value(samples, "workload_storage_read_bytes_total", **where) == files * size
    assert value(samples, "workload_storage_write_ops_total", **where) == files * -(-size // block)
    assert value(samples, "workload_storage_fsync_seconds_count", **where) == files
    assert value(samples, "workload_storage_mismatched_files_total", **where) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.prom"]  # its own directory, removed


# -- images --------------------------------------------------------------------------------------


def image_rootfs(built: Built, name: str, platform: Platform, into: Path) -> dict[str, Any]:
    """The image's filesystem for `platform` unpacked into `into`; its config."""
    return unpack_image(OciLayout(built.ws / ".crossyard" / "store"), f"{name}:0.1.0",
                        {p.oci for p in PLATFORMS}, platform.oci, into)


@pytest.mark.parametrize("platform", [RISCV64, ARM64], ids=["riscv64", "arm64"])
def test_images_run_their_entrypoint_from_their_own_filesystem(built: Built, tmp_path: Path,
                                                               platform: Platform) -> None:
    """On crossyard/static there is no libc: the static binaries run from the image's files."""
    rootfs = tmp_path / "nvme"
    config = image_rootfs(built, "nvme-exporter", platform, rootfs)
    assert config["User"] == "nonroot" and "9469/tcp" in config["ExposedPorts"]
    entry, *args = config["Entrypoint"] + config["Cmd"]
    run = subprocess.run([platform.qemu_binary, str(rootfs / entry.lstrip("/")), *args, "--once"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    _, samples = parse(run.stdout)
    assert value(samples, "nvme_exporter_build_info", version="0.1.0", arch=ARCH[platform]) == 1

    rootfs = tmp_path / "fan"
    config = image_rootfs(built, "fan-controller", platform, rootfs)
    assert config["User"] == "root"
    device = hwmon_tree(tmp_path / "sys")
    (device / "temp1_input").write_text("85000\n")
    example = rootfs / "etc" / "fan-controller" / "example.toml"  # the documented example, shipped
    run = subprocess.run([platform.qemu_binary, str(rootfs / "usr/local/bin/fan-controller"), "--config",
                          str(example), "--sysfs-root", str(tmp_path / "sys"), "--dry-run",
                          str(tmp_path / "dry"), "--once"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "dry" / "pwm2").read_text() == "255\n"  # the example's pwm2: 85 °C is past its 80
