"""Debian source packages as recipe sources (`[source] debian = "…"`, `suite`, exact `version`).

What `apt-get source` does, checked the way apt checks it, from the machine's own Debian mirror
(`crossyard.debian`; the same mirror serves `deb` and `deb-src`):

1. `dists/<suite>/InRelease` is fetched and its OpenPGP signature verified with gpgv against
   Debian's archive keyring (package debian-archive-keyring); only the signed text is read, and
   it must name the suite asked for (a mirror cannot answer with another suite's index).
2. `main/source/Sources.xz` (or `.gz`) is fetched by the sha256 and size the signed text lists
   (by hash when the archive offers it, so a mirror updating meanwhile does not matter).
3. The package's stanza at exactly that version gives every file (the .dsc, its tarballs, any
   component tarballs such as docker.io's orig-buildkit) with sha256 and size; each is downloaded
   and checked. A mismatch keeps nothing. A mirror that lacks the .dsc (HTTP 404; seen for
   docker.io) gets it rebuilt from the same verified stanza: its fields and the other files'
   checksums are what the .dsc says, so dpkg-source checks the tarballs against the signed index
   (the .dsc's own OpenPGP signature is then not there to check; the InRelease's was).
4. `dpkg-source -x` unpacks it with Debian's patches applied (3.0 (quilt): the orig tarballs,
   the debian tarball, debian/patches/series in order), as Debian builds it.

The cache (`<cache>/debian/`): downloads by sha256 (`files/`, `indexes/`), re-checked whenever
they are used; what a verified stanza said (`verified/<suite>/<package>_<version>.json`), so a
warm build needs no network; unpacked trees by the .dsc's sha256 (`trees/`), with the tree digest
taken when they were unpacked, compared each time they are used. Anything found changed is
removed and the run stops (`IntegrityError`): the next run fetches it again.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from .errors import ConfigurationError, CrossyardError, IntegrityError
from .fsutil import atomic_write_text
from .hashing import CHUNK
from .sources import TREE_RULES, tree_digest

KEYRING: Final = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# The source indexes of `main`, best first (apt prefers xz too).
SOURCES_INDEXES: Final = ("main/source/Sources.xz", "main/source/Sources.gz")
FILE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~_-]*$")
DIRECTORY_RE: Final = re.compile(r"^pool/[A-Za-z0-9.+~_-]+(?:/[A-Za-z0-9.+~_-]+)*$")
STANDARD_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT_S: Final = 60


# What a rebuilt .dsc carries from the Sources stanza (as dpkg-source writes them), in order.
DSC_FIELDS: Final = (
    "Format", "Binary", "Architecture", "Version", "Maintainer", "Uploaders", "Homepage",
    "Standards-Version", "Build-Depends", "Build-Depends-Indep", "Build-Depends-Arch", "Package-List",
)


class MissingFromMirror(ConfigurationError):
    """The mirror has no such file (HTTP 404, or no such file in a file: mirror)."""


@dataclass(frozen=True, kw_only=True)
class PoolFile:
    name: str
    size: int
    sha256: str
    md5: str = ""  # the stanza's `Files`; a rebuilt .dsc needs it (not kept in the record)


@dataclass(frozen=True, kw_only=True)
class SourcePackage:
    """One stanza of a suite's Sources index: a source package at one version, and its files."""

    package: str
    version: str
    directory: str  # pool/main/k/kubernetes
    files: tuple[PoolFile, ...]
    # The stanza's DSC_FIELDS (lowercase names), read from the signed index; not in the record.
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def dsc(self) -> PoolFile:
        name = f"{self.package}_{self.version.partition(':')[2] or self.version}.dsc"
        for item in self.files:
            if item.name == name:
                return item
        raise IntegrityError(f"the Sources stanza of {self.package} {self.version} lists no {name}")

    def to_json(self) -> dict[str, Any]:
        return {"package": self.package, "version": self.version, "directory": self.directory,
                "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in self.files]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourcePackage:
        return cls(package=data["package"], version=data["version"], directory=data["directory"],
                   files=tuple(PoolFile(name=f["name"], size=f["size"], sha256=f["sha256"])
                               for f in data["files"]))

    def rebuilt_dsc(self) -> bytes:
        """The .dsc as the stanza describes it (unsigned): Source, its fields, and the other
        files with their sha256 and md5 — what dpkg-source reads from a .dsc."""
        fields = dict(self.fields)
        if "format" not in fields or any(not f.md5 for f in self.files):
            raise IntegrityError(
                f"the Sources stanza of {self.package} {self.version} lacks `Format` or `Files`: its "
                ".dsc cannot be rebuilt from it"
            )
        others = [f for f in self.files if f.name != self.dsc.name]
        lines = [f"Source: {self.package}"]
        for name in DSC_FIELDS:
            value = fields.get(name.lower())
            if value is not None:
                first, *rest = value.split("\n")
                lines.append(f"{name}: {first}".rstrip() + "".join(f"\n {line}" for line in rest))
        lines.append("Checksums-Sha256:" + "".join(f"\n {f.sha256} {f.size} {f.name}" for f in others))
        lines.append("Files:" + "".join(f"\n {f.md5} {f.size} {f.name}" for f in others))
        return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True, kw_only=True)
class Unpacked:
    tree: Path
    epoch: int | None  # the last debian/changelog entry's date, as Debian's own builds use


class DebianArchive:
    """Fetches, verifies and unpacks source packages from one mirror into `cache_dir/debian`.
    `mirror` is asked only when something must be fetched (a warm cache needs no network)."""

    def __init__(self, cache_dir: Path, mirror: Callable[[], str], *, keyring: Path = KEYRING) -> None:
        self.root = cache_dir / "debian"
        self._mirror = mirror
        self._mirror_url: str | None = None
        self.keyring = keyring

    @property
    def mirror(self) -> str:
        if self._mirror_url is None:
            self._mirror_url = self._mirror().rstrip("/")
        return self._mirror_url

    # -- the whole way ------------------------------------------------------------------------
    def unpack(self, *, package: str, suite: str, version: str, pin: str | None, origin: str) -> Unpacked:
        """The unpacked tree of `package` `version` from `suite`; `pin`: the .dsc's sha256 the
        recipe pins, checked against what the signed index says. `origin` starts messages."""
        stanza = self._verified(package=package, suite=suite, version=version, pin=pin, origin=origin)
        tree = self.root / "trees" / stanza.dsc.sha256
        # The digest taken at unpacking, under the current tree rules: a stamp from other rules
        # is not found, so that tree is unpacked afresh instead of called changed.
        stamp = tree.with_name(f"{tree.name}.digest{TREE_RULES}")
        if tree.is_dir() and stamp.is_file():
            recorded, digest = stamp.read_text().strip(), tree_digest(tree)
            if digest != recorded:
                shutil.rmtree(tree, ignore_errors=True)
                stamp.unlink(missing_ok=True)
                raise IntegrityError(
                    f"{origin}: the unpacked {package} {version} in {tree} changed since it was "
                    f"unpacked and verified (its files digest to {digest}, not {recorded}); it was "
                    "removed: run again to unpack it afresh"
                )
        else:
            shutil.rmtree(tree, ignore_errors=True)  # an unpack that did not finish
            self._unpack(stanza, tree, stamp, suite=suite, origin=origin)
        return Unpacked(tree=tree, epoch=changelog_epoch(tree))

    def _verified(self, *, package: str, suite: str, version: str, pin: str | None, origin: str) -> SourcePackage:
        """The stanza, from what an earlier run verified or else from the signed index."""
        record = self.root / "verified" / suite / f"{package}_{version}.json"
        stanza = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            stanza = SourcePackage.from_json(json.loads(record.read_text()))
        if stanza is None or (pin is not None and stanza.dsc.sha256 != pin):
            stanza = self.stanza(package=package, suite=suite, version=version, origin=origin)
            if pin is not None and stanza.dsc.sha256 != pin:
                raise ConfigurationError(
                    f"{origin}: [source] sha256 pins {package}'s .dsc as {pin}, but {suite}'s signed "
                    f"index at {self.mirror} lists {stanza.dsc.name} with sha256 {stanza.dsc.sha256}; "
                    "nothing was fetched. Check the pin (it is the .dsc's sha256, not a tarball's), or "
                    "update it if the archive's new .dsc is trusted"
                )
            atomic_write_text(record, json.dumps(stanza.to_json(), indent=1, sort_keys=True))
        return stanza

    def _unpack(self, stanza: SourcePackage, tree: Path, stamp: Path, *, suite: str, origin: str) -> None:
        dpkg_source = _tool("dpkg-source", "apt-get install dpkg-dev", origin)
        tree.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=tree.parent, prefix=".unpack-"))
        try:
            files = staging / "files"
            files.mkdir()
            for item in stanza.files:
                try:
                    cached = self.pool_file(stanza, item, origin=origin)
                except MissingFromMirror:
                    if item != stanza.dsc:
                        raise
                    # the record keeps no fields: the signed index gives them again
                    full = self.stanza(package=stanza.package, suite=suite, version=stanza.version,
                                       origin=origin)
                    (files / item.name).write_bytes(full.rebuilt_dsc())
                    continue
                try:
                    os.link(cached, files / item.name)
                except OSError:
                    shutil.copyfile(cached, files / item.name)
            result = subprocess.run(
                [dpkg_source, "--no-copy", "-x", stanza.dsc.name, str(staging / "tree")],
                cwd=files, env=_clean_env(staging), capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise CrossyardError(
                    f"{origin}: dpkg-source could not unpack {stanza.package} {stanza.version} "
                    f"(exit {result.returncode}):\n{_indent(result.stdout + result.stderr)}"
                )
            digest = tree_digest(staging / "tree")
            os.replace(staging / "tree", tree)
            atomic_write_text(stamp, digest + "\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- the signed index ---------------------------------------------------------------------
    def stanza(self, *, package: str, suite: str, version: str, origin: str) -> SourcePackage:
        """`package` at `version` in `suite`'s Sources index, verified from the InRelease down."""
        release = self.release(suite, origin=origin)
        index = self.sources_index(suite, release, origin=origin)
        opener = lzma.open if index.name.endswith(".xz") else gzip.open
        with opener(index.path, "rb") as handle:
            text = handle.read()
        found, versions = find_stanza(text, package, version)
        if found is None:
            have = f"it has {', '.join(versions)}" if versions else f"it has no source package `{package}`"
            raise ConfigurationError(
                f"{origin}: [source] debian: {suite} has no {package} {version} at {self.mirror} "
                f"(its signed Sources index: {have}); set `version` to one the suite has, or `suite` to "
                f"one that has {version}"
            )
        return found

    def release(self, suite: str, *, origin: str) -> str:
        """The signed text of `dists/<suite>/InRelease`, verified with the archive keyring."""
        gpgv = _tool("gpgv", "apt-get install gpgv", origin)
        if not self.keyring.is_file():
            raise ConfigurationError(
                f"{origin}: Debian's archive keyring {self.keyring} is missing: apt-get install "
                "debian-archive-keyring"
            )
        url = f"{self.mirror}/dists/{suite}/InRelease"
        data = self._get(url, origin=origin, missing=f"the mirror has no suite `{suite}`")
        with tempfile.TemporaryDirectory(prefix="crossyard-gpgv-") as home:
            signed = Path(home) / "InRelease"
            signed.write_bytes(data)
            result = subprocess.run(
                [gpgv, "--homedir", home, "--keyring", str(self.keyring.resolve()), "--output", "-",
                 str(signed)],
                capture_output=True, env=_clean_env(Path(home)),
            )
        if result.returncode != 0 or not result.stdout:
            raise IntegrityError(
                f"{origin}: {url}: the signature does not verify with Debian's archive keyring "
                f"{self.keyring}; nothing was used. gpgv said:\n{_indent(result.stderr.decode(errors='replace'))}"
            )
        text = result.stdout.decode(errors="replace")
        fields = _fields(text.split("\n\n", 1)[0])
        if suite not in (fields.get("suite"), fields.get("codename")):
            raise IntegrityError(
                f"{origin}: {url} is signed, but for suite {fields.get('suite')!r} "
                f"(codename {fields.get('codename')!r}), not {suite!r}; the mirror answered with another suite"
            )
        until = fields.get("valid-until")
        if until is not None:
            valid = email.utils.parsedate_to_datetime(until)
            if valid < datetime.datetime.now(datetime.UTC):
                raise IntegrityError(
                    f"{origin}: {url} expired at {until} (Valid-Until): the mirror serves a stale "
                    "index; use an up-to-date mirror ([debian] mirror in crossyard.toml)"
                )
        return text

    def sources_index(self, suite: str, release: str, *, origin: str) -> _Index:
        """The suite's Sources index, by the sha256 and size the signed release lists."""
        return self._index(suite, release, SOURCES_INDEXES, origin=origin, lacking=(
            "the mirror carries no sources for this suite; set [debian] mirror to one that does"))

    def packages_index(self, suite: str, release: str, architecture: str, *, origin: str) -> _Index:
        """The suite's Packages index of `architecture` (main), verified as the Sources one."""
        names = tuple(f"main/binary-{architecture}/Packages.{ext}" for ext in ("xz", "gz"))
        return self._index(suite, release, names, origin=origin, lacking=(
            f"the suite has no {architecture} packages at this mirror; use one that carries {architecture}"))

    def _index(self, suite: str, release: str, names: tuple[str, ...], *, origin: str, lacking: str) -> _Index:
        fields = _fields(release.split("\n\n", 1)[0])
        listed = _checksums(fields.get("sha256", ""))
        by_hash = fields.get("acquire-by-hash", "").lower() == "yes"
        for name in names:
            if name not in listed:
                continue
            sha256, size = listed[name]
            target = self.root / "indexes" / sha256
            directory = name.rsplit("/", 1)[0]
            urls = [f"{self.mirror}/dists/{suite}/{name}"]
            if by_hash:
                urls.insert(0, f"{self.mirror}/dists/{suite}/{directory}/by-hash/SHA256/{sha256}")
            self._fetch(urls, target, size=size, sha256=sha256, what=f"{suite}'s {name}", origin=origin)
            return _Index(name=name, path=target)
        raise ConfigurationError(
            f"{origin}: {self.mirror}/dists/{suite}/InRelease lists no {' or '.join(names)}: {lacking}"
        )

    def binary_package(self, *, package: str, suite: str, architecture: str, origin: str,
                       version: str | None = None) -> BinaryPackage:
        """`package` for `architecture` as `suite` has it (at `version`, when given: a suite moves
        on): its .deb in the cache, checked against the signed Packages index (InRelease → index
        sha256 → .deb sha256)."""
        release = self.release(suite, origin=origin)
        index = self.packages_index(suite, release, architecture, origin=origin)
        opener = lzma.open if index.name.endswith(".xz") else gzip.open
        with opener(index.path, "rb") as handle:
            text = handle.read()
        fields = _binary_stanza(text, package)
        if fields is not None and version is not None and fields.get("version") != version:
            raise ConfigurationError(
                f"{origin}: {suite} has {package} {fields.get('version')} for {architecture}, not {version}; "
                "pin the version the suite has now"
            )
        if fields is None:
            raise ConfigurationError(
                f"{origin}: {suite} has no binary package `{package}` for {architecture} at {self.mirror}; "
                "check the name (`apt-cache show NAME` on a Debian machine)"
            )
        filename, sha256 = fields.get("filename", ""), fields.get("sha256", "")
        directory, _, name = filename.rpartition("/")
        if (not DIRECTORY_RE.match(directory) or ".." in directory.split("/") or not FILE_NAME_RE.match(name)
                or not re.fullmatch(r"[0-9a-f]{64}", sha256) or not fields.get("size", "").isdigit()):
            raise IntegrityError(f"{origin}: the Packages stanza of {package} ({architecture}) names "
                                 f"{filename!r} with sha256 {sha256!r}: not a plain pool file")
        target = self._cached(filename, size=int(fields["size"]), sha256=sha256, what=name, origin=origin)
        return BinaryPackage(package=package, version=fields.get("version", ""), architecture=architecture,
                             sha256=sha256, path=target)

    # -- files --------------------------------------------------------------------------------
    def pool_file(self, stanza: SourcePackage, item: PoolFile, *, origin: str) -> Path:
        """One of the package's files in the cache, checked against the verified stanza."""
        return self._cached(f"{stanza.directory}/{item.name}", size=item.size, sha256=item.sha256,
                            what=item.name, origin=origin)

    def _cached(self, pool_path: str, *, size: int, sha256: str, what: str, origin: str) -> Path:
        """The pool file at `pool_path` in the cache by its sha256, fetched if missing."""
        target = self.root / "files" / sha256
        # The mirror is asked for only when the file must be fetched.
        urls = [] if target.exists() else [f"{self.mirror}/{pool_path}"]
        self._fetch(urls, target, size=size, sha256=sha256, what=what, origin=origin)
        return target

    def _fetch(self, urls: list[str], target: Path, *, size: int, sha256: str, what: str, origin: str) -> None:
        """`target` holds the bytes of digest `sha256`: a cached copy is checked (and removed if it
        is not those bytes), else each URL is tried until one answers; the download is kept only
        if it matches."""
        if target.exists():
            actual, length = _file_digest(target)
            if (actual, length) != (sha256, size):
                target.unlink(missing_ok=True)
                raise IntegrityError(
                    f"{origin}: the cached {what} ({target}) is {length} bytes with sha256 {actual}, "
                    f"but the signed index says {size} bytes with sha256 {sha256}; it was removed: run "
                    "again to fetch it afresh"
                )
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as out:
                url = self._download(urls, out, limit=size, what=what, origin=origin)
            actual, length = _file_digest(Path(tmp))
            if (actual, length) != (sha256, size):
                raise IntegrityError(
                    f"{origin}: {url} is {length} bytes with sha256 {actual}, but the signed index says "
                    f"{size} bytes with sha256 {sha256}; nothing was kept"
                )
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _download(self, urls: list[str], out: Any, *, limit: int, what: str, origin: str) -> str:
        """Stream the first URL that exists into `out` (at most `limit` + 1 bytes: more is a
        mismatch anyway); the URL it came from."""
        import httpx  # imported here: only remote sources need it

        for index, url in enumerate(urls):
            last = index == len(urls) - 1
            if url.startswith("file:"):
                path = Path(urlsplit(url).path)
                if not path.is_file() and not last:
                    continue
                if not path.exists():
                    raise MissingFromMirror(f"{origin}: {url} does not exist; the mirror lacks {what}")
                try:
                    with path.open("rb") as handle:
                        out.write(handle.read(limit + 1))
                except OSError as error:
                    raise ConfigurationError(f"{origin}: {what}: cannot read {path}: {error.strerror}") from None
                return url
            try:
                with httpx.stream("GET", url, follow_redirects=True, timeout=TIMEOUT_S) as response:
                    if response.status_code == 404 and not last:
                        continue
                    if response.status_code == 404:
                        raise MissingFromMirror(
                            f"{origin}: {url} answered HTTP 404; the mirror lacks {what}: set [debian] "
                            "mirror in crossyard.toml (or CROSSYARD_DEBIAN_MIRROR) to a full one"
                        )
                    if response.status_code != 200:
                        raise ConfigurationError(
                            f"{origin}: {url} answered HTTP {response.status_code}; the mirror lacks {what}: "
                            "set [debian] mirror in crossyard.toml (or CROSSYARD_DEBIAN_MIRROR) to a full one"
                        )
                    written = 0
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        if written > limit:
                            break
            except httpx.HTTPError as error:
                raise ConfigurationError(f"{origin}: {url}: download failed: {error}") from None
            return url
        raise AssertionError("no URL to fetch")  # callers always pass one

    def _get(self, url: str, *, origin: str, missing: str) -> bytes:
        """A small file (an InRelease); HTTP 404 is `missing`."""
        import httpx

        if url.startswith("file:"):
            try:
                return Path(urlsplit(url).path).read_bytes()
            except FileNotFoundError:
                raise ConfigurationError(f"{origin}: {url} does not exist: {missing}") from None
        try:
            response = httpx.get(url, follow_redirects=True, timeout=TIMEOUT_S)
        except httpx.HTTPError as error:
            raise ConfigurationError(f"{origin}: {url}: download failed: {error}") from None
        if response.status_code == 404:
            raise ConfigurationError(f"{origin}: {url} does not exist: {missing}")
        if response.status_code != 200:
            raise ConfigurationError(f"{origin}: {url} answered HTTP {response.status_code}")
        return response.content


@dataclass(frozen=True, kw_only=True)
class BinaryPackage:
    """A binary package's .deb, verified, in the cache."""

    package: str
    version: str
    architecture: str
    sha256: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class _Index:
    name: str  # main/source/Sources.xz
    path: Path


def _package_stanzas(text: bytes, package: str) -> Iterator[dict[str, str]]:
    """The fields of every stanza of `package` in a Sources or Packages index."""
    needle = f"Package: {package}\n".encode()
    start = 0
    while (at := text.find(needle, start)) != -1:
        start = at + len(needle)
        if at and text[at - 1:at] != b"\n":
            continue  # inside another field
        end = text.find(b"\n\n", at)
        yield _fields(text[at:end if end != -1 else len(text)].decode(errors="replace"))


def _binary_stanza(text: bytes, package: str) -> dict[str, str] | None:
    """The fields of `package`'s stanza in a Packages index (its newest, if it lists several)."""
    found: dict[str, str] | None = None
    for fields in _package_stanzas(text, package):
        if found is None or _newer(fields.get("version", ""), found.get("version", "")):
            found = fields
    return found


def _newer(a: str, b: str) -> bool:
    """Whether Debian version `a` sorts after `b` (dpkg's own comparison)."""
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], capture_output=True).returncode == 0


def find_stanza(text: bytes, package: str, version: str) -> tuple[SourcePackage | None, list[str]]:
    """The stanza of `package` at `version` in a Sources index, and every version listed."""
    versions: list[str] = []
    for fields in _package_stanzas(text, package):
        versions.append(fields.get("version", "?"))
        if fields.get("version") != version:
            continue
        directory = fields.get("directory", "")
        md5 = _checksums(fields.get("files", ""), digest_re=r"[0-9a-f]{32}")
        files = tuple(PoolFile(name=name, size=size, sha256=sha, md5=md5.get(name, ("", 0))[0])
                      for name, (sha, size) in _checksums(fields.get("checksums-sha256", "")).items())
        if not DIRECTORY_RE.match(directory) or ".." in directory.split("/") or not files or any(
                not FILE_NAME_RE.match(f.name) for f in files):
            raise IntegrityError(
                f"the Sources stanza of {package} {version} names a directory or file that is not a "
                f"plain pool path ({directory!r}, {[f.name for f in files]})"
            )
        kept = tuple((k.lower(), fields[k.lower()]) for k in DSC_FIELDS if k.lower() in fields)
        return SourcePackage(package=package, version=version, directory=directory, files=files,
                             fields=kept), versions
    return None, versions


def changelog_epoch(tree: Path) -> int | None:
    """The date of debian/changelog's latest entry (its first trailer line), as seconds."""
    try:
        with (tree / "debian" / "changelog").open(errors="replace") as handle:
            for line in handle:
                if line.startswith(" -- ") and "  " in line[4:]:
                    date = line[4:].rstrip("\n").split("  ", 1)[1]
                    return int(email.utils.parsedate_to_datetime(date).timestamp())
    except (OSError, ValueError, TypeError):
        return None
    return None


def _fields(paragraph: str) -> dict[str, str]:
    """One deb822 paragraph: lowercase keys; continuation lines joined with newlines."""
    fields: dict[str, str] = {}
    key = ""
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()
    return fields


def _checksums(value: str, *, digest_re: str = r"[0-9a-f]{64}") -> dict[str, tuple[str, int]]:
    """`<digest> <size> <name>` lines → name → (digest, size)."""
    out: dict[str, tuple[str, int]] = {}
    for line in value.splitlines():
        parts = line.split()
        if len(parts) == 3 and re.fullmatch(digest_re, parts[0]) and parts[1].isdigit():
            out[parts[2]] = (parts[0], int(parts[1]))
    return out


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    length = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def _tool(name: str, install: str, origin: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{origin}: [source] debian needs `{name}`, which is not installed: {install}")
    return found


def _clean_env(home: Path) -> dict[str, str]:
    """gpgv and dpkg-source see a private HOME/GNUPGHOME, a fixed locale and zone, nothing else."""
    return {"PATH": STANDARD_PATH, "HOME": str(home), "GNUPGHOME": str(home), "LC_ALL": "C.UTF-8",
            "TZ": "UTC"}


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-20:])
