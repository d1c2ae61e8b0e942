"""crossyard's BuildKit session against the real buildkitd (the shared `daemon` fixture): the
context and Dockerfile uploaded through FileSync, the exporter's file received through FileSend,
each checked byte for byte against buildctl doing the same build; the OCI export imported into
an OCI layout with every digest checked; progress from the Status stream."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from crossyard.buildkit import dockerfile as bk_dockerfile
from crossyard.buildkit.client import BuildKitError, Client
from crossyard.buildkit.dockerfile import DockerfileSolve, Step, import_archive
from crossyard.buildkit.session import Session
from crossyard.errors import ConfigurationError, IntegrityError
from crossyard.oci.layout import OciLayout
from crossyard.platforms import ARM64, RISCV64
from helpers.buildkit_fixtures import Daemon

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _context(root: Path) -> Path:
    """A context with what an upload must get right: nested and empty directories, modes, a
    symlink, a hard link, a file larger than one DATA packet, a non-ASCII name, and a
    .dockerignore with an exception."""
    (root / "src" / "deep" / "er").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (root / "src" / "deep" / "er" / "data.bin").write_bytes(os.urandom(200_000))
    run = root / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o750)
    (root / "link").symlink_to("src/main.c")
    os.link(root / "src" / "main.c", root / "src" / "hard.c")
    (root / "grüße.txt").write_text("hallo\n")
    (root / "debug.log").write_text("ignored\n")
    (root / "keep.log").write_text("kept: an exception\n")
    (root / "secret").mkdir()
    (root / "secret" / "key").write_text("never uploaded\n")
    (root / "src" / "tmp").mkdir()
    (root / "src" / "tmp" / "scratch").write_text("ignored too\n")
    (root / ".dockerignore").write_text("# comments are skipped\n*.log\n!keep.log\nsecret\n**/tmp\n")
    return root


def _buildctl(daemon: Daemon, *args: str) -> None:
    result = subprocess.run([str(daemon.buildctl), "--addr", daemon.address, *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_uploaded_context_is_byte_for_byte_what_buildctl_uploads(daemon: Daemon, tmp_path: Path) -> None:
    """`COPY . /ctx/` exported as a plain tar (file times as uploaded, no rewriting): the upload
    through crossyard's session and buildctl's give identical bytes; the Dockerfile comes from its
    own directory under another name (the frontend's include patterns)."""
    context = _context(tmp_path / "context")
    dockerdir = tmp_path / "docker"
    dockerdir.mkdir()
    (dockerdir / "Build.dockerfile").write_text("FROM scratch\nCOPY . /ctx/\n")
    (dockerdir / "unrelated.txt").write_text("not the Dockerfile\n")
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    attrs = {"filename": "Build.dockerfile", "platform": "linux/riscv64"}
    with Client(daemon.address, daemon.api) as client, \
            Session(client, dirs={"context": context, "dockerfile": dockerdir}, outputs={0: ours}) as session:
        client.solve(exporter="tar", attrs={}, frontend="dockerfile.v0", frontend_attrs=attrs, session=session.id)
        assert session.errors == []
    _buildctl(daemon, "build", "--frontend", "dockerfile.v0", "--local", f"context={context}",
              "--local", f"dockerfile={dockerdir}", "--opt", "filename=Build.dockerfile",
              "--opt", "platform=linux/riscv64", "--output", f"type=tar,dest={theirs}")
    assert ours.read_bytes() == theirs.read_bytes()
    with tarfile.open(ours) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    names = set(members)
    assert {"ctx/src/deep/er/data.bin", "ctx/empty", "ctx/keep.log", "ctx/grüße.txt", "ctx/.dockerignore"} <= names
    assert not {"ctx/debug.log", "ctx/secret", "ctx/secret/key", "ctx/src/tmp"} & names
    assert members["ctx/run.sh"].mode & 0o777 == 0o750
    assert members["ctx/link"].issym() and members["ctx/link"].linkname == "src/main.c"
    assert members["ctx/src/deep/er/data.bin"].size == 200_000


def test_a_multi_platform_oci_export_is_buildctls_archive_and_imports_checked(
        daemon: Daemon, tmp_path: Path) -> None:
    """riscv64 and arm64 in one solve, SOURCE_DATE_EPOCH and rewrite-timestamp: the OCI archive
    received through the session is buildctl's byte for byte; `dockerfile.build` imports it into
    a layout (the index buildkitd named, every blob checked), and from nothing cached again the
    digest is the same."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nCOPY hello.txt /etc/hello-$TARGETARCH.txt\n")
    (context / "hello.txt").write_text("hello\n")
    solve = DockerfileSolve(context=context, dockerfile_dir=context, platforms=(RISCV64, ARM64),
                            source_date_epoch=1_700_000_000)
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    with Client(daemon.address, daemon.api) as client:
        with Session(client, dirs={"context": context, "dockerfile": context}, outputs={0: ours}) as session:
            answer = client.solve(exporter="oci", attrs=bk_dockerfile.OCI_EXPORTER_ATTRS, frontend="dockerfile.v0",
                                  frontend_attrs=solve.frontend_attrs(), session=session.id)
        _buildctl(daemon, "build", "--frontend", "dockerfile.v0", "--local", f"context={context}",
                  "--local", f"dockerfile={context}", "--opt", "platform=linux/riscv64,linux/arm64",
                  "--opt", "filename=Dockerfile", "--opt", "build-arg:SOURCE_DATE_EPOCH=1700000000",
                  "--output", f"type=oci,dest={theirs},rewrite-timestamp=true")
        assert ours.read_bytes() == theirs.read_bytes()
        steps: list[Step] = []
        layout = OciLayout(tmp_path / "store").ensure()
        _buildctl(daemon, "prune", "--all")
        exported = bk_dockerfile.build(client, solve, layout, progress=steps.append)
    assert exported.descriptor.digest == answer["containerimage.digest"]
    assert exported.descriptor.media_type == "application/vnd.oci.image.index.v1+json"
    index = layout.read_json(exported.descriptor.digest)
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"riscv64", "arm64"}
    for manifest in index["manifests"]:
        document = layout.read_json(manifest["digest"])
        for blob in [document["config"], *document["layers"]]:
            assert layout.check_blob(blob["digest"], blob["size"]) is None
    done = {s.name for s in steps if s.state == "done"}
    assert "[linux/riscv64 1/1] COPY hello.txt /etc/hello-riscv64.txt" in done
    assert any(name.startswith("exporting to oci image format") for name in done)


def test_an_archive_whose_blob_was_changed_is_refused_and_nothing_lands(daemon: Daemon, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("a\n")
    archive = tmp_path / "image.tar"
    _buildctl(daemon, "build", "--frontend", "dockerfile.v0", "--local", f"context={context}",
              "--local", f"dockerfile={context}", "--opt", "platform=linux/arm64",
              "--output", f"type=oci,dest={archive}")
    tampered = tmp_path / "tampered.tar"
    changed: list[str] = []
    with tarfile.open(archive) as source, tarfile.open(tampered, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data is not None and member.name.startswith("blobs/") and not data.startswith(b"{"):
                data = data[:-1] + bytes([data[-1] ^ 1])  # one bit of the layer (JSON left alone)
                changed.append(member.name)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    assert len(changed) == 1
    layout = OciLayout(tmp_path / "store").ensure()
    with pytest.raises(IntegrityError, match=r"does not match its digest.*nothing was stored"):
        import_archive(tampered, layout)
    assert layout.manifests() == []
    assert import_archive(archive, layout).digest.startswith("sha256:")


def test_build_failures_name_the_cause(daemon: Daemon, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /\n")
    solve = DockerfileSolve(context=context, dockerfile_dir=context, platforms=(ARM64,))
    with Client(daemon.address, daemon.api) as client:
        with pytest.raises(BuildKitError, match=r"missing\.txt"):
            bk_dockerfile.build(client, solve, OciLayout(tmp_path / "store").ensure())
        with pytest.raises(ConfigurationError, match="not a directory"):
            Session(client, dirs={"context": tmp_path / "nowhere"})
