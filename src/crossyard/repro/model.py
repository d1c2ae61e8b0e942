"""What an explanation says: the causes it can name, the facts about a build it uses, and
the explanation itself (with its JSON form, for the report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

CAUSES: Final = (
    "build-path",
    "timestamp",
    "build-id",
    "umask",
    "file-order",
    "mtime",
    "owner",
    "locale",
    "c-runtime",
    "rust-metadata",
    "content",
)


KINDS: Final = (
    "elf", "tar", "gzip+tar", "zstd+tar", "ar", "json", "text", "bytes", "missing",
)
LABELS: Final = {
    "build-path": "a build path is embedded",
    "timestamp": "the build time is embedded",
    "build-id": "the build id differs",
    "umask": "file modes follow the build's umask",
    "file-order": "entries are in a different order",
    "mtime": "file mtimes differ",
    "owner": "file owners differ",
    "locale": "the output depends on the locale",
    "c-runtime": "another C runtime was linked",
    "rust-metadata": "Rust symbol hashes differ (cargo's -C metadata)",
    "content": "the content differs",
}


@dataclass(frozen=True, kw_only=True)
class Cause:
    name: str  # one of CAUSES
    evidence: str  # what was seen: section, offset, string, tar entry …
    fix: str  # what to change

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "evidence": self.evidence, "fix": self.fix}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cause:
        return cls(name=str(data["name"]), evidence=str(data["evidence"]), fix=str(data["fix"]))


@dataclass(frozen=True, kw_only=True)
class Variant:
    """Facts about one build, so differences can be attributed to what differed between them."""

    label: str  # e.g. "lock", "build-path", "umask"
    build_dirs: tuple[str, ...] = ()  # absolute paths the job ran in (src, out, root …)
    epoch: int | None = None  # wall-clock time (s) the build ran at
    source_date_epoch: int | None = None
    umask: int | None = None
    uid: int | None = None
    gid: int | None = None
    tz: str | None = None
    locale: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "build_dirs": list(self.build_dirs),
            "epoch": self.epoch,
            "source_date_epoch": self.source_date_epoch,
            "umask": self.umask,
            "uid": self.uid,
            "gid": self.gid,
            "tz": self.tz,
            "locale": self.locale,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        return cls(
            label=str(data["label"]),
            build_dirs=tuple(str(d) for d in data.get("build_dirs", ())),
            epoch=data.get("epoch"),
            source_date_epoch=data.get("source_date_epoch"),
            umask=data.get("umask"),
            uid=data.get("uid"),
            gid=data.get("gid"),
            tz=data.get("tz"),
            locale=data.get("locale"),
        )


@dataclass(frozen=True, kw_only=True)
class Explanation:
    name: str  # output file name
    kind: str  # one of KINDS
    summary: str  # one line a person can act on
    causes: tuple[Cause, ...]
    details: tuple[str, ...]  # differing sections / entries / keys, bounded in length

    @property
    def identical(self) -> bool:
        return not self.causes

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "causes": [cause.to_json() for cause in self.causes],
            "details": list(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explanation:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            summary=str(data["summary"]),
            causes=tuple(Cause.from_json(c) for c in data.get("causes", ())),
            details=tuple(str(d) for d in data.get("details", ())),
        )

