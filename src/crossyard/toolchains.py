"""Toolchains: their definitions (`toolchains/*.toml`) and what probing finds on this machine.

A definition says which recipe kind a toolchain builds, the command (templated per platform:
`{gnu_triplet}-gcc`), which platforms it can target, how to print its exact version, and what a
user would run to get it (`apt-get install …`, `rustup target add …`, or `crossyard toolchains
prepare NAME` for a toolchain that lives in a Debian root run under bubblewrap).

Probing runs the version commands once and caches the answers by the binaries' (path, size,
mtime), so planning a no-op build costs a few `stat`s, not a dozen process starts.

What the version commands print is read into a normalized identity (`identity`): compiler, exact
release and, where the compiler binary decides it, target — `go1.24.4`, `gcc 12.2.0
riscv64-linux-gnu`, `rustc 1.85.1`, `zig 0.14.0` — and nothing of the build host, the strategy,
the definition's name or its root. That identity is the input key's toolchain part, so an amd64
cross build and a native riscv64 build of the same inputs with the same release share a key. A
definition's `family` says how to read its output (default: by kind); output that family cannot
read makes the toolchain unavailable, with a reason naming the definition's file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Final

from .errors import ConfigurationError, check_keys, suggest
from .fsutil import atomic_write_text
from .platforms import PLATFORMS, Platform, parse_platforms
from .recipes import read_toml
from .sources import TREE_RULES, tree_digest
from .templates import check, expand

DEF_KEYS: Final = (
    "kind", "command", "native_command", "version", "targets", "root", "root_platform",
    "prepare", "requires", "target_probe", "linker", "sysroot", "install", "env", "priority",
    "description", "family", "gopath",
)
DEFAULT_ROOTS: Final = "/var/cache/crossyard/roots"
# What `ToolchainDef.render` fills in; `prepare` alone also gets {mirror} (crossyard.debian),
# and `root` only {roots} (it is resolved before any platform is known).
PLACEHOLDERS: Final = (
    "gnu_triplet", "rust_triple", "goarch", "debian_arch", "qemu_arch", "uname_m", "architecture",
    "root", "roots", "name", "command",
)


def roots_dir() -> Path:
    return Path(os.environ.get("CROSSYARD_ROOTS", DEFAULT_ROOTS))


@dataclass(frozen=True, kw_only=True)
class ToolchainDef:
    name: str
    kind: str
    file: Path
    command: str
    native_command: str | None = None
    version: tuple[tuple[str, ...], ...] = ()
    targets: tuple[Platform, ...] = tuple(PLATFORMS.values())
    root: str | None = None
    root_platform: Platform | None = None
    prepare: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    target_probe: tuple[str, ...] = ()
    linker: str | None = None
    sysroot: str = "/usr/{gnu_triplet}"
    install: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    priority: int = 50
    description: str = ""
    family: str  # how its version output reads into an identity: a key of FAMILIES
    # Go library packages the toolchain provides for GOPATH-mode builds (Debian's golang-*-dev
    # install into /usr/share/gocode), as the job sees it: inside the root, if it has one.
    gopath: str | None = None

    def root_path(self, roots: str | None = None) -> Path | None:
        """The root's directory under `roots` (this machine's roots directory by default; an SSH
        node's own when probing it)."""
        if self.root is None:
            return None
        return Path(expand(self.root, {"roots": roots or str(roots_dir())}))

    def render(self, template: str, platform: Platform, *, command: str = "", mirror: str = "",
               roots: str | None = None) -> str:
        """`template` (checked at load: `_check_templates`) for `platform`; {root} and {roots}
        under `roots` when given (an SSH node's roots directory), else this machine's."""
        root = self.root_path(roots)
        return expand(template, {
            "gnu_triplet": platform.gnu_triplet,
            "rust_triple": platform.rust_triple,
            "goarch": platform.goarch,
            "debian_arch": platform.debian_arch,
            "qemu_arch": platform.qemu_arch,
            "uname_m": platform.uname_m,
            "architecture": platform.architecture,
            "root": str(root) if root else "",
            "roots": roots or str(roots_dir()),
            "name": self.name,
            "command": command,
            "mirror": mirror,
        })


@dataclass(frozen=True, kw_only=True)
class ToolchainTarget:
    """One toolchain probed for one target platform on this machine."""

    name: str
    kind: str
    platform: Platform
    strategy: str  # cross | native | emulated
    available: bool
    command: str = ""
    version: str = ""  # what the version commands printed (first lines), for people
    # Compiler, exact release, target (`go1.24.4`): the input key's toolchain part, never the
    # host, the strategy or the definition's name. Set whenever `available`.
    identity: str = ""
    root: Path | None = None
    sysroot: str = ""
    linker: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    fix: str = ""
    gopath: str = ""  # the definition's `gopath`, when it has one
    gopath_digest: str = ""  # the tree digest of what is there: a GOPATH build's input
    # sha256 of the root's installed packages and versions: a cgo build links the root's C
    # libraries (libc.a, libseccomp.a), which the compiler's identity does not name
    root_packages: str = ""

    def __post_init__(self) -> None:
        if self.available and not self.identity:
            raise ValueError(f"toolchain {self.name} for {self.platform} is available without an identity")

    @property
    def identity_text(self) -> str:
        """What the lock, store annotations and provenance record (the key's part, as text)."""
        return self.identity


# -- identity: version output → compiler, release, target ----------------------------------------

# `go version go1.24.4 linux/amd64`: the last word is the host Go runs on, never part of it.
_GO = re.compile(r"go version (?P<release>(?:devel )?go\S.*?) [a-z0-9]+/[a-z0-9]+")
_GO_BARE = re.compile(r"go\d\S*")  # `go env GOVERSION`
_DOTTED = re.compile(r"\d+(?:\.\d+)+")
_TRIPLET = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+){1,3}")
_RUSTC = re.compile(r"rustc (?P<release>\d+\.\d+\.\d+\S*)(?P<build> \([0-9a-f]+ [0-9-]+\))?.*")
_CARGO = re.compile(r"cargo (?P<release>\d+\.\d+\.\d+\S*).*")
_ZIG = re.compile(r"\d+\.\d+\.\d+\S*")
_QEMU = re.compile(r"qemu-\S+ version (?P<release>\d+\.\d+\.\d+\S*).*")


def _go(lines: Sequence[str]) -> str:
    if len(lines) == 1:
        if match := _GO.fullmatch(lines[0]):
            return match["release"]  # with its GOEXPERIMENT (` X:…`) if any: that changes code
        if _GO_BARE.fullmatch(lines[0]):
            return lines[0]
    raise ValueError("expected `go version` (go version go1.24.4 linux/amd64) or `go env GOVERSION`")


def _gcc(lines: Sequence[str]) -> str:
    # `--version` ends in a distribution's own text (`(GCC) 14.2.1 20250207`) and names no target
    # for a native gcc; these two answers are exact on every GCC since 7.
    if len(lines) == 2 and _DOTTED.fullmatch(lines[0]) and _TRIPLET.fullmatch(lines[1]):
        return f"gcc {lines[0]} {lines[1]}"
    raise ValueError(
        "expected `{command} -dumpfullversion` then `{command} -dumpmachine` (12.2.0; riscv64-linux-gnu)"
    )


def _rustc(lines: Sequence[str]) -> str:
    rustc = _RUSTC.fullmatch(lines[0]) if len(lines) in (1, 2) else None
    cargo = _CARGO.fullmatch(lines[1]) if rustc and len(lines) == 2 else None
    if rustc is None or (len(lines) == 2 and cargo is None):
        raise ValueError("expected `rustc --version`, optionally then `cargo --version`")
    text = f"rustc {rustc['release']}"
    if "-" in rustc["release"]:
        text += rustc["build"] or ""  # a nightly or beta: the same number is many compilers
    if cargo and cargo["release"] != rustc["release"]:
        text += f" cargo {cargo['release']}"  # released together; named only when mixed
    return text


def _zig(lines: Sequence[str]) -> str:
    if len(lines) == 1 and _ZIG.fullmatch(lines[0]):
        return f"zig {lines[0]}"
    raise ValueError("expected `zig version` (0.14.0)")


def _qemu(lines: Sequence[str]) -> str:
    if len(lines) == 1 and (match := _QEMU.fullmatch(lines[0])):
        return f"qemu {match['release']}"
    raise ValueError("expected `qemu-ARCH --version` (qemu-riscv64 version 7.2.19 …)")


# How each compiler family's version output reads; a definition names one with `family`.
FAMILIES: Final[Mapping[str, Callable[[Sequence[str]], str]]] = {
    "go": _go, "gcc": _gcc, "rustc": _rustc, "zig": _zig, "qemu": _qemu,
}
KIND_FAMILIES: Final = {"go": "go", "c": "gcc", "rust": "rustc", "qemu": "qemu"}
# The version commands a definition without `version` runs: what its family reads.
FAMILY_VERSIONS: Final = {
    "go": [["{command}", "version"]],
    "gcc": [["{command}", "-dumpfullversion"], ["{command}", "-dumpmachine"]],
    "rustc": [["rustc", "--version"], ["cargo", "--version"]],
    "zig": [["{command}", "version"]],
    "qemu": [["{command}", "--version"]],
}


def normalize_identity(family: str, lines: Sequence[str]) -> str:
    """The identity in `lines` (first line of each version command); ValueError saying what
    `family` expects when they are not its output."""
    return FAMILIES[family](lines)


def _check_templates(name: str, table: Mapping[str, Any], file: Path) -> None:
    """Every template uses only placeholders `render` fills in (`templates.check`): a typo is a
    message when the definition loads, not an error when the toolchain is probed or prepared."""
    for key in ("command", "native_command", "version", "root", "prepare", "requires", "target_probe",
                "linker", "sysroot", "install", "env"):
        if key not in table:
            continue
        value = table[key]
        known = {"root": ("roots",), "prepare": (*PLACEHOLDERS, "mirror")}.get(key, PLACEHOLDERS)
        flat = list(value.values()) if isinstance(value, dict) else [value]
        while any(isinstance(v, list) for v in flat):
            flat = [w for v in flat for w in (v if isinstance(v, list) else [v])]
        for template in flat:
            if not isinstance(template, str):
                raise ConfigurationError(f"{file}: toolchain [{name}] `{key}`: {template!r} must be a string")
            check(template, known, where=f"{file}: toolchain [{name}] `{key}`")


def _parse_def(name: str, table: Mapping[str, Any], file: Path) -> ToolchainDef:
    check_keys(table, DEF_KEYS, where=f"[{name}]", file=file)
    if "kind" not in table or "command" not in table:
        raise ConfigurationError(f"{file}: toolchain [{name}] needs `kind` and `command`")
    _check_templates(name, table, file)
    family = table.get("family", KIND_FAMILIES.get(str(table["kind"])))
    if not isinstance(family, str) or family not in FAMILIES:
        said = f"`family` {family!r}{suggest(str(family), FAMILIES)}" if "family" in table else (
            f"kind `{table['kind']}` has no default `family`")
        raise ConfigurationError(
            f"{file}: toolchain [{name}]: {said}; set `family` to how its `version` output reads: "
            f"{', '.join(FAMILIES)}"
        )
    version = table.get("version", FAMILY_VERSIONS[family])
    if version and isinstance(version[0], str):
        version = [version]
    try:
        targets = parse_platforms(table["targets"]) if "targets" in table else tuple(PLATFORMS.values())
        root_platform = Platform.parse(table["root_platform"]) if "root_platform" in table else None
    except ConfigurationError as error:
        raise ConfigurationError(f"{file}: toolchain [{name}]: {error}") from None
    return ToolchainDef(
        name=name,
        kind=str(table["kind"]),
        file=file,
        command=str(table["command"]),
        native_command=table.get("native_command"),
        version=tuple(tuple(argv) for argv in version),
        targets=targets,
        root=table.get("root"),
        root_platform=root_platform,
        prepare=tuple(table.get("prepare", ())),
        requires=tuple(table.get("requires", ())),
        target_probe=tuple(table.get("target_probe", ())),
        linker=table.get("linker"),
        sysroot=str(table.get("sysroot", "/usr/{gnu_triplet}")),
        install=str(table.get("install", "")),
        env=dict(table.get("env", {})),
        priority=int(table.get("priority", 50)),
        description=str(table.get("description", "")),
        family=family,
        gopath=_gopath(table.get("gopath"), name, file),
    )


def _gopath(value: Any, name: str, file: Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value or ".." in value.split("/"):
        raise ConfigurationError(
            f"{file}: toolchain [{name}] `gopath` = {value!r} must be an absolute directory, as the job "
            'sees it (e.g. "/usr/share/gocode" in the toolchain\'s root)'
        )
    return value.rstrip("/") or "/"


def builtin_dir() -> Path:
    return Path(str(resources.files("crossyard") / "data" / "toolchains"))


def load_definitions(workspace_dir: Path | None) -> list[ToolchainDef]:
    """Built-in definitions, overridden by name by the workspace's `toolchains/*.toml`."""
    defs: dict[str, ToolchainDef] = {}
    dirs = [builtin_dir()]
    if workspace_dir is not None and workspace_dir.is_dir() and workspace_dir.resolve() != builtin_dir().resolve():
        dirs.append(workspace_dir)
    for directory in dirs:
        for path in sorted(directory.glob("*.toml")):
            for name, table in read_toml(path).items():
                if not isinstance(table, dict):
                    raise ConfigurationError(f"{path}: `{name}` must be a table [{name}] describing a toolchain")
                defs[name] = _parse_def(name, table, path)
    return sorted(defs.values(), key=lambda d: (d.priority, d.name))


# -- probing -------------------------------------------------------------------------------------


class ProbeCache:
    """Version outputs keyed by what would change them (binary path, size, mtime)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        self.dirty = False
        if path is not None and path.exists():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, value: str) -> None:
        self.entries[key] = value
        self.dirty = True

    def save(self) -> None:
        if self.path is not None and self.dirty:
            atomic_write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True))
            self.dirty = False


def installed_packages_digest(status: str) -> str:
    """sha256 over dpkg's status file's installed packages, one `name:arch=version` line each,
    sorted: what two roots made at different times differ in (and nothing about when or where)."""
    lines = []
    for paragraph in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in paragraph.splitlines() if ": " in line and line[:1] != " ")
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            lines.append(f"{fields['Package']}:{fields.get('Architecture', '')}={fields.get('Version', '')}")
    return "sha256:" + hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def in_root(root: Path | None, argv: Sequence[str], *, binds: Sequence[tuple[Path, str]] = (),
            workdir: str | None = None) -> list[str]:
    """`argv` as run inside `root` with bubblewrap (read-only root, fresh /proc, /dev, /tmp)."""
    if root is None:
        return list(argv)
    wrapped = ["bwrap", "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "--die-with-parent"]
    for source, target in binds:
        wrapped += ["--bind", str(source), target]
    if workdir:
        wrapped += ["--chdir", workdir]
    return [*wrapped, *argv]


class Prober:
    """Finds out, for each toolchain and platform, whether and how it can build here."""

    def __init__(self, definitions: Sequence[ToolchainDef], *, cache: ProbeCache, host: Platform | None = None) -> None:
        self.definitions = list(definitions)
        self.cache = cache
        self.host = host or Platform.host()
        self._targets: dict[tuple[str, str], ToolchainTarget] = {}

    def strategy(self, definition: ToolchainDef, platform: Platform) -> str:
        runs_on = definition.root_platform or self.host
        if runs_on != self.host:
            return "emulated"
        return "native" if platform == self.host else "cross"

    def _version(self, definition: ToolchainDef, platform: Platform, root: Path | None,
                 command: str) -> list[str] | None:
        """First line of each version command; None if a command is missing or fails."""
        lines = []
        for argv in definition.version:
            rendered = [definition.render(a, platform, command=command) for a in argv]
            if root is not None:
                binary = root / "usr" / "bin" / rendered[0]
                if not binary.exists():
                    return None
                key = f"root:{_stat_key(root / 'var' / 'lib' / 'dpkg' / 'status')}:{' '.join(rendered)}"
                argv_run = in_root(root, rendered)
            else:
                found = shutil.which(rendered[0])
                if found is None:
                    return None
                key = f"{_stat_key(Path(found).resolve())}:{' '.join(rendered)}"
                argv_run = [found, *rendered[1:]]
            cached = self.cache.get(key)
            if cached is None:
                try:
                    result = subprocess.run(argv_run, capture_output=True, text=True, timeout=60)
                except OSError:
                    return None
                if result.returncode != 0:
                    return None
                text = (result.stdout or result.stderr).strip()
                cached = text.splitlines()[0] if text else "unknown"
                self.cache.put(key, cached)
            lines.append(cached)
        return lines

    def probe(self, definition: ToolchainDef, platform: Platform) -> ToolchainTarget:
        key = (definition.name, platform.oci)
        if key not in self._targets:
            self._targets[key] = self._probe(definition, platform)
        return self._targets[key]

    def _probe(self, d: ToolchainDef, platform: Platform) -> ToolchainTarget:
        strategy = self.strategy(d, platform)
        fix = d.render(d.install, platform) if d.install else ""
        base = ToolchainTarget(name=d.name, kind=d.kind, platform=platform, strategy=strategy, available=False,
                               fix=fix)
        if platform not in d.targets:
            return replace(base, reason=f"{d.name} does not target {platform}")
        root = d.root_path()
        if root is not None and not (root / "usr").is_dir():
            return replace(base, reason=f"root {root} is not prepared")
        if strategy == "emulated" and d.root_platform is not None and not qemu_ready(d.root_platform):
            return replace(
                base,
                reason=f"binfmt_misc has no qemu-{d.root_platform.qemu_arch} entry",
                fix="apt-get install qemu-user-static binfmt-support && "
                f"update-binfmts --enable qemu-{d.root_platform.qemu_arch}",
            )
        command = d.render(d.native_command if (strategy == "native" and d.native_command) else d.command, platform)
        lines = self._version(d, platform, root, command)
        if root is None and lines is not None:
            command = shutil.which(command) or command  # absolute, so a clean PATH still finds it
        if lines is None:
            return replace(base, reason=f"`{command}` not found or not working")
        version = "; ".join(lines)
        try:
            identity = normalize_identity(d.family, lines)
        except ValueError as error:
            # No identity, no input key: unusable, and said so wherever it would have been chosen.
            return replace(
                base, version=version,
                reason=f"{d.file}: [{d.name}] `version` printed {version!r}, "
                f"not {d.family} output ({error})",
                fix=f"correct `version` or `family` of [{d.name}] in {d.file}",
            )
        for requirement in () if (strategy == "native" and d.native_command) else d.requires:
            path = Path(d.render(requirement, platform))
            if not path.exists():
                return replace(base, reason=f"{path} is missing")
        if d.target_probe:
            argv = [d.render(a, platform) for a in d.target_probe]
            probe_key = f"probe:{version}:{' '.join(argv)}"
            answer = self.cache.get(probe_key)
            if answer is None:
                result = subprocess.run(in_root(root, argv), capture_output=True, text=True)
                answer = result.stdout.strip() if result.returncode == 0 else ""
                self.cache.put(probe_key, answer)
            if not answer or not Path(answer).is_dir() or not any(Path(answer).iterdir()):
                return replace(base, reason=f"no std for {platform.rust_triple}")
        gopath = self._gopath(d, root) if d.gopath else ""
        if d.gopath and not gopath:
            return replace(base, reason=f"`gopath` {d.gopath} is not a directory"
                           + (f" in {root}" if root is not None else ""),
                           fix=fix or "install the Go library packages it should hold (Debian's golang-*-dev)")
        linker = d.render(d.linker, platform) if d.linker and strategy == "cross" else None
        if linker is not None:
            found = (root / "usr" / "bin" / linker).exists() if root else shutil.which(linker) is not None
            if not found:
                return replace(base, reason=f"linker {linker} is missing")
        return replace(
            base,
            available=True,
            command=command,
            version=version,
            identity=identity,
            root=root,
            sysroot=d.render(d.sysroot, platform),
            linker=linker,
            env={k: d.render(v, platform) for k, v in d.env.items()},
            gopath=d.gopath or "",
            gopath_digest=gopath,
            root_packages=self._root_packages(root) if root is not None else "",
        )

    def _root_packages(self, root: Path) -> str:
        """`installed_packages_digest` of the root, remembered until its package database changes."""
        status = root / "var" / "lib" / "dpkg" / "status"
        if not status.is_file():
            return ""
        key = f"packages:{_stat_key(status)}"
        cached = self.cache.get(key)
        if cached is None:
            cached = installed_packages_digest(status.read_text(errors="replace"))
            self.cache.put(key, cached)
        return cached

    def _gopath(self, d: ToolchainDef, root: Path | None) -> str:
        """The tree digest of the definition's `gopath` ("" if it is no directory). In a root,
        remembered until the root's package database changes (only apt changes a root's files,
        and jobs see it read-only); a host directory is digested on every probe."""
        assert d.gopath is not None
        where = root / d.gopath.lstrip("/") if root is not None else Path(d.gopath)
        if not where.is_dir():
            return ""
        key = None
        if root is not None and (root / "var" / "lib" / "dpkg" / "status").exists():
            # TREE_RULES: a digest taken under other rules (what a tree leaves out) is not reused
            key = f"gopath:{TREE_RULES}:{_stat_key(root / 'var' / 'lib' / 'dpkg' / 'status')}:{d.gopath}"
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        digest = tree_digest(where)
        if key is not None:
            self.cache.put(key, digest)
        return digest

    def candidates(self, kind: str, platform: Platform) -> list[ToolchainTarget]:
        """Every definition for `kind`, probed for `platform`, best first."""
        return [self.probe(d, platform) for d in self.definitions if d.kind == kind]

    def select(self, kind: str, platform: Platform, strategies: Sequence[str]) -> ToolchainTarget | None:
        found = [t for t in self.candidates(kind, platform) if t.available]
        for strategy in strategies:
            for target in found:
                if target.strategy == strategy:
                    return target
        return None


def qemu_ready(platform: Platform) -> bool:
    """Can this machine run `platform`'s binaries (binfmt registered or the emulator callable)?"""
    if platform == Platform.host():
        return True
    entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{platform.qemu_arch}"
    try:
        if entry.read_text().startswith("enabled"):
            return True
    except OSError:
        pass
    return False


def qemu_command(platform: Platform) -> str | None:
    """The qemu-user binary for `platform`, or None when it is not installed."""
    return shutil.which(platform.qemu_binary) or shutil.which(f"qemu-{platform.qemu_arch}")
