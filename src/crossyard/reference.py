"""Image references, `[HOST[:PORT]/]REPOSITORY[:TAG][@sha256:<64 hex>]`: the one parser.

The grammar is the distribution project's (distribution/reference, what docker, skopeo and
every registry accept), so a name crossyard takes is a name they take:

- The first `/`-separated word is a host when it has a `.` or a `:` or is `localhost`
  (`registry:5000/x` names a host with a port; `library/x` is a two-part repository).
- A repository is lowercase components `[a-z0-9]+` joined by `.`, `_`, `__` or dashes, the
  components joined by `/`. Uppercase is refused, not folded: a registry would refuse it too.
- A tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is `sha256:<64 lowercase hex>` (the
  only algorithm crossyard writes or checks). A tag and a digest together are allowed; the
  digest is what a registry is asked for.
- `host/repository` is at most 255 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .errors import ConfigurationError

FORM: Final = "[HOST[:PORT]/]REPOSITORY[:TAG][@sha256:<64 hex>]"
COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE: Final = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*$")
TAG_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_LABEL: Final = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
HOST_RE: Final = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$")
MAX_NAME: Final = 255


def split_host(name: str) -> tuple[str | None, str]:
    """`name` (no tag or digest) → (host or None, the rest), by the grammar's host rule."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


@dataclass(frozen=True, kw_only=True)
class Reference:
    host: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(
        cls, text: str, *, default_host: str | None = None, what: str = "image reference"
    ) -> Reference:
        """`text` → a Reference; `default_host` when it names none. `what` starts the message
        of the ConfigurationError a malformed reference raises (e.g. "file: [image] base")."""

        def bad(why: str) -> ConfigurationError:
            return ConfigurationError(f"{what} `{text}`: {why}; expected {FORM}")

        if not text.strip():
            raise ConfigurationError(f"{what} is empty; expected {FORM}")
        rest, at, digest = text.partition("@")
        if at and not DIGEST_RE.match(digest):
            raise bad(f"`{digest}` is not a digest (sha256:<64 lowercase hex>)")
        tag: str | None = None
        colon = rest.rfind(":")
        if colon > rest.rfind("/"):  # after the last `/`, a colon starts a tag (else a port)
            rest, tag = rest[:colon], rest[colon + 1:]
            if not TAG_RE.match(tag):
                raise bad(f"tag `{tag}` is not letters, digits, `_`, `.` and `-` (at most 128, "
                          "not starting with `.` or `-`)")
        host, repository = split_host(rest)
        if host is not None and not HOST_RE.match(host):
            raise bad(f"host `{host}` is not HOST[:PORT]")
        if not repository:
            raise bad("no repository")
        if not REPOSITORY_RE.match(repository):
            why = "uppercase letters are not allowed" if repository != repository.lower() else (
                "components are lowercase letters and digits separated by `.`, `_`, `__` or `-`, "
                "joined by `/`")
            raise bad(f"repository `{repository}`: {why}")
        if len(f"{host}/{repository}" if host else repository) > MAX_NAME:
            raise bad(f"the name is longer than {MAX_NAME} characters")
        return cls(host=host if host is not None else default_host, repository=repository,
                   tag=tag, digest=digest or None)

    @property
    def name(self) -> str:
        """`host/repository` (or the repository alone when there is no host)."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    @property
    def ref(self) -> str:
        """What a manifest request names: the digest if any, else the tag (`latest` if none)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return (self.name + (f":{self.tag}" if self.tag else "")
                + (f"@{self.digest}" if self.digest else ""))
