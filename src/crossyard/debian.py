"""Which Debian mirror this machine uses, for the Debian roots toolchains are prepared from.

The host name of a mirror is the machine's business, never the repository's: the answer comes
from `CROSSYARD_DEBIAN_MIRROR`, else `[debian] mirror` in crossyard.toml, else apt's own sources
(`/etc/apt/sources.list`, `sources.list.d/*.list` one-line entries, `*.sources` deb822 stanzas).

An apt source is taken for Debian's main archive when it is an enabled `deb` entry for a Debian
suite (a release codename or alias, or its -updates/-backports/-proposed-updates; never
-security, which is a different archive with a different layout) with the `main` component, and:
- if apt has fetched its Release file (/var/lib/apt/lists), that file says `Origin: Debian`
  (the archive's own word, decisive either way: a third-party repository reusing `bookworm main`
  is refused, a mirror under any name is accepted);
- otherwise, if the entry names a `Signed-By` keyring, it is Debian's archive keyring.
Sources whose Release file confirms Debian come first; within a rank, apt's reading order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from .config import config_table, read_config
from .errors import ConfigurationError, check_keys
from .workspace import Workspace

ENV: Final = "CROSSYARD_DEBIAN_MIRROR"
DEBIAN_KEYS: Final = ("mirror",)
APT_DIR: Final = Path("/etc/apt")
LISTS_DIR: Final = Path("/var/lib/apt/lists")

# Debian's release codenames (buster onwards, the next two included) and the suite aliases.
CODENAMES: Final = frozenset({
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable", "experimental",
    "rc-buggy",
})
POCKETS: Final = ("", "-updates", "-backports", "-backports-sloppy", "-proposed-updates")
FIX: Final = (f"set `[debian] mirror = \"http://HOST/debian\"` in crossyard.toml or the "
              f"environment variable {ENV}=http://HOST/debian")


@dataclass(frozen=True, kw_only=True)
class AptSource:
    """One (URI, suite) an apt source names."""

    types: tuple[str, ...]
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None
    enabled: bool = True


def is_debian_suite(suite: str) -> bool:
    return any(suite == name + pocket for name in CODENAMES for pocket in POCKETS)


def _one_line_entries(text: str) -> Iterator[AptSource]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        options: dict[str, str] = {}
        rest = rest.strip()
        if rest.startswith("["):
            inside, closed, rest = rest[1:].partition("]")
            if not closed:
                continue  # apt itself rejects the line
            for option in inside.split():
                key, _, value = option.partition("=")
                options[key.rstrip("+-").lower()] = value
        words = rest.split()
        if len(words) < 2:
            continue
        yield AptSource(types=(kind,), uri=words[0], suite=words[1],
                        components=tuple(words[2:]), signed_by=options.get("signed-by"))


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs: `Key: value`, continuation lines indented, `#` lines are comments."""
    fields: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()


def _deb822_entries(text: str) -> Iterator[AptSource]:
    for fields in _stanzas(text):
        enabled = fields.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield AptSource(
                    types=tuple(fields.get("types", "").split()), uri=uri, suite=suite,
                    components=tuple(fields.get("components", "").split()),
                    signed_by=fields.get("signed-by"), enabled=enabled,
                )


def read_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every source apt reads, in apt's order: sources.list, then sources.list.d by name."""
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    found: list[AptSource] = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            continue
        except OSError as error:
            raise ConfigurationError(f"{path}: cannot read apt sources ({error.strerror})") from None
        found.extend(_deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text))
    return found


def _list_name(uri: str, suite: str) -> str:
    """apt's file name for a source's Release file in /var/lib/apt/lists (URItoFileName: no
    scheme or credentials, these characters %-quoted, then every / turned into _)."""
    parts = urlsplit(uri)
    rest = parts.netloc.rpartition("@")[2] + parts.path.rstrip("/") + f"/dists/{suite}"
    quoted = "".join(
        f"%{ord(c):02x}" if c in '\\|{}[]<>"^~_=!@#$%&*' or not " " < c < "\x7f" else c for c in rest
    )
    return quoted.replace("/", "_")


def release_origin(source: AptSource, lists_dir: Path = LISTS_DIR) -> str | None:
    """`Origin:` of the Release file apt fetched for this source, or None if it has none."""
    stem = _list_name(source.uri, source.suite)
    for name in ("InRelease", "Release"):
        try:
            text = (lists_dir / f"{stem}_{name}").read_text(errors="replace")
        except OSError:
            continue
        match = re.search(r"^Origin:\s*(.+?)\s*$", text, re.MULTILINE)
        return match.group(1) if match else ""
    return None


def _rank(source: AptSource, lists_dir: Path) -> int | None:
    """0: the archive says it is Debian; 1: looks like Debian; None: not Debian's main archive."""
    if not source.enabled or "deb" not in source.types or "main" not in source.components:
        return None
    if not is_debian_suite(source.suite) or source.uri.startswith("cdrom:"):
        return None
    origin = release_origin(source, lists_dir)
    if origin is not None:
        return 0 if origin == "Debian" else None
    if source.signed_by is not None and "debian-archive-keyring" not in source.signed_by:
        return None
    return 1


def check_mirror(value: object, where: str) -> str:
    """A mirror URL as a user gave it: http(s)://HOST/PATH or file:/PATH, without spaces."""
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme == "file":
        valid = bool(parts.path)
    else:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    if not valid or any(c.isspace() for c in text):
        raise ConfigurationError(f"{where}: {value!r} is not a Debian mirror URL; {FIX}")
    return text.rstrip("/")


def mirror(config: Mapping[str, Any], *, environ: Mapping[str, str] = os.environ,
           config_file: Path | str = "crossyard.toml", apt_dir: Path = APT_DIR,
           lists_dir: Path = LISTS_DIR) -> str:
    """The Debian mirror to prepare roots from: `ENV` from `environ` (an empty one counts as
    unset), `[debian] mirror` of `config` (a read crossyard.toml), then apt's sources."""
    if environ.get(ENV):
        return check_mirror(environ[ENV], ENV)
    section = config_table(config, "debian", file=config_file)
    check_keys(section, DEBIAN_KEYS, where="[debian]", file=config_file)
    if "mirror" in section:
        return check_mirror(section["mirror"], f"{config_file}: [debian] mirror")
    ranked = sorted(
        ((rank, index, source) for index, source in enumerate(read_sources(apt_dir))
         if (rank := _rank(source, lists_dir)) is not None),
        key=lambda item: item[:2],
    )
    if not ranked:
        raise ConfigurationError(
            f"no Debian archive among apt's sources in {apt_dir} (sources.list, sources.list.d/): "
            f"{FIX}"
        )
    return ranked[0][2].uri.rstrip("/")


def workspace_mirror(workspace: Workspace, *, environ: Mapping[str, str] = os.environ) -> str:
    """`mirror` with the workspace's crossyard.toml as its configuration."""
    return mirror(read_config(workspace), environ=environ, config_file=workspace.config_path)
