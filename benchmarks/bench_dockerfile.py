"""One image three ways (BuildKit two ways), cold and warm, in one run: a Dockerfile (FROM scratch + COPY of a static
binary, for riscv64 and arm64) through BuildKit (a buildkitd built by crossyard, driven by
crossyard's own client), the same Dockerfile through Docker's legacy builder (the engine
crossyard falls back to), and crossyard's daemonless assembly of the same files.

Run: PYTHONPATH=src python benchmarks/bench_dockerfile.py [--rounds N] [--size-mib N] [--buildkitd PATH]

What each contender does, for both platforms, timed from inputs on disk to an image on disk:
- BuildKit, one solve: upload the context through a session, solve both platforms in one solve
  (SOURCE_DATE_EPOCH, rewrite-timestamp), export an OCI archive through the session, import it
  into an empty OCI layout with every digest checked (`crossyard.buildkit.dockerfile.build`).
  Cold: a daemon with an empty state directory (its start is not timed); warm: the same solve
  again on that daemon.
- BuildKit, a solve per platform: the same, one solve for each platform after the other (what
  crossyard does for a recipe whose artifacts are in its build context; one solve is what it
  does for a recipe without dependencies or with `artifacts = "named-context"`).
- Docker legacy builder: `docker build --platform P` then `docker save`, per platform (what
  crossyard's engine executor does before importing), on a context per platform (LEGACY_DOCKERFILE). Cold: after `docker builder prune -af`
  and removing the images; warm: again, with the engine's layer cache.
- crossyard daemonless: a deterministic layer per platform, config, manifests, index written by
  `crossyard.oci` (what `crossyard build` does for an image recipe). Cold: an empty layout;
  warm: the same layout again (crossyard itself would skip the image by its key; this measures
  the work when it cannot).
The binary is seeded binary-like bytes (see bench_layer.make_tree's notes), `--size-mib` per
platform. The best of `--rounds` rounds is printed for each; the digests column says whether
every round of that contender gave one image digest (BuildKit and crossyard must; the legacy
builder stamps times).

buildkitd: `--buildkitd PATH`, or built by crossyard from recipes/buildkit in a scratch
workspace (the go-buildkit toolchain's root: `crossyard toolchains prepare go-buildkit`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from crossyard import debian  # noqa: E402
from crossyard.buildkit import dockerfile as bk_dockerfile  # noqa: E402
from crossyard.buildkit.api import descriptor_set  # noqa: E402
from crossyard.buildkit.client import Api, Client  # noqa: E402
from crossyard.oci.image import ImageConfig, write_image, write_index  # noqa: E402
from crossyard.oci.layer import LayerEntry, write_layer  # noqa: E402
from crossyard.oci.layout import OciLayout  # noqa: E402
from crossyard.platforms import ARM64, RISCV64, Platform  # noqa: E402
from crossyard.workspace import Workspace  # noqa: E402

PLATFORMS = (RISCV64, ARM64)
EPOCH = 1_700_000_000
DOCKERFILE = ('FROM scratch\nARG TARGETARCH\nCOPY app-$TARGETARCH /usr/local/bin/app\n'
              'ENTRYPOINT ["/usr/local/bin/app"]\n')
# Docker 20.10's legacy builder fails an ARG step before COPY on FROM scratch for a foreign
# platform ("does not match the specified platform"), so it gets what crossyard's engine path
# gives it: a context per platform with that platform's binary under one name.
LEGACY_DOCKERFILE = 'FROM scratch\nCOPY app /usr/local/bin/app\nENTRYPOINT ["/usr/local/bin/app"]\n'



@dataclass(frozen=True, kw_only=True)
class Run:
    seconds: float
    digest: str  # the image (index) digest, or the saved archives' sha256 for the engine


def make_context(root: Path, size_mib: int, seed: int = 7) -> None:
    """Dockerfile plus app-riscv64 and app-arm64: machine-code-like bytes with a fifth random."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    weights = [rng.paretovariate(1.2) for _ in range(256)]
    table = bytes(rng.choices(range(256), weights=weights, k=256))
    pool = b"".join(rng.randbytes(64).translate(table) + rng.randbytes(16) for _ in range((4 << 20) // 80))
    for platform in PLATFORMS:
        with (root / f"app-{platform.architecture}").open("wb") as out:
            for _ in range(size_mib * 16):  # 64 KiB pieces from the pool at random offsets
                at = rng.randrange(len(pool) - (64 << 10))
                out.write(pool[at:at + (64 << 10)])
        (root / f"app-{platform.architecture}").chmod(0o755)
        legacy = root.parent / f"legacy-{platform.architecture}"
        legacy.mkdir()
        (legacy / "Dockerfile").write_text(LEGACY_DOCKERFILE)
        shutil.copy2(root / f"app-{platform.architecture}", legacy / "app")


def timed(work: Callable[[], str]) -> Run:
    began = time.monotonic()
    digest = work()
    return Run(seconds=time.monotonic() - began, digest=digest)


# -- BuildKit -------------------------------------------------------------------------------
def built_buildkitd(tmp: Path) -> Path:
    """buildkitd for this machine, built by crossyard from recipes/buildkit (cached in the
    machine's Go build cache after the first time)."""
    ws = tmp / "buildkitd-ws"
    (ws / "recipes").mkdir(parents=True)
    shutil.copyfile(REPO / "crossyard.toml", ws / "crossyard.toml")
    shutil.copytree(REPO / "recipes" / "buildkit", ws / "recipes" / "buildkit")
    result = subprocess.run([sys.executable, "-m", "crossyard.cli", "-C", str(ws), "build", "buildkitd",
                             "--platform", Platform.host().oci, "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building buildkitd failed:\n{result.stderr}")
    [job] = json.loads(result.stdout)["jobs"]
    binary = tmp / "buildkitd"
    shutil.copyfile(OciLayout(ws / ".crossyard" / "store").blob_path(job["outputs"]["buildkitd"]), binary)
    binary.chmod(0o755)
    return binary


@contextmanager
def daemon(buildkitd: Path, state: Path) -> Iterator[str]:
    """A buildkitd with the empty state directory `state`; its unix address."""
    state.mkdir(parents=True)
    address = f"unix://{state}/buildkitd.sock"
    with (state / "log").open("wb") as log:
        process = subprocess.Popen([str(buildkitd), "--root", str(state / "root"), "--addr", address,
                                    "--oci-worker=true", "--containerd-worker=false"],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (state / "buildkitd.sock").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"buildkitd did not start:\n{(state / 'log').read_text(errors='replace')}")
            time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)
        subprocess.run(["umount", "-R", str(state / "root")], capture_output=True)  # overlay mounts, if any
        shutil.rmtree(state, ignore_errors=True)


def buildkit_round(buildkitd: Path, api: Api, context: Path, tmp: Path, *, together: bool = True) -> tuple[Run, Run]:
    """`together`: both platforms in one solve (an index); else a solve per platform, one after
    the other (a manifest each), as crossyard solves a recipe whose artifacts are in its context."""
    groups = [PLATFORMS] if together else [(p,) for p in PLATFORMS]
    solves = [bk_dockerfile.DockerfileSolve(context=context, dockerfile_dir=context, platforms=group,
                                            source_date_epoch=EPOCH) for group in groups]
    state = Path(tempfile.mkdtemp(prefix="buildkitd-", dir=tmp)) / "state"  # each daemon its own: empty
    with daemon(buildkitd, state) as address, Client(address, api) as client:
        def once(name: str) -> str:
            layout = OciLayout(tmp / name).ensure()
            try:
                return " ".join(bk_dockerfile.build(client, solve, layout).descriptor.digest for solve in solves)
            finally:
                shutil.rmtree(tmp / name)
        return timed(lambda: once("bk-cold")), timed(lambda: once("bk-warm"))


# -- Docker legacy builder --------------------------------------------------------------------
ENGINE: dict[str, str] = {}  # DOCKER_HOST of the engine the run uses


@contextmanager
def engine(tmp: Path) -> Iterator[None]:
    """DOCKER_HOST's engine if set; else a private dockerd of the machine's docker.io (as the
    tests start one), removed at the end."""
    if os.environ.get("DOCKER_HOST"):
        ENGINE["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        yield
        return
    root = tmp / "dockerd"
    root.mkdir()
    sock = root / "docker.sock"
    with (root / "log").open("wb") as log:
        process = subprocess.Popen(
            ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "--pidfile", str(root / "pid"), "--host", f"unix://{sock}", "--bridge=none", "--iptables=false",
             "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false", "--log-level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ENGINE["DOCKER_HOST"] = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], capture_output=True, env={**os.environ, **ENGINE}).returncode:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dockerd did not start:\n{(root / 'log').read_text(errors='replace')}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            env={**os.environ, **ENGINE, "DOCKER_BUILDKIT": "0"})
    if result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed:\n{result.stderr}")
    return result


def engine_round(context: Path, tmp: Path) -> tuple[Run, Run]:
    tags = [f"crossyard-bench:{p.architecture}" for p in PLATFORMS]

    def once() -> str:
        digest = hashlib.sha256()
        for platform, tag in zip(PLATFORMS, tags, strict=True):
            docker("build", "-q", "--platform", platform.oci, "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}",
                   "-t", tag, str(context.parent / f"legacy-{platform.architecture}"))
            archive = tmp / f"{platform.architecture}.tar"
            docker("save", "-o", str(archive), tag)
            digest.update(archive.read_bytes())
            archive.unlink()
        return "sha256:" + digest.hexdigest()

    subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, env={**os.environ, **ENGINE})
    docker("builder", "prune", "-af")
    return timed(once), timed(once)


# -- crossyard daemonless ----------------------------------------------------------------------
def assemble(context: Path, layout: OciLayout) -> str:
    manifests = []
    for platform in PLATFORMS:
        entries = [LayerEntry(path="usr/local/bin/app", source=context / f"app-{platform.architecture}", mode=0o755)]
        layer = write_layer(layout, entries, source_date_epoch=EPOCH)
        manifests.append(write_image(layout, platform=platform, layers=[layer], source_date_epoch=EPOCH,
                                     config=ImageConfig(entrypoint=("/usr/local/bin/app",))))
    return write_index(layout, manifests).digest


def daemonless_round(context: Path, tmp: Path) -> tuple[Run, Run]:
    layout = OciLayout(tmp / "daemonless").ensure()
    try:
        return timed(lambda: assemble(context, layout)), timed(lambda: assemble(context, layout))
    finally:
        shutil.rmtree(tmp / "daemonless")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--buildkitd", type=Path, help="a buildkitd binary (default: build one with crossyard)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("buildkitd's OCI worker runs as root here: run the benchmark as root")
    for tool in ("docker", "runc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"`{tool}` not found on PATH (.ci/install.d/20-docker.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="bench-dockerfile-") as name, ExitStack() as stack:
        tmp = Path(name)
        buildkitd = args.buildkitd or built_buildkitd(tmp)
        workspace = Workspace.find(REPO)  # the API is compiled once, into its cache
        api = Api.load(descriptor_set(workspace.cache_dir, lambda: debian.workspace_mirror(workspace)))
        context = tmp / "context"
        make_context(context, args.size_mib)
        stack.enter_context(engine(tmp))
        print(f"{len(PLATFORMS)} platforms x {args.size_mib} MiB binary; {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f} before; best of {args.rounds} rounds")
        results: dict[str, list[tuple[Run, Run]]] = {}
        for _ in range(args.rounds):  # contenders alternate, so a burst of load hits them alike
            results.setdefault("BuildKit, one solve", []).append(buildkit_round(buildkitd, api, context, tmp))
            results.setdefault("BuildKit, a solve per platform", []).append(
                buildkit_round(buildkitd, api, context, tmp, together=False))
            results.setdefault("Docker legacy builder", []).append(engine_round(context, tmp))
            results.setdefault("crossyard daemonless", []).append(daemonless_round(context, tmp))
        print(f"load average {os.getloadavg()[0]:.1f} after")
    baseline = min(cold.seconds for cold, _ in results["Docker legacy builder"])
    print(f"\n{'contender':30} {'cold s':>8} {'warm s':>8} {'cold vs legacy':>15}  digests")
    for label, rounds in results.items():
        cold = min(r[0].seconds for r in rounds)
        warm = min(r[1].seconds for r in rounds)
        digests = {r[0].digest for r in rounds} | {r[1].digest for r in rounds}
        same = "one digest" if len(digests) == 1 else f"{len(digests)} different"
        print(f"{label:30} {cold:8.2f} {warm:8.2f} {cold / baseline:14.2f}x  {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
