"""Resolve a recipe's source to a local tree and a digest, and fetch what is remote.

- a local path: digest of the tree (sorted relative paths, exec bit, content), nothing copied;
- a git repository at a pinned commit: fetched into `.crossyard/cache/git`, exported with
  `git archive`; its identity is the commit, its SOURCE_DATE_EPOCH the commit time;
- an URL pinned by sha256: downloaded with httpx, streamed to a temp file, verified, then moved
  to `.crossyard/cache/downloads/<sha256>`. A mismatch keeps nothing;
- a Debian source package at an exact version: fetched from the machine's Debian mirror and
  verified against the suite's signed index, unpacked with Debian's patches (`debsource`); its
  identity is the version, and the .dsc's sha256 when the recipe pins it (`sha256`), which is
  the reproducible choice: Debian never reuses a version for other bytes, a pin also says so.

`patches` (workspace files) are applied in order with `patch -p1` to a copy of whatever the
source gives, kept in `.crossyard/cache/sources/patched-<digest>`; their sha256s join the
source's identity, so changing a patch changes every key built from it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError, CrossyardError, IntegrityError
from .fsutil import extract_tar
from .hashing import CHUNK, sha256_file, sha256_json
from .recipes import Recipe, Source

ALWAYS_EXCLUDED = (".git", ".crossyard", "__pycache__", ".hg", ".svn")
# Cargo's build directory: `target/` at the top of the tree, or any `target/` that cargo marked
# as its own (CACHEDIR.TAG, as cargo writes). Not every directory so named: Go packages are
# called `target` too (Kubernetes' vendored sigs.k8s.io/kustomize/pkg/target).
BUILD_DIR = "target"
CACHEDIR_TAG = "CACHEDIR.TAG"
# Which files a tree (and its digest) holds; raised when that changes, so that digests
# remembered across runs (a toolchain root's GOPATH) are taken again. 2: nested target/ kept.
TREE_RULES = 2


@dataclass(frozen=True, kw_only=True)
class ResolvedSource:
    """A source on local disk, ready to copy into a job directory."""

    tree: Path
    digest: str
    epoch: int | None  # from the git commit or debian/changelog, when there is one
    exclude: tuple[str, ...] = ()


def _excluded(rel: str, name: str, patterns: tuple[str, ...]) -> bool:
    return name in ALWAYS_EXCLUDED or any(
        fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns
    )


def _build_dir(rel: str, entry: os.DirEntry[str]) -> bool:
    if entry.name != BUILD_DIR or not entry.is_dir(follow_symlinks=False):
        return False
    return rel == BUILD_DIR or os.path.lexists(os.path.join(entry.path, CACHEDIR_TAG))


def iter_tree(root: Path, exclude: tuple[str, ...] = ()) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file and symlink under `root`, sorted. A FIFO,
    socket or device is a `ConfigurationError` naming it: reading a FIFO would wait forever,
    and none of them can be copied into a job or digested."""
    out: list[tuple[str, Path]] = []
    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                if _excluded(rel, entry.name, exclude) or _build_dir(rel, entry):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    out.append((rel, Path(entry.path)))
                else:
                    raise ConfigurationError(
                        f"{entry.path} is a {_special(entry.stat(follow_symlinks=False).st_mode)}, not a "
                        f"file; a source holds files, directories and symlinks: remove it, or add "
                        f"\"{rel}\" to [source] exclude"
                    )
    out.sort()
    return out


def _special(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def tree_digest(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over (path, kind, exec bit, content digest) of every file, in sorted order."""
    outer = hashlib.sha256()
    for rel, path in iter_tree(root, exclude):
        if path.is_symlink():
            outer.update(f"L {rel}\0{os.readlink(path)}\0".encode())
            continue
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                inner.update(chunk)
        executable = "x" if os.access(path, os.X_OK) else "-"
        outer.update(f"F {rel}\0{executable}\0{inner.hexdigest()}\0".encode())
    return "sha256:" + outer.hexdigest()


def copy_tree(source: ResolvedSource, destination: Path, *, reverse: bool = False) -> None:
    """Copy the source into a job directory, with normalized modes and without excluded files;
    `reverse`: last file first (on a file system that lists a directory in creation order, a
    tmpfs, the build then sees its directories in another order)."""
    destination.mkdir(parents=True, exist_ok=True)
    entries = list(iter_tree(source.tree, source.exclude))
    for rel, path in reversed(entries) if reverse else entries:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), target)
        else:
            shutil.copyfile(path, target)
            os.chmod(target, 0o755 if os.access(path, os.X_OK) else 0o644)


class SourceResolver:
    """Turns `Source`s into `ResolvedSource`s, memoizing, fetching into the cache dir.
    `mirror` names the Debian mirror (`crossyard.debian`); asked only for a Debian source that
    must be fetched, by default from the environment and apt's sources."""

    def __init__(self, cache_dir: Path, *, mirror: Callable[[], str] | None = None) -> None:
        self.cache_dir = cache_dir
        self._memo: dict[Source, ResolvedSource] = {}
        self._mirror = mirror

    def identity(self, recipe: Recipe) -> str:
        """The source digest without fetching anything remote (pins are their own identity)."""
        source = recipe.source
        if source is None:
            return "none"
        if source.path is not None:
            return self.resolve(recipe).digest  # the content, patched
        if source.git:
            base = f"git:{source.commit}:{source.subdir or ''}"
        elif source.debian:
            base = f"debian:{source.debian}={source.version}:{source.sha256 or ''}:{source.subdir or ''}"
        else:
            base = f"sha256:{source.sha256}:{source.subdir or ''}"
        if not source.patches:
            return base
        return f"{base}+patches:{sha256_json([sha256_file(p) for p in source.patches])}"

    def resolve(self, recipe: Recipe) -> ResolvedSource:
        source = recipe.source
        if source is None:
            raise ConfigurationError(f"{recipe.file}: recipe `{recipe.name}` has no [source]")
        if source not in self._memo:
            self._memo[source] = self._resolve(recipe, source)
        return self._memo[source]

    def _resolve(self, recipe: Recipe, source: Source) -> ResolvedSource:
        epoch: int | None = None
        if source.path is not None:
            tree = source.path
            if not tree.is_dir():
                raise ConfigurationError(f"{recipe.file}: [source] path {tree} does not exist")
        elif source.git:
            tree, epoch = self._fetch_git(recipe, source)
        elif source.debian:
            tree, epoch = self._fetch_debian(recipe, source)
        else:
            tree = self._fetch_url(recipe, source)
        if source.patches:
            tree = self._patched(recipe, source, tree)
        if source.subdir:
            # `..` is refused at load; a symlink in the tree must not lead out of it either.
            inner = (tree / source.subdir).resolve()
            outside = not inner.is_relative_to(tree.resolve())
            if outside or not inner.is_dir():
                raise ConfigurationError(
                    f"{recipe.file}: [source] subdir `{source.subdir}` is not a directory inside the source"
                    + (f" (it leads to {inner})" if outside else "")
                )
            tree = inner
        try:
            digest = tree_digest(tree, source.exclude)
        except ConfigurationError as error:
            raise ConfigurationError(f"{recipe.file}: [source]: {error}") from None
        return ResolvedSource(tree=tree, digest=digest, epoch=epoch, exclude=source.exclude)

    # -- patches ----------------------------------------------------------------------------
    def _patched(self, recipe: Recipe, source: Source, tree: Path) -> Path:
        """A copy of `tree` with the recipe's patches applied in order (`patch -p1`, no fuzz),
        cached by the tree's and the patches' digests. A fetched tree is named by its content
        (`git-<commit>`, `url-<sha256>`, a .dsc's sha256) and checked when it is fetched; a local
        one is digested."""
        patches = [sha256_file(p) for p in source.patches]
        base = tree_digest(tree, source.exclude) if source.path is not None else f"{source.kind}:{tree.name}"
        key = sha256_json({"tree": base, "exclude": list(source.exclude), "patches": patches}).partition(":")[2]
        target = self.cache_dir / "sources" / f"patched-{key}"
        if target.is_dir():
            return target
        tool = shutil.which("patch")
        if tool is None:
            raise ConfigurationError(f"{recipe.file}: [source] patches need `patch`: apt-get install patch")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".patch-"))
        try:
            copy_tree(ResolvedSource(tree=tree, digest="", epoch=None, exclude=source.exclude), staging / "tree")
            for patch in source.patches:
                # GNU patch refuses names with `..` or a leading `/` and does not follow symlinks
                # out of the tree; `--reject-file=-` leaves no .rej files behind.
                result = subprocess.run(
                    [tool, "-p1", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
                     "--reject-file=-", "-d", str(staging / "tree"), "-i", str(patch)],
                    capture_output=True, text=True, env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
                )
                if result.returncode != 0:
                    # patch's own words, without the patch text it quotes
                    said = "; ".join([line for line in (result.stdout + result.stderr).splitlines()
                                      if line.strip() and not line.startswith(("|", "-----"))][:8])
                    raise ConfigurationError(
                        f"{recipe.file}: [source] patches: {patch} does not apply to the {source.kind} "
                        f"source (patch -p1, no fuzz): {said}; refresh it against the tree"
                    )
            try:
                os.replace(staging / "tree", target)
            except OSError:
                if not target.is_dir():  # another run made it meanwhile: the same bytes
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    # -- debian -----------------------------------------------------------------------------
    def _fetch_debian(self, recipe: Recipe, source: Source) -> tuple[Path, int | None]:
        from .debian import mirror
        from .debsource import DebianArchive  # imported here: it builds on this module

        assert source.debian and source.suite and source.version
        archive = DebianArchive(self.cache_dir, self._mirror or (lambda: mirror({})))
        unpacked = archive.unpack(package=source.debian, suite=source.suite, version=source.version,
                                  pin=source.sha256, origin=str(recipe.file))
        return unpacked.tree, unpacked.epoch

    # -- git --------------------------------------------------------------------------------
    def _fetch_git(self, recipe: Recipe, source: Source) -> tuple[Path, int]:
        assert source.git and source.commit
        export = self.cache_dir / "sources" / f"git-{source.commit}"
        repo = self.cache_dir / "git" / hashlib.sha256(source.git.encode()).hexdigest()[:24]
        if not repo.exists():
            self._git(recipe, "init", "--bare", "-q", str(repo))
        if subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{source.commit}^{{commit}}"],
                          capture_output=True).returncode != 0:
            self._git(recipe, "-C", str(repo), "fetch", "-q", "--depth=1", source.git, source.commit,
                      fallback=("-C", str(repo), "fetch", "-q", source.git, "+refs/heads/*:refs/heads/*"))
        epoch = int(self._git(recipe, "-C", str(repo), "show", "-s", "--format=%ct", source.commit).strip())
        if not export.exists():
            staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".export-"))
            try:
                archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", source.commit],
                                         capture_output=True, check=True)
                with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
                    extract_tar(tar, staging)
                export.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging, export)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return export, epoch

    def _git(self, recipe: Recipe, *args: str, fallback: tuple[str, ...] | None = None) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True)
        if result.returncode != 0 and fallback is not None:
            result = subprocess.run(["git", *fallback], capture_output=True, text=True)
        if result.returncode != 0:
            raise ConfigurationError(
                f"{recipe.file}: [source] git {recipe.source.git if recipe.source else ''}: "
                f"`git {' '.join(args)}` failed: {result.stderr.strip()}"
            )
        return result.stdout

    # -- url --------------------------------------------------------------------------------
    def _fetch_url(self, recipe: Recipe, source: Source) -> Path:
        assert source.url and source.sha256
        export = self.cache_dir / "sources" / f"url-{source.sha256}"
        if export.exists():
            return export
        archive = self.download(recipe, source.url, source.sha256)
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".export-"))
        try:
            _extract(archive, staging, name=source.url)
            entries = list(staging.iterdir())
            tree = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
            export.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tree, export)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return export

    def download(self, recipe: Recipe, url: str, sha256: str) -> Path:
        """Fetch `url` into the download cache, keeping it only if its sha256 matches."""
        import httpx  # imported here: only remote sources need it

        target = self.cache_dir / "downloads" / sha256
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                if response.status_code != 200:
                    raise ConfigurationError(
                        f"{recipe.file}: [source] url {url} answered HTTP {response.status_code}"
                    )
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise ConfigurationError(
                    f"{recipe.file}: [source] url {url} has sha256 {digest.hexdigest()}, but the recipe "
                    f"pins {sha256}; nothing was cached. Check the URL, or update `sha256` if the new "
                    "content is trusted"
                )
            os.replace(tmp, target)
        except httpx.HTTPError as error:
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in str(error):
                hint = "; if the server's certificate comes from a private CA, point SSL_CERT_FILE at a bundle with it"
            raise ConfigurationError(f"{recipe.file}: [source] url {url}: download failed: {error}{hint}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return target


def _extract(archive: Path, destination: Path, *, name: str) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise IntegrityError(f"{name}: archive member {member!r} escapes the source tree")
            zf.extractall(destination)
        return
    try:
        with tarfile.open(archive) as tar:
            extract_tar(tar, destination)
    except tarfile.TarError as error:
        raise CrossyardError(f"{name}: cannot unpack the download: {error}") from None
