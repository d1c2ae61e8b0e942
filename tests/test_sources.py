from __future__ import annotations

import hashlib
import http.server
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_tool, run_cli
from crossyard.certs import create_ca, issue_leaf
from crossyard.errors import ConfigurationError
from crossyard.recipes import load_recipe
from crossyard.sources import SourceResolver, iter_tree, tree_digest
from helpers.https import serve_https


def test_tree_digest_tracks_content_names_and_modes(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("int a;\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.c").write_text("int b;\n")
    first = tree_digest(tmp_path)
    assert tree_digest(tmp_path) == first
    (tmp_path / ".git").mkdir()  # never part of a source
    (tmp_path / ".git" / "HEAD").write_text("x")
    assert tree_digest(tmp_path) == first
    (tmp_path / "sub" / "b.c").chmod(0o755)
    assert tree_digest(tmp_path) != first
    (tmp_path / "sub" / "b.c").chmod(0o644)
    (tmp_path / "sub" / "b.c").write_text("int c;\n")
    assert tree_digest(tmp_path) != first


def tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b'int main(void){return 0;}\n'
        info = tarfile.TarInfo("pkg-1.0/main.c")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """An HTTPS server for 127.0.0.1 whose certificate comes from a private CA, which this
    process and the CLI it runs trust through SSL_CERT_FILE (as a user with a mirror would)."""
    body = tarball()
    tls = tmp_path / "tls"
    tls.mkdir()
    ca = create_ca(tls, permitted_ips=("127.0.0.0/8",))
    leaf = issue_leaf(ca, tls, names=("127.0.0.1",))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve_https(Handler, leaf.cert, leaf.key) as url:
        yield f"{url}/pkg-1.0.tar.gz", body


def url_recipe(tmp_path: Path, url: str, sha: str) -> Path:
    path = tmp_path / "recipes" / "pkg.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'name = "pkg"\nkind = "c"\n[source]\nurl = "{url}"\nsha256 = "{sha}"\n[c]\nsources = ["main.c"]\n')
    return path


def test_url_source_verified_and_cached(tmp_path: Path, http_server: tuple[str, bytes]) -> None:
    url, body = http_server
    sha = hashlib.sha256(body).hexdigest()
    resolver = SourceResolver(tmp_path / "cache")
    resolved = resolver.resolve(load_recipe(url_recipe(tmp_path, url, sha)))
    assert (resolved.tree / "main.c").read_text().startswith("int main")
    assert (tmp_path / "cache" / "downloads" / sha).read_bytes() == body
    # and through the CLI: a real cross build of the downloaded tree
    (tmp_path / "crossyard.toml").write_text("")
    result = run_cli("-C", str(tmp_path), "build", "--json", "--platform", "linux/riscv64")
    assert result.returncode == 0, result.stderr
    assert '"built": 1' in result.stdout


def test_url_over_untrusted_tls_names_the_fix(tmp_path: Path, http_server: tuple[str, bytes],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, body = http_server
    monkeypatch.delenv("SSL_CERT_FILE")  # the server's CA is not in the default bundle
    url_recipe(tmp_path, url, hashlib.sha256(body).hexdigest())
    (tmp_path / "crossyard.toml").write_text("")
    result = run_cli("-C", str(tmp_path), "build", "--platform", "linux/riscv64")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "pkg.toml" in result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr and "SSL_CERT_FILE" in result.stderr
    assert not (tmp_path / ".crossyard" / "cache" / "downloads").exists() or not any(
        (tmp_path / ".crossyard" / "cache" / "downloads").iterdir())


def test_url_sha_mismatch_caches_nothing(tmp_path: Path, http_server: tuple[str, bytes]) -> None:
    url, _ = http_server
    wrong = "0" * 64
    resolver = SourceResolver(tmp_path / "cache")
    with pytest.raises(ConfigurationError, match="nothing was cached"):
        resolver.resolve(load_recipe(url_recipe(tmp_path, url, wrong)))
    downloads = tmp_path / "cache" / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []
    # and through the CLI: exit 2, one message naming the recipe file
    (tmp_path / "crossyard.toml").write_text("")
    result = run_cli("-C", str(tmp_path), "build", "--platform", "linux/riscv64")
    assert result.returncode == 2, result.stderr
    assert "pkg.toml" in result.stderr and "sha256" in result.stderr and "Traceback" not in result.stderr


def test_git_source_at_pinned_commit(tmp_path: Path) -> None:
    require_tool("git", "apt-get install git")
    repo = tmp_path / "upstream"
    repo.mkdir()
    env = {"GIT_AUTHOR_DATE": "@1700000000 +0000", "GIT_COMMITTER_DATE": "@1700000000 +0000"}
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "main.c").write_text("int main(void){return 0;}\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True, env={**env, "PATH": "/usr/bin:/bin"})
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / "main.c").write_text("changed after the pin\n")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    path = tmp_path / "r.toml"
    path.write_text(f'name = "g"\nkind = "c"\n[source]\ngit = "file://{repo}"\ncommit = "{commit}"\n')
    resolved = SourceResolver(tmp_path / "cache").resolve(load_recipe(path))
    assert (resolved.tree / "main.c").read_text() == "int main(void){return 0;}\n"
    assert resolved.epoch == 1700000000


def test_special_files_are_named_not_read(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("int a;\n")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ConfigurationError, match=r"pipe is a FIFO \(named pipe\), not a file"):
        tree_digest(tmp_path)  # without the check: blocks forever opening the FIFO
    assert [rel for rel, _ in iter_tree(tmp_path, ("pipe",))] == ["a.c"]


PATCH = "--- a/main.c\n+++ b/main.c\n@@ -1 +1 @@\n-int main(void){{return {old};}}\n+int main(void){{return {new};}}\n"


def test_patches_apply_in_order_and_their_contents_key_the_source(tmp_path: Path) -> None:
    require_tool("patch", "apt-get install patch")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void){return 1;}\n")
    (tmp_path / "one.patch").write_text(PATCH.format(old=1, new=2))
    (tmp_path / "two.patch").write_text(PATCH.format(old=2, new=3))
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "p"\nkind = "c"\n[source]\npath = "src"\npatches = ["one.patch", "two.patch"]\n')
    resolver = SourceResolver(tmp_path / "cache")
    resolved = resolver.resolve(load_recipe(recipe))
    assert (resolved.tree / "main.c").read_text() == "int main(void){return 3;}\n"
    assert (tmp_path / "src" / "main.c").read_text() == "int main(void){return 1;}\n"  # a copy was patched
    assert resolver.identity(load_recipe(recipe)) == resolved.digest == tree_digest(resolved.tree)
    (tmp_path / "two.patch").write_text(PATCH.format(old=2, new=4))
    again = SourceResolver(tmp_path / "cache").resolve(load_recipe(recipe))
    assert (again.tree / "main.c").read_text() == "int main(void){return 4;}\n" and again.digest != resolved.digest


def test_a_pinned_sources_identity_holds_its_patches_digests(tmp_path: Path) -> None:
    """Identity without fetching: a git commit (or a Debian version) plus the patches' sha256s."""
    (tmp_path / "fix.patch").write_text(PATCH.format(old=1, new=2))
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "p"\nkind = "c"\n[source]\ngit = "https://example.invalid/x.git"\n'
                      f'commit = "{"a" * 40}"\npatches = ["fix.patch"]\n')
    resolver = SourceResolver(tmp_path / "cache")
    first = resolver.identity(load_recipe(recipe))
    assert first.startswith(f"git:{'a' * 40}:+patches:sha256:")
    (tmp_path / "fix.patch").write_text(PATCH.format(old=1, new=3))
    assert resolver.identity(load_recipe(recipe)) != first
    assert not (tmp_path / "cache").exists()  # nothing fetched


def test_only_cargos_target_directories_are_left_out(tmp_path: Path) -> None:
    """`target/` at the top (cargo's build directory) and any `target/` cargo tagged as its cache
    are not source; a Go package named `target` deeper in the tree is (Kubernetes 1.20's vendored
    kustomize has one, and kubeadm and kubectl import it)."""
    for rel in ("main.go", "target/debug/app", "crate/target/CACHEDIR.TAG", "crate/target/release/app",
                "vendor/sigs.k8s.io/kustomize/pkg/target/kusttarget.go", "crate/src/target"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert [rel for rel, _ in iter_tree(tmp_path)] == [
        "crate/src/target", "main.go", "vendor/sigs.k8s.io/kustomize/pkg/target/kusttarget.go"]
