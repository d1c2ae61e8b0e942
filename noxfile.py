"""Sessions users run: pipeline (the main job), tests, lint, typecheck, build (per platform),
build_all and publish (the whole catalog), certs (rotate what is due)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PLATFORMS = ["linux/riscv64", "linux/arm64", "linux/amd64"]  # the catalog's; `build -p` takes any
# What is built from Debian's big source packages is left to build_all, so that the main job
# stays about ten minutes cold on 2 cores: Kubernetes (about 7 min per architecture for the seven
# 1.20.2 components, 3 for kubectl 1.32.3), BuildKit (6 jobs, about 1 min each) and the
# registry (3 jobs, 1-2 min each), and the images wrapping their binaries.
HEAVY = (Path("recipes/kubernetes"), Path("recipes/buildkit"), Path("recipes/registry"))


def default_set(root: Path = Path(".")) -> list[str]:
    """The recipes the main job builds and publishes: the catalog without HEAVY's recipes and
    the images that wrap their binaries (tests/test_repro_check.py checks the same set)."""
    recipes = root / "recipes"
    tables = {path.relative_to(root): tomllib.loads(path.read_text())
              for path in sorted(recipes.rglob("*.toml"))}
    heavy = {t["name"] for path, t in tables.items() if set(HEAVY) & set(path.parents)}
    return [
        t["name"] for path, t in tables.items()
        if t["name"] not in heavy
        and not {f.get("artifact") for f in t.get("image", {}).get("files", [])} & heavy
    ]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, integration tests included (they start real servers)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def pipeline(session: nox.Session) -> None:
    """The main job, end to end on this machine: the PKI (from certs/*.toml, if missing), the
    managed registry over TLS, the example catalog built for riscv64 + arm64 (cached; binaries
    checked under qemu-user, images assembled), signed, published, verified by pulling back;
    it ends by printing where the images are and how to pull them."""
    session.install("-e", ".")
    session.run("crossyard", "toolchains")
    session.run("crossyard", "registry", "up")  # creates the CA and the registry's leaf if missing
    if not Path(".crossyard/keys/cosign.key").exists():
        session.run("crossyard", "keys", "generate")  # CROSSYARD_KEY_PASSWORD encrypts it if set
    # build → sign → push → verify, the default set (`nox -s build_all publish`: everything)
    session.run("crossyard", "publish", *session.posargs, *default_set())
    session.run("crossyard", "certs", "status")
    session.log("the registry keeps running; stop it with `crossyard registry down`")


@nox.session
def build_all(session: nox.Session) -> None:
    """The whole catalog, Kubernetes included, for every platform its recipes list (riscv64 and
    arm64; the Rust services amd64 too): nox -s build_all -- [crossyard build options]."""
    session.install("-e", ".")
    session.run("crossyard", "build", *session.posargs)


@nox.session
def publish(session: nox.Session) -> None:
    """Build (cached), sign, push and verify the whole catalog against a running registry:
    nox -s publish -- --registry HOST:PORT --ca BUNDLE (default: the workspace's own registry)."""
    session.install("-e", ".")
    if not Path(".crossyard/keys/cosign.key").exists():
        session.run("crossyard", "keys", "generate")
    session.run("crossyard", "publish", *session.posargs)


@nox.session
def certs(session: nox.Session) -> None:
    """Scheduled maintenance: re-issue every certificate past two thirds of its life (the
    registry reloads without dropping a pull), then fail if any is still close to expiry:
    nox -s certs -- --threshold-days 21."""
    session.install("-e", ".")
    session.run("crossyard", "certs", "rotate")
    session.run("crossyard", "certs", "status", *session.posargs)


@nox.session(python=False)
def ca_bundle(session: nox.Session) -> None:
    """Refresh the CA bundle `crossyard/static` images carry from Debian's ca-certificates
    (on Debian, with apt-get): its mozilla/*.crt files concatenated in name order. The image
    digests change with it: rebuild and commit crossyard.lock."""
    import tempfile

    target = Path("src/crossyard/data/ca-certificates.crt").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        with session.chdir(tmp):
            session.run("apt-get", "download", "ca-certificates", external=True)
        deb = next(Path(tmp).glob("ca-certificates_*.deb"))
        session.run("dpkg", "-x", str(deb), f"{tmp}/root", external=True)
        certs = sorted(Path(tmp, "root/usr/share/ca-certificates/mozilla").glob("*.crt"))
        texts = [c.read_bytes() for c in certs]
        target.write_bytes(b"".join(t if t.endswith(b"\n") else t + b"\n" for t in texts))
    session.log(f"{len(certs)} certificates from {deb.name} -> {target}; "
                "name the version in src/crossyard/images/base_images.py")


@nox.session
@nox.parametrize("platform", PLATFORMS)
def build(session: nox.Session, platform: str) -> None:
    """Build the catalog for one platform: nox -s "build(platform='linux/riscv64')"."""
    session.install("-e", ".")
    session.run("crossyard", "build", "--platform", platform, *session.posargs)
